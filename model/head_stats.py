"""Per-head statistics of one image's attention and residual stream: numpy in, numpy out.

Symbols: L layers, H heads, T tokens (p prefix tokens, then N = h·w patches row-major),
D width, P patch size in pixels, (h, w) the patch grid. Results are float64.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .attribution import (
    _as_attentions,
    _as_float_array,
    _check_grid,
    _check_grid_pair,
    _check_index,
    _check_prefix,
    _check_probabilities,
)

__all__ = [
    "attention_entropy", "mean_attention_distance", "patch_distances", "prefix_attention",
    "token_norms", "artifact_tokens", "ArtifactTokens", "DEFAULT_Z_THRESH",
]

# Iglewicz & Hoaglin (1993) "modified z-score" cut-off: a point is an outlier when
# 0.6745·(x - median)/MAD > 3.5, i.e. x > median + 3.5 · 1.4826 · MAD.
DEFAULT_Z_THRESH = 3.5
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution is 0.6745 σ
_MEANAD_TO_SIGMA = 1.2533  # mean absolute deviation of a normal is 0.7979 σ


def attention_entropy(attentions) -> np.ndarray:
    """`[L, H]`: mean over the T query tokens of −Σ_j A_ij ln A_ij, in nats (0·ln 0 = 0).

    ln T for a head that spreads evenly, 0 for a head that looks at one token only.
    """
    a = _as_attentions(attentions)
    _check_probabilities(a)
    L, H, _, _ = a.shape
    out = np.empty((L, H))
    for l in range(L):  # one layer at a time keeps the temporaries small ([H, T, T])
        p = a[l]
        log_p = np.zeros_like(p)
        np.log(p, out=log_p, where=p > 0)  # 0·ln 0 = 0: masked entries stay 0
        # The log in the input precision (fast), the sums accumulated in float64.
        out[l] = -(p * log_p).sum(axis=-1, dtype=np.float64).mean(axis=-1)
    return out


def _patch_size_pair(patch_size) -> tuple[float, float]:
    ps = np.atleast_1d(np.asarray(patch_size))
    if ps.dtype.kind not in "iuf" or ps.ndim != 1 or ps.size not in (1, 2) or not np.all(ps > 0):
        raise ValueError(
            f"patch_size must be a positive number of pixels P (or a pair (P_h, P_w)), got "
            f"{patch_size!r}; pass trace.patch_size"
        )
    return (float(ps[0]), float(ps[-1]))


def patch_distances(grid, patch_size) -> np.ndarray:
    """`[N, N]` Euclidean distances in pixels between the centres of the grid's patches.

    Centres sit at ((r + ½)·P, (c + ½)·P); the ½ cancels in every difference.
    """
    h, w = _check_grid_pair(grid)
    ph, pw = _patch_size_pair(patch_size)
    rows, cols = np.divmod(np.arange(h * w), w)  # row-major patch order
    dy = (rows[:, None] - rows[None, :]) * ph
    dx = (cols[:, None] - cols[None, :]) * pw
    return np.hypot(dy, dx)


def mean_attention_distance(attentions, grid, patch_size, num_prefix_tokens: int = 1) -> np.ndarray:
    """`[L, H]` mean attention distance in pixels (Dosovitskiy et al. 2021, Fig. 7 right).

    Patch queries only; the prefix columns are dropped and each row renormalised to sum 1,
    then Σ_j A_ij·d(i, j) is averaged over the queries — the ViT "receptive field size".
    A query that puts no mass on any patch has no distance and is left out of the mean
    (NaN if every query of a head is so).
    """
    a = _as_attentions(attentions)
    _check_probabilities(a)
    L, H, T, _ = a.shape
    p = _check_prefix(num_prefix_tokens, T)
    h, w = _check_grid(grid, T - p, f"attentions with T={T} tokens and p={p} prefix tokens")
    dist = patch_distances((h, w), patch_size)  # [N, N]
    out = np.empty((L, H))
    for l in range(L):
        block = a[l, :, p:, p:].astype(np.float64)  # [H, N, N] patch → patch
        mass = block.sum(axis=-1)  # [H, N]
        weighted = np.einsum("hij,ij->hi", block, dist)  # [H, N]
        valid = mass > 0
        per_query = np.divide(weighted, mass, out=np.zeros_like(weighted), where=valid)
        count = valid.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[l] = np.where(count > 0, per_query.sum(axis=-1) / count, np.nan)
    return out


def prefix_attention(attentions, num_prefix_tokens: int = 1) -> np.ndarray:
    """`[L, H]`: mean over patch queries of the attention mass they put on the p prefix tokens.

    High values mark heads that park attention on CLS / registers (Darcet et al. 2023).
    """
    a = _as_attentions(attentions)
    L, H, T, _ = a.shape
    p = _check_prefix(num_prefix_tokens, T)
    return a[:, :, p:, :p].sum(axis=-1, dtype=np.float64).mean(axis=-1)


def _as_hidden_states(hidden_states) -> np.ndarray:
    x = _as_float_array(hidden_states, "hidden_states")
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(
            f"hidden_states must be one image's residual stream [L+1, T, D], got shape "
            f"{x.shape}; pass trace.hidden_states[0] (drop the batch axis B)"
        )
    return x


def token_norms(hidden_states) -> np.ndarray:
    """`[L+1, T]`: the L2 norm of every token of the residual stream after each block."""
    x = _as_hidden_states(hidden_states)
    return np.linalg.norm(x.astype(np.float64), axis=-1)


@dataclass(frozen=True)
class ArtifactTokens:
    """High-norm patch tokens at one layer (Darcet et al. 2023, "Vision Transformers Need
    Registers"). K outliers; indices and positions are in row-major order.

    layer           the layer index of hidden_states used (0 = after the embeddings)
    token_indices   [K] indices into the T tokens
    patch_indices   [K] indices into the N patches (= token index − p)
    positions       [K, 2] (row, col) on the (h, w) grid
    norms           [K] their L2 norms
    norm_map        [h, w] the L2 norm of every patch token, for display
    threshold       the norm above which a patch counts as an artifact
    median, scale   the robust centre and spread (σ estimate) of the patch norms
    z_thresh        the robust z-score cut-off used
    """

    layer: int
    token_indices: np.ndarray
    patch_indices: np.ndarray
    positions: np.ndarray
    norms: np.ndarray
    norm_map: np.ndarray
    threshold: float
    median: float
    scale: float
    z_thresh: float


def artifact_tokens(
    hidden_states,
    num_prefix_tokens: int = 1,
    layer: int = -1,
    z_thresh: float = DEFAULT_Z_THRESH,
    grid=None,
) -> ArtifactTokens:
    """Find the outlier high-norm patch tokens of one layer's residual stream.

    Darcet et al. 2023 show that large ViTs (DINOv2, OpenCLIP, DeiT-III) repurpose a few
    low-information background patches as global "registers": their output norm is roughly
    ten times that of the others, so the norm histogram is bimodal with a small high mode.
    The rule, robust to those very outliers: with m = median and MAD = median|n − m| of the
    N patch-token norms, σ̂ = 1.4826·MAD (σ̂ = 1.2533·mean|n − m| when MAD is 0), a patch is
    an artifact when n > m + z_thresh·σ̂ — one-sided, the Iglewicz & Hoaglin modified z-score
    with their cut-off 3.5 by default. Prefix tokens are never candidates. If every norm is
    equal there are no artifacts. `grid` (h, w) gives the (row, col); when None the patch
    grid must be square.
    """
    x = _as_hidden_states(hidden_states)
    n_layers, T, _ = x.shape
    p = _check_prefix(num_prefix_tokens, T)
    layer = _check_index(layer, n_layers, "layer", "the L+1 hidden states")
    if (
        isinstance(z_thresh, (bool, np.bool_))
        or not isinstance(z_thresh, numbers.Real)
        or not (np.isfinite(z_thresh) and z_thresh > 0)
    ):
        raise ValueError(f"z_thresh must be a positive number, got {z_thresh!r}; the default is 3.5")
    N = T - p
    if grid is None:
        side = int(round(np.sqrt(N)))
        if side * side != N:
            raise ValueError(
                f"{N} patch tokens do not form a square grid; pass grid=trace.grid "
                f"(or check num_prefix_tokens={p})"
            )
        grid = (side, side)
    h, w = _check_grid(grid, N, f"hidden_states with T={T} tokens and p={p} prefix tokens")

    norms = np.linalg.norm(x[layer, p:].astype(np.float64), axis=-1)  # [N]
    median = float(np.median(norms))
    dev = np.abs(norms - median)
    scale = _MAD_TO_SIGMA * float(np.median(dev))
    if scale == 0.0:  # more than half the norms equal: fall back to the mean deviation
        scale = _MEANAD_TO_SIGMA * float(dev.mean())
    threshold = median + float(z_thresh) * scale
    patch_idx = np.flatnonzero(norms > threshold)  # strict: equal norms are never outliers
    rows, cols = np.divmod(patch_idx, w)
    return ArtifactTokens(
        layer=layer,
        token_indices=patch_idx + p,
        patch_indices=patch_idx,
        positions=np.stack([rows, cols], axis=-1).reshape(-1, 2),
        norms=norms[patch_idx],
        norm_map=norms.reshape(h, w),
        threshold=threshold,
        median=median,
        scale=scale,
        z_thresh=float(z_thresh),
    )
