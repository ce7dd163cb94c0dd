"""Clicks on figures: the click targets laid over a map, and the token or (layer, head) a click
selected, read from the points Streamlit reports."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from model.trace import Trace
from viz import _figure

def patch_centres(trace: Trace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel centres (x, y) of every patch and its token index, row-major — click targets."""
    h, w = trace.grid
    P = trace.patch_size
    rows, cols = np.divmod(np.arange(h * w), w)
    return cols * P + (P - 1) / 2, rows * P + (P - 1) / 2, rows * w + cols + trace.num_prefix_tokens


def _customdata(pt) -> object:
    """A clicked point's customdata; Streamlit sends a row of a 2-D array as {"0": a, "1": b}."""
    cd = pt.get("customdata") if isinstance(pt, dict) else None
    if isinstance(cd, dict):
        try:
            cd = [cd[k] for k in sorted(cd, key=int)]
        except (TypeError, ValueError):
            return None
    return cd


def token_from_points(points, T: int) -> int | None:
    """The token of the first clicked point that carries a token index as (the first) customdata
    (the click targets ``add_click_targets`` lays over a map, e.g. the Compare page's panels)."""
    for pt in points or []:
        cd = _customdata(pt)
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if isinstance(cd, (int, float)) and not isinstance(cd, bool) and 0 <= int(cd) < T:
            return int(cd)
    return None


def scrub_from_points(points, trace: Trace) -> tuple[int, int | None, int | None] | None:
    """(token, layer, head) of a click on the in-browser scrubbing figure
    (``viz.attention_scrub_figure``): point i is patch i, and the trace's ``legendgroup``
    (which Streamlit reports with each point, and the layer slider's frames keep current) reads
    ``"layer l head k"``. Layer and head are None when the point does not carry them."""
    for pt in points or []:
        if not isinstance(pt, dict):
            continue
        index = pt.get("point_index", pt.get("point_number"))
        if isinstance(index, bool) or not isinstance(index, (int, float)) or not 0 <= int(index) < trace.N:
            continue
        layer = head = None
        group = str(pt.get("legendgroup") or "").split()
        if len(group) == 4 and group[0] == "layer" and group[2] == "head" and group[1].isdigit() and group[3].isdigit():
            if int(group[1]) < trace.L and int(group[3]) < trace.H:
                layer, head = int(group[1]), int(group[3])
        return int(index) + trace.num_prefix_tokens, layer, head
    return None


def head_from_points(points, L: int, H: int) -> tuple[int, int] | None:
    """(layer, head) of the first clicked point whose customdata is ``[layer, head]``,
    or of a point with ``x = layer`` and customdata ``head`` (the distance scatter)."""
    for pt in points or []:
        if not isinstance(pt, dict):
            continue
        cd = _customdata(pt)
        if isinstance(cd, (list, tuple)) and len(cd) >= 2:
            layer, head = cd[0], cd[1]
        elif isinstance(cd, (int, float)) and "x" in pt:
            layer, head = pt["x"], cd
        else:
            continue
        try:
            layer, head = int(layer), int(head)
        except (TypeError, ValueError):
            continue
        if 0 <= layer < L and 0 <= head < H:
            return layer, head
    return None


def add_click_targets(fig: go.Figure, xs, ys, customdata, size_px: float, hover: str, xref="x", yref="y",
                      name: str = "click targets") -> go.Figure:
    """Invisible markers on top of a figure: plotly selects points of scatter traces only,
    so a heatmap or image becomes clickable through a transparent scatter over it."""
    target = _figure.click_targets(size_px, color="rgba(0,0,0,0)")
    fig.add_trace(go.Scatter(x=np.asarray(xs), y=np.asarray(ys), name=name, xaxis=xref, yaxis=yref,
                             customdata=np.asarray(customdata), hovertemplate=hover, **target))
    fig.update_layout(clickmode="event+select", dragmode=False, hovermode="closest")
    return fig


def plot_px(fig: go.Figure) -> tuple[float, float]:
    """Width and height in px of the main plot area of a figure."""
    lay = fig.layout
    m = lay.margin
    return (lay.width or 700) - (m.l or 0) - (m.r or 0), (lay.height or 450) - (m.t or 0) - (m.b or 0)
