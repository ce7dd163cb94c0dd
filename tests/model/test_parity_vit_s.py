"""Parity at a realistic size: ViT-S-sized random-weight models (D = 384, 12 layers, 6 heads,
224 px; T = 197 for ViT/16, 257 for DINOv2/14) with sharp attention (rows peak near 1).

float32: our explicit trace and transformers' eager pass sum the same products in different
orders, so they differ by rounding that grows with depth and with the size of the values.
The tolerance is stated in float32 ulps of each tensor's largest value: |ours − theirs| ≤
ULPS · 2⁻²³ · max|theirs|, ULPS = 64. Measured (README "Measured"): hidden states and logits up
to ~10 ulps (7.6e-5 absolute on values up to 65), attention up to ~28 ulps of 1 (3.3e-6).

float64: DINOv2 agrees to ~1e-14, i.e. exactly up to float64 rounding. transformers' ViT
computes its eager softmax in float32 even for a float64 model (``softmax(..., dtype=
torch.float32)`` in modeling_vit.py), so its float64 reference is the SDPA path (no cast; it
returns no attention maps): hidden states and logits agree to ~1e-13.
"""
from __future__ import annotations

import pytest
import torch

ULPS = 64
EPS32 = 2.0**-23
TOL64 = 1e-11  # float64 rounding after 12 layers on values up to ~60 is ~1e-13
SIZE = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6)


def _build(kind: str):
    """(transformers model, our ViT with the same weights), built in memory (no files)."""
    import transformers
    from transformers.initialization import no_init_weights

    from model.hf import hf_config, map_hf_state, strip_base_prefix
    from model.native import load_strict
    from model.vit import ViT

    with no_init_weights():  # filled below: transformers' own init costs seconds at this size
        if kind == "dinov2":
            ref = transformers.Dinov2Model(transformers.Dinov2Config(**SIZE, mlp_ratio=4, image_size=224, patch_size=14))
        else:
            ref = transformers.ViTForImageClassification(transformers.ViTConfig(
                **SIZE, intermediate_size=1536, image_size=224, patch_size=16, num_labels=10))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, prm in ref.named_parameters():
            noise = torch.randn(prm.shape, generator=g)
            if "norm" in name.lower():  # LayerNorm: weight ≈ 1, bias ≈ 0
                prm.copy_(1 + 0.1 * noise if name.endswith("weight") else 0.1 * noise)
            elif "lambda1" in name:  # DINOv2's LayerScale
                prm.copy_(0.1 + 0.05 * noise)
            else:
                prm.copy_(0.08 * noise)  # large enough that attention rows peak near 1
    state = ref.state_dict()
    cfg = hf_config(ref.config.to_dict(), strip_base_prefix(state))
    ours = ViT(cfg)
    load_strict(ours, map_hf_state(state, cfg), kind)
    return ref.eval(), ours.eval()


@pytest.fixture(scope="module")
def vit_s():
    return {kind: _build(kind) for kind in ("dinov2", "vit")}


def _run(ref, ours, dtype, impl="eager"):
    ref.to(dtype), ours.to(dtype)
    ref.set_attn_implementation(impl)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1), dtype=dtype)
    with torch.no_grad():
        out = ref(pixel_values=x, output_attentions=impl == "eager", output_hidden_states=True)
    return ours.trace(x), out


def _ulps(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """The largest difference in float32 ulps of the reference's largest value."""
    return float((ours - theirs).abs().max() / (EPS32 * theirs.abs().max()))


@pytest.mark.parametrize("kind", ["dinov2", "vit"])
def test_float32_within_rounding(vit_s, kind):
    ref, ours = vit_s[kind]
    trace, out = _run(ref, ours, torch.float32)
    assert max(float(a.max()) for a in out.attentions) > 0.9  # sharp attention, as in trained models
    worst = {
        "hidden": max(_ulps(trace.hidden_states[:, l], h) for l, h in enumerate(out.hidden_states)),
        "attention": max(_ulps(trace.attentions[:, l], a) for l, a in enumerate(out.attentions)),
        "output": _ulps(trace.logits, out.logits) if kind == "vit"
        else _ulps(trace.last_hidden_state, out.last_hidden_state),
    }
    assert all(v <= ULPS for v in worst.values()), worst
    assert worst["hidden"] > 0.5  # float32 really does round differently: the check is not vacuous


def test_dinov2_float64_is_exact(vit_s):
    ref, ours = vit_s["dinov2"]
    trace, out = _run(ref, ours, torch.float64)
    for l, h in enumerate(out.hidden_states):
        torch.testing.assert_close(trace.hidden_states[:, l], h, atol=TOL64, rtol=0)
    for l, a in enumerate(out.attentions):
        torch.testing.assert_close(trace.attentions[:, l], a, atol=TOL64, rtol=0)
    torch.testing.assert_close(trace.last_hidden_state, out.last_hidden_state, atol=TOL64, rtol=0)


def test_vit_float64_is_exact_against_the_uncast_path(vit_s):
    ref, ours = vit_s["vit"]
    trace, out = _run(ref, ours, torch.float64, impl="sdpa")
    for l, h in enumerate(out.hidden_states):
        torch.testing.assert_close(trace.hidden_states[:, l], h, atol=TOL64, rtol=0)
    torch.testing.assert_close(trace.logits, out.logits, atol=TOL64, rtol=0)
