"""Explanation maps (attention rollout, gradient rollout, Chefer relevance, ...) side by side."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from . import _figure as F
from ._checks import float_array, image_array, patch_size_for
from .attention import _check_alpha, map_heatmap
from .maps import NORMALISATIONS, normalise_map
from .theme import resolve_theme


def _named_maps(maps) -> list[tuple[str, np.ndarray]]:
    if isinstance(maps, Mapping):
        items = list(maps.items())
    else:
        try:
            items = [(str(n), m) for n, m in maps]
        except (TypeError, ValueError) as err:
            raise ValueError(
                "maps must be a dict {method name: [h, w] map} or a list of (name, map) pairs, "
                "e.g. {'rollout': r, 'gradient rollout': g, 'Chefer': c}."
            ) from err
    if not items:
        raise ValueError("maps is empty; pass at least one {name: [h, w] map}.")
    out = [(str(n), float_array(m, 2, f"maps[{n!r}]", "[h, w] over the patch grid")) for n, m in items]
    shapes = {m.shape for _, m in out}
    if len(shapes) != 1:
        raise ValueError(f"maps have different grid shapes {sorted(shapes)}; expected one [h, w] for all methods.")
    return out


def explanation_figure(image, maps, *, normalise: str = "max", alpha: float = 0.6, colormap: str | None = None,
                       upsample: str = "smooth", patch_size: int | None = None, label: str | None = None,
                       title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """Explanation maps of one image side by side, each over the image, ONE shared colour scale.

    ``maps``: ``{"rollout": [h, w], "gradient rollout": [h, w], "Chefer": [h, w]}`` (or a
    list of (name, map) pairs). Normalisation rule (``normalise``, see
    :func:`viz.maps.normalise_map`): ``"max"`` (default) divides each map by its max |value|
    so every method's strongest patch is 1 and the shared scale is 0..1; ``"minmax"``
    stretches each to 0..1; ``"none"`` keeps raw values with the global min..max as the
    shared range. Traces per subplot: ``[Image, Heatmap]``; heatmaps share ``coloraxis``.
    """
    th = resolve_theme(theme, classroom)
    img = image_array(image)
    items = _named_maps(maps)
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise={normalise!r}; expected one of {NORMALISATIONS}.")
    grid = items[0][1].shape
    P = patch_size_for(img, grid, patch_size)
    a = _check_alpha(alpha)
    normed = [(n, normalise_map(m, normalise)) for n, m in items]
    if normalise == "none":
        lo = min(float(m.min()) for _, m in normed)
        hi = max(float(m.max()) for _, m in normed)
        bar = "relevance (raw)"
    else:
        lo = min(0.0, min(float(m.min()) for _, m in normed))
        hi = 1.0
        bar = "relevance (÷ max)" if normalise == "max" else "relevance (min–max)"
    if not hi > lo:
        hi = lo + 1.0
    n = len(normed)
    H, W = img.shape[:2]
    gap_px = 16 * th.scale
    tile_w = th.px(min(320, 960 / n))
    plot_w = n * tile_w + (n - 1) * gap_px
    plot_h = tile_w * H / W
    margin = dict(th.margin)
    margin.update(l=round(30 * th.scale), b=round(30 * th.scale),
                  t=round(th.title_size * 2.6 + th.font_size * 1.8), r=margin["r"] + round(F.COLORBAR_ROOM * th.scale))
    axes, titles = F.subplot_grid(th, 1, n, [name for name, _ in normed], gap_px / plot_w if n > 1 else 0.0, 0.0)
    traces = []
    for i, (name, m) in enumerate(normed):
        xname, yname, xref, yref = F.subplot_axis_names(i + 1)
        traces.append(go.Image(z=img, name="image", hoverinfo="skip", xaxis=xref, yaxis=yref))
        heat = map_heatmap(m, P, upsample, name=name, opacity=a, coloraxis="coloraxis", value_label="relevance")
        heat.update(xaxis=xref, yaxis=yref)
        traces.append(heat)
        xa, ya = F.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), anchor=xref, show_ticks=False)
        xa.update(showline=False, **axes[xname])
        ya.update(showline=False, **axes[yname])
        axes[xname], axes[yname] = xa, ya
    # the layout in the constructor (see Theme.layout): update_layout would cost ~0.5 s for 24 axes
    return go.Figure(traces, layout=th.layout(
        title or ("Explanations" + (f" for class “{label}”" if label else "")),
        plot_w + margin["l"] + margin["r"], plot_h + margin["t"] + margin["b"], margin=margin,
        coloraxis={"colorscale": th.cmap(colormap, "attention"), "cmin": lo, "cmax": hi,
                   "colorbar": th.colorbar(bar)},
        meta={"normalise": normalise}, annotations=titles, **axes,
    ))
