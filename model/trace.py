"""`Trace`: everything one pass of the ViT computed, detached and on the CPU.

Like transformers' output dataclasses, one object whose docstring gives every field's
shape. Symbols: B images, L layers, H heads, T tokens (p prefix + N patches), D width,
d = D/H head width, K classes, (h, w) the patch grid, P the patch size.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Trace:
    """Every intermediate of `ViT.trace`.

    attentions        [B, L, H, T, T]  softmax(q kᵀ/√d) of every layer and head; rows sum to 1
    queries/keys/values [B, L, H, T, d] per-head q, k, v of every layer
    hidden_states     [B, L+1, T, D]   residual stream after the embeddings and after each block,
                                       before the final norm (as transformers reports it)
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
    """

    attentions: torch.Tensor
    queries: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    hidden_states: torch.Tensor
    attn_residuals: torch.Tensor
    mlp_residuals: torch.Tensor
    last_hidden_state: torch.Tensor
    patches: torch.Tensor
    patch_embeddings: torch.Tensor
    pos_embed: torch.Tensor
    logits: torch.Tensor | None
    pixel_values: torch.Tensor
    grid: tuple[int, int]
    patch_size: int
    num_prefix_tokens: int
    prefix_names: list[str]
    labels: list[str] | None = None
    image_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    image_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    attention_grads: torch.Tensor | None = None
    grad_classes: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return self.attentions.shape[1]

    @property
    def num_heads(self) -> int:
        return self.attentions.shape[2]

    @property
    def num_tokens(self) -> int:
        return self.attentions.shape[-1]

    def token_names(self) -> list[str]:
        """Names of the T tokens: prefix names, then `patch r,c` row-major."""
        h, w = self.grid
        return list(self.prefix_names) + [f"patch {r},{c}" for r in range(h) for c in range(w)]

    def image(self, b: int = 0) -> np.ndarray:
        """The model input of image b as the model sees it, de-normalised to uint8 [H, W, 3]."""
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        x = (self.pixel_values[b] * std + mean).clamp(0, 1)
        return (x.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)

    def probabilities(self) -> torch.Tensor | None:
        return None if self.logits is None else self.logits.softmax(-1)

    def arrays(self) -> dict[str, np.ndarray]:
        """The contract's arrays for `python -m model trace --out FILE.npz` (float32 / int64)."""
        out = {
            "attentions": self.attentions.numpy().astype(np.float32),
            "hidden_states": self.hidden_states.numpy().astype(np.float32),
            "patch_embeddings": self.patch_embeddings.numpy().astype(np.float32),
            "pos_embed": self.pos_embed.numpy().astype(np.float32),
            "pixel_values": self.pixel_values.numpy().astype(np.float32),
            "grid": np.asarray(self.grid, dtype=np.int64),
            "patch_size": np.asarray(self.patch_size, dtype=np.int64),
            "num_prefix_tokens": np.asarray(self.num_prefix_tokens, dtype=np.int64),
        }
        if self.logits is not None:
            out["logits"] = self.logits.numpy().astype(np.float32)
        if self.attention_grads is not None:
            out["attention_grads"] = self.attention_grads.numpy().astype(np.float32)
            out["grad_classes"] = self.grad_classes.numpy().astype(np.int64)
        return out
