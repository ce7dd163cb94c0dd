"""`load_model(source, device="auto")`: one entry point for every way a ViT arrives.

source is a built-in name, a local path (a transformers directory, a timm directory or
weight file with its config, or a Patchlight directory), or `hf:<repo id>` downloaded
with huggingface_hub when online.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import read_state_dict, read_weights_dir
from .hf import load_hf_dir
from .hub import canonical_repo_id
from .native import is_native_dir, load_native
from .timm_format import find_timm_config, load_timm_state
from .vit import ViT

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """CUDA when available, else Apple's MPS, else the CPU; an explicit device wins."""
    if str(device) != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_model(source: str | Path, device: str | torch.device = "auto", head=None) -> ViT:
    """Load a ViT from a built-in name, a local path or `hf:<repo id>`, on `device`.

    head: a head file (path or bytes, `model.heads.save_head`; e.g. taught by `model.teach`) to
    attach: the result then has ``cfg.has_head`` true and that head's classes."""
    from .builtins import BUILTIN_NAMES, load_builtin  # late: built-ins import this module's siblings

    text = str(source).strip()
    if text in BUILTIN_NAMES:
        model = load_builtin(text)
    elif text.startswith("hf:"):
        model = load_hub(text[3:])
    else:
        model = load_path(Path(text).expanduser(), BUILTIN_NAMES)
    model = model.to(resolve_device(device)).eval()
    if head is not None:
        from .heads import attach_head, load_head

        model = attach_head(model, load_head(head))
    return model


def load_path(path: Path, builtin_names=()) -> ViT:
    if not path.exists():
        raise ValueError(
            f"{str(path)!r} is neither a built-in model ({', '.join(builtin_names)}), an hf:<repo id>, "
            "nor an existing path; check the spelling"
        )
    if path.is_dir():
        if is_native_dir(path):
            return load_native(path)
        config = path / "config.json"
        if not config.is_file():
            raise ValueError(f"{path} has no config.json; point at a directory written by save_pretrained")
        raw = json.loads(config.read_text())
        if "model_type" in raw:
            return load_hf_dir(path)
        return load_timm_state(read_weights_dir(path), raw, str(path))
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"{path}: expected a directory or a {', '.join(WEIGHT_SUFFIXES)} weight file")
    return load_timm_state(read_state_dict(path), find_timm_config(path), str(path))


def load_hub(repo_id: str) -> ViT:
    """Download `repo_id` with huggingface_hub (config, preprocessing, weights) and load it."""
    repo_id = canonical_repo_id(repo_id)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ValueError("loading hf: models needs huggingface_hub; run `pip install huggingface_hub`") from None
    # *.json and merges.txt: config, preprocessing and (for CLIP) the tokenizer of the text tower
    patterns = ["*.json", "merges.txt", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
    try:
        local = Path(snapshot_download(repo_id, allow_patterns=patterns))
        if not any(local.glob("*.safetensors")):
            local = Path(snapshot_download(repo_id, allow_patterns=["*.json", "merges.txt", "pytorch_model.bin"]))
    except Exception as err:  # offline, unknown repo, gated repo, network errors: all one message
        raise ValueError(
            f"could not download hf:{repo_id} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "check the repo id and the internet connection, or load a local directory instead"
        ) from None
    model = load_path(local)
    model.source = f"hf:{repo_id}"
    model.cfg.name = repo_id
    return model
