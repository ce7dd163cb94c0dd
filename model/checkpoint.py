"""Reading weight files safely: safetensors first; `.pth`/`.bin` only with weights_only=True."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of one weight file (.safetensors, or a pickle loaded with weights_only=True)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    if path.suffix in (".pth", ".pt", ".bin"):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # pickle refuses anything that is not plain tensors
            raise ValueError(
                f"{path} could not be read as a plain tensor checkpoint ({type(err).__name__}: {err}); "
                "only weights-only checkpoints are loaded — convert it to .safetensors"
            ) from None
        for wrapper in ("state_dict", "model", "module"):
            if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                state = state[wrapper]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} does not hold a state dict of tensors; save model.state_dict() instead")
        return state
    raise ValueError(f"{path}: unsupported weight file type {path.suffix!r}; use .safetensors, .pth or .bin")


def read_weights_dir(directory: Path) -> dict[str, torch.Tensor]:
    """A directory's weights: model.safetensors (or its sharded index), else pytorch_model.bin."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(read_state_dict(directory / shard))
            return state
    for name in ("model.safetensors", "pytorch_model.bin", "pytorch_model.pth"):
        if (directory / name).is_file():
            return read_state_dict(directory / name)
    raise ValueError(
        f"{directory} has no weights (looked for model.safetensors, pytorch_model.bin and sharded indexes); "
        "point at a directory written by save_pretrained"
    )
