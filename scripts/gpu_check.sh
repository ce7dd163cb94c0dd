#!/usr/bin/env bash
# The GPU checks of issue 15 in one run, for a machine with CUDA (e.g. the lent device machine:
# its python3 holds PyTorch and transformers; nothing here needs streamlit or a network):
#   1. a CUDA trace equals the CPU trace (tests/model/test_cuda.py: attentions, hidden states,
#      q/k/v, logits and attention gradients within 1e-3, and the fused forward against both);
#   2. the trace's throughput for batches of 1, 8 and 32 images (bench/bench_trace.py: a
#      DINOv2-S-shaped ViT at 224 px, our trace against our fused forward and transformers'
#      eager model, interleaved; images per second printed for each).
#
#   bash scripts/gpu_check.sh                 # cuda, batches 1 8 32, 10 rounds each
#   BATCHES="1 2" REPEATS=2 bash scripts/gpu_check.sh cpu   # a quick run of the same steps on a CPU
#
# PYTHON picks the interpreter (default: python3). Exits non-zero if a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${1:-cuda}
export PYTHONUNBUFFERED=1
if [ "$DEVICE" = cuda ]; then
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_check.sh: torch sees no CUDA device here; run it where nvidia-smi lists a GPU, or pass cpu for a dry run")'
  "$PY" -c 'import torch; print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))'
  "$PY" -m pytest -q -p no:cacheprovider tests/model/test_cuda.py
fi
for batch in ${BATCHES:-1 8 32}; do
  "$PY" bench/bench_trace.py --device "$DEVICE" --batch "$batch" --repeats "${REPEATS:-10}"
done
