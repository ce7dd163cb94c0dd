"""An attention map blended over its image as a plain RGB array (and PNG bytes).

This is array work, not figure drawing: the command line (``python -m model explain --out
map.png``) and map downloads want the picture itself, at the image's own pixel size, without a
browser and without plotly. The colours are the ones the figures show
(viz.attention.attention_overlay_figure): the same colormap stops (:mod:`model.colormaps`),
the same range rule, the same upsampling (:func:`upsample_map`, which viz uses too).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from . import colormaps as cm
from .array_checks import float_array, image_array

UPSAMPLE_MODES = ("nearest", "smooth")

__all__ = ["UPSAMPLE_MODES", "upsample_map", "overlay_image", "overlay_png"]


def upsample_map(attn_map, patch_size: int, mode: str = "nearest") -> np.ndarray:
    """A ``[h, w]`` map over patches -> ``[h*P, w*P]`` over pixels.

    ``nearest``: every pixel takes its patch's value (``np.kron`` with a P x P block).
    ``smooth``: bilinear interpolation between patch centres with half-pixel alignment
    (pixel centre ``i + 0.5`` sits at grid coordinate ``(i + 0.5)/P - 0.5``, clamped at the
    border) — the same rule as ``torch.nn.functional.interpolate(..., "bilinear",
    align_corners=False)``, so the smooth map keeps the patch averages near the centres.
    """
    m = float_array(attn_map, 2, "attn_map", "a [h, w] map over the patch grid")
    P = int(patch_size)
    if P < 1:
        raise ValueError(f"patch_size={patch_size!r}; expected a positive integer such as 16.")
    if mode == "nearest":
        return np.repeat(np.repeat(m, P, axis=0), P, axis=1)
    if mode != "smooth":
        raise ValueError(f"upsample={mode!r}; expected one of {UPSAMPLE_MODES}.")
    h, w = m.shape
    ys = np.clip((np.arange(h * P) + 0.5) / P - 0.5, 0, h - 1)
    xs = np.clip((np.arange(w * P) + 0.5) / P - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = m[y0][:, x0] * (1 - fx) + m[y0][:, x1] * fx
    bot = m[y1][:, x0] * (1 - fx) + m[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


def _map_at_image_size(attn_map: np.ndarray, height: int, width: int, upsample: str) -> np.ndarray:
    """The ``[h, w]`` map stretched to ``[height, width]`` pixels.

    A whole number of square patches (the usual ViT case) goes through
    :func:`upsample_map`, exactly as the figure does; any other size is resized by
    Pillow (bilinear for "smooth", nearest for "nearest").
    """
    h, w = attn_map.shape
    if height % h == 0 and width % w == 0 and height // h == width // w:
        return upsample_map(attn_map, height // h, upsample)
    resample = Image.NEAREST if upsample == "nearest" else Image.BILINEAR
    stretched = Image.fromarray(attn_map.astype(np.float32), "F").resize((width, height), resample)
    return np.asarray(stretched, dtype=np.float64)


def overlay_image(image, attn_map, cmap: str = "inferno", alpha: float = 0.6, *, upsample: str = "smooth",
                  zmin: float | None = None, zmax: float | None = None) -> np.ndarray:
    """``(1 - alpha) · image + alpha · colour(map)`` as uint8 ``[H_px, W_px, 3]``.

    ``image`` is uint8 ``[H_px, W_px, 3]``, ``attn_map`` is ``[h, w]`` over the patch grid.
    Colours span ``min(0, map.min()) … map.max()`` unless ``zmin``/``zmax`` are given (the
    rule of the overlay figure, so a file and the screen agree).
    """
    img = image_array(image)
    m = float_array(attn_map, 2, "attn_map", "[h, w] over the patch grid")
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha={alpha!r}; expected an opacity between 0 and 1.")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample={upsample!r}; expected one of {UPSAMPLE_MODES}.")
    big = _map_at_image_size(m, img.shape[0], img.shape[1], upsample)
    lo = min(0.0, float(m.min())) if zmin is None else float(zmin)
    hi = float(m.max()) if zmax is None else float(zmax)
    if not hi > lo:  # a flat map: any range shows it as one colour
        hi = lo + 1.0
    colours = cm.sample(cmap, big, lo, hi)[..., :3]
    blended = (1.0 - a) * img.astype(np.float64) + a * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def overlay_png(image, attn_map, cmap: str = "inferno", alpha: float = 0.6, *, upsample: str = "smooth",
                zmin: float | None = None, zmax: float | None = None) -> bytes:
    """PNG bytes of :func:`overlay_image` at the image's own size (``explain --out FILE.png``)."""
    pixels = overlay_image(image, attn_map, cmap, alpha, upsample=upsample, zmin=zmin, zmax=zmax)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()
