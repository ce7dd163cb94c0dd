"""`model` exports lazily (PEP 562): torch-free submodules load without torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TORCH_FREE = ("model.tokens", "model.numerics", "model.trace", "model.attribution", "model.head_stats",
              "model.embedding_stats", "model.config", "model.gallery", "model.steps", "model.cli", "model.explain",
              "model.env", "model.naming", "model.hub", "model.cards", "model.dataset")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_submodules_do_not_import_torch(module):
    assert "torch" not in _modules_after(f"import {module}")


def test_package_exports_still_resolve():
    import model

    assert set(model.__all__) <= set(dir(model))
    for name in model.__all__:
        assert getattr(model, name) is not None, name
    from model import attention_rollout, load_model  # noqa: F401  (the documented import still works)

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        model.nope  # noqa: B018
