"""Explanation maps for one image: the one entry point behind `python -m model explain`, the
app's explanation view and bench/bench_attribution.py.

Methods, by id (the CLI's ``--method``; `METHOD_TITLES` gives the words a page shows):

- ``attention``: the raw attention of token `query` at one layer and head (or a head fusion);
- ``rollout``: attention rollout (Abnar & Zuidema 2020), read at row `query` — any token;
- ``gradient-rollout`` and ``chefer`` (Chefer et al. 2021): for one class, read at the CLS
  row R[0, p:], as their definitions say; they need the attention gradients ∂y_c/∂A_l.

`explanation_maps` is numpy in, numpy out (no torch); `explain` runs a model for the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .attribution import attention_rollout, chefer_relevance, gradient_rollout, patch_map, query_attention

if TYPE_CHECKING:
    from .vit import ViT

METHODS = ("attention", "rollout", "gradient-rollout", "chefer")
CLASS_METHODS = ("gradient-rollout", "chefer")
METHOD_TITLES = {
    "attention": "attention",
    "rollout": "rollout",
    "gradient-rollout": "gradient rollout",
    "chefer": "Chefer et al.",
}


def default_methods(has_gradients: bool) -> tuple[str, ...]:
    """What the explanation view shows: rollout, and the class maps when there are gradients."""
    return ("rollout", *CLASS_METHODS) if has_gradients else ("rollout",)


def explanation_maps(attentions: np.ndarray, gradients: np.ndarray | None = None, *, num_prefix_tokens: int,
                     grid: tuple[int, int], methods=None, fusion: str = "mean", discard_ratio: float = 0.0,
                     residual_alpha: float = 0.5, start_layer: int = 0, query: int = 0, layer: int = -1,
                     head="mean") -> dict[str, np.ndarray]:
    """``{method id: [h, w] map}`` for one image, in the order of `methods`.

    attentions [L, H, T, T] and gradients [L, H, T, T] (∂y_c/∂A_l, or None without a class
    head) of one image. methods: ids from `METHODS`; None gives `default_methods`. fusion,
    discard_ratio, residual_alpha: rollout's (DESIGN "Attribution"); start_layer is clamped
    to L−1 and used by every rollout-like map; query: the row of ``rollout`` and
    ``attention``; layer, head: the layer and head (an index or a fusion) of ``attention``.
    """
    L = np.shape(attentions)[0]
    p, grid = int(num_prefix_tokens), tuple(grid)
    methods = default_methods(gradients is not None) if methods is None else tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"method {unknown[0]!r} is unknown; choose one of {', '.join(METHODS)}")
    if gradients is None and any(m in CLASS_METHODS for m in methods):
        raise ValueError(
            f"{', '.join(m for m in methods if m in CLASS_METHODS)} explain a class logit and need the attention "
            "gradients (trace with grad_class=…); without a classification head use rollout or attention"
        )
    start = min(int(start_layer), L - 1)
    maps = {}
    for method in methods:
        if method == "attention":
            row = query_attention(attentions, layer, head, query)  # (T,)
        elif method == "rollout":
            row = attention_rollout(attentions, fusion, discard_ratio, residual_alpha, start, p)[query]  # (T,)
        elif method == "gradient-rollout":
            row = gradient_rollout(attentions, gradients, discard_ratio, residual_alpha, start, p)[0]  # CLS row
        else:
            row = chefer_relevance(attentions, gradients, start)[0]  # CLS row
        maps[method] = patch_map(row, grid, p)  # (h, w)
    return maps


@dataclass
class Explanation:
    map: np.ndarray  # (h, w) over the patch grid
    image: np.ndarray  # (H, W, 3) uint8, the model input as the model sees it
    method: str
    label_index: int | None
    label: str | None
    description: str


def resolve_label(model: ViT, label) -> int | None:
    """A class name or index → index; None means the top class."""
    if label is None:
        return None
    names = model.cfg.class_names or []
    text = str(label).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < model.cfg.num_classes:
            raise ValueError(f"label {index} is out of range; this model has classes 0…{model.cfg.num_classes - 1}")
        return index
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
    raise ValueError(f"label {text!r} is not a class of this model; use an index or one of: {shown}")


def explanation_request(model: ViT, method: str, label=None) -> tuple[int | None, object]:
    """Check `method` and `label` for `model`: (the label's index or None for the top class,
    the `grad_class` to trace with — None when the method needs no gradients)."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    class_specific = method in CLASS_METHODS
    if class_specific and not model.cfg.has_head:
        raise ValueError(
            f"{method} explains a class logit, but {model.source} has no classification head; "
            "use --method rollout or attention"
        )
    index = resolve_label(model, label) if model.cfg.has_head else None
    grad_class = ("top" if index is None else index) if class_specific else None
    return index, grad_class


def explain(model: ViT, image, method: str, label=None, layer: int = -1, head="mean") -> Explanation:
    """One map of the CLS token for the CLI: run the model on `image`, then `explanation_maps`."""
    index, grad_class = explanation_request(model, method, label)
    trace = model.trace([image], grad_class=grad_class).numpy()
    return explanation_of_trace(trace, 0, method, index, layer, head)


def explanation_of_trace(trace, b: int, method: str, index: int | None = None, layer: int = -1,
                         head="mean") -> Explanation:
    """The `Explanation` of image `b` of a numpy trace (traced with the gradients `method` needs);
    index: the class asked for, None for the top class."""
    head_arg = "mean"
    if method == "attention":
        head_arg = head if str(head) in ("mean", "max", "min") else int(head)
    grads = trace.attention_grads[b] if trace.attention_grads is not None else None
    (m,) = explanation_maps(trace.attentions[b], grads, num_prefix_tokens=trace.num_prefix_tokens, grid=trace.grid,
                            methods=(method,), layer=layer, head=head_arg).values()
    if method == "attention":
        what = f"CLS attention, layer {layer % trace.L}, head {head_arg}"
    elif method == "rollout":
        what = "attention rollout of CLS (mean fusion, α = 0.5)"
    else:
        what = f"{method} of CLS"
    if trace.grad_classes is not None:
        index = int(trace.grad_classes[b])
    elif index is None and trace.logits is not None:
        index = int(trace.logits[b].argmax())
    name = (trace.labels or [None] * (index + 1))[index] if index is not None else None
    if index is not None:
        what += f" for class {index}" + (f" ({name})" if name else "")
    grid = trace.grid
    return Explanation(m, trace.image(b), method, index, name, what + f", grid {grid[0]}×{grid[1]}")
