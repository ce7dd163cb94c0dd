"""Attention figures: one query's map over the image, small multiples (heads of a layer,
layers of a head, the full L x H grid) on one shared colour scale, and the T x T matrix.

Where the tokens are comes in a :class:`viz.TokenLayout` (``tokens=``), how a map is drawn in
a :class:`viz.MapStyle` (``style=``). Hovering a patch of any map shows its name (patch index,
row, column) and its value.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array, image_array, patch_size_for
from .maps import tile_maps, upsample_map
from .specs import MapStyle, TokenLayout, as_style, as_tokens
from .theme import resolve_theme


# ---------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------
def _patch_custom(tokens: TokenLayout) -> np.ndarray:
    """``[h, w, 3]`` (patch index, row, col) of every patch."""
    h, w = tokens.grid
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([rows * w + cols, rows, cols], axis=-1)


PATCH_HOVER = "patch %{customdata[0]} (row %{customdata[1]}, col %{customdata[2]})"


def map_traces(m: np.ndarray, P: int, upsample: str, *, name: str, tokens: TokenLayout, cell_px: float,
               opacity: float = 1.0, value_label: str = "attention", xref: str = "x", yref: str = "y",
               scale: int = 1, **color) -> list[dict]:
    """The traces (plain dicts, for :func:`viz._figure.unchecked_figure`) that draw a ``[h, w]``
    map over pixel coordinates of an ``[h*P, w*P]`` image.

    ``nearest``: one Heatmap whose ``z`` is the map itself, one brick per patch (``x0 = (P-1)/2,
    dx = P``) — light and exact; its hover names the patch and its value. ``smooth``: a
    Heatmap of ``z = upsample_map(m, P, "smooth")`` at pixel resolution (no hover of its own),
    then invisible markers, one per patch (``cell_px`` wide), whose hover names the patch and
    gives the map's value there. ``scale``: :data:`viz._figure.WEIGHT_SCALE` sends attention
    weights as whole counts (:func:`viz._figure.on_wire`; the heatmap's ``meta["z_scale"]``
    says so, and ``color``'s range must be in counts too), 1 their three significant digits.
    """
    custom = _patch_custom(tokens)
    extra = "<extra>" + name + "</extra>"
    meta = _figure.z_meta(scale)
    if upsample == "nearest" or P == 1:
        return [dict(type="heatmap", z=_figure.on_wire(m, scale), x0=(P - 1) / 2, dx=P, y0=(P - 1) / 2, dy=P,
                     name=name, opacity=opacity, zsmooth=False, customdata=custom, meta=meta, xaxis=xref, yaxis=yref,
                     hovertemplate=PATCH_HOVER + "<br>" + value_label + " " + _figure.value_format("z", scale) + extra,
                     **color)]
    h, w = m.shape
    heat = dict(type="heatmap", z=_figure.on_wire(upsample_map(m, P, "smooth"), scale), x0=0, dx=1, y0=0, dy=1,
                name=name, opacity=opacity, zsmooth=False, hoverinfo="skip", meta=meta, xaxis=xref, yaxis=yref,
                **color)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    values = _figure.on_wire(m, scale).reshape(-1, 1)  # float32 (three digits) or whole counts
    points = dict(
        type="scatter", x=(cols * P + (P - 1) / 2).ravel(), y=(rows * P + (P - 1) / 2).ravel(), mode="markers",
        name=f"{name} (hover)", xaxis=xref, yaxis=yref, showlegend=False,
        marker={"size": max(6.0, cell_px), "symbol": "square", "opacity": 0, "color": "black"},
        customdata=np.concatenate([custom.reshape(-1, 3), values], axis=1).astype(values.dtype),
        hovertemplate=(PATCH_HOVER + "<br>" + value_label + " " + _figure.value_format("customdata[3]", scale)
                       + extra),
    )
    return [heat, points]


def _query_title(query, tokens: TokenLayout) -> str:
    return "" if query is None else f"from {tokens.name(int(query))}"


def _outline(th, qpos, P, xref="x", yref="y") -> list[dict]:
    if qpos is None:
        return []
    r, c = qpos
    return _figure.outline(th, c * P - 0.5, r * P - 0.5, (c + 1) * P - 0.5, (r + 1) * P - 0.5, xref=xref, yref=yref)


# ---------------------------------------------------------------------------------------------
# one map over the image
# ---------------------------------------------------------------------------------------------
def attention_overlay_figure(image, attn_map, *, query: int | None = None, tokens: TokenLayout | None = None,
                             style: MapStyle | None = None, colorbar_title: str = "attention weight",
                             title: str | None = None, theme=None) -> go.Figure:
    """Attention of one query token over the patches, drawn over the image.

    ``attn_map`` is ``[h, w]`` (e.g. ``A[query, p:].reshape(h, w)``). Traces: ``[Image,
    Heatmap]`` (plus hover markers for ``style.upsample="smooth"``, see :func:`map_traces`);
    the heatmap has opacity ``style.opacity``. Colour range from ``style`` (``min(0, min)`` …
    ``max`` unless given). A patch query (token index ``>= tokens.num_prefix_tokens``) is outlined.
    """
    th = resolve_theme(theme)
    img = image_array(image)
    m = float_array(attn_map, 2, "attn_map", "[h, w] over the patch grid")
    tk = as_tokens(tokens).with_grid(m.shape, "attn_map")
    st = as_style(style)
    P = patch_size_for(img, m.shape, tk.patch_size)
    qpos = None if query is None else tk.row_col(query)
    lo, hi = st.color_range(m)
    scale = _figure.weight_scale(m, hi)
    H, W = img.shape[:2]
    width, height, margin = _figure.figure_size(th, H / W, 540, colorbar=True)
    xa, ya = _figure.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), "x (px)", "y (px)")
    cell_px = (width - margin["l"] - margin["r"]) / m.shape[1]
    heat = map_traces(m, P, st.upsample, name="attention", tokens=tk, opacity=st.opacity, cell_px=cell_px,
                      colorscale=th.cmap(st.colormap, "attention"), zmin=lo * scale, zmax=hi * scale, scale=scale,
                      colorbar=_figure.colorbar(th, colorbar_title, lo, hi, m, scale=scale))
    return _figure.unchecked_figure([_figure.photo_spec(img)] + heat, th.layout(
        title or ("Attention " + _query_title(query, tk)).strip(), width, height, margin=margin, xaxis=xa, yaxis=ya,
        shapes=_outline(th, qpos, P), hovermode="closest"))


# ---------------------------------------------------------------------------------------------
# small multiples
# ---------------------------------------------------------------------------------------------
def _default_cols(n: int, th) -> int:
    """At most 6 tiles a row (4 in the classroom), rows equally full; from 4 tiles on at least two
    rows (6 heads as 3 x 2, not a thin strip of 6)."""
    most = 4 if th.scale > 1.2 else 6
    rows = max(math.ceil(n / most), 2 if n >= 4 else 1)
    return math.ceil(n / rows)


def _small_multiples(maps, labels, *, image, query, tokens, style, cols, title, th, what) -> go.Figure:
    """Tiles of maps on one colour axis. With ``image`` the photo is the FIRST tile, sent once
    (a compressed picture) and the maps follow at full opacity in pixel coordinates — not the
    photo again under every map: 12 copies were 2.5 MB per figure (issue 15). Without it the
    maps are in patch units."""
    n, h, w = maps.shape
    tk = as_tokens(tokens).with_grid((h, w), "maps")
    st = as_style(style)
    qpos = None if query is None else tk.row_col(query)
    if image is not None:
        img = image_array(image)
        P = patch_size_for(img, (h, w), tk.patch_size)
        upsample = st.upsample
        labels = ["the image"] + list(labels)
    else:
        img, P, upsample = None, 1, "nearest"
    tiles = len(labels)
    cols = _default_cols(tiles, th) if cols is None else max(1, min(int(cols), tiles))
    rows = math.ceil(tiles / cols)
    lo, hi = st.color_range(maps)
    scale = _figure.weight_scale(maps, hi)

    # geometry: tiles of equal size (at most ~250 px), room above each for its title
    hgap_px = 12 * th.scale
    tile_w = min(th.px(250), (th.px(900) - (cols - 1) * hgap_px) / cols)
    plot_w = cols * tile_w + (cols - 1) * hgap_px
    tile_h = tile_w * h / w
    vgap_px = th.font_size * 1.9
    plot_h = rows * tile_h + (rows - 1) * vgap_px
    margin = dict(th.margin)
    margin["t"] = round(th.title_size * 2.6 + th.font_size * 1.8)  # title, then subplot titles
    margin["r"] = margin["r"] + round(_figure.COLORBAR_ROOM * th.scale)
    margin["l"] = round(30 * th.scale)
    margin["b"] = round(30 * th.scale)
    axes, titles = _figure.subplot_grid(th, rows, cols, labels, hgap_px / plot_w if cols > 1 else 0.0,
                                  vgap_px / plot_h if rows > 1 else 0.0)
    Hs, Ws = h * P, w * P
    traces, shapes = [], []
    first = 0
    if img is not None:
        traces.append(_figure.photo_spec(img, xaxis="x", yaxis="y"))
        first = 1
    for i in range(tiles):
        xname, yname, xref, yref = _figure.subplot_axis_names(i + 1)
        if i >= first:
            k = i - first
            traces += map_traces(maps[k], P, upsample, name=labels[i], tokens=tk, cell_px=tile_w / w,
                                 coloraxis="coloraxis", xref=xref, yref=yref, scale=scale)
        xa, ya = _figure.image_axes(th, (-0.5, Ws - 0.5), (Hs - 0.5, -0.5), anchor=xref, show_ticks=False)
        xa.update(showline=False, **axes[xname])
        ya.update(showline=False, **axes[yname])
        axes[xname], axes[yname] = xa, ya
        shapes += _outline(th, qpos, P, xref, yref)
    # built from plain dicts, unvalidated: the app rebuilds these on every layer, head or query
    # (validation was ~80% of their cost); tests validate every registry figure once
    return _figure.unchecked_figure(traces, th.layout(
        title or " ".join(t for t in (what, _query_title(query, tk)) if t),
        plot_w + margin["l"] + margin["r"], plot_h + margin["t"] + margin["b"], margin=margin,
        coloraxis={"colorscale": th.cmap(st.colormap, "attention"), "cmin": lo * scale, "cmax": hi * scale,
                   "colorbar": _figure.colorbar(th, "attention weight", lo, hi, maps, scale=scale)},
        shapes=shapes, annotations=titles, hovermode="closest", **axes,
    ))


def attention_heads_figure(maps, *, image=None, layer: int | None = None, query: int | None = None,
                           tokens: TokenLayout | None = None, style: MapStyle | None = None, cols: int | None = None,
                           title: str | None = None, theme=None) -> go.Figure:
    """All heads of one layer: ``maps [H, h, w]``, one subplot per head, one shared colour axis.

    With ``image`` each map is drawn over the image (``style.opacity``, ``style.upsample``);
    without it, the maps are plain heatmaps in patch units. Every heatmap uses ``coloraxis``
    whose ``cmin/cmax`` is the shared range: ``style.zmin``/``style.zmax`` where given (pass a
    high percentile as ``zmax`` so that one sharp head does not leave the others black: the
    colour bar's top label then reads "≥ zmax"), else ``min(0, min)`` … ``max`` over all heads.
    """
    th = resolve_theme(theme)
    m = float_array(maps, 3, "maps", "[H, h, w] (one map per head)")
    labels = [f"head {i}" for i in range(m.shape[0])]
    what = "All heads" + (f" of layer {layer}" if layer is not None else "")
    return _small_multiples(m, labels, image=image, query=query, tokens=tokens, style=style, cols=cols,
                            title=title, th=th, what=what if query is None else what + ", attention")


def attention_layers_figure(maps, *, image=None, head: int | str | None = None, query: int | None = None,
                            tokens: TokenLayout | None = None, style: MapStyle | None = None, cols: int | None = None,
                            title: str | None = None, theme=None) -> go.Figure:
    """All layers of one head (or of a head fusion such as ``head="mean"``): ``maps [L, h, w]``.

    Same layout and shared colour axis as :func:`attention_heads_figure`.
    """
    th = resolve_theme(theme)
    m = float_array(maps, 3, "maps", "[L, h, w] (one map per layer)")
    labels = [f"layer {i}" for i in range(m.shape[0])]
    what = "All layers" + (f", head {head}" if head is not None else "")
    return _small_multiples(m, labels, image=image, query=query, tokens=tokens, style=style, cols=cols,
                            title=title, th=th, what=what if query is None else what + ", attention")


def attention_grid_figure(maps, *, query: int | None = None, tokens: TokenLayout | None = None,
                          style: MapStyle | None = None, title: str | None = None, theme=None) -> go.Figure:
    """Every layer x head: ``maps [L, H, h, w]`` as ONE tiled heatmap (fast for 12 x 12).

    ``fig.data[0].z`` is :func:`viz.maps.tile_maps` of the maps with a 1-cell NaN gap
    (drawn as white separators), weights as whole counts (:func:`viz._figure.on_wire`): tile
    (l, k) starts at row ``l*(h+1)``, column ``k*(w+1)``; the axes are categories, one per row
    and column, named for the hover (``x[k*(w+1) + c] = "head k · col c"``,
    ``y[l*(h+1) + r] = "layer l · row r"``). The colour
    range is shared (``style.zmin``/``style.zmax`` where given, the top
    label "≥ zmax" when the maps go beyond it; else ``min(0, min)`` … ``max``); only
    ``style.colormap`` and the range apply (no image under the tiles). Layers go down, heads
    go across; a patch query is marked by an open square in each tile.
    """
    th = resolve_theme(theme)
    m = float_array(maps, 4, "maps", "[L, H, h, w] (layers x heads x patch grid)")
    L, Hh, h, w = m.shape
    tk = as_tokens(tokens).with_grid((h, w), "maps")
    st = as_style(style)
    qpos = None if query is None else tk.row_col(query)
    lo, hi = st.color_range(m)
    scale = _figure.weight_scale(m, hi)
    big = tile_maps(m, gap=1)
    ny, nx = big.shape
    # hover: each column and row is a category named by its tile and place ("head 2 · col 5",
    # "layer 3 · row 4"): 101 + 203 short names instead of a (layer, head, patch) triple per cell,
    # which was a third of the figure on the wire, resent with every query (issue 15). The
    # separators get names too (categories are unique) but no hover (NaN, hoverongaps=False).
    xnames = [f"head {i // (w + 1)} · " + (f"col {i % (w + 1)}" if i % (w + 1) < w else "|") for i in range(nx)]
    ynames = [f"layer {i // (h + 1)} · " + (f"row {i % (h + 1)}" if i % (h + 1) < h else "—") for i in range(ny)]

    width, height, margin = _figure.figure_size(th, ny / nx, 640 if nx >= ny else 640 * nx / ny + 200,
                                          colorbar=True, max_plot_height=820)
    plot_w = width - margin["l"] - margin["r"]
    plot_h = height - margin["t"] - margin["b"]
    xc = [k * (w + 1) + (w - 1) / 2 for k in range(Hh)]
    yc = [layer * (h + 1) + (h - 1) / 2 for layer in range(L)]
    xv, xt = _figure.index_ticks(Hh, plot_w, th.tick_size, positions=xc, min_gap_chars=2)
    yv, yt = _figure.index_ticks(L, plot_h, th.tick_size, positions=yc, min_gap_chars=1)
    # category axes: position i is category i, so the ranges and tick positions stay in cells
    xa, ya = _figure.image_axes(th, (-0.5, nx - 0.5), (ny - 0.5, -0.5), "head", "layer",
                          tickmode="array", type="category")
    xa.update(tickvals=xv, ticktext=xt, side="top")
    ya.update(tickvals=yv, ticktext=yt)
    xa["title"]["standoff"] = 4
    traces = [dict(
        type="heatmap", z=_figure.on_wire(big, scale), x=xnames, y=ynames, name="attention",
        colorscale=th.cmap(st.colormap, "attention"), meta=_figure.z_meta(scale),
        zmin=lo * scale, zmax=hi * scale, zsmooth=False, hoverongaps=False,
        colorbar=_figure.colorbar(th, "attention weight", lo, hi, m, scale=scale),
        hovertemplate="%{y}<br>%{x}<br>attention " + _figure.value_format("z", scale) + "<extra></extra>",
    )]
    if qpos is not None:
        qr, qc = qpos
        qx = [xnames[k * (w + 1) + qc] for layer in range(L) for k in range(Hh)]
        qy = [ynames[layer * (h + 1) + qr] for layer in range(L) for k in range(Hh)]
        cell_px = plot_w / nx
        traces.append(dict(
            type="scatter", x=qx, y=qy, mode="markers", name="query patch", hoverinfo="skip",
            marker={"symbol": "square-open", "size": max(6.0, cell_px * 1.6), "color": th.highlight_color,
                    "line": {"width": max(1.5, th.line_width * 2), "color": th.highlight_color}},
        ))
    margin["t"] = margin["t"] + round(th.tick_size * 2.2)  # ticks and 'head' title on top
    margin["b"] = round(24 * th.scale)  # nothing below the grid
    height -= round(th.margin["b"] - 24 * th.scale)
    # rebuilt for every new query: plain dicts of checked arrays (tests validate it once)
    return _figure.unchecked_figure(traces, th.layout(
        title or ", ".join(t for t in ("Attention, every layer × head", _query_title(query, tk)) if t),
        width, height + round(th.tick_size * 2.2), margin=margin, xaxis=xa, yaxis=ya,
    ))


# ---------------------------------------------------------------------------------------------
# the T x T matrix
# ---------------------------------------------------------------------------------------------
LOG_MATRIX_DECIMALS = 1  # log view: "≈ 10^-2.4", colours in 60 steps over six decades


def attention_matrix_figure(attn, *, tokens: TokenLayout | None = None, layer: int | None = None,
                            head: int | str | None = None, log_scale: bool = False, style: MapStyle | None = None,
                            title: str | None = None, theme=None) -> go.Figure:
    """One head's full ``[T, T]`` attention (rows = queries, columns = keys).

    Axes are categorical token names (``CLS``, ..., ``'p17 (r2,c3)'``, see
    :meth:`viz.TokenLayout.label`) so hover shows the query and key tokens; sparse ticks name
    the prefix tokens and every so many patches (``p0``, ``p25`` …); lines at
    ``num_prefix_tokens - 0.5`` separate prefix tokens from patches. ``tokens.grid`` may be
    None for a square grid. Of ``style`` only ``colormap`` and ``zmax`` apply.

    What ``z`` holds is chosen for the wire (issue 15: a layer/head move in this view sent
    144-218 KB, 66,049 values for DINOv2-S): weights in [0, 1] as whole counts of 0.0001 (of
    less where the scale's top is below 0.01; ``meta["z_scale"]`` counts a unit, the hover writes
    them back as "0.0039", :func:`viz.figure_data` divides them out: :func:`viz._figure.on_wire`),
    which deflate to 50-87 KB; with ``log_scale``, ``log10(max(attn, 1e-6))`` to
    :data:`LOG_MATRIX_DECIMALS` decimal (hover "≈ 10^-2.4"), 69-90 KB. Other values (not
    attention weights) keep three significant digits (:func:`viz._figure.shown`).
    """
    th = resolve_theme(theme)
    A = float_array(attn, 2, "attn", "[T, T] (one head of one layer)")
    T = A.shape[0]
    if A.shape[1] != T:
        raise ValueError(f"attn has shape {A.shape}; expected a square [T, T] matrix. Fix: pass attentions[l, h].")
    tk = as_tokens(tokens)
    st = as_style(style)
    p = tk.p
    N = T - p
    if N < 1:
        raise ValueError(f"num_prefix_tokens={p} but attn has only T={T} tokens; expected prefix tokens and patches.")
    if tk.grid is None:
        s = int(round(math.sqrt(N)))
        if s * s != N:
            raise ValueError(f"{N} patch tokens (T={T}, {p} prefix) is not a square grid; pass "
                             f"tokens=TokenLayout(..., grid=(h, w)).")
        tk = tk.with_grid((s, s))
    if tk.N != N:
        raise ValueError(f"grid={tk.grid} has {tk.N} patches but attn has T - num_prefix_tokens = {N}. "
                         f"Fix: check num_prefix_tokens (registers?) and grid.")
    names = tk.names(T)
    if log_scale:
        logs = np.log10(np.maximum(A, 1e-6))
        z = np.round(logs, LOG_MATRIX_DECIMALS).astype(np.float32)
        lo, hi = -6.0, (float(np.max(logs)) if st.zmax is None else float(st.zmax))
        bar = "log₁₀ attention weight"
        value_hover = f"attention weight ≈ 10<sup>%{{z:.{LOG_MATRIX_DECIMALS}f}}</sup>"
        scale = 1
    else:
        lo, hi = st.replace(zmin=None).color_range(A)
        bar = "attention weight"
        scale = _figure.weight_scale(A, hi)
        z = _figure.on_wire(A, scale)
        value_hover = f"{bar} {_figure.value_format('z', scale)}"
    width, height, margin = _figure.figure_size(th, 1.0, 600, colorbar=True, extra_left=20, max_plot_height=640)
    plot_w = width - margin["l"] - margin["r"]
    tv, tt = _figure.index_ticks(N, plot_w, th.tick_size, start=0, positions=range(p, T),
                           labels=[tk.tick(t) for t in range(p, T)])
    # prefix names first; a name is dropped (hover still shows it) when it would overlap
    tickpos, ticktext = _figure.merge_ticks([(t, tk.tick(t)) for t in range(p)], list(zip(tv, tt)), plot_w / T,
                                      th.tick_size, along="height")
    tickvals = [names[i] for i in tickpos]
    xa = th.axis("key token (attended to)", type="category", range=[-0.5, T - 0.5], tickmode="array",
                 tickvals=tickvals, ticktext=ticktext, constrain="domain", tickangle=-90)
    ya = th.axis("query token (attending)", type="category", range=[T - 0.5, -0.5], tickmode="array",
                 tickvals=tickvals, ticktext=ticktext, scaleanchor="x", constrain="domain")
    shapes = []
    if p:
        sep = {"color": th.highlight_color, "width": th.outline_width * 0.75}
        shapes = [dict(type="line", xref="x", yref="y", x0=p - 0.5, x1=p - 0.5, y0=-0.5, y1=T - 0.5, line=sep,
                       layer="above", name="prefix|patch separator (keys)"),
                  dict(type="line", xref="x", yref="y", x0=-0.5, x1=T - 0.5, y0=p - 0.5, y1=p - 0.5, line=sep,
                       layer="above", name="prefix|patch separator (queries)")]
    where = " ".join(s for s in (f"layer {layer}" if layer is not None else "",
                                 f"head {head}" if head is not None else "") if s)
    # rebuilt for every layer and head: plain dicts of checked arrays (tests validate it once)
    heatmap = dict(
        type="heatmap", z=z, x=names, y=names, name="attention", colorscale=th.cmap(st.colormap, "attention"),
        zmin=lo * scale, zmax=hi * scale, meta=_figure.z_meta(scale),
        zsmooth=False, colorbar=_figure.colorbar(th, bar, lo, hi, logs if log_scale else A, scale=scale),
        hovertemplate="query %{y}<br>key %{x}<br>" + value_hover + "<extra></extra>",
    )
    return _figure.unchecked_figure([heatmap], th.layout(
        title or f"Attention matrix {where} ({T}×{T}; {p} prefix + {N} patches)".replace("  ", " "),
        width, height, margin=margin, xaxis=xa, yaxis=ya, shapes=shapes,
    ))
