"""The attention of one query over the image for EVERY layer and head, switched in the browser.

One figure per (image, query): a layer slider (plotly animation frames, one per layer) and one
button per head (a restyle of ``visible``) compose client-side, so scrubbing layers and heads
costs the server nothing (issue 15: 40 students on one hosted demo). Each head is a scatter of
square markers, one per patch, coloured by its attention: unlike a heatmap, a scatter is what
plotly can select, so the map is also the click target, and its hover names the patch, the
layer, the head and the value; a click reports the layer shown (in ``customdata``) and the head
(the trace), so the server can follow the browser.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array, image_array, patch_size_for
from .specs import MapStyle, TokenLayout, as_style, as_tokens
from .theme import resolve_theme

SCRUB_VALUE_FORMAT = ".3~g"


def _frame_args(name: str) -> list:
    return [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}]


def attention_scrub_figure(image, maps, *, layer: int = 0, head: int = 0, query: int | None = None,
                           tokens: TokenLayout | None = None, style: MapStyle | None = None,
                           colorbar_title: str = "attention weight", title: str | None = None,
                           theme=None) -> go.Figure:
    """``maps [L, H, h, w]``: one query's attention over the patches in every layer and head.

    Axes are in patch units (patch (r, c) centred on x = c, y = r; the photo scaled to them).
    Traces: ``[Image, head 0, …, head H-1]``; head k is a Scatter of ``h*w`` square markers, point
    i = patch i, ``marker.color`` = the map of head k at the shown layer (float32), ``customdata``
    = (row, col), ``meta`` = the layer, ``legendgroup`` = ``"layer l head k"`` (a click reports
    it); only head ``head`` is visible. Frames: one per layer, named ``"0" … "L-1"``, each setting
    every head's ``marker.color`` (and its colour range, ``min(0, min) … max`` of that map unless
    ``style`` fixes it), ``meta`` and ``legendgroup``. A slider
    (``layout.sliders[0]``, active = ``layer``) animates to a frame; the buttons
    (``layout.updatemenus[0]``, active = ``head``) restyle ``visible``. Both compose: a frame
    touches colours, a button visibility. ``style.upsample`` does not apply (blocks only).
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
    width, height, margin = _figure.figure_size(th, Himg / Wimg, 540, colorbar=True)
    buttons_h = round(th.font_size * 2.6)
    slider_h = round(th.font_size * 5.2)
    margin = dict(margin, t=margin["t"] + buttons_h, b=margin["b"] + slider_h)
    height += buttons_h + slider_h
    cell_px = (width - margin["l"] - margin["r"]) / w
    # patch units (small integers on the wire); the photo is scaled into them (dx = 1/P)
    small = np.min_scalar_type(max(h, w))
    rows, cols = np.divmod(np.arange(h * w), w)
    rc = np.stack([rows, cols], axis=-1).astype(small)

    S = _figure.shown(M)  # once for all 72 maps: one call per map cost ~3 ms more for dinov2-small

    def colours(l: int, k: int) -> dict:
        lo, hi = st.color_range(M[l, k])
        return {"color": S[l, k].ravel(), "cmin": lo, "cmax": hi}

    def layer_marks(l: int, k: int) -> dict:
        # what a frame changes besides the colours: the layer in the hover (meta) and in a click
        # (Streamlit reports each selected point's legendgroup)
        return {"meta": str(l), "legendgroup": f"layer {l} head {k}"}  # a string: plotly prints a 0 as "-"

    heads = []
    for k in range(Hh):
        heads.append(dict(
            type="scatter", x=cols.astype(small), y=rows.astype(small), mode="markers", name=f"head {k}",
            visible=k == head, showlegend=False, customdata=rc, **layer_marks(layer, k),
            marker=dict(symbol="square", size=max(4.0, cell_px * 1.02), opacity=st.opacity, line={"width": 0},
                        colorscale=th.cmap(st.colormap, "attention"), showscale=True,
                        colorbar=th.colorbar(colorbar_title, tickformat=SCRUB_VALUE_FORMAT), **colours(layer, k)),
            selected={"marker": {"opacity": st.opacity}}, unselected={"marker": {"opacity": st.opacity}},
            hovertemplate=("patch %{pointNumber} (row %{customdata[0]}, col %{customdata[1]})<br>layer %{meta}, head "
                           + str(k) + ": attention %{marker.color:" + SCRUB_VALUE_FORMAT + "}"
                           "<br>click to make it the query<extra></extra>"),
        ))
    frames = [dict(name=str(l), traces=list(range(1, Hh + 1)),
                   data=[dict(type="scatter", marker=colours(l, k), **layer_marks(l, k)) for k in range(Hh)])
              for l in range(L)]
    font = th.font()
    slider = dict(
        active=layer, x=0, len=1, y=0, yanchor="top", pad={"t": round(th.font_size * 1.2), "b": 0},
        currentvalue={"prefix": "layer ", "font": th.font(size=round(th.font_size * 1.1)), "xanchor": "left"},
        font=font, steps=[dict(method="animate", label=str(l), args=_frame_args(str(l))) for l in range(L)],
    )
    menu = dict(
        type="buttons", direction="right", active=head, showactive=True, x=0, xanchor="left", y=1,
        yanchor="bottom", pad={"b": round(th.font_size * 0.6), "l": 0}, font=font,
        buttons=[dict(label=f"head {k}", method="restyle",
                      args=[{"visible": [True] + [j == k for j in range(Hh)]}]) for k in range(Hh)],
    )
    xa, ya = _figure.image_axes(th, (-0.5, w - 0.5), (h - 0.5, -0.5), show_ticks=False)
    shapes = []
    if qpos is not None:
        r, c = qpos
        shapes = _figure.outline(th, c - 0.5, r - 0.5, c + 0.5, r + 0.5)
    photo = _figure.photo_spec(img, x0=-0.5 + 0.5 / P, dx=1 / P, y0=-0.5 + 0.5 / P, dy=1 / P)
    what = "" if query is None else f"{tk.name(int(query))} → "
    layout = th.layout(title or f"{what}every layer and head: slide and click, no wait", width, height,
                       margin=margin, xaxis=xa, yaxis=ya, shapes=shapes, hovermode="closest",
                       sliders=[slider], updatemenus=[menu], clickmode="event+select", dragmode=False)
    # ~80 traces rebuilt on every new query: assembled from the checked arrays above without
    # plotly's per-property validation (tests/viz validate it once)
    fig = _figure.unchecked_figure([photo] + heads, layout, frames)
    return fig
