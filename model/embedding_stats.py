"""Statistics of one image's patch and position embeddings: numpy in, numpy out.

Symbols: T tokens (p prefix tokens, then N = h·w patches row-major), D width, (h, w) grid.
"""
from __future__ import annotations

import numbers

import numpy as np

from .attribution import _as_float_array, _check_grid, _check_grid_pair, _check_int

__all__ = ["patch_embedding_pca", "pos_embed_similarity"]


def _as_matrix(x, name: str, what: str) -> np.ndarray:
    m = _as_float_array(x, name)
    if m.ndim != 2 or 0 in m.shape:
        raise ValueError(
            f"{name} must be a matrix [{what}, D] for one image, got shape {m.shape}; "
            f"drop the batch axis B, e.g. trace.patch_embeddings[0]"
        )
    if not np.isfinite(m).all():
        raise ValueError(f"{name} contains NaN or inf; check the model output")
    return m


def patch_embedding_pca(
    embeddings, grid, n_components: int = 3, num_prefix_tokens: int = 0, fit_mask=None
) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of the patch embeddings, shown as colours.

    `embeddings` `[N, D]` (or `[T, D]` with `num_prefix_tokens` leading prefix rows to drop,
    e.g. one layer of hidden_states as in the DINOv2 paper's PCA figures) → `(image
    [h, w, n_components] in [0, 1], explained_variance_ratio [n_components])`.

    Centre the N rows, take the SVD X = U S Vᵀ, project on the first components (U·S), then
    min-max scale each component to [0, 1] for display (a component that is constant becomes
    0.5). SVD signs are arbitrary, so each axis (row of Vᵀ) is flipped to make its entry of
    largest magnitude positive: the same input always gives the same colours. The ratio is
    S_k² / Σ S², the share of the total variance each component explains.

    `fit_mask` `[N]` (bool) restricts the fit to the patches that are True — e.g. to leave out
    the padding bands of a letterboxed photo, whose identical patches would otherwise take the
    first component; the others are shown mid-grey (0.5).
    """
    x = _as_matrix(embeddings, "embeddings", "N")
    p = _check_int(num_prefix_tokens, "num_prefix_tokens", 0, x.shape[0] - 1,
                   "pass 0 for patch_embeddings, trace.num_prefix_tokens for hidden states")
    x = x[p:].astype(np.float64)
    N, D = x.shape
    h, w = _check_grid(grid, N, f"embeddings with {N} patch rows")
    k = _check_int(n_components, "n_components", 1, min(N, D),
                   "3 gives an RGB image; it cannot exceed min(N, D)")

    keep = np.ones(N, dtype=bool) if fit_mask is None else np.asarray(fit_mask, dtype=bool).reshape(-1)
    if keep.shape != (N,):
        raise ValueError(f"fit_mask has {keep.size} entries; expected one per patch ({N})")
    if keep.sum() <= k:  # too few patches to fit on: fit on all of them
        keep = np.ones(N, dtype=bool)
    fit = x[keep]
    mean = fit.mean(axis=0, keepdims=True)
    fit = fit - mean
    _, s, vt = np.linalg.svd(fit, full_matrices=False)
    s, vt = s[:k], vt[:k]
    # Deterministic sign: the largest-|.| loading of each axis is positive (argmax takes the
    # first of equal magnitudes).
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    scores = (x - mean) @ vt.T  # [N, k]: every patch projected on the fitted axes

    total = float((fit * fit).sum())
    ratio = (s**2) / total if total > 0 else np.zeros(k)

    low, high = scores[keep].min(axis=0), scores[keep].max(axis=0)
    span = high - low
    # Relative tolerance: a numerically constant column (rounding noise) is "no variation".
    flat = span <= 1e-12 * max(float(np.abs(scores[keep]).max(initial=0.0)), 1.0)
    image = np.where(flat, 0.5, (scores - low) / np.where(flat, 1.0, span))
    image[~keep] = 0.5
    return np.clip(image, 0.0, 1.0).reshape(h, w, k), ratio


def pos_embed_similarity(pos_embed, grid, num_prefix_tokens: int = 1) -> np.ndarray:
    """`[h, w, h, w]` cosine similarity between every pair of patch position embeddings.

    Dosovitskiy et al. 2021, Fig. 7 centre: tile (r, c) shows how similar position (r, c)'s
    embedding is to every other position's; learned embeddings recover the 2-D grid.
    `pos_embed` is `[T, D]` as added (prefix rows first, possibly fewer than p when registers
    get none) or `[N, D]`: the patch rows are the last N rows. A zero embedding has
    similarity 0 with every position, itself included.
    """
    e = _as_matrix(pos_embed, "pos_embed", "T")
    if isinstance(num_prefix_tokens, (bool, np.bool_)) or not isinstance(
        num_prefix_tokens, numbers.Integral
    ) or num_prefix_tokens < 0:
        raise ValueError(
            f"num_prefix_tokens must be an integer >= 0, got {num_prefix_tokens!r}; "
            f"pass trace.num_prefix_tokens"
        )
    h, w = _check_grid_pair(grid)
    N = h * w
    extra = e.shape[0] - N
    if not 0 <= extra <= int(num_prefix_tokens):
        raise ValueError(
            f"pos_embed has {e.shape[0]} rows but grid {(h, w)} has N={N} patches and "
            f"num_prefix_tokens={int(num_prefix_tokens)}; expected between N and N+p rows. "
            f"Pass trace.pos_embed with trace.grid and trace.num_prefix_tokens"
        )
    patches = e[extra:].astype(np.float64)  # patch tokens come last in token order
    norms = np.linalg.norm(patches, axis=-1, keepdims=True)
    unit = patches / np.where(norms == 0, 1.0, norms)
    sim = np.clip(unit @ unit.T, -1.0, 1.0)
    return sim.reshape(h, w, h, w)
