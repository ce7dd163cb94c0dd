"""Layout helpers shared by the builders (sizes, image axes, labels, outlines)."""

from __future__ import annotations

import base64
import collections
import functools
import math
import threading

import numpy as np
import plotly.graph_objects as go

from .text import format_number, nice_step, text_px, wrap_text
from .theme import Theme

# Room reserved to the right of a plot for a colour bar: the bar, tick labels of up to about
# eight characters ("≥ 0.0123", "0.000015") and a vertical title.
COLORBAR_ROOM = 130


def text_width(text: str, size: float) -> float:
    """Approximate rendered width of ``text`` at font ``size`` px (DejaVu Sans averages ~0.6 em)."""
    return 0.62 * size * len(text)


# plotly.js gives each legend entry's symbol a 40 px slot before its text and 5 px after it
LEGEND_ENTRY_PX = 45


def legend_text_width(text: str, size: float) -> float:
    """Rendered width of a legend entry's text at font ``size`` px (within a few per cent):
    entries are packed by their real widths, so the rough 0.62 em of ``text_width`` would overshoot."""
    return text_px(text, size)


def legend_rows(theme: Theme, names, plot_width: float) -> int:
    """How many rows a horizontal legend of ``names`` takes over ``plot_width`` px.

    plotly.js puts the entries in one row, each as wide as its text, when they fit; otherwise
    it lays them out in columns as wide as the widest entry.
    """
    widths = [LEGEND_ENTRY_PX + legend_text_width(str(name), theme.font_size) for name in names]
    if sum(widths) <= plot_width:
        return 1
    per_row = max(1, int(plot_width // max(widths)))
    return math.ceil(len(widths) / per_row)


FIGURE_COLUMN_PX = 500  # a page's figure column (the figure beside its text) at a 1280-px screen


def legend_room(theme: Theme, names, width: int, height: int, margin: dict,
                drawn_width: float | None = None) -> tuple[int, dict]:
    """(height, margin) grown so a :meth:`Theme.legend` of ``names`` fits between title and plot.

    The theme's top margin already holds the title and one legend row; each further row grows
    the margin and the figure by the same amount, so the plot keeps its size. ``drawn_width``:
    the narrowest width a page may draw the figure at (Streamlit squeezes a figure wider than its
    column, keeping its height; the legend then takes more rows): the rows it needs there are kept.
    """
    shown = min(width, drawn_width) if drawn_width else width
    rows = legend_rows(theme, names, shown - margin["l"] - margin["r"])
    grow = (rows - 1) * theme.legend_row_height
    margin = dict(margin, t=margin["t"] + grow)
    return height + grow, margin


def legend_key(name: str, color: str, theme: Theme, symbol: str = "square") -> go.Scatter:
    """A legend entry that names a colour used inside another trace (e.g. bars coloured by kind).

    It has no points (so it draws nothing and exports no data) and, being a scatter, does not
    take a slot among grouped bars.
    """
    return go.Scatter(x=[None], y=[None], mode="markers", name=name, showlegend=True, hoverinfo="skip",
                      marker={"symbol": symbol, "size": round(theme.font_size * 0.9), "color": color})


def figure_size(theme: Theme, aspect: float, plot_width: float, colorbar: bool,
                extra_left: float = 0, max_plot_height: float = 760) -> tuple[int, int, dict]:
    """(width, height, margin) for a plot area of ``plot_width`` px and ``aspect`` = height/width."""
    m = dict(theme.margin)
    if colorbar:
        m["r"] = m["r"] + round(COLORBAR_ROOM * theme.scale)
    m["l"] = m["l"] + round(extra_left)
    pw = theme.px(plot_width)
    ph = pw * aspect
    limit = theme.px(max_plot_height)
    if ph > limit:
        pw, ph = pw * limit / ph, limit
    return int(round(m["l"] + pw + m["r"])), int(round(m["t"] + ph + m["b"])), m


def image_axes(theme: Theme, xrange, yrange, xtitle="", ytitle="", anchor="x", show_ticks=True, **extra):
    """(xaxis, yaxis) dicts for an image: equal aspect, y pointing down, ranges fixed."""
    xa = theme.axis(xtitle, range=list(xrange), constrain="domain", showticklabels=show_ticks,
                    ticks="outside" if show_ticks else "", **extra)
    ya = theme.axis(ytitle, range=list(yrange), scaleanchor=anchor, scaleratio=1, constrain="domain",
                    showticklabels=show_ticks, ticks="outside" if show_ticks else "", **extra)
    return xa, ya


def grid_lines(theme: Theme, h: int, w: int, P: float, xref="x", yref="y", color=None, width=None,
               offset=-0.5, step=None) -> list[dict]:
    """Shapes drawing the inner lines of an h x w grid of P-unit cells (cells start at ``offset``)."""
    color = color or theme.grid_line_color
    width = theme.line_width if width is None else width
    step = P if step is None else step
    x_end = offset + (w - 1) * step + P
    y_end = offset + (h - 1) * step + P
    line = {"color": color, "width": width}
    shapes = [dict(type="line", xref=xref, yref=yref, x0=offset + c * P, x1=offset + c * P,
                   y0=offset, y1=y_end, line=line, layer="above") for c in range(1, w)]
    shapes += [dict(type="line", xref=xref, yref=yref, x0=offset, x1=x_end,
                    y0=offset + r * P, y1=offset + r * P, line=line, layer="above") for r in range(1, h)]
    return shapes


def outline(theme: Theme, x0, y0, x1, y1, xref="x", yref="y", color=None) -> list[dict]:
    """A high-contrast rectangle outline: a dark halo under a bright line."""
    color = color or theme.highlight_color
    w = theme.outline_width
    return [
        dict(type="rect", xref=xref, yref=yref, x0=x0, y0=y0, x1=x1, y1=y1,
             line={"color": "rgba(0,0,0,0.85)", "width": w + 2.5}, layer="above"),
        dict(type="rect", xref=xref, yref=yref, x0=x0, y0=y0, x1=x1, y1=y1,
             line={"color": color, "width": w}, layer="above"),
    ]


def label_stride(n_cells: int, cell_px: float, label: str, size: float) -> int:
    """Every how many cells a label of this width fits without overlapping its neighbours."""
    need = text_width(label, size) + 10  # text, its box padding, and a visible gap
    return max(1, math.ceil(need / max(cell_px * 0.95, 1e-6))) if n_cells else 1


def index_ticks(n: int, plot_px: float, size: float, start: int = 0, positions=None, labels=None,
                min_gap_chars: int = 4) -> tuple[list, list]:
    """Sparse, evenly spaced tick values/texts for ``n`` categories drawn over ``plot_px`` pixels."""
    positions = list(range(n)) if positions is None else list(positions)
    labels = [str(start + i) for i in range(n)] if labels is None else list(labels)
    longest = max((len(s) for s in labels), default=1)
    per = text_width("0" * max(longest, min_gap_chars), size) + 8
    stride = max(1, math.ceil(per / max(plot_px / max(n, 1), 1e-6)))
    # prefer round strides (1, 2, 5, 10, ...) so ticks land on memorable indices
    for nice in (1, 2, 4, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if nice >= stride:
            stride = nice
            break
    idx = [i for i in range(n) if (start + i) % stride == 0] if stride > 1 else list(range(n))
    return [positions[i] for i in idx], [labels[i] for i in idx]


def merge_ticks(fixed, regular, unit_px: float, size: float, along: str = "width") -> tuple[list, list]:
    """Greedy tick selection: ``fixed`` ticks first (in order), then ``regular`` ones, each kept
    only if its label does not overlap one already kept. ``unit_px`` = pixels per data unit;
    ``along="height"`` for labels stacked vertically (y axes, or rotated x labels)."""
    kept: list[tuple[float, str, float]] = []
    for pos, txt in list(fixed) + list(regular):
        ext = (size * 1.25 + 2) if along == "height" else (text_width(str(txt), size) + 8)
        if all(abs(pos - p) * unit_px >= (ext + e) / 2 for p, _, e in kept):
            kept.append((pos, str(txt), ext))
    kept.sort(key=lambda k: k[0])
    return [k[0] for k in kept], [k[1] for k in kept]


def subplot_axis_names(i: int) -> tuple[str, str, str, str]:
    """('xaxis', 'yaxis', 'x', 'y') for subplot 1, ('xaxis2', ...) for 2 and so on."""
    s = "" if i == 1 else str(i)
    return f"xaxis{s}", f"yaxis{s}", f"x{s}", f"y{s}"


def subplot_grid(theme: Theme, rows: int, cols: int, titles, hspace: float, vspace: float) -> tuple[dict, list[dict]]:
    """Axis domains and title annotations for a rows x cols grid of subplots, row-major from
    the top left, as plotly's ``make_subplots`` lays them out but without its cost per trace.

    ``hspace``/``vspace`` are the gaps as fractions of the plot area. Returns ``(axes,
    annotations)``: ``axes`` maps ``xaxis{k}``/``yaxis{k}`` to ``{"domain", "anchor"}`` for
    subplot k = 1..rows*cols; one centred title sits above each titled subplot.
    """
    cell_w = (1 - hspace * (cols - 1)) / cols
    cell_h = (1 - vspace * (rows - 1)) / rows
    axes, annotations = {}, []
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        xname, yname, xref, yref = subplot_axis_names(i + 1)
        x0, y1 = c * (cell_w + hspace), 1 - r * (cell_h + vspace)
        axes[xname] = {"domain": [x0, min(1.0, x0 + cell_w)], "anchor": yref}
        axes[yname] = {"domain": [max(0.0, y1 - cell_h), y1], "anchor": xref}
        if i < len(titles):
            annotations.append(dict(text=titles[i], x=x0 + cell_w / 2, y=y1, xref="paper", yref="paper",
                                    xanchor="center", yanchor="bottom", showarrow=False, font=theme.font()))
    return axes, annotations


def colorbar(theme: Theme, title: str, lo: float, hi: float, values=None, scale: float = 1, **extra) -> dict:
    """A colour bar for the range ``lo … hi`` with tick labels written out (never ``70μ``).

    Ticks sit on round steps (:func:`viz.text.nice_step`), each labelled with the digits its
    step needs. Where ``values`` go beyond the range, the colours there are saturated and the
    end label says so: ``"≥ 0.12"`` at the top (a ``zmax`` below the data max, e.g. a high
    percentile shared by small multiples), ``"≤ −3"`` at the bottom. ``scale``: the trace's
    ``z`` holds each value times this (whole counts, e.g. 10,000 a unit); ``lo``, ``hi``,
    ``values`` and the labels stay in the values' own units.
    """
    lo, hi = float(lo), float(hi)
    step = nice_step(hi - lo, 6)
    eps = 1e-9 * max(abs(lo), abs(hi), step)
    over = under = False
    if values is not None:
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size:
            over = float(v.max()) > hi + eps
            under = float(v.min()) < lo - eps
    first = math.ceil((lo - eps) / step)
    vals = [k * step for k in range(first, math.floor((hi + eps) / step) + 1)]
    if over:
        vals = [t for t in vals if t <= hi - 0.5 * step]
    if under:
        vals = [t for t in vals if t >= lo + 0.5 * step]
    text = [format_number(t, step) for t in vals]
    if under:
        vals, text = [lo] + vals, ["≤ " + format_number(lo, step / 10)] + text
    if over:
        vals, text = vals + [hi], text + ["≥ " + format_number(hi, step / 10)]
    return theme.colorbar(title, tickmode="array", tickvals=[t * scale for t in vals], ticktext=text, **extra)


def bar_above_room(theme: Theme) -> int:
    """Height in px a :func:`bar_above` takes: its title, the bar, its tick labels."""
    return round(theme.font_size * 2.4) + theme.colorbar_thickness + round(theme.tick_size * 1.5)


def bar_above(theme: Theme, title: str, plot_h: float, length: float, lift_px: float = 0) -> tuple[dict, dict]:
    """A horizontal colour bar above the plot area, from its left edge, ``length`` of its width
    long, its tick labels under it and ``lift_px`` clear of the plot (room for e.g. subplot
    titles): ``(placement, title note)``. The placement goes into a colour bar's properties; the
    title is a note, because a horizontal bar's own title (side "top") moves the figure's title
    up and out of the figure in plotly.js 3. Needs :func:`bar_above_room` + ``lift_px`` of top margin."""
    labels_h = round(theme.tick_size * 1.5)
    place = {"orientation": "h", "x": 0, "xanchor": "left", "len": length, "y": 1 + (lift_px + labels_h) / plot_h,
             "yanchor": "bottom", "ypad": 0, "xpad": 0}
    note = dict(text=title, xref="paper", yref="paper", x=0, xanchor="left",
                y=1 + (lift_px + labels_h + theme.colorbar_thickness) / plot_h, yanchor="bottom",
                yshift=round(theme.font_size * 0.2 + 10 * theme.scale), showarrow=False, font=theme.font())
    return place, note


def fit_caption(theme: Theme, text: str, width_px: float, size: float | None = None,
                max_lines: int = 2) -> tuple[str, int]:
    """A caption (an annotation above a panel) wrapped to ``width_px``; (text, lines)."""
    return wrap_text(text, size or theme.font_size, width_px, max_lines=max_lines)


def pct(x: float) -> str:
    """A percentage as people write it: 60%, 62.5%, 0.3%."""
    v = 100.0 * float(x)
    if abs(v - round(v)) < 1e-9 or v >= 10:
        return f"{v:.0f}%"
    return f"{v:.1f}%"


def rgba(color: str, a: float) -> str:
    """``color`` with opacity ``a`` as an ``rgba(...)`` string."""
    from .colormaps import parse_color

    r, g, b, _ = parse_color(color)
    return f"rgba({r},{g},{b},{a:g})"


def percent_ticks(top: float, target: int = 4) -> dict:
    """Axis settings for fractions shown as percentages from 0 to ``top``: a round step with
    just enough decimals, so labels never repeat (``.0%`` on a 0–2% axis writes "1%" twice)."""
    step = nice_step(float(top), target)
    decimals = next((d for d in range(8) if abs(step * 100 * 10 ** d - round(step * 100 * 10 ** d)) < 1e-6), 8)
    return {"tick0": 0.0, "dtick": step, "tickformat": f".{decimals}%"}


def wire(values) -> np.ndarray:
    """A heatmap's values as float32, the precision of the trace they come from: plotly sends
    numpy arrays as typed base64 arrays, so float32 halves what float64 would send."""
    return np.asarray(values, dtype=np.float32)


SHOWN_DIGITS = 3  # the significant digits a map's hover shows (".3~g")


def shown(values, digits: int = SHOWN_DIGITS) -> np.ndarray:
    """Map values as the browser shows them: each rounded to ``digits`` significant digits (what
    a ``.3~g`` hover prints), as the nearest float32.

    The hover then prints exactly what it would print for the exact value, and a colour moves
    by < 0.5% of its value, which no colour scale shows. What it buys: such a float32 is written
    as its short decimal ("0.00697", "1.23e-6": app_core.figure_json sends arrays of them as JSON
    numbers where the websocket is deflated), which deflates to ~2.4 bytes a value against ~3.6
    for base64 float32 — the maps of a new query are most of its bytes (issue 15). NaN, ±inf
    and 0 pass unchanged.
    """
    v = np.asarray(values, dtype=np.float64)
    out = v.copy()
    ok = np.isfinite(v) & (v != 0)
    a = v[ok]
    # an integer count of the last digit, divided by an exact power of ten: the nearest double
    # to the decimal (a power of ten is exact up to 1e22; beyond, one more rounding, harmless)
    places = (digits - 1) - np.floor(np.log10(np.abs(a)))
    scale = 10.0 ** np.abs(places)
    counts = np.where(places >= 0, np.round(a * scale), np.round(a / scale))
    out[ok] = np.where(places >= 0, counts / scale, counts * scale)
    return out.astype(np.float32)


# Attention weights (0 … 1) go as whole counts of 10^-k and the hover writes a count back as the
# weight, "0.%{z:04d}" -> "0.0039": a count deflates to ~0.9 bytes against ~2.5 for the three
# significant digits of `shown` (DINOv2-S: a new query's in-browser figure holds 18,432 values,
# the T×T matrix 66,049: issue 15). k is 4, or more where the colour scale's top is below 0.01,
# so that the scale always spans at least 100 counts and its colours do not move (a head that
# gives the patches almost nothing, drawn on its own scale, keeps its picture).
WEIGHT_DECIMALS = 4  # the fewest decimals: a weight to ±0.00005
MAX_WEIGHT_DECIMALS = 9  # counts up to 10^9 fit uint32; below a top of 1e-7, `shown` instead
HOVER_FORMAT = ".3~g"  # every other value: 0.0123, 0.6, 1.6e-5, never SI prefixes
WEIGHT_SCALE = 10 ** WEIGHT_DECIMALS  # counts a unit at the fewest decimals


def weight_scales(values, tops) -> np.ndarray:
    """Counts a unit (10^k, int64) to send maps of ``values`` as, one per colour-scale top in
    ``tops`` (any shape): k = 4, or 3 significant digits of the top where it is below 0.01. All
    1 (three significant digits, :func:`shown`) unless every value is an attention weight in
    [0, 1] (NaN gaps allowed); 1 too where a top is too small for whole counts (below 1e-7, or
    1e-5 with gaps: float32 holds whole numbers up to 2^24)."""
    v = np.asarray(values, dtype=np.float64)
    tops = np.asarray(tops, dtype=np.float64)
    gaps = np.isnan(v)
    finite = v[~gaps]
    if finite.size == 0 or not np.isfinite(finite).all() or finite.min() < 0 or finite.max() > 1:
        return np.ones(tops.shape, dtype=np.int64)
    with np.errstate(divide="ignore"):
        decimals = np.maximum(WEIGHT_DECIMALS, SHOWN_DIGITS - 1 - np.floor(np.log10(np.where(tops > 0, tops, 1.0))))
    limit = 7 if gaps.any() else MAX_WEIGHT_DECIMALS
    return np.where(decimals <= limit, 10 ** np.minimum(decimals, limit).astype(np.int64), 1)


def weight_scale(values, top: float | None = None) -> int:
    """:func:`weight_scales` for one colour scale (``top`` defaults to the values' max)."""
    if top is None:
        v = np.asarray(values, dtype=np.float64)
        top = float(np.nanmax(v)) if v.size and not np.isnan(v).all() else 0.0
    return int(weight_scales(values, top))


def _decimals(scale: int) -> int:
    decimals = round(math.log10(scale)) if scale > 0 else -1
    if scale != 10 ** decimals or not WEIGHT_DECIMALS <= decimals <= MAX_WEIGHT_DECIMALS:
        raise ValueError(f"scale={scale}; expected 1 or a power of ten from 10^{WEIGHT_DECIMALS} to "
                         f"10^{MAX_WEIGHT_DECIMALS} (weight_scale)")
    return decimals


def on_wire(values, scale: int) -> np.ndarray:
    """Map values as a figure holds them: with ``scale`` 1, :func:`shown`; else whole counts of
    1/``scale`` (uint16, uint32 where larger, float32 where NaN marks gaps). A count is below
    ``scale``: the hover writes it after "0." with k digits, so a weight from 1 - 0.5/scale on
    shows one count low (0.9999), never as "0.10000"."""
    if scale == 1:
        return shown(values)
    _decimals(scale)
    v = np.asarray(values, dtype=np.float64)
    counts = np.clip(np.rint(v * scale), 0, scale - 1)  # 0: a smooth upsampling's undershoot
    if np.isnan(v).any():
        return counts.astype(np.float32)
    return counts.astype(np.uint16 if counts.size == 0 or counts.max() < 2 ** 16 else np.uint32)


def z_meta(scale: int) -> dict | None:
    """A heatmap's ``meta`` that says its ``z`` holds whole counts (``viz.figure_data`` divides
    them out), or None for values as they are."""
    return {"z_scale": int(scale)} if scale != 1 else None


def value_format(field: str, scale: int) -> str:
    """The hovertemplate piece that prints ``field`` (``"z"``, ``"marker.color"``, …) as the value
    :func:`on_wire` sent with ``scale``."""
    if scale == 1:
        return f"%{{{field}:{HOVER_FORMAT}}}"
    return f"0.%{{{field}:0{_decimals(scale)}d}}"


# ----------------------------------------------------------------------------- the photo

# A photo is sent to the browser as a compressed picture, not as a z array: a 224 x 224 RGB
# z array is 201 KB of base64 in every figure (issue 15), a WebP of it 4-10 KB (a JPEG of the
# same fidelity 7-15 KB: on the gallery photos WebP at quality 80 came within -0.8 … +1.8 dB
# PSNR of JPEG at 85, with 34-48% fewer bytes). Every browser and kaleido's Chromium draw WebP;
# where Pillow lacks it, JPEG. Small or flat pictures (Fashion-MNIST, masks with large grey
# areas) are smaller still as lossless PNG.
PNG_LIMIT_BYTES = 24_000  # up to this size a lossless PNG is kept; beyond it, the lossy format
WEBP_QUALITY = 80
WEBP_METHOD = 2  # encoder effort 0-6: 2 is ~2.3x faster than 4 for 2-3% more bytes (a new masked
#                  photo is encoded on every layer, head or query move of the mass-mask view)
JPEG_QUALITY = 85  # only where Pillow was built without WebP
PNG_TRY_PIXELS = 128 * 128  # larger pictures go straight to the lossy format


def image_source(img: np.ndarray) -> str:
    """A ``data:`` URI of the uint8 ``[H, W, 3]`` picture ``img``: PNG (lossless) when that is
    small, else WebP at quality 80 (JPEG at 85 without WebP) — for ``go.Image(source=...)``.
    Encoded in memory, once per picture: every overlay of one photo (each layer, head and query)
    draws the same pixels, and encoding them (5-15 ms) cost more than the rest of a small figure
    (issue 15)."""
    import hashlib

    pixels = np.ascontiguousarray(img, dtype=np.uint8)
    key = (hashlib.blake2b(pixels.data, digest_size=16).digest(), pixels.shape)  # ~0.1 ms for 224 x 224
    with _SOURCE_LOCK:  # every session's script runs in its own thread
        uri = _SOURCE_CACHE.get(key)
        if uri is not None:
            _SOURCE_CACHE.move_to_end(key)
            return uri
    uri = _encode_source(pixels)
    with _SOURCE_LOCK:
        _SOURCE_CACHE[key] = uri
        while len(_SOURCE_CACHE) > SOURCE_CACHE_ENTRIES:
            _SOURCE_CACHE.popitem(last=False)
    return uri


_SOURCE_CACHE: collections.OrderedDict = collections.OrderedDict()  # least recently used first
_SOURCE_LOCK = threading.Lock()
SOURCE_CACHE_ENTRIES = 64  # ~20-40 KB of text each: a class's photos, their masks and mosaics


@functools.cache
def _has_webp() -> bool:
    from PIL import features

    return bool(features.check("webp"))


def _encode_source(img: np.ndarray) -> str:
    import io

    from PIL import Image

    pil = Image.fromarray(img, "RGB")
    png = None
    if img.shape[0] * img.shape[1] <= PNG_TRY_PIXELS:  # a larger photo would not be small as PNG
        png = io.BytesIO()
        pil.save(png, format="PNG", compress_level=6)
    buf, mime = png, "png"
    if png is None or png.tell() > PNG_LIMIT_BYTES:
        lossy = io.BytesIO()
        if _has_webp():
            pil.save(lossy, format="WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
            kind = "webp"
        else:
            pil.save(lossy, format="JPEG", quality=JPEG_QUALITY, optimize=True)
            kind = "jpeg"
        if png is None or lossy.tell() < png.tell():
            buf, mime = lossy, kind
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def photo_trace(img: np.ndarray, name: str = "image", **extra) -> go.Image:
    """The photo (uint8 ``[H, W, 3]``) as an Image trace drawn from a compressed ``source``
    (see :func:`image_source`); pixel (0, 0) is centred on (0, 0) as with ``z``. No hover of
    its own (the maps and patch markers above it carry hover). Read it back with
    :func:`viz.image_pixels`."""
    return go.Image(photo_spec(img, name, **extra), _validate=False)


def photo_spec(img: np.ndarray, name: str = "image", **extra) -> dict:
    """:func:`photo_trace` as a plain trace dict, for figures assembled by :func:`unchecked_figure`."""
    return dict(type="image", source=image_source(img), name=name, hoverinfo="skip", **extra)


def click_targets(size_px: float, **marker) -> dict:
    """The properties of a scatter of invisible square markers laid over a heatmap or a picture:
    plotly selects (and Streamlit reports) points of scatter traces only, so a click on a map
    goes to them, and their hover speaks for the map under them. ``marker`` adds to the marker
    (e.g. ``color``: values that the hover prints; they are not drawn)."""
    hidden = {"opacity": CLICK_TARGET_OPACITY}
    if not isinstance(marker.get("color", ""), str):  # values: mapped to no colour at all
        marker = dict(marker, colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]], showscale=False)
    return dict(mode="markers", showlegend=False, selected={"marker": hidden}, unselected={"marker": hidden},
                marker=dict(symbol="square", size=max(6.0, float(size_px)), line={"width": 0}, **hidden, **marker))


CLICK_TARGET_OPACITY = 0.01  # drawn at 1%: invisible, and still a point that hover and clicks find


def unchecked_figure(data: list[dict], layout: dict, frames: list[dict] | None = None) -> go.Figure:
    """A figure from plain dicts that a builder made from checked arrays, without plotly's
    property-by-property validation: for the figures the app rebuilds on every click (the
    in-browser scrubbing figure: ~80 traces, ~65 ms validated, ~10 ms so; issue 15). Only for
    dicts whose every key is known to be valid — the tests build each such figure once with
    validation on (``go.Figure(fig.to_dict())``). Later changes to the figure (``update_layout``,
    ``add_trace``) are not validated either; ``go.Figure(fig)`` gives a checked copy.

    The dicts stay as they are until something reads the figure's plotly objects
    (:class:`PlainFigure`): the app only writes it (``to_dict``, then JSON)."""
    return PlainFigure(data, layout, frames)


_SHORT_TYPES = {"int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4", "uint32": "u4",
                "float32": "f4", "float64": "f8"}  # what plotly.js reads as typed arrays
_NOT_TYPED = {"geojson", "layer", "layers", "range"}  # keys whose arrays plotly leaves as they are


def _typed(values: np.ndarray):
    """``values`` as plotly writes an array: a base64 typed-array dict (its own function, which
    this matches, costs ~0.1 ms an array in checks; it handles what this does not)."""
    code = _SHORT_TYPES.get(values.dtype.name) if values.dtype.isnative else None
    if code is None or values.size == 0:
        from _plotly_utils.utils import to_typed_array_spec

        return to_typed_array_spec(values)
    out = {"dtype": code, "bdata": base64.b64encode(np.ascontiguousarray(values)).decode("ascii")}
    if values.ndim > 1:
        out["shape"] = str(values.shape)[1:-1]
    return out


def _plotly_dict(node):
    """A copy of the dicts and lists of a plain figure dict with every array that is the value of
    a key written as plotly's ``to_dict`` writes it (a base64 typed array)."""
    if isinstance(node, dict):
        return {key: _typed(value) if isinstance(value, np.ndarray) and key not in _NOT_TYPED else _plotly_dict(value)
                for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plotly_dict(value) for value in node]
    return node


class PlainFigure(go.Figure):
    """A figure kept as the plain dicts its builder made, made into plotly objects only when
    something reads or changes them (``fig.data``, ``fig.layout``, ``update_layout``…: then it
    is the unvalidated ``go.Figure`` of those dicts). ``to_dict`` — what plotly.io.to_json and
    the app's figure cache read — writes the dicts as plotly would, arrays as base64 typed
    arrays, without building an object per trace, frame and axis first and deep-copying them:
    plotly's objects and their ``to_dict`` cost 7 of the ~9 ms a new query's in-browser figure
    took to write, 16 of the 20 ms of the twelve layers of a head (issue 15)."""

    def __init__(self, data: list[dict], layout: dict, frames: list[dict] | None = None):
        # no go.Figure.__init__ yet: every plotly attribute is missing until __getattr__ asks
        plain = {"data": data, "layout": layout}
        if frames:
            plain["frames"] = frames
        object.__setattr__(self, "_plain", plain)

    def __getattr__(self, name: str):
        # only reached for attributes the instance lacks: plotly's own state before it is built
        if name not in _FIGURE_STATE:
            raise AttributeError(name)
        with _BUILDING:  # sessions run in threads: one builds, the others wait and read
            plain = self.__dict__.get("_plain")
            if plain is None:  # built meanwhile, or being built by this thread (plotly's own look-ups)
                if name in self.__dict__:
                    return self.__dict__[name]
                raise AttributeError(name)
            object.__setattr__(self, "_plain", None)
            go.Figure.__init__(self, plain, _validate=False)
        return getattr(self, name)

    def to_dict(self) -> dict:
        plain = self.__dict__.get("_plain")
        if plain is None or "template" not in plain["layout"]:  # plotly adds its default template
            return super().to_dict()
        out = {"data": [_plotly_dict(_set(trace)) for trace in plain["data"]],
               "layout": _plotly_dict(_set(plain["layout"]))}
        if "frames" in plain:
            out["frames"] = _plotly_dict(plain["frames"])
        return out

    def __reduce__(self):  # a pickled copy is an ordinary figure
        return go.Figure, (self.to_dict(),)


def _set(props: dict) -> dict:
    """The properties that are set: plotly drops a trace's or the layout's property given as None."""
    return {key: value for key, value in props.items() if value is not None}


_FIGURE_STATE = frozenset(vars(go.Figure()))  # what go.Figure.__init__ sets on an instance
_BUILDING = threading.RLock()
