"""Explanation maps for one image: the one entry point behind `python -m model explain`, the
app's explanation view and bench/bench_attribution.py.

Every method is an id in `METHODS` with a title (`METHOD_TITLES`, the words a page shows) and
a paragraph saying what it computes (`METHOD_DESCRIPTIONS`, shown by the app and the CLI's
``--help``). Three kinds of input feed them:

- the attention alone: ``attention``, ``rollout``, ``attention-flow`` (read at row `query`);
- the attention and its gradients ∂y_c/∂A_l (a class head): ``gradient-rollout``, ``chefer``;
- the model itself (`MODEL_METHODS`, computed by `model.relevance.model_relevance` and passed
  in as `relevance`): ``legrad``, ``attnlrp``, ``gradcam``.

`explanation_maps` is numpy in, numpy out (no torch); `explain` runs a model for the CLI.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .attention_flow import attention_flow, flow_available, flow_limit_message
from .attribution import attention_rollout, chefer_relevance, gradient_rollout, patch_map, query_attention

if TYPE_CHECKING:
    from .vit import ViT

METHODS = ("attention", "rollout", "attention-flow", "gradient-rollout", "chefer", "legrad", "attnlrp", "gradcam")
GRADIENT_METHODS = ("gradient-rollout", "chefer")  # need ∂y_c/∂A_l
MODEL_METHODS = ("legrad", "attnlrp", "gradcam")  # need the model: model.relevance.model_relevance
CLASS_METHODS = GRADIENT_METHODS + MODEL_METHODS  # explain a class logit: need a classification head
QUERY_METHODS = ("attention", "rollout", "attention-flow")  # read at the row of the chosen query token
EXTRA_METHODS = ("attention-flow", *MODEL_METHODS)  # the app's explanation view adds one of these on request
METHOD_TITLES = {
    "attention": "attention",
    "rollout": "rollout",
    "attention-flow": "attention flow",
    "gradient-rollout": "gradient rollout",
    "chefer": "Chefer et al.",
    "legrad": "LeGrad",
    "attnlrp": "AttnLRP",
    "gradcam": "Grad-CAM",
}
METHOD_DESCRIPTIONS = {
    "attention": "The raw attention weights of the query token at one layer and head: where that one head, in that "
                 "one layer, takes its information from. It ignores every other layer and the skip connections.",
    "rollout": "Attention rollout (Abnar & Zuidema 2020): each layer's attention, averaged over heads (or max/min), "
               "is mixed with the identity to stand for the skip connection, Â = α·A + (1−α)·I, its rows rescaled to "
               "sum 1, and the layers are multiplied, Â_L ⋯ Â_1. The query token's row says how much of each input "
               "patch reaches it along all paths together. No class is involved.",
    "attention-flow": "Attention flow (Abnar & Zuidema 2020): the same residual-augmented attention Â, read as a "
                      "network of pipes from every token of one layer to every token of the next, each pipe as wide "
                      "as its weight. A patch's value is the largest amount that can flow from the query token at the "
                      "top to that patch at the bottom (an exact maximum flow, one per patch): the narrowest cut "
                      "limits it, where rollout adds up every path. Costly, so offered only for small grids "
                      "(L·T² ≤ 10,000 edges).",
    "gradient-rollout": "Gradient-weighted rollout: rollout of mean_h((∂y_c/∂A_l ⊙ A_l)⁺), each head's attention "
                        "weighted by how much the class logit y_c would change with it, the positive part taken per "
                        "head before the mean (Chefer's Ā), each gradient paired with its own layer. Read at the "
                        "CLS row.",
    "chefer": "Chefer, Gur & Wolf 2021 (ICCV, \"Generic attention-model explainability\"): starting from the identity, "
              "each layer adds its gradient-weighted attention Ā = mean_h((∂y_c/∂A ⊙ A)⁺) applied to the relevance "
              "so far, R ← R + Ā·R (their Eqs. 5–6). Read at the CLS row: the patches that raise the class logit "
              "through attention.",
    "legrad": "LeGrad (Bousselham et al., ICCV 2025): every layer's output is passed through the final norm and the "
              "head as if it were the last, giving that layer's class score; the score's gradient with respect to "
              "that layer's own attention map, its positive part averaged over heads and query tokens, says which "
              "patches the layer's attention would have to look at more to raise the class. The layers' maps are "
              "summed and scaled to 0–1.",
    "attnlrp": "AttnLRP (Achtibat et al., ICML 2024): layer-wise relevance propagation. The class logit is handed "
               "back through the network as a relevance that is split, layer by layer, among the inputs that made "
               "it — in proportion to their contributions in linear layers, equally between the two factors of "
               "q·kᵀ and A·v, unchanged through GELU and LayerNorm — down to the pixels; a patch shows the relevance "
               "of its pixels. Signed: negative patches speak against the class.",
    "gradcam": "Grad-CAM (Selvaraju et al. 2017) on the tokens the last block reads (its normed input): each "
               "feature channel is weighted by the class logit's gradient averaged over the patches, the weighted "
               "channels are summed per patch and negative sums set to 0. It sees only the last layer.",
}
def default_methods(has_gradients: bool) -> tuple[str, ...]:
    """What the explanation view shows: rollout, and the class maps when there are gradients."""
    return ("rollout", *GRADIENT_METHODS) if has_gradients else ("rollout",)


def check_methods(methods, has_head: bool) -> tuple[str, ...]:
    """`methods` as a tuple of known ids; a ValueError names an unknown one, or the class methods a
    model without a classification head cannot give."""
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"method {unknown[0]!r} is unknown; choose one of {', '.join(METHODS)}")
    if not has_head and any(m in CLASS_METHODS for m in methods):
        raise ValueError(f"{', '.join(m for m in methods if m in CLASS_METHODS)} explain a class logit, but this "
                         "model has no classification head; use rollout, attention-flow or attention")
    return methods


def legrad_map(per_layer: np.ndarray, start_layer: int, grid, p: int) -> np.ndarray:
    """LeGrad's map from its per-layer token values E^l [L, T]: Σ_{l ≥ start} E^l over the patches,
    min-max scaled to [0, 1] as the authors do (a constant map gives zeros)."""
    m = patch_map(np.asarray(per_layer, dtype=np.float64)[start_layer:].sum(axis=0), grid, p)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def explanation_maps(attentions: np.ndarray, gradients: np.ndarray | None = None, *, num_prefix_tokens: int,
                     grid: tuple[int, int], methods=None, fusion: str = "mean", discard_ratio: float = 0.0,
                     residual_alpha: float = 0.5, start_layer: int = 0, query: int = 0, layer: int = -1,
                     head="mean", relevance: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{method id: [h, w] map}`` for one image, in the order of `methods`.

    attentions [L, H, T, T] and gradients [L, H, T, T] (∂y_c/∂A_l, or None without a class
    head) of one image. methods: ids from `METHODS`; None gives `default_methods`. fusion,
    discard_ratio, residual_alpha: rollout's (DESIGN "Attribution"; attention flow uses fusion
    and α, never discards); start_layer is clamped to L−1 and used by every multi-layer map;
    query: the row of the `QUERY_METHODS`; layer, head: the layer and head (an index or a
    fusion) of ``attention``. relevance: ``{method: values}`` from
    `model.relevance.model_relevance(...).values` for each of the `MODEL_METHODS` asked for
    ([T], or [L, T] for legrad), computed for the same image and class as `gradients`.
    """
    L, T = np.shape(attentions)[0], np.shape(attentions)[-1]
    p, grid = int(num_prefix_tokens), tuple(grid)
    methods = default_methods(gradients is not None) if methods is None else tuple(methods)
    check_methods(methods, has_head=True)
    if gradients is None and any(m in GRADIENT_METHODS for m in methods):
        raise ValueError(
            f"{', '.join(m for m in methods if m in GRADIENT_METHODS)} explain a class logit and need the attention "
            "gradients (trace with grad_class=…); without a classification head use rollout or attention"
        )
    relevance = relevance or {}
    missing = [m for m in methods if m in MODEL_METHODS and m not in relevance]
    if missing:
        raise ValueError(f"{', '.join(missing)} need the model: pass relevance={{method: "
                         "model.relevance.model_relevance(vit, pixels, method, label).values}")
    start = min(int(start_layer), L - 1)
    maps = {}
    for method in methods:
        if method == "attention":
            row = query_attention(attentions, layer, head, query)  # (T,)
        elif method == "rollout":
            row = attention_rollout(attentions, fusion, discard_ratio, residual_alpha, start, p, query=query)  # (T,)
        elif method == "attention-flow":
            if not flow_available(L - start, T):
                raise ValueError(flow_limit_message(L - start, T))
            row = attention_flow(attentions, query, fusion, residual_alpha, start, p)  # (T,)
        elif method == "gradient-rollout":
            row = gradient_rollout(attentions, gradients, discard_ratio, residual_alpha, start, p, query=0)  # CLS row
        elif method == "chefer":
            row = chefer_relevance(attentions, gradients, start)[0]  # CLS row
        elif method == "legrad":
            maps[method] = legrad_map(relevance[method], start, grid, p)
            continue
        else:  # attnlrp, gradcam: one value per token
            row = np.asarray(relevance[method], dtype=np.float64)
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
    the `grad_class` to trace with — None when the method needs no attention gradients)."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    if method in CLASS_METHODS and not model.cfg.has_head:
        raise ValueError(
            f"{method} explains a class logit, but {model.source} has no classification head; "
            "use --method rollout, attention-flow or attention"
        )
    index = resolve_label(model, label) if model.cfg.has_head else None
    grad_class = ("top" if index is None else index) if method in GRADIENT_METHODS else None
    return index, grad_class


