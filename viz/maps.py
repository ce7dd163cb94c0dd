"""Array helpers behind the figures: upsampling, normalisation, tiling, patch flattening.

Pure numpy; the figures store exactly what these return, so tests can recompute it.
"""

from __future__ import annotations

import numpy as np

from model.overlay import UPSAMPLE_MODES, upsample_map  # noqa: F401  (one upsampling rule for figures and files)

from ._checks import image_array

NORMALISATIONS = ("max", "minmax", "none")


def normalise_map(attn_map, how: str = "max") -> np.ndarray:
    """Normalise one explanation map so that maps from different methods share one scale.

    - ``"max"`` (default): ``m / max|m|`` — keeps 0 meaning "no relevance" and puts the
      strongest patch at 1; an all-zero map stays zero.
    - ``"minmax"``: ``(m - min) / (max - min)`` in [0, 1]; a constant map becomes zeros.
    - ``"none"``: the raw values (the figure then uses the global min/max of all maps).
    """
    m = np.asarray(attn_map, dtype=np.float64)
    if how == "max":
        top = float(np.max(np.abs(m))) if m.size else 0.0
        return m / top if top > 0 else np.zeros_like(m)
    if how == "minmax":
        lo, hi = float(np.min(m)), float(np.max(m))
        return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    if how == "none":
        return m.copy()
    raise ValueError(f"normalise={how!r}; expected one of {NORMALISATIONS}.")


def tile_maps(maps, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """``[R, C, h, w]`` -> one ``[R*(h+gap)-gap, C*(w+gap)-gap]`` array of tiles.

    Tile (r, c) occupies rows ``r*(h+gap) : r*(h+gap)+h`` and columns
    ``c*(w+gap) : c*(w+gap)+w``; the gaps hold ``fill`` (NaN is drawn transparent, so the
    background shows as a separator line).
    """
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim != 4:
        raise ValueError(f"maps has shape {a.shape}; expected [rows, cols, h, w].")
    R, C, h, w = a.shape
    out = np.full((R, h + gap, C, w + gap), fill, dtype=np.float64)
    out[:, :h, :, :w] = a.transpose(0, 2, 1, 3)
    out = out.reshape(R * (h + gap), C * (w + gap))
    return out[: R * (h + gap) - gap, : C * (w + gap) - gap]


def untile(tiled, rows: int, cols: int, h: int, w: int, gap: int = 1) -> np.ndarray:
    """Inverse of :func:`tile_maps`: the ``[rows, cols, h, w]`` tiles of a tiled array."""
    t = np.asarray(tiled)
    out = np.empty((rows, cols, h, w), dtype=t.dtype)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = t[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w]
    return out


def patch_grid(image: np.ndarray, patch_size: int) -> tuple[int, int, int]:
    """(h, w, P) of an image that is a whole number of P×P patches, else a ValueError."""
    P = int(patch_size)
    H, W = image.shape[:2]
    if P < 1 or H % P or W % P:
        raise ValueError(
            f"image is {H}x{W} px, not a whole number of {patch_size}x{patch_size} patches. "
            f"Fix: pass the preprocessed model input (H_px = h*P, W_px = w*P) and the model's patch size."
        )
    return H // P, W // P, P


def flatten_patches(image, patch_size: int) -> np.ndarray:
    """``[h*P, w*P, 3]`` -> ``[N, P*P*3]``: patches row-major, each flattened as (row, col, channel).

    This is the teaching form of the patch step (``b (h p1) (w p2) c -> b (h w) (p1 p2 c)``):
    element ``k`` of a patch row is pixel ``(k // (3P), (k // 3) % P)`` channel ``k % 3``.
    """
    img = image_array(image)
    h, w, P = patch_grid(img, patch_size)
    return img.reshape(h, P, w, P, 3).transpose(0, 2, 1, 3, 4).reshape(h * w, P * P * 3)
