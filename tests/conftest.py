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


def tiny_clip_tokenizer():
    """A CLIP tokenizer built offline: byte-level BPE over the 256 byte symbols (each also as a
    word end, `</w>`), no merges, CLIP's start and end tokens. Every text tokenizes."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def build_clip(directory, kind: str = "clip", seed: int = 0, vision: dict | None = None, perturb: float = 0.15):
    """Save a small random CLIP (`clip`: CLIPModel with its tokenizer; `vision`: CLIPVisionModel;
    `vision-proj`: CLIPVisionModelWithProjection); return the eager reference model."""
    import torch
    import transformers

    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    ids = tokenizer.get_vocab()
    vision = vision or dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                            image_size=32, patch_size=8)
    text = dict(vocab_size=len(ids), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=40, bos_token_id=ids["<|startoftext|>"],
                eos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"])
    if kind == "clip":
        model = transformers.CLIPModel(transformers.CLIPConfig(text_config=text, vision_config=vision,
                                                               projection_dim=24))
    elif kind == "vision":
        model = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**vision))
    elif kind == "vision-proj":
        model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**vision, projection_dim=24))
    else:
        raise ValueError(kind)
    _perturb(model, scale=perturb, seed=seed)
    model.save_pretrained(directory)
    if kind == "clip":
        tokenizer.save_pretrained(directory)
    model.set_attn_implementation("eager")
    return model.eval()


@pytest.fixture(scope="session")
def clip_model(tmp_path_factory):
    """(directory, eager reference CLIPModel) of a small random CLIP with its tokenizer."""
    directory = tmp_path_factory.mktemp("clip")
    return directory, build_clip(directory)


@pytest.fixture(scope="session")
def clip_builder():
    """`build_clip`, for tests that build their own CLIP variant."""
    return build_clip


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
