"""CUDA traces equal CPU traces (run where a GPU is present; skipped elsewhere), and the script
that runs the GPU checks in one go (scripts/gpu_check.sh)."""
from __future__ import annotations

import pytest
import torch

from model import load_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@needs_cuda
@pytest.mark.parametrize("kind", ["deit", "dinov2-reg"])
def test_cuda_trace_equals_cpu_trace(hf_models, kind):
    directory, _ = hf_models[kind]
    cpu = load_model(str(directory), device="cpu")
    gpu = load_model(str(directory), device="cuda")
    assert gpu.device.type == "cuda"
    H, W = cpu.cfg.image_size
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(0))
    grad = 1 if cpu.cfg.has_head else None
    a, b = cpu.trace(x, grad_class=grad), gpu.trace(x, grad_class=grad)
    assert b.attentions.device.type == "cpu"  # traces always come back on the CPU
    for name in ("attentions", "hidden_states", "patch_embeddings", "pos_embed", "queries", "keys", "values"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=1e-3, rtol=0, msg=name)
    if grad is not None:
        torch.testing.assert_close(b.logits, a.logits, atol=1e-3, rtol=0)
        torch.testing.assert_close(b.attention_grads, a.attention_grads, atol=1e-3, rtol=0)
    with torch.inference_mode():
        fused = gpu(x.cuda())[0] if grad is not None else gpu.forward_features(x.cuda())
    ref = b.logits if grad is not None else b.last_hidden_state
    torch.testing.assert_close(fused.cpu(), ref, atol=1e-3, rtol=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: run scripts/gpu_check.sh itself")
def test_gpu_check_script_says_what_is_missing_without_a_gpu():
    """scripts/gpu_check.sh (issue 15's GPU checks in one run) stops at once, saying why and
    what to do, where torch sees no CUDA device."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(["bash", str(root / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}, timeout=120)
    assert run.returncode != 0
    assert "no CUDA device" in run.stderr and "pass cpu for a dry run" in run.stderr
    assert "passed" not in run.stdout  # nothing ran after the check
