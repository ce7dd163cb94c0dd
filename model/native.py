"""Patchlight's own on-disk format: `patchlight.json` (config + preprocessing) + `model.safetensors`.

The built-in models and converted checkpoints are stored this way; the state dict uses
this project's ViT names, so loading is a strict `load_state_dict`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import ViTConfig
from .preprocess import Preprocessor
from .vit import ViT

CONFIG_NAME = "patchlight.json"
WEIGHTS_NAME = "model.safetensors"


def save_native(model: ViT, directory: str | Path, extra: dict | None = None) -> Path:
    """Write `model` to `directory` (created if needed) in Patchlight's format."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "patchlight-vit/1",
        "config": model.cfg.to_dict(),
        "preprocessor": model.preprocessor.to_dict() if model.preprocessor is not None else None,
        **(extra or {}),
    }
    (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME))
    return directory


def is_native_dir(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_NAME).is_file()


def load_native(directory: str | Path) -> ViT:
    directory = Path(directory)
    meta = json.loads((directory / CONFIG_NAME).read_text())
    cfg = ViTConfig.from_dict(meta["config"])
    model = ViT(cfg)
    state = load_file(str(directory / WEIGHTS_NAME))
    load_strict(model, state, str(directory / WEIGHTS_NAME))
    if meta.get("preprocessor"):
        model.preprocessor = Preprocessor.from_dict(meta["preprocessor"])
    model.source = str(directory)
    return model.eval()


def load_strict(model: ViT, state: dict[str, torch.Tensor], where: str) -> None:
    """load_state_dict that names every missing key, unexpected key and shape mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches {_few(mismatched)}")
    if problems:
        raise ValueError(
            f"{where} does not fit this ViT configuration: " + "; ".join(problems)
            + ". Check that the checkpoint and its config belong together and are a supported ViT family"
        )
    with torch.no_grad():
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def _few(items: list[str], n: int = 6) -> str:
    shown = ", ".join(items[:n])
    return f"[{shown}{f', … ({len(items) - n} more)' if len(items) > n else ''}]"
