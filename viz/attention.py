"""Attention figures: one query's map over the image, small multiples (heads of a layer,
layers of a head, the full L x H grid) on one shared colour scale, and the T x T matrix."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from . import _figure as F
from ._checks import check_prefix, float_array, image_array, name_of, patch_size_for, query_patch, token_names
from .maps import UPSAMPLE_MODES, tile_maps, upsample_map
from .theme import resolve_theme


# ---------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------
def color_range(maps, zmin=None, zmax=None) -> tuple[float, float]:
    """Shared colour range: ``zmin = min(0, min)`` and ``zmax = max`` unless given."""
    a = np.asarray(maps, dtype=np.float64)
    lo = min(0.0, float(np.nanmin(a))) if zmin is None else float(zmin)
    hi = float(np.nanmax(a)) if zmax is None else float(zmax)
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def map_heatmap(m: np.ndarray, P: int, upsample: str, *, name: str, num_prefix_tokens: int = 1,
                opacity: float = 1.0, value_label: str = "attention", **color) -> go.Heatmap:
    """A heatmap of a ``[h, w]`` map placed over pixel coordinates of a ``[h*P, w*P]`` image.

    ``nearest``: ``z`` is the map itself, one brick per patch (``x0 = (P-1)/2, dx = P``) —
    light and exact. ``smooth``: ``z = upsample_map(m, P, "smooth")`` at pixel resolution.
    """
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample={upsample!r}; expected one of {UPSAMPLE_MODES}.")
    h, w = m.shape
    if upsample == "nearest" or P == 1:
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        custom = np.stack([num_prefix_tokens + rows * w + cols, rows, cols], axis=-1)
        return go.Heatmap(
            z=m, x0=(P - 1) / 2, dx=P, y0=(P - 1) / 2, dy=P, name=name, opacity=opacity, zsmooth=False,
            customdata=custom,
            hovertemplate=("token %{customdata[0]} (row %{customdata[1]}, col %{customdata[2]})<br>"
                           + value_label + " %{z:.4f}<extra>" + name + "</extra>"),
            **color,
        )
    return go.Heatmap(
        z=upsample_map(m, P, "smooth"), x0=0, dx=1, y0=0, dy=1, name=name, opacity=opacity, zsmooth=False,
        hovertemplate="x %{x} px, y %{y} px<br>" + value_label + " %{z:.4f}<extra>" + name + "</extra>",
        **color,
    )


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha={alpha!r}; expected an opacity between 0 (image only) and 1 (map only).")
    return a


def _query_title(query, p, grid, prefix_names) -> str:
    if query is None:
        return ""
    return f"from {name_of(int(query), p, grid, prefix_names)}"


# ---------------------------------------------------------------------------------------------
# one map over the image
# ---------------------------------------------------------------------------------------------
def attention_overlay_figure(image, attn_map, *, query: int | None = None, num_prefix_tokens: int = 1,
                             prefix_names=None, patch_size: int | None = None, alpha: float = 0.6,
                             colormap: str | None = None, upsample: str = "nearest",
                             zmin: float | None = None, zmax: float | None = None,
                             colorbar_title: str = "attention weight", title: str | None = None,
                             theme=None, classroom: bool = False) -> go.Figure:
    """Attention of one query token over the patches, drawn over the image.

    ``attn_map`` is ``[h, w]`` (e.g. ``A[query, p:].reshape(h, w)``). Traces:
    ``[Image, Heatmap]``; the heatmap has opacity ``alpha`` and ``z`` as in
    :func:`map_heatmap`. Colour range ``zmin = min(0, min)``, ``zmax = max`` unless given.
    A patch query (token index ``>= num_prefix_tokens``) is outlined.
    """
    th = resolve_theme(theme, classroom)
    img = image_array(image)
    m = float_array(attn_map, 2, "attn_map", "[h, w] over the patch grid")
    grid = m.shape
    P = patch_size_for(img, grid, patch_size)
    p = len(check_prefix(num_prefix_tokens, prefix_names))
    qpos = query_patch(query, p, grid)
    a = _check_alpha(alpha)
    lo, hi = color_range(m, zmin, zmax)
    H, W = img.shape[:2]
    width, height, margin = F.figure_size(th, H / W, 540, colorbar=True)
    xa, ya = F.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), "x (px)", "y (px)")
    shapes = []
    if qpos is not None:
        r, c = qpos
        shapes = F.outline(th, c * P - 0.5, r * P - 0.5, (c + 1) * P - 0.5, (r + 1) * P - 0.5)
    heat = map_heatmap(m, P, upsample, name="attention", num_prefix_tokens=p, opacity=a,
                       colorscale=th.cmap(colormap, "attention"), zmin=lo, zmax=hi,
                       colorbar=th.colorbar(colorbar_title))
    fig = go.Figure([go.Image(z=img, name="image", hoverinfo="skip"), heat])
    fig.layout = th.layout(
        title or ("Attention " + _query_title(query, p, grid, prefix_names)).strip(),
        width, height, margin=margin, xaxis=xa, yaxis=ya, shapes=shapes,
    )
    return fig


# ---------------------------------------------------------------------------------------------
# small multiples
# ---------------------------------------------------------------------------------------------
def _small_multiples(maps, labels, *, image, query, num_prefix_tokens, prefix_names, patch_size, cols,
                     alpha, colormap, upsample, zmin, zmax, title, th, what) -> go.Figure:
    n, h, w = maps.shape
    p = len(check_prefix(num_prefix_tokens, prefix_names))
    qpos = query_patch(query, p, (h, w))
    if image is not None:
        img = image_array(image)
        P = patch_size_for(img, (h, w), patch_size)
        a = _check_alpha(alpha)
    else:
        img, P, a = None, 1, 1.0
    if cols is None:
        cols = min(n, 4 if th.scale > 1.2 else 6)
    cols = max(1, min(int(cols), n))
    rows = math.ceil(n / cols)
    lo, hi = color_range(maps, zmin, zmax)

    # geometry: tiles of equal size, room above each for its title
    plot_w = th.px(900)
    hgap_px = 12 * th.scale
    tile_w = (plot_w - (cols - 1) * hgap_px) / cols
    tile_h = tile_w * h / w
    vgap_px = th.font_size * 1.9
    plot_h = rows * tile_h + (rows - 1) * vgap_px
    margin = dict(th.margin)
    margin["t"] = round(th.title_size * 2.6 + th.font_size * 1.8)  # title, then subplot titles
    margin["r"] = margin["r"] + round(F.COLORBAR_ROOM * th.scale)
    margin["l"] = round(30 * th.scale)
    margin["b"] = round(30 * th.scale)
    axes, titles = F.subplot_grid(th, rows, cols, labels, hgap_px / plot_w if cols > 1 else 0.0,
                                  vgap_px / plot_h if rows > 1 else 0.0)
    Hs, Ws = h * P, w * P
    traces, shapes = [], []
    cscale = th.cmap(colormap, "attention")
    for i in range(n):
        xname, yname, xref, yref = F.subplot_axis_names(i + 1)
        if img is not None:
            traces.append(go.Image(z=img, name="image", hoverinfo="skip", xaxis=xref, yaxis=yref))
        heat = map_heatmap(maps[i], P, upsample if img is not None else "nearest", name=labels[i],
                           num_prefix_tokens=p, opacity=a, coloraxis="coloraxis")
        heat.update(xaxis=xref, yaxis=yref)
        traces.append(heat)
        xa, ya = F.image_axes(th, (-0.5, Ws - 0.5), (Hs - 0.5, -0.5), anchor=xref, show_ticks=False)
        xa.update(showline=False, **axes[xname])
        ya.update(showline=False, **axes[yname])
        axes[xname], axes[yname] = xa, ya
        if qpos is not None:
            qr, qc = qpos
            shapes += F.outline(th, qc * P - 0.5, qr * P - 0.5, (qc + 1) * P - 0.5, (qr + 1) * P - 0.5,
                                xref=xref, yref=yref)
    # the layout in the constructor (see Theme.layout): update_layout would cost ~0.5 s for 24 axes
    return go.Figure(traces, layout=th.layout(
        title or " ".join(t for t in (what, _query_title(query, p, (h, w), prefix_names)) if t),
        plot_w + margin["l"] + margin["r"], plot_h + margin["t"] + margin["b"], margin=margin,
        coloraxis={"colorscale": cscale, "cmin": lo, "cmax": hi, "colorbar": th.colorbar("attention weight")},
        shapes=shapes, annotations=titles, **axes,
    ))


def attention_heads_figure(maps, *, image=None, layer: int | None = None, query: int | None = None,
                           num_prefix_tokens: int = 1, prefix_names=None, patch_size: int | None = None,
                           cols: int | None = None, alpha: float = 0.6, colormap: str | None = None,
                           upsample: str = "nearest", zmin: float | None = None, zmax: float | None = None,
                           title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """All heads of one layer: ``maps [H, h, w]``, one subplot per head, one shared colour axis.

    With ``image`` each map is drawn over the image (opacity ``alpha``); without it, the
    maps are plain heatmaps in patch units. Every heatmap uses ``coloraxis`` whose
    ``cmin/cmax`` is the shared range (``min(0, min)`` .. ``max`` over all heads unless given).
    """
    th = resolve_theme(theme, classroom)
    m = float_array(maps, 3, "maps", "[H, h, w] (one map per head)")
    labels = [f"head {i}" for i in range(m.shape[0])]
    what = "All heads" + (f" of layer {layer}" if layer is not None else "") + ","
    return _small_multiples(m, labels, image=image, query=query, num_prefix_tokens=num_prefix_tokens,
                            prefix_names=prefix_names, patch_size=patch_size, cols=cols, alpha=alpha,
                            colormap=colormap, upsample=upsample, zmin=zmin, zmax=zmax, title=title, th=th,
                            what=what.rstrip(",") if query is None else what + " attention")


def attention_layers_figure(maps, *, image=None, head: int | str | None = None, query: int | None = None,
                            num_prefix_tokens: int = 1, prefix_names=None, patch_size: int | None = None,
                            cols: int | None = None, alpha: float = 0.6, colormap: str | None = None,
                            upsample: str = "nearest", zmin: float | None = None, zmax: float | None = None,
                            title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """All layers of one head (or of a head fusion such as ``head="mean"``): ``maps [L, h, w]``.

    Same layout and shared colour axis as :func:`attention_heads_figure`.
    """
    th = resolve_theme(theme, classroom)
    m = float_array(maps, 3, "maps", "[L, h, w] (one map per layer)")
    labels = [f"layer {i}" for i in range(m.shape[0])]
    what = "All layers" + (f", head {head}" if head is not None else "") + ","
    return _small_multiples(m, labels, image=image, query=query, num_prefix_tokens=num_prefix_tokens,
                            prefix_names=prefix_names, patch_size=patch_size, cols=cols, alpha=alpha,
                            colormap=colormap, upsample=upsample, zmin=zmin, zmax=zmax, title=title, th=th,
                            what=what.rstrip(",") if query is None else what + " attention")


def attention_grid_figure(maps, *, query: int | None = None, num_prefix_tokens: int = 1, prefix_names=None,
                          colormap: str | None = None, zmin: float | None = None, zmax: float | None = None,
                          title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """Every layer x head: ``maps [L, H, h, w]`` as ONE tiled heatmap (fast for 12 x 12).

    ``fig.data[0].z`` is :func:`viz.maps.tile_maps` of the maps with a 1-cell NaN gap
    (drawn as white separators): tile (l, k) starts at row ``l*(h+1)``, column
    ``k*(w+1)``. ``zmin/zmax`` are shared (``min(0, min)`` .. ``max`` unless given).
    Layers go down, heads go across; a patch query is marked by an open square in each tile.
    """
    th = resolve_theme(theme, classroom)
    m = float_array(maps, 4, "maps", "[L, H, h, w] (layers x heads x patch grid)")
    L, Hh, h, w = m.shape
    p = len(check_prefix(num_prefix_tokens, prefix_names))
    qpos = query_patch(query, p, (h, w))
    lo, hi = color_range(m, zmin, zmax)
    big = tile_maps(m, gap=1)
    ny, nx = big.shape
    # hover: (layer, head, row, col) for each cell, -1 in the gaps
    li = np.full(ny, -1)
    ri = np.full(ny, -1)
    for layer in range(L):
        li[layer * (h + 1): layer * (h + 1) + h] = layer
        ri[layer * (h + 1): layer * (h + 1) + h] = np.arange(h)
    hi_ = np.full(nx, -1)
    ci = np.full(nx, -1)
    for k in range(Hh):
        hi_[k * (w + 1): k * (w + 1) + w] = k
        ci[k * (w + 1): k * (w + 1) + w] = np.arange(w)
    custom = np.empty((ny, nx, 4), dtype=np.int32)
    custom[..., 0] = li[:, None]
    custom[..., 1] = hi_[None, :]
    custom[..., 2] = ri[:, None]
    custom[..., 3] = ci[None, :]

    width, height, margin = F.figure_size(th, ny / nx, 640 if nx >= ny else 640 * nx / ny + 200,
                                          colorbar=True, max_plot_height=820)
    plot_w = width - margin["l"] - margin["r"]
    plot_h = height - margin["t"] - margin["b"]
    xc = [k * (w + 1) + (w - 1) / 2 for k in range(Hh)]
    yc = [layer * (h + 1) + (h - 1) / 2 for layer in range(L)]
    xv, xt = F.index_ticks(Hh, plot_w, th.tick_size, positions=xc, min_gap_chars=2)
    yv, yt = F.index_ticks(L, plot_h, th.tick_size, positions=yc, min_gap_chars=1)
    xa, ya = F.image_axes(th, (-0.5, nx - 0.5), (ny - 0.5, -0.5), "head", "layer",
                          tickmode="array")
    xa.update(tickvals=xv, ticktext=xt, side="top")
    ya.update(tickvals=yv, ticktext=yt)
    xa["title"]["standoff"] = 4
    traces = [go.Heatmap(
        z=big, x0=0, dx=1, y0=0, dy=1, name="attention", colorscale=th.cmap(colormap, "attention"),
        zmin=lo, zmax=hi, zsmooth=False, customdata=custom, colorbar=th.colorbar("attention weight"),
        hovertemplate=("layer %{customdata[0]}, head %{customdata[1]}<br>patch (row %{customdata[2]}, "
                       "col %{customdata[3]})<br>attention %{z:.4f}<extra></extra>"),
    )]
    if qpos is not None:
        qr, qc = qpos
        qx = [k * (w + 1) + qc for layer in range(L) for k in range(Hh)]
        qy = [layer * (h + 1) + qr for layer in range(L) for k in range(Hh)]
        cell_px = plot_w / nx
        traces.append(go.Scatter(
            x=qx, y=qy, mode="markers", name="query patch", hoverinfo="skip",
            marker={"symbol": "square-open", "size": max(6.0, cell_px * 1.6), "color": th.highlight_color,
                    "line": {"width": max(1.5, th.line_width * 2), "color": th.highlight_color}},
        ))
    margin["t"] = margin["t"] + round(th.tick_size * 2.2)  # ticks and 'head' title on top
    margin["b"] = round(24 * th.scale)  # nothing below the grid
    height -= round(th.margin["b"] - 24 * th.scale)
    fig = go.Figure(traces)
    fig.layout = th.layout(
        title or ", ".join(t for t in ("Attention, every layer × head",
                                       _query_title(query, p, (h, w), prefix_names)) if t),
        width, height + round(th.tick_size * 2.2), margin=margin, xaxis=xa, yaxis=ya,
    )
    return fig


# ---------------------------------------------------------------------------------------------
# the T x T matrix
# ---------------------------------------------------------------------------------------------
def attention_matrix_figure(attn, *, num_prefix_tokens: int = 1, prefix_names=None,
                            grid: tuple[int, int] | None = None, layer: int | None = None,
                            head: int | str | None = None, log_scale: bool = False,
                            colormap: str | None = None, zmax: float | None = None,
                            title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """One head's full ``[T, T]`` attention (rows = queries, columns = keys).

    Axes are categorical token names (``CLS``, ..., ``'17 (r1,c2)'``) so hover shows the
    query and key tokens; lines at ``num_prefix_tokens - 0.5`` separate prefix tokens
    from patches. ``z`` is ``attn``, or ``log10(max(attn, 1e-6))`` with ``log_scale``.
    """
    th = resolve_theme(theme, classroom)
    A = float_array(attn, 2, "attn", "[T, T] (one head of one layer)")
    T = A.shape[0]
    if A.shape[1] != T:
        raise ValueError(f"attn has shape {A.shape}; expected a square [T, T] matrix. Fix: pass attentions[l, h].")
    names_p = check_prefix(num_prefix_tokens, prefix_names)
    p = len(names_p)
    N = T - p
    if grid is None:
        s = int(round(math.sqrt(N)))
        if s * s != N:
            raise ValueError(f"{N} patch tokens (T={T}, {p} prefix) is not a square grid; pass grid=(h, w).")
        grid = (s, s)
    h, w = int(grid[0]), int(grid[1])
    if h * w != N:
        raise ValueError(f"grid={grid} has {h * w} patches but attn has T - num_prefix_tokens = {N}. "
                         f"Fix: check num_prefix_tokens (registers?) and grid.")
    names = token_names(p, (h, w), names_p)
    if log_scale:
        z = np.log10(np.maximum(A, 1e-6))
        lo, hi = -6.0, (float(np.max(z)) if zmax is None else float(zmax))
        bar = "log₁₀ attention weight"
    else:
        z = A
        lo, hi = color_range(A, None, zmax)
        bar = "attention weight"
    width, height, margin = F.figure_size(th, 1.0, 600, colorbar=True, extra_left=20, max_plot_height=640)
    plot_w = width - margin["l"] - margin["r"]
    tv, tt = F.index_ticks(N, plot_w, th.tick_size, start=p, positions=range(p, T),
                           labels=[str(i) for i in range(p, T)])
    # prefix names first; a name is dropped (hover still shows it) when it would overlap
    tickpos, ticktext = F.merge_ticks(list(zip(range(p), names_p)), list(zip(tv, tt)), plot_w / T, th.tick_size,
                                      along="height")
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
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, name="attention", colorscale=th.cmap(colormap, "attention"), zmin=lo, zmax=hi,
        zsmooth=False, colorbar=th.colorbar(bar),
        hovertemplate="query %{y}<br>key %{x}<br>" + bar + " %{z:.4f}<extra></extra>",
    ))
    fig.layout = th.layout(
        title or f"Attention matrix {where} ({T}×{T}; {p} prefix + {N} patches)".replace("  ", " "),
        width, height, margin=margin, xaxis=xa, yaxis=ya, shapes=shapes,
    )
    return fig
