"""Explanations over the image: maps of several methods side by side (attention rollout,
gradient rollout, Chefer relevance, ...) and the DINO attention-mass mask."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array, image_array, patch_size_for
from .attention import PATCH_HOVER, map_traces
from .maps import NORMALISATIONS, normalise_map
from .specs import MapStyle, TokenLayout, as_style, as_tokens
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


def explanation_figure(image, maps, *, normalise: str = "max", tokens: TokenLayout | None = None,
                       style: MapStyle | None = None, label: str | None = None, title: str | None = None,
                       theme=None) -> go.Figure:
    """Explanation maps of one image side by side, each over the image, ONE shared colour scale.

    ``maps``: ``{"rollout": [h, w], "gradient rollout": [h, w], "Chefer": [h, w]}`` (or a
    list of (name, map) pairs). Normalisation rule (``normalise``, see
    :func:`viz.maps.normalise_map`): ``"max"`` (default) divides each map by its max |value|
    so every method's strongest patch is 1 and the shared scale is 0..1; ``"minmax"``
    stretches each to 0..1; ``"none"`` keeps raw values with the global min..max as the
    shared range. ``style`` (default ``MapStyle(upsample="smooth")``) gives the colormap,
    opacity and upsampling (its zmin/zmax do not apply: the normalisation sets the range);
    ``tokens`` the patch size. Traces per subplot: ``[Image, Heatmap]`` (plus hover markers
    when smooth, see :func:`viz.attention.map_traces`); heatmaps share ``coloraxis``.
    """
    th = resolve_theme(theme)
    img = image_array(image)
    items = _named_maps(maps)
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise={normalise!r}; expected one of {NORMALISATIONS}.")
    grid = items[0][1].shape
    tk = as_tokens(tokens).with_grid(grid, "maps")
    st = as_style(style, upsample="smooth")
    P = patch_size_for(img, grid, tk.patch_size)
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
                  t=round(th.title_size * 2.6 + th.font_size * 1.8), r=margin["r"] + round(_figure.COLORBAR_ROOM * th.scale))
    axes, titles = _figure.subplot_grid(th, 1, n, [name for name, _ in normed], gap_px / plot_w if n > 1 else 0.0, 0.0)
    traces = []
    photo = _figure.image_source(img)  # encoded once, drawn under each map
    for i, (name, m) in enumerate(normed):
        xname, yname, xref, yref = _figure.subplot_axis_names(i + 1)
        traces.append(dict(type="image", source=photo, name="image", hoverinfo="skip", xaxis=xref, yaxis=yref))
        traces += map_traces(m, P, st.upsample, name=name, tokens=tk, opacity=st.opacity, cell_px=tile_w / grid[1],
                             coloraxis="coloraxis", value_label="relevance", xref=xref, yref=yref)
        xa, ya = _figure.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), anchor=xref, show_ticks=False)
        xa.update(showline=False, **axes[xname])
        # drawn narrower than built (Streamlit fits a figure to its column, keeping its height), the
        # maps hang from their titles and the room they no longer need is left below them
        ya.update(showline=False, constraintoward="top", **axes[yname])
        axes[xname], axes[yname] = xa, ya
    # plain dicts, unvalidated (see viz._figure.unchecked_figure); tests validate it once
    return _figure.unchecked_figure(traces, th.layout(
        title or ("Explanations" + (f" for class “{label}”" if label else "")),
        plot_w + margin["l"] + margin["r"], plot_h + margin["t"] + margin["b"], margin=margin,
        coloraxis={"colorscale": th.cmap(st.colormap, "attention"), "cmin": lo, "cmax": hi,
                   "colorbar": _figure.colorbar(th, bar, lo, hi)},
        meta={"normalise": normalise}, annotations=titles, hovermode="closest", **axes,
    ))


# =============================================================================================
# the DINO attention-mass mask
# =============================================================================================
def mass_mask_figure(image, attn_map, mask, *, tokens: TokenLayout | None = None, threshold: float = 0.6,
                     dim: float = 0.3, title: str | None = None, theme=None) -> go.Figure:
    """The image with the patches of the attention-mass mask shown and the rest dimmed.

    ``attn_map [h, w]`` the attention over patches, ``mask [h, w]`` bool: the smallest set
    of patches holding at least ``threshold`` of the map's mass (``model.attention_mass_mask``,
    DINO, Caron et al. 2021). Trace 0 is an Image: kept pixels unchanged, the others
    multiplied by ``dim`` (rounded); traces 1–2 outline the kept region (a dark halo under a
    bright line, segments separated by None); trace 3 carries hover per patch (its name,
    attention and whether it is kept). ``tokens`` gives the patch size. The title
    states the threshold and the kept patches, e.g. "60% of attention in 23 of 256 patches".
    ``layout.meta``: ``{"kept", "patches", "kept_mass", "threshold"}``.
    """
    th = resolve_theme(theme)
    img = image_array(image)
    m = float_array(attn_map, 2, "attn_map", "[h, w] over the patch grid")
    mk = np.asarray(mask)
    if mk.shape != m.shape:
        raise ValueError(f"mask has shape {mk.shape} but attn_map has {m.shape}; expected the same [h, w] grid. "
                         f"Fix: mask = model.attention_mass_mask(attn_map, threshold).")
    if mk.dtype != np.bool_:
        if not np.isin(mk, (0, 1)).all():
            raise ValueError(f"mask has dtype {mk.dtype} with values other than 0/1; expected a bool [h, w] mask.")
        mk = mk.astype(bool)
    thr = float(threshold)
    if not 0.0 < thr <= 1.0:
        raise ValueError(f"threshold={threshold!r}; expected the kept fraction of attention in (0, 1], DINO uses 0.6.")
    dm = float(dim)
    if not 0.0 <= dm <= 1.0:
        raise ValueError(f"dim={dim!r}; expected the brightness of dropped patches in [0, 1] (0 = black).")
    if m.min() < 0:
        raise ValueError(f"attn_map has a negative value ({m.min():.3g}); expected attention >= 0.")
    h, w = m.shape
    P = patch_size_for(img, (h, w), as_tokens(tokens).with_grid((h, w), "attn_map").patch_size)
    total = float(m.sum())
    kept_mass = float(m[mk].sum()) / total if total > 0 else 0.0
    if total > 0 and kept_mass < thr - 1e-6:
        raise ValueError(f"mask keeps {_figure.pct(kept_mass)} of the attention but threshold={thr:g}; "
                         "expected at least "
                         f"the threshold. Fix: mask = model.attention_mass_mask(attn_map, {thr:g}).")
    keep_px = np.repeat(np.repeat(mk, P, axis=0), P, axis=1)
    shown = np.where(keep_px[..., None], img, np.rint(img.astype(np.float64) * dm)).astype(np.uint8)
    k, N = int(mk.sum()), h * w
    H, W = img.shape[:2]
    width, height, margin = _figure.figure_size(th, H / W, 540, colorbar=False)
    xa, ya = _figure.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), "x (px)", "y (px)")
    xs, ys = _mask_outline(mk, P)
    lw = th.outline_width
    halo = dict(type="scatter", x=xs, y=ys, mode="lines", name="outline halo", hoverinfo="skip",
                line={"color": "rgba(0,0,0,0.85)", "width": lw + 2.5})
    line = dict(type="scatter", x=xs, y=ys, mode="lines", name="kept patches", hoverinfo="skip",
                line={"color": th.highlight_color, "width": lw})
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    cell_px = (width - margin["l"] - margin["r"]) / w
    hover = dict(
        type="scatter", x=(cols * P + (P - 1) / 2).ravel(), y=(rows * P + (P - 1) / 2).ravel(), mode="markers",
        name="patches",
        marker={"size": max(6.0, cell_px), "symbol": "square", "opacity": 0, "color": "black"}, showlegend=False,
        customdata=np.stack([(rows * w + cols).ravel(), rows.ravel(), cols.ravel(), m.ravel()], axis=-1),
        text=np.where(mk.ravel(), "kept", "dimmed").tolist(),
        hovertemplate=PATCH_HOVER + "<br>attention %{customdata[3]:.3~g}<br>%{text}<extra></extra>",
    )
    # rebuilt for every layer, head and query: plain dicts of checked arrays (tests validate it once)
    return _figure.unchecked_figure([_figure.photo_spec(shown, name="masked image"), halo, line, hover], th.layout(
        title or f"{_figure.pct(thr)} of attention in {k} of {N} patches ({_figure.pct(k / N)} of the image)",
        width, height, margin=margin, xaxis=xa, yaxis=ya,
        meta={"kept": k, "patches": N, "kept_mass": kept_mass, "threshold": thr},
    ))


def _mask_outline(mask: np.ndarray, P: int) -> tuple[list, list]:
    """Boundary of the True cells as merged straight segments, in pixel coordinates, runs
    separated by None (one Scatter draws them all)."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), dtype=bool)
    pad[1:-1, 1:-1] = mask
    xs: list = []
    ys: list = []

    def runs(flags):
        start = None
        for i, f in enumerate(list(flags) + [False]):
            if f and start is None:
                start = i
            elif not f and start is not None:
                yield start, i
                start = None

    # horizontal edges on line r (between rows r-1 and r): cells differ across it
    for r in range(h + 1):
        edge = pad[r, 1:-1] != pad[r + 1, 1:-1]
        for c0, c1 in runs(edge):
            xs += [c0 * P - 0.5, c1 * P - 0.5, None]
            ys += [r * P - 0.5, r * P - 0.5, None]
    for c in range(w + 1):
        edge = pad[1:-1, c] != pad[1:-1, c + 1]
        for r0, r1 in runs(edge):
            xs += [c * P - 0.5, c * P - 0.5, None]
            ys += [r0 * P - 0.5, r1 * P - 0.5, None]
    return xs, ys
