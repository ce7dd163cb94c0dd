"""Shared fixtures: small random-weight transformers models saved to temp directories, and a
tiny Patchlight ViT.

Tests never reach a hub; every reference model is built here, perturbed so that its
attention is far from uniform (a near-uniform map would make parity checks too easy).
"""
from __future__ import annotations

import os

import pytest

# torch is imported inside the fixtures that build models, never here: tests/viz runs without it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SMALL = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=4)


def _perturb(model, scale: float = 0.15, seed: int = 0) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def build_hf(kind: str, directory, seed: int = 0):
    """Save a small random `kind` model with save_pretrained; return the eager reference model."""
    import torch
    import transformers

    torch.manual_seed(seed)
    if kind == "vit":
        cfg = transformers.ViTConfig(**SMALL, intermediate_size=96, image_size=32, patch_size=8, num_labels=5)
        model = transformers.ViTForImageClassification(cfg)
    elif kind == "vit-base":
        cfg = transformers.ViTConfig(**SMALL, intermediate_size=96, image_size=32, patch_size=8)
        model = transformers.ViTModel(cfg, add_pooling_layer=True)
    elif kind == "deit":
        cfg = transformers.DeiTConfig(**SMALL, intermediate_size=96, image_size=32, patch_size=8, num_labels=5)
        model = transformers.DeiTForImageClassificationWithTeacher(cfg)
    elif kind == "dinov2":
        cfg = transformers.Dinov2Config(**SMALL, mlp_ratio=2, image_size=28, patch_size=7)
        model = transformers.Dinov2Model(cfg)
    elif kind == "dinov2-cls":
        cfg = transformers.Dinov2Config(**SMALL, mlp_ratio=2, image_size=28, patch_size=7, num_labels=4)
        model = transformers.Dinov2ForImageClassification(cfg)
    elif kind == "dinov2-reg":
        cfg = transformers.Dinov2WithRegistersConfig(**SMALL, mlp_ratio=2, image_size=28, patch_size=7,
                                                      num_register_tokens=4)
        model = transformers.Dinov2WithRegistersModel(cfg)
    else:
        raise ValueError(kind)
    _perturb(model, seed=seed)
    model.save_pretrained(directory)
    return model.eval()


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory):
    """{kind: (directory, eager reference model)} for every supported transformers family."""
    out = {}
    for kind in ("vit", "vit-base", "deit", "dinov2", "dinov2-cls", "dinov2-reg"):
        directory = tmp_path_factory.mktemp(kind)
        ref = build_hf(kind, directory)
        ref.set_attn_implementation("eager")
        out[kind] = (directory, ref)
    return out


@pytest.fixture()
def tiny_vit():
    """A tiny classifier of our own ViT with non-trivial weights."""
    import torch

    from model import ViT, ViTConfig

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=(24, 24), patch_size=6, embed_dim=24, depth=3, num_heads=3,
                    mlp_dim=48, num_classes=4, layer_scale=True, num_register_tokens=2)
    model = ViT(cfg)
    _perturb(model, scale=0.3)
    return model.eval()