def trace_relevance(model: ViT, trace, b: int, method: str, index: int | None = None) -> tuple[dict, int | None]:
    """What a `MODEL_METHODS` map needs beyond the trace, for image `b` of a numpy trace:
    ``({method: values}, class index)`` from `model.relevance.model_relevance` run on that image's
    pixels (index None = the top class); ``({}, index)`` for every other method."""
    if method not in MODEL_METHODS:
        return {}, index
    import torch

    from .relevance import model_relevance

    found = model_relevance(model, torch.tensor(np.asarray(trace.pixel_values[b : b + 1])), method, index)
    return {method: found.values}, found.class_index


def explain(model: ViT, image, method: str, label=None, layer: int = -1, head="mean") -> Explanation:
    """One map of the CLS token for the CLI: run the model on `image`, then `explanation_maps`."""
    index, grad_class = explanation_request(model, method, label)
    trace = model.trace([image], grad_class=grad_class).numpy()
    return explanation_of_trace(trace, 0, method, index, layer, head, model=model)


def explanation_of_trace(trace, b: int, method: str, index: int | None = None, layer: int = -1,
                         head="mean", model: ViT | None = None) -> Explanation:
    """The `Explanation` of image `b` of a numpy trace (traced with the gradients `method` needs);
    index: the class asked for, None for the top class; model: the traced model, needed by the
    `MODEL_METHODS` (they run it again on this image)."""
    if method == "attention-flow" and not flow_available(trace.L, trace.T):
        raise ValueError(flow_limit_message(trace.L, trace.T) + " (--method rollout)")
    relevance = {}
    if method in MODEL_METHODS:
        if model is None:
            raise ValueError(f"{method} needs the model, not only its trace: pass model=…")
        relevance, index = trace_relevance(model, trace, b, method, index)
    head_arg = "mean"
    if method == "attention":
        head_arg = head if str(head) in ("mean", "max", "min") else int(head)
    grads = trace.attention_grads[b] if trace.attention_grads is not None else None
    (m,) = explanation_maps(trace.attentions[b], grads, num_prefix_tokens=trace.num_prefix_tokens, grid=trace.grid,
                            methods=(method,), layer=layer, head=head_arg, relevance=relevance).values()
    if method == "attention":
        what = f"CLS attention, layer {layer % trace.L}, head {head_arg}"
    elif method == "rollout":
        what = "attention rollout of CLS (mean fusion, α = 0.5)"
    elif method == "attention-flow":
        what = "attention flow of CLS (mean fusion, α = 0.5, exact max-flow)"
    else:
        what = f"{METHOD_TITLES[method]} of CLS" if method in GRADIENT_METHODS else METHOD_TITLES[method]
    if trace.grad_classes is not None:
        index = int(trace.grad_classes[b])
    elif index is None and trace.logits is not None:
        index = int(trace.logits[b].argmax())
    name = (trace.labels or [None] * (index + 1))[index] if index is not None else None
    if index is not None:
        what += f" for class {index}" + (f" ({name})" if name else "")
    grid = trace.grid
    return Explanation(m, trace.image(b), method, index, name, what + f", grid {grid[0]}×{grid[1]}")
