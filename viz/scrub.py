"""The attention of one query over the image for EVERY layer and head, switched in the browser.

One figure per (image, query): a layer slider (plotly animation frames, one per layer) and one
button per head (a restyle of ``visible``) compose client-side, so scrubbing layers and heads
costs the server nothing (issue 15: 40 students on one hosted demo). Each head is a pair: a
heatmap that draws the map (in patch units, so it tiles at whatever width the page gives the
figure) and, over it, invisible click targets, one per patch (plotly selects points of scatter
traces only), whose hover names the patch, the layer, the head and the value, and whose click
reports the layer shown (the trace's ``legendgroup``) and the patch (the point). The two hold
the same map next to each other in the JSON, so a deflated websocket sends it once.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array, image_array, patch_size_for
from .specs import MapStyle, TokenLayout, as_style, as_tokens
from .theme import resolve_theme

PLOT_WIDTH_PX = 520  # the map's width as built (Streamlit draws it narrower in a narrower column)
EDGE_PX = 12  # the margins left, right and below the map
BAR_LENGTH = 0.6  # of the plot's width: the colour bar's tick labels stay apart at ~400 px
HEAD_WORD = "head"  # written once, left of the buttons "0" … "H-1" (six "head k" buttons overflow ~400 px)


def _frame_args(name: str) -> list:
    return [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}]


def _merged(values: dict, colorbar: dict) -> dict:
    """A map's values with its colour bar's ticks laid over the bar's look."""
    return dict(values, colorbar=dict(colorbar, **values["colorbar"]))


