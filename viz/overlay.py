"""An attention map blended over its image as a plain RGB array (and PNG bytes).

This is array work, not figure drawing: the command line (``python -m model explain --out
map.png``) and map downloads want the picture itself, at the image's own pixel size, without a
browser. Figures go to PNG through plotly's own export instead (``app_core.figure_png``).
The colours are the ones :func:`viz.attention.attention_overlay_figure` shows: the same
colormap stops (:mod:`viz.colormaps`), the same range rule, the same upsampling.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from . import colormaps as cm
from ._checks import float_array, image_array
from .maps import UPSAMPLE_MODES, upsample_map

__all__ = ["overlay_image", "overlay_png"]


def _map_at_image_size(attn_map: np.ndarray, height: int, width: int, upsample: str) -> np.ndarray:
    """The ``[h, w]`` map stretched to ``[height, width]`` pixels.

    A whole number of square patches (the usual ViT case) goes through
    :func:`viz.maps.upsample_map`, exactly as the figure does; any other size is resized by
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
    colours = cm.sample(cm.colorscale(cmap), big, lo, hi)[..., :3]
    blended = (1.0 - a) * img.astype(np.float64) + a * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def overlay_png(image, attn_map, cmap: str = "inferno", alpha: float = 0.6, *, upsample: str = "smooth",
                zmin: float | None = None, zmax: float | None = None) -> bytes:
    """PNG bytes of :func:`overlay_image` at the image's own size (``explain --out FILE.png``)."""
    pixels = overlay_image(image, attn_map, cmap, alpha, upsample=upsample, zmin=zmin, zmax=zmax)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()
