"""timm `VisionTransformer` state dicts → this project's ViT.

Our parameter names are timm's, so the mapping is nearly the identity: the Conv2d patch
kernel becomes the equivalent Linear, and the configuration is read from the tensors'
shapes plus the head count, which shapes cannot tell (it comes from the config file:
`model_args.num_heads`, or the size word in the architecture name).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from .config import ViTConfig
from .native import load_strict
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessor
from .vit import ViT, conv_patch_weight

HEADS_BY_SIZE = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16, "giant": 16}
RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1}


def looks_like_timm(state: dict[str, torch.Tensor]) -> bool:
    return "patch_embed.proj.weight" in state and any(k.startswith("blocks.0.") for k in state)


def timm_num_heads(raw: dict) -> int:
    args = raw.get("model_args") or {}
    if "num_heads" in args:
        return int(args["num_heads"])
    if "num_heads" in raw:
        return int(raw["num_heads"])
    arch = str(raw.get("architecture", ""))
    for word, heads in HEADS_BY_SIZE.items():
        if re.search(rf"(^|_){word}(_|$)", arch):
            return heads
    raise ValueError(
        f"cannot tell the number of heads of architecture {arch!r}; add \"model_args\": "
        "{\"num_heads\": H} to the config file"
    )


def timm_config(state: dict[str, torch.Tensor], raw: dict) -> ViTConfig:
    unsupported = [k for k in ("fc_norm.weight", "attn_pool.latent", "blocks.0.attn.q_norm.weight") if k in state]
    if unsupported:
        raise ValueError(
            f"this timm model uses {unsupported[0].split('.')[0]}, which Patchlight's ViT does not support "
            "(supported: CLS-token heads, distilled heads, registers, LayerScale)"
        )
    D, C, P, _ = state["patch_embed.proj.weight"].shape
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    has_cls, has_dist = "cls_token" in state, "dist_token" in state
    regs = state["reg_token"].shape[1] if "reg_token" in state else 0
    prefix = int(has_cls) + int(has_dist) + regs
    pos_len = state["pos_embed"].shape[1]
    # Which leading prefix tokens carry a position: all of them (timm's default), only CLS,
    # or none (timm's no_embed_class, e.g. DINOv2 with registers). The rest must be a square grid.
    for npe in dict.fromkeys((prefix, int(has_cls), 0)):
        grid_len = pos_len - npe
        side = math.isqrt(max(grid_len, 0))
        if grid_len > 0 and side * side == grid_len:
            break
    else:
        raise ValueError(f"pos_embed has {pos_len} rows, which is not prefix + a square grid; cannot infer the grid")
    num_classes = state["head.weight"].shape[0] if "head.weight" in state else 0
    pre = raw.get("pretrained_cfg") or {}
    labels = raw.get("label_names") or pre.get("label_names")
    return ViTConfig(
        image_size=(side * P, side * P), patch_size=P, in_chans=C, embed_dim=D, depth=depth,
        num_heads=timm_num_heads(raw), mlp_dim=state["blocks.0.mlp.fc1.weight"].shape[0],
        qkv_bias="blocks.0.attn.qkv.bias" in state, act="gelu",
        norm_eps=float((raw.get("model_args") or {}).get("norm_eps", 1e-6)),  # timm's LayerNorm default
        layer_scale="blocks.0.ls1.gamma" in state, class_token=has_cls, distill_token=has_dist,
        num_register_tokens=regs, pos_embed_prefix=pos_len - grid_len,
        num_classes=num_classes, head_type=("cls_dist_mean" if has_dist and num_classes else "cls") if num_classes else "none",
        class_names=list(labels) if labels and len(labels) == num_classes else None,
        name=str(raw.get("architecture", "timm-vit")), family="timm",
    )


def timm_preprocessor(raw: dict, cfg: ViTConfig) -> Preprocessor:
    pre = raw.get("pretrained_cfg") or raw
    size = tuple(pre.get("input_size", (3, *cfg.image_size))[1:])
    crop_pct = float(pre.get("crop_pct", 1.0))
    return Preprocessor(
        resize_to=None if crop_pct < 1 else size,
        shortest_edge=int(math.floor(size[0] / crop_pct)) if crop_pct < 1 else None,
        resample=RESAMPLE.get(pre.get("interpolation", "bicubic"), 3),
        crop_size=size if crop_pct < 1 else None,
        image_mean=tuple(pre.get("mean", IMAGENET_MEAN)),
        image_std=tuple(pre.get("std", IMAGENET_STD)),
    )


def load_timm_state(state: dict[str, torch.Tensor], raw: dict, where: str) -> ViT:
    """Build our ViT from a timm state dict and its config dictionary."""
    if not looks_like_timm(state):
        raise ValueError(
            f"{where} is not a timm VisionTransformer state dict (no patch_embed.proj.weight / blocks.*); "
            "supported: transformers ViT/DeiT/DINOv2 directories and timm ViT state dicts"
        )
    cfg = timm_config(state, raw)
    state = dict(state)
    state["patch_embed.proj.weight"] = conv_patch_weight(state["patch_embed.proj.weight"])
    model = ViT(cfg)
    load_strict(model, state, where)
    model.preprocessor = timm_preprocessor(raw, cfg)
    model.source = where
    return model.eval()


def find_timm_config(weights: Path) -> dict:
    """The config beside a weight file: <stem>.json, then config.json; {} if neither exists."""
    for candidate in (weights.with_suffix(".json"), weights.parent / "config.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return {}
