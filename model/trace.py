"""`Trace`: everything one pass of the ViT computed, detached and on the CPU.

Like transformers' output dataclasses, one object whose docstring gives every field's
shape. Symbols: B images, L layers, H heads, T tokens (p prefix + N patches), D width,
d = D/H head width, K classes, (h, w) the patch grid, P the patch size.

`ViT.trace` returns it holding torch tensors; `Trace.numpy()` gives the same trace as
read-only float32 numpy arrays, which is what the app's caches hold and share between
sessions. Every method here works on either. This module does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import tokens
from .numerics import softmax

if TYPE_CHECKING:
    import torch

    Array = torch.Tensor | np.ndarray
else:
    Array = Any

# The array fields, in the order of the docstring; grad_classes is int64, the rest float32.
ARRAY_FIELDS = (
    "attentions", "queries", "keys", "values", "hidden_states", "attn_residuals", "mlp_residuals",
    "last_hidden_state", "patches", "patch_embeddings", "pos_embed", "logits", "pixel_values",
    "attention_grads", "grad_classes",
)


def to_numpy(x, dtype=np.float32) -> np.ndarray | None:
    """A tensor or array as a C-contiguous numpy array of `dtype` (None stays None).

    A CPU tensor already of that dtype and contiguous is viewed, not copied.
    """
    if x is None:
        return None
    if hasattr(x, "detach"):  # a torch tensor (bfloat16 has no numpy dtype: go through float32)
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() else x).numpy()
    return np.ascontiguousarray(x, dtype=dtype)


@dataclass
class Trace:
    """Every intermediate of `ViT.trace`.

    attentions        [B, L, H, T, T]  softmax(q kᵀ/√d) of every layer and head; rows sum to 1
    queries/keys/values [B, L, H, T, d] per-head q, k, v of every layer
    hidden_states     [B, L+1, T, D]   residual stream after the embeddings and after each block,
                                       before the final norm (as transformers reports it; for
                                       CLIP, hidden_states[:, 0] is after its pre-LayerNorm)
    attn_residuals    [B, L, T, D]     what each block's attention added to the stream (γ1·MSA(LN z))
    mlp_residuals     [B, L, T, D]     what each block's MLP added to the stream (γ2·MLP(LN z'))
    last_hidden_state [B, T, D]        final LayerNorm of the stream (what the head reads)
    patches           [B, N, C·P·P]    the flattened pixel patches (order: channel, row, column)
    patch_embeddings  [B, N, D]        x_p E, before positions are added
    pos_embed         [T, D]           the position embeddings as added (resized to this grid;
                                       zero rows for prefix tokens that get none, e.g. registers)
    logits            [B, K] or None   None when the model has no classification head
    pixel_values      [B, 3, H·P, W·P] the normalised model input
    attention_grads   [B, L, H, T, T] or None  ∂y_c/∂A_l for the class in `grad_classes`,
                                       each paired with its own layer l
    grad_classes      [B] or None      the class index whose logit was differentiated

    The array fields are torch tensors (from `ViT.trace`) or numpy arrays (from `numpy()`).
    """

    attentions: Array
    queries: Array
    keys: Array
    values: Array
    hidden_states: Array
    attn_residuals: Array
    mlp_residuals: Array
    last_hidden_state: Array
    patches: Array
    patch_embeddings: Array
    pos_embed: Array
    logits: Array | None
    pixel_values: Array
    grid: tuple[int, int]
    patch_size: int
    num_prefix_tokens: int
    prefix_names: list[str]
    labels: list[str] | None = None
    image_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    image_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    attention_grads: Array | None = None
    grad_classes: Array | None = None
    extra: dict = field(default_factory=dict)

    # ---- the numpy form -------------------------------------------------------------------
    def numpy(self) -> "Trace":
        """This trace with every array field as a C-contiguous numpy array — float32, int64 for
        `grad_classes` — batch axis kept, marked read-only: caches share them between sessions.

        Float32 CPU tensors are viewed, not copied (a trace is large); do not write into this
        trace's tensors afterwards. On a trace that is numpy already it copies nothing.
        """
        arrays = {}
        for name in ARRAY_FIELDS:
            a = to_numpy(getattr(self, name), np.int64 if name == "grad_classes" else np.float32)
            if a is not None:
                a = a.view()  # a new array object: marking it leaves the caller's arrays writable
                a.setflags(write=False)
            arrays[name] = a
        return replace(
            self, **arrays, grid=tuple(int(g) for g in self.grid), patch_size=int(self.patch_size),
            num_prefix_tokens=int(self.num_prefix_tokens), prefix_names=list(self.prefix_names),
            labels=list(self.labels) if self.labels is not None else None, extra=dict(self.extra),
        )

    # ---- sizes, by the symbols of STYLE.md --------------------------------------------------
    @property
    def B(self) -> int:
        """Images."""
        return int(self.attentions.shape[0])

    @property
    def L(self) -> int:
        """Layers."""
        return int(self.attentions.shape[1])

    @property
    def H(self) -> int:
        """Heads per layer."""
        return int(self.attentions.shape[2])

    @property
    def T(self) -> int:
        """Tokens: p prefix + N patches."""
        return int(self.attentions.shape[-1])

    @property
    def N(self) -> int:
        """Patches: h·w."""
        return int(self.grid[0] * self.grid[1])

    @property
    def D(self) -> int:
        """Width of the stream."""
        return int(self.hidden_states.shape[-1])

    @property
    def d(self) -> int:
        """Width of one head."""
        return int(self.queries.shape[-1])

    @property
    def K(self) -> int:
        """Classes; 0 without a head."""
        return 0 if self.logits is None else int(self.logits.shape[-1])

    @property
    def has_head(self) -> bool:
        return self.logits is not None

    # ---- names ----------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        """K names: the labels when there is one per class, else ``class 0``…; [] without a head."""
        if self.labels and len(self.labels) == self.K:
            return list(self.labels)
        return [f"class {i}" for i in range(self.K)]

    def token_name(self, t: int) -> str:
        """``CLS``, ``DIST``, ``REG0``… or ``patch 24 (row 3, col 3)`` (see `model.tokens`)."""
        return tokens.token_name(t, self.num_prefix_tokens, self.grid, self.prefix_names)

    def token_names(self) -> list[str]:
        """`token_name` of every token 0…T−1."""
        return tokens.token_names(self.num_prefix_tokens, self.grid, self.prefix_names)

    def short_token_names(self) -> list[str]:
        """Compact unique names for axis labels: ``CLS``, ``REG0``…, ``p24 (r3,c3)``."""
        return tokens.short_token_names(self.num_prefix_tokens, self.grid, self.prefix_names)

    # ---- views ----------------------------------------------------------------------------
    def image(self, b: int = 0) -> np.ndarray:
        """The model input of image b as the model sees it, de-normalised to uint8 [H, W, 3]."""
        mean = np.asarray(self.image_mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.image_std, dtype=np.float32).reshape(3, 1, 1)
        x = np.clip(to_numpy(self.pixel_values[b]) * std + mean, 0, 1)  # (3, H, W)
        return (x.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)

    def probabilities(self):
        """softmax(logits) over the K classes, of the logits' own kind (tensor or array), or None."""
        if self.logits is None:
            return None
        if hasattr(self.logits, "softmax"):
            return self.logits.softmax(-1)
        return softmax(self.logits).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """The contract's arrays for `python -m model trace --out FILE.npz` (float32 / int64)."""
        out = {
            "attentions": to_numpy(self.attentions),
            "hidden_states": to_numpy(self.hidden_states),
            "patch_embeddings": to_numpy(self.patch_embeddings),
            "pos_embed": to_numpy(self.pos_embed),
            "pixel_values": to_numpy(self.pixel_values),
            "grid": np.asarray(self.grid, dtype=np.int64),
            "patch_size": np.asarray(self.patch_size, dtype=np.int64),
            "num_prefix_tokens": np.asarray(self.num_prefix_tokens, dtype=np.int64),
        }
        if self.logits is not None:
            out["logits"] = to_numpy(self.logits)
        if self.attention_grads is not None:
            out["attention_grads"] = to_numpy(self.attention_grads)
            out["grad_classes"] = to_numpy(self.grad_classes, np.int64)
        return out

