"""One explanation map for one image — the engine behind `python -m model explain`.

Methods: `attention` (raw attention of the CLS token at a layer and head), `rollout`
(Abnar & Zuidema 2020), `gradient-rollout` and `chefer` (Chefer et al. 2021), the last two
for a chosen class. Each returns the CLS row over the patch grid, R[0, p:] → (h, w).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attribution import attention_rollout, chefer_relevance, gradient_rollout, patch_map, query_attention
from .vit import ViT

METHODS = ("attention", "rollout", "gradient-rollout", "chefer")
CLASS_METHODS = ("gradient-rollout", "chefer")


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


def explain(model: ViT, image, method: str, label=None, layer: int = -1, head="mean") -> Explanation:
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    class_specific = method in CLASS_METHODS
    if class_specific and not model.cfg.has_head:
        raise ValueError(
            f"{method} explains a class logit, but {model.source} has no classification head; "
            "use --method rollout or attention"
        )
    index = resolve_label(model, label) if model.cfg.has_head else None
    trace = model.trace([image], grad_class=("top" if index is None else index) if class_specific else None)
    p, grid = trace.num_prefix_tokens, trace.grid
    A = trace.attentions[0].numpy()
    if method == "attention":
        head_arg = head if str(head) in ("mean", "max", "min") else int(head)
        m = patch_map(query_attention(A, layer, head_arg, 0), grid, p)
        what = f"CLS attention, layer {layer % A.shape[0]}, head {head_arg}"
    elif method == "rollout":
        m = patch_map(attention_rollout(A, num_prefix_tokens=p)[0], grid, p)
        what = "attention rollout of CLS (mean fusion, α = 0.5)"
    else:
        G = trace.attention_grads[0].numpy()
        R = gradient_rollout(A, G, num_prefix_tokens=p) if method == "gradient-rollout" else chefer_relevance(A, G)
        m = patch_map(R[0], grid, p)
        what = f"{method} of CLS"
    if trace.grad_classes is not None:
        index = int(trace.grad_classes[0])
    elif index is None and trace.logits is not None:
        index = int(trace.logits[0].argmax())
    name = (model.cfg.class_names or [None] * (index + 1))[index] if index is not None else None
    if index is not None:
        what += f" for class {index}" + (f" ({name})" if name else "")
    return Explanation(m, trace.image(0), method, index, name, what + f", grid {grid[0]}×{grid[1]}")