def attention_scrub_figure(image, maps, *, layer: int = 0, head: int = 0, query: int | None = None,
                           tokens: TokenLayout | None = None, style: MapStyle | None = None,
                           colorbar_title: str = "attention weight", title: str | None = None,
                           theme=None) -> go.Figure:
    """``maps [L, H, h, w]``: one query's attention over the patches in every layer and head.

    Axes are in patch units (patch (r, c) centred on x = c, y = r; the photo scaled to them).
    Traces: ``[Image, map 0, targets 0, …, map H-1, targets H-1]``. Map k is a Heatmap of head k
    at the shown layer, as columns ``x``, ``y``, ``z`` (patch i's column, row and value as
    :func:`viz._figure.on_wire` writes it: weights as whole counts, ``meta["z_scale"]`` a unit,
    chosen per map so that its own colour scale spans ≥ 100 counts), its colour range
    ``min(0, min) … max`` unless ``style`` fixes it, no hover; its colour bar
    is horizontal, above the map, with the ticks of that range written out. Targets k is a
    Scatter of ``h*w`` invisible squares, point i = patch i, ``marker.color`` = the same map
    (what the hover prints), ``customdata`` = (row, col), ``meta`` = the layer, ``legendgroup``
    = ``"layer l head k"`` (a click reports it). Only head ``head``'s pair is visible. Frames:
    one per layer, named ``"0" … "L-1"``, each setting every map's ``z``, ``meta``, range and
    colour-bar ticks and every target's ``marker.color``, ``meta``, ``legendgroup`` and
    ``hovertemplate`` (which writes that map's counts back as weights). A slider
    (``layout.sliders[0]``, active = ``layer``) animates to a frame; the buttons "0" … "H-1"
    after the word "head" (``layout.updatemenus[0]``, active = ``head``) restyle ``visible``.
    Both compose: a frame touches values, a button visibility. ``style.upsample`` does not
    apply (blocks only).
    """
    th = resolve_theme(theme)
    img = image_array(image)
    M = float_array(maps, 4, "maps", "[L, H, h, w] (layers x heads x patch grid)")
    L, Hh, h, w = M.shape
    layer, head = int(layer), int(head)
    if not (0 <= layer < L and 0 <= head < Hh):
        raise ValueError(f"layer={layer}, head={head}; expected 0 <= layer < {L} and 0 <= head < {Hh}.")
    tk = as_tokens(tokens).with_grid((h, w), "maps")
    st = as_style(style)
    P = patch_size_for(img, (h, w), tk.patch_size)
    qpos = None if query is None else tk.row_col(query)
    Himg, Wimg = img.shape[:2]
    # Everything but the map above it, full width: the head buttons, the layer slider, the colour
    # bar (horizontal), then the map, which hangs from them (constraintoward="top"). Where the
    # page draws the figure narrower than built (Streamlit fits it to its column; on a projector
    # in classroom mode it may be ~400 px), the map keeps the whole width and the room it no
    # longer needs is left below it, not between the map and its controls.
    width, height, margin = _figure.figure_size(th, Himg / Wimg, PLOT_WIDTH_PX, colorbar=False,
                                                extra_left=EDGE_PX * th.scale - th.margin["l"])
    fs = th.font_size
    buttons_h = round(fs * 2.6)
    slider_h = round(fs * 5.0)
    bar_h = _figure.bar_above_room(th)
    slider_gap = round(fs * 1.2)  # the slider's step labels hang below the box it is placed by
    plot_h = height - margin["t"] - margin["b"]
    margin = dict(margin, l=round(EDGE_PX * th.scale), r=round(EDGE_PX * th.scale),
                  # the title's band only (the theme's top margin also holds a legend row, and this
                  # figure has no legend: on a 720-px projector every pixel above the map counts)
                  t=round(th.title_size * 2.6) + buttons_h + slider_h + slider_gap + bar_h, b=round(EDGE_PX * th.scale))
    width = round(margin["l"] + margin["r"] + th.px(PLOT_WIDTH_PX))
    height = margin["t"] + plot_h + margin["b"]
    bar_place, bar_title = _figure.bar_above(th, colorbar_title, plot_h, BAR_LENGTH)
    cell_px = (width - margin["l"] - margin["r"]) / w
    # patch units (small integers on the wire); the photo is scaled into them (dx = 1/P)
    small = np.min_scalar_type(max(h, w))
    rows, cols = np.divmod(np.arange(h * w), w)
    rc = np.stack([rows, cols], axis=-1).astype(small)

    # once for all the maps (one call per map cost ~3 ms more for dinov2-small): weights as whole
    # counts of 0.0001, ~0.9 bytes a value on the wire against ~2.5 for three digits
    # each map on its own colour scale, its weights as whole counts of 10^-k (k from 4 up, so that
    # the scale spans ≥ 100 counts: ~0.9 bytes a value on the wire against ~2.5 for three digits)
    ranges = [[st.color_range(M[l, k]) for k in range(Hh)] for l in range(L)]
    scales = _figure.weight_scales(M, [[hi for _, hi in row] for row in ranges])
    S = [[_figure.on_wire(M[l, k].ravel(), int(scales[l, k])) for k in range(Hh)] for l in range(L)]

    def colours(l: int, k: int) -> dict:
        lo, hi = ranges[l][k]
        scale = int(scales[l, k])
        bar = _figure.colorbar(th, colorbar_title, lo, hi, M[l, k], scale=scale)  # its ticks for this map
        # meta always a dict (also {"z_scale": 1}): a frame sets it, whatever the last frame set
        return {"z": S[l][k], "zmin": lo * scale, "zmax": hi * scale, "meta": {"z_scale": scale},
                "colorbar": {key: bar[key] for key in ("tickmode", "tickvals", "ticktext")}}

    def targets(l: int, k: int) -> dict:
        # the values the hover prints (not drawn) and the layer, in the hover (meta) and in a
        # click (Streamlit reports each selected point's legendgroup)
        return {"marker": {"color": S[l][k]}, "meta": str(l),  # a string: plotly prints a 0 as "-"
                "legendgroup": f"layer {l} head {k}", "hovertemplate": (
                    "patch %{pointNumber} (row %{customdata[0]}, col %{customdata[1]})<br>layer %{meta}, head "
                    f"{k}: attention {_figure.value_format('marker.color', int(scales[l, k]))}"
                    "<br>click to make it the query<extra></extra>")}

    # a heatmap given as columns (x, y, z of each patch): z is then the same flat array as the
    # targets' values, byte for byte, so deflate finds the second copy whole (base64 or numbers)
    xs, ys = cols.astype(small), rows.astype(small)
    heads = []
    for k in range(Hh):
        heads.append(dict(
            type="heatmap", name=f"head {k}", visible=k == head, x=xs, y=ys, zsmooth=False,
            opacity=st.opacity, colorscale=th.cmap(st.colormap, "attention"), showscale=True, hoverinfo="skip",
            **_merged(colours(layer, k), colorbar=th.colorbar("", **bar_place))))
        pick = targets(layer, k)
        heads.append(dict(
            type="scatter", x=xs, y=ys, name=f"head {k} patches", visible=k == head,
            customdata=rc, meta=pick["meta"], legendgroup=pick["legendgroup"], hovertemplate=pick["hovertemplate"],
            **_figure.click_targets(cell_px, **pick["marker"]),
        ))
    frames = [dict(name=str(l), traces=list(range(1, 2 * Hh + 1)),
                   data=[part for k in range(Hh) for part in (dict(type="heatmap", **colours(l, k)),
                                                                dict(type="scatter", **targets(l, k)))])
              for l in range(L)]
    font = th.font()
    slider_y = 1 + (bar_h + slider_gap) / plot_h
    slider = dict(
        active=layer, x=0, len=1, y=slider_y, yanchor="bottom", pad={"t": 0, "b": 0},
        currentvalue={"prefix": "layer ", "font": th.font(size=round(fs * 1.1)), "xanchor": "left"},
        font=font, steps=[dict(method="animate", label=str(l), args=_frame_args(str(l))) for l in range(L)],
    )
    buttons_y = 1 + (bar_h + slider_gap + slider_h) / plot_h
    word_px = round(_figure.text_width(HEAD_WORD, fs) + fs * 0.6)
    menu = dict(
        type="buttons", direction="right", active=head, showactive=True, x=0, xanchor="left",
        y=buttons_y, yanchor="bottom", pad={"b": round(fs * 0.5), "l": word_px}, font=font,
        buttons=[dict(label=str(k), method="restyle",
                      args=[{"visible": [True] + [j == k for j in range(Hh) for _ in range(2)]}])
                 for k in range(Hh)],
    )
    word = dict(text=HEAD_WORD, xref="paper", yref="paper", x=0, xanchor="left", y=buttons_y, yanchor="bottom",
                yshift=round(fs * 0.5 + fs * 0.15), showarrow=False, font=font)
    xa, ya = _figure.image_axes(th, (-0.5, w - 0.5), (h - 0.5, -0.5), show_ticks=False)
    xa["constraintoward"], ya["constraintoward"] = "left", "top"
    shapes = []
    if qpos is not None:
        r, c = qpos
        shapes = _figure.outline(th, c - 0.5, r - 0.5, c + 0.5, r + 0.5)
    photo = _figure.photo_spec(img, x0=-0.5 + 0.5 / P, dx=1 / P, y0=-0.5 + 0.5 / P, dy=1 / P)
    what = "" if query is None else f"{tk.name(int(query))} → "
    layout = th.layout(title or f"{what}every layer and head: slide and click, no wait", width, height,
                       margin=margin, xaxis=xa, yaxis=ya, shapes=shapes, hovermode="closest",
                       sliders=[slider], updatemenus=[menu], annotations=[word, bar_title], clickmode="event+select",
                       dragmode=False)
    # ~80 traces rebuilt on every new query: assembled from the checked arrays above without
    # plotly's per-property validation (tests/viz validate it once)
    fig = _figure.unchecked_figure([photo] + heads, layout, frames)
    return fig
