"""One image's trace for the app: run the model once per (model, image) and keep its
``Trace`` as read-only numpy arrays (``Trace.numpy()``, batch axis of 1 kept), which the caches
share between sessions; the sizes the walkthrough quotes; the whole-trace download."""
from __future__ import annotations

import io

import numpy as np
import torch

from model.trace import Trace

from .uploads import decode_upload

def run_trace(model, data: bytes, name: str) -> Trace:
    """Decode the image and run the model's explicit pass once: every intermediate, as
    read-only numpy arrays."""
    img = decode_upload(data, name)
    with torch.inference_mode():
        return model.trace([img]).numpy()


def with_head(backbone_trace: Trace, model) -> Trace:
    """The trace of ``model``, a backbone with an attached head (a taught head), from the
    backbone's own trace of the same image: nothing before the head depends on it, so every
    array is the backbone's (shared, not copied: a dinov2-small trace is ~48 MB) and only the
    logits are computed, by the head from the last layer's normalised tokens as the model's own
    trace computes them."""
    from dataclasses import replace

    with torch.inference_mode():
        logits = model.forward_head(torch.tensor(np.asarray(backbone_trace.last_hidden_state)))  # (B, T, D): small
    return replace(backbone_trace, logits=logits, labels=model.cfg.class_names, attention_grads=None,
                   grad_classes=None).numpy()


def run_gradients(model, data: bytes, name: str, class_index: int) -> np.ndarray:
    """∂y_c/∂A_l for every layer l, ``[L, H, T, T]`` float32, for class `class_index`."""
    img = decode_upload(data, name)
    trace = model.trace([img], grad_class=int(class_index))
    return trace.numpy().attention_grads[0]


def run_relevance(model, trace: Trace, method: str, class_index: int) -> np.ndarray:
    """What a model-side method (LeGrad, AttnLRP, Grad-CAM) needs, for the image the trace saw
    (its own preprocessed pixels): model.relevance.model_relevance(...).values."""
    from model.relevance import model_relevance

    pixels = torch.from_numpy(np.array(trace.pixel_values[:1]))  # (1, 3, H, W), a writable copy
    return model_relevance(model, pixels, method, int(class_index)).values


def patch_projection(model) -> tuple[np.ndarray, np.ndarray | None]:
    """The patch projection E as numpy: weight [D, C·P·P] and bias [D] (or None)."""
    proj = model.patch_embed.proj
    bias = None if proj.bias is None else proj.bias.detach().cpu().numpy()
    return proj.weight.detach().cpu().numpy(), bias


def shapes(trace: Trace, facts: dict) -> dict:
    """The sizes the walkthrough quotes for this image and model."""
    C, Hpx, Wpx = trace.pixel_values[0].shape
    P = trace.patch_size
    return {
        "C": C, "H_px": Hpx, "W_px": Wpx, "P": P, "h": trace.grid[0], "w": trace.grid[1], "N": trace.N,
        "patch_len": C * P * P, "D": trace.D, "T": trace.T, "p": trace.num_prefix_tokens, "L": trace.L, "H": trace.H,
        "d": trace.d, "mlp": facts["mlp_dim"], "K": trace.K, "HW_over_P2": Hpx * Wpx / P**2,
        "native_grid": facts.get("native_grid"),
    }


def trace_npz(trace: Trace) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **trace.arrays())
    return buf.getvalue()
