"""Export figures without a browser: PNG through a small Pillow rasteriser, data as NPZ/CSV.

``figure_to_png`` draws the trace types the Patchlight builders use — ``Heatmap``
(colorscales, ``zmin/zmax``, shared ``coloraxis``, NaN gaps, ``xgap/ygap``, cell text),
``Image`` (``z`` or a data-URI ``source``), ``Bar`` (horizontal/vertical, text labels) and
``Scatter`` (markers, lines, text, ``fill="toself"`` bands) — into each subplot's domain, with the title, axis
ticks and titles, layout shapes (lines/rects), annotations and colour bars. Colours come
from :mod:`viz.colormaps`, the same interpolation plotly.js applies, so a heatmap brick in
the PNG has the colour the browser shows. It is a faithful, readable picture of the
figure, not a pixel-exact copy of plotly.js: legends, hover, 3-D, polar and log axes are
not drawn (unsupported trace types are skipped).

``figure_data``/``figure_to_npz``/``figure_to_csv`` export the numbers behind a figure
(``z`` of heatmaps, ``x``/``y`` of bars and scatters), keyed ``"<trace#>_<name>_<field>"``;
``data_from_csv`` reads the CSV back. ``overlay_png`` composes an attention overlay
directly (for the command line ``explain --out FILE.png``).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import re
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import colormaps as cm
from ._checks import float_array, image_array
from .maps import upsample_map

__all__ = [
    "figure_to_png", "render_figure", "figure_data", "figure_to_npz", "figure_to_csv", "data_from_csv",
    "overlay_image", "overlay_png",
]

PLOTLY_MINUS = "\u2212"
DEFAULT_WIDTH, DEFAULT_HEIGHT = 700, 450
DEFAULT_MARGIN = {"l": 80, "r": 80, "t": 100, "b": 80}


# =============================================================================================
# small utilities
# =============================================================================================
@lru_cache(maxsize=64)
def _font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size_px = max(1, int(size_px))
    for name in ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf"):
        try:
            return ImageFont.truetype(name, size_px)
        except OSError:
            continue
    return ImageFont.load_default(size=size_px)


def _clean_text(text) -> str:
    """Plotly's small HTML subset -> plain text with newlines."""
    s = "" if text is None else str(text)
    s = re.sub(r"<br\s*/?>", "\n", s, flags=re.IGNORECASE)
    s = re.sub(r"<[^>]+>", "", s)
    return html.unescape(s)


def _get(d: dict | None, *path, default=None):
    cur = d
    for key in path:
        if not isinstance(cur, dict) or key not in cur or cur[key] is None:
            return default
        cur = cur[key]
    return cur


def _rgba(color, default=(0, 0, 0, 1.0)) -> tuple[int, int, int, int]:
    """A colour as an 8-bit RGBA tuple (alpha 0..255)."""
    try:
        r, g, b, a = cm.parse_color(color) if color is not None else default
    except ValueError:
        r, g, b, a = default
    return int(r), int(g), int(b), int(round(255 * float(a)))


def _with_opacity(rgba, opacity: float):
    r, g, b, a = rgba
    return r, g, b, int(round(a * max(0.0, min(1.0, opacity))))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _nice_step(span: float, n_ticks: float) -> float:
    """plotly.js's automatic tick step: ``span / n_ticks`` rounded up to 2, 5 or 10 x 10^k."""
    raw = abs(span) / max(1.0, n_ticks)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw * (1 - 1e-9):
            return m * mag
    return 10 * mag


def _n_ticks(length_px: float, min_px: float) -> float:
    """plotly.js's target tick count: ``clamp(length / min_px, 4, 9) + 1``."""
    return min(9.0, max(4.0, length_px / min_px)) + 1.0


def _fmt_number(v: float, step: float, tickformat: str | None = None) -> str:
    if tickformat:
        m = re.fullmatch(r"\.?(\d*)%", tickformat.strip())
        if m:
            dec = int(m.group(1) or 0)
            return f"{v * 100:.{dec}f}%".replace("-", PLOTLY_MINUS)
        m = re.fullmatch(r"\.(\d+)f", tickformat.strip())
        if m:
            return f"{v:.{int(m.group(1))}f}".replace("-", PLOTLY_MINUS)
    if abs(v) < step * 1e-6:
        v = 0.0
    dec = 0
    if step < 1:
        dec = max(0, -math.floor(math.log10(step) + 1e-9))
        if abs(step / 10 ** -dec - round(step / 10 ** -dec)) > 1e-6:
            dec += 1
    text = f"{v:.{dec}f}"
    if "." in text:  # plotly drops trailing zeros: 0.5, 1, 0.025
        text = text.rstrip("0").rstrip(".")
    return text.replace("-", PLOTLY_MINUS)


def _fmt_template(template: str, values: dict) -> str:
    """Enough of plotly's ``texttemplate`` for ``%{z:.2f}``-style cell labels."""

    def sub(m):
        key, fmt = m.group(1), m.group(2)
        v = values.get(key)
        if v is None:
            return ""
        if fmt:
            try:
                return format(v, fmt)
            except (ValueError, TypeError):
                return str(v)
        return str(v)

    return re.sub(r"%\{(\w+)(?::([^}]*))?\}", sub, template)


def _as_list(v):
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


_TYPED = {"f8": np.float64, "f4": np.float32, "i1": np.int8, "u1": np.uint8, "i2": np.int16, "u2": np.uint16,
          "i4": np.int32, "u4": np.uint32, "i8": np.int64, "u8": np.uint64, "u1c": np.uint8}


def _plain(obj):
    """Undo plotly's JSON typed-array encoding (``{"dtype", "bdata", "shape"}``) recursively."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj and obj["dtype"] in _TYPED:
            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=_TYPED[obj["dtype"]])
            shape = obj.get("shape")
            if shape:
                arr = arr.reshape([int(s) for s in str(shape).split(",")])
            return arr
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _decode_data_uri(src: str) -> np.ndarray | None:
    m = re.match(r"data:image/[a-z+]+;base64,(.*)$", src or "", re.DOTALL)
    if not m:
        return None
    with Image.open(io.BytesIO(base64.b64decode(m.group(1)))) as im:
        return np.asarray(im.convert("RGBA"))


def _stroke_rect(draw: ImageDraw.ImageDraw, box, color, width: float):
    """A rectangle outline ``width`` px thick centred on the edges of ``box`` (as SVG strokes)."""
    x0, y0, x1, y1 = box
    h = width / 2

    def band(a0, b0, a1, b1):
        l, t, r, b = int(round(a0)), int(round(b0)), int(round(a1)), int(round(b1))
        draw.rectangle([l, t, max(l, r - 1), max(t, b - 1)], fill=color)

    band(x0 - h, y0 - h, x1 + h, y0 + h)  # top
    band(x0 - h, y1 - h, x1 + h, y1 + h)  # bottom
    band(x0 - h, y0 - h, x0 + h, y1 + h)  # left
    band(x1 - h, y0 - h, x1 + h, y1 + h)  # right


# =============================================================================================
# axes
# =============================================================================================
class _Axis:
    def __init__(self, name: str, spec: dict):
        self.name = name  # "xaxis", "yaxis2", ...
        self.letter = name[0]
        self.ref = self.letter + name[5:]  # "x", "y2"
        self.spec = spec or {}
        self.domain = list(self.spec.get("domain") or [0.0, 1.0])
        self.categories: list[str] | None = None
        self.range: list[float] | None = None
        self.px0 = self.px1 = 0.0  # pixel of range[0] and of range[1]
        self.extent: list[float] = []  # data extents gathered from traces
        self.has_image = False

    @property
    def is_category(self) -> bool:
        return self.categories is not None

    def add_categories(self, values):
        if self.categories is None:
            self.categories = []
        known = set(self.categories)
        for v in values:
            s = str(v)
            if s not in known:
                known.add(s)
                self.categories.append(s)

    def coords(self, values) -> np.ndarray:
        """Data values (numbers or category names) -> positions along the axis."""
        vals = _as_list(values) or []
        if self.is_category:
            index = {c: i for i, c in enumerate(self.categories)}
            out = []
            for v in vals:
                if v is None:
                    out.append(np.nan)
                elif str(v) in index:
                    out.append(float(index[str(v)]))
                elif _is_number(v):
                    out.append(float(v))
                else:
                    out.append(np.nan)
            return np.array(out, dtype=np.float64)
        return np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64)

    def coord(self, v) -> float:
        return float(self.coords([v])[0])

    def to_px(self, v):
        r0, r1 = self.range
        return self.px0 + (np.asarray(v, dtype=np.float64) - r0) / (r1 - r0) * (self.px1 - self.px0)

    def from_px(self, px):
        r0, r1 = self.range
        return r0 + (np.asarray(px, dtype=np.float64) - self.px0) / (self.px1 - self.px0) * (r1 - r0)

    @property
    def lo_px(self) -> float:
        return min(self.px0, self.px1)

    @property
    def hi_px(self) -> float:
        return max(self.px0, self.px1)


# =============================================================================================
# the renderer
# =============================================================================================
class _Renderer:
    def __init__(self, fig, scale: float):
        d = _plain(fig.to_plotly_json())
        self.data = d.get("data", [])
        self.lay = d.get("layout", {})
        self.s = float(scale)
        if not self.s > 0:
            raise ValueError(f"scale={scale!r}; expected a positive factor such as 1 or 2.")
        self.W = float(self.lay.get("width") or DEFAULT_WIDTH)
        self.H = float(self.lay.get("height") or DEFAULT_HEIGHT)
        m = dict(DEFAULT_MARGIN)
        m.update({k: v for k, v in (self.lay.get("margin") or {}).items() if k in m and v is not None})
        self.m = m
        self.pl, self.pt = m["l"], m["t"]
        self.pw = max(1.0, self.W - m["l"] - m["r"])
        self.ph = max(1.0, self.H - m["t"] - m["b"])
        self.base_font = float(_get(self.lay, "font", "size", default=12))
        self.font_color = _get(self.lay, "font", "color", default="#444444")
        paper = _rgba(self.lay.get("paper_bgcolor") or "white")
        self.img = Image.new("RGBA", (max(1, round(self.W * self.s)), max(1, round(self.H * self.s))),
                             paper[:3] + (255,))

    # --- geometry -----------------------------------------------------------------------------
    def S(self, v: float) -> float:
        return v * self.s

    def paper_x(self, f: float) -> float:
        return self.pl + f * self.pw

    def paper_y(self, f: float) -> float:
        return self.pt + (1.0 - f) * self.ph

    def _axis_for(self, ref: str) -> _Axis:
        letter = ref[0]
        name = f"{letter}axis{ref[1:]}"
        if name not in self.axes:
            self.axes[name] = _Axis(name, self.lay.get(name, {}))
        return self.axes[name]

    def _setup_axes(self):
        self.axes: dict[str, _Axis] = {}
        for key, spec in self.lay.items():
            if re.fullmatch(r"[xy]axis\d*", key):
                self.axes[key] = _Axis(key, spec)
        self.pairs = []  # (xaxis, yaxis) pairs that hold traces
        for tr in self.data:
            if tr.get("type") not in ("heatmap", "image", "bar", "scatter", "scattergl", None):
                continue
            xa = self._axis_for(tr.get("xaxis") or "x")
            ya = self._axis_for(tr.get("yaxis") or "y")
            if (xa, ya) not in self.pairs:
                self.pairs.append((xa, ya))
        # categories first, then extents
        for tr in self.data:
            t = tr.get("type") or "scatter"
            if t not in ("heatmap", "bar", "scatter", "scattergl"):
                continue
            for letter in "xy":
                ax = self._axis_for(tr.get(f"{letter}axis") or letter)
                vals = _as_list(tr.get(letter))
                is_cat = ax.spec.get("type") == "category" or (
                    vals is not None and any(isinstance(v, str) for v in vals[:50]))
                if is_cat:
                    ax.add_categories([v for v in (vals or []) if v is not None])
        for ax in self.axes.values():
            if ax.spec.get("type") == "category" and ax.categories is None:
                ax.categories = []
        for tr in self.data:
            self._extent(tr)
        for ax in self.axes.values():
            self._resolve_range(ax)
        # pixel extents from domains
        for ax in self.axes.values():
            d0, d1 = ax.domain
            if ax.letter == "x":
                ax.px0, ax.px1 = self.paper_x(d0), self.paper_x(d1)
            else:
                ax.px0, ax.px1 = self.paper_y(d0), self.paper_y(d1)
        self._constrain()

    def _extent(self, tr):
        t = tr.get("type") or "scatter"
        xa = self._axis_for(tr.get("xaxis") or "x")
        ya = self._axis_for(tr.get("yaxis") or "y")
        if t == "heatmap":
            z = np.asarray(tr.get("z"), dtype=np.float64)
            if z.ndim != 2:
                return
            ex = self._cell_edges(tr, xa, "x", z.shape[1])
            ey = self._cell_edges(tr, ya, "y", z.shape[0])
            xa.extent += [ex.min(), ex.max()]
            ya.extent += [ey.min(), ey.max()]
        elif t == "image":
            arr = self._image_array(tr)
            if arr is None:
                return
            h, w = arr.shape[:2]
            x0, dx = float(tr.get("x0", 0) or 0), float(tr.get("dx", 1) or 1)
            y0, dy = float(tr.get("y0", 0) or 0), float(tr.get("dy", 1) or 1)
            xa.extent += [x0 - dx / 2, x0 + (w - 0.5) * dx]
            ya.extent += [y0 - dy / 2, y0 + (h - 0.5) * dy]
            ya.has_image = True
        elif t == "bar":
            horizontal = tr.get("orientation") == "h"
            cat_ax, val_ax = (ya, xa) if horizontal else (xa, ya)
            cats = cat_ax.coords(tr.get("y" if horizontal else "x"))
            vals = np.asarray(_as_list(tr.get("x" if horizontal else "y")) or [], dtype=np.float64)
            if cats.size:
                cat_ax.extent += [np.nanmin(cats) - 0.5, np.nanmax(cats) + 0.5]
            if vals.size:
                val_ax.extent += [min(0.0, np.nanmin(vals)), max(0.0, np.nanmax(vals))]
        elif t in ("scatter", "scattergl"):
            xs = xa.coords(tr.get("x"))
            ys = ya.coords(tr.get("y"))
            if np.isfinite(xs).any():
                xa.extent += [np.nanmin(xs), np.nanmax(xs)]
            if np.isfinite(ys).any():
                ya.extent += [np.nanmin(ys), np.nanmax(ys)]

    def _resolve_range(self, ax: _Axis):
        rng = ax.spec.get("range")
        if rng is not None and len(rng) == 2 and all(v is not None for v in rng):
            ax.range = [ax.coord(rng[0]) if isinstance(rng[0], str) else float(rng[0]),
                        ax.coord(rng[1]) if isinstance(rng[1], str) else float(rng[1])]
            return
        if ax.extent:
            lo, hi = float(np.nanmin(ax.extent)), float(np.nanmax(ax.extent))
        elif ax.is_category and ax.categories:
            lo, hi = -0.5, len(ax.categories) - 0.5
        else:
            lo, hi = -1.0, 6.0
        if hi <= lo:
            lo, hi = lo - 1.0, hi + 1.0
        auto = ax.spec.get("autorange")
        if auto == "reversed" or (auto is None and ax.letter == "y" and ax.has_image):
            lo, hi = hi, lo
        ax.range = [lo, hi]

    def _constrain(self):
        """Equal aspect via ``scaleanchor`` (``constrain``: 'domain' shrinks, 'range' widens)."""
        for ax in list(self.axes.values()):
            anchor = ax.spec.get("scaleanchor")
            if not anchor or anchor is False:
                continue
            other = self._axis_for(anchor)
            ratio = float(ax.spec.get("scaleratio") or 1.0)
            # pixels per data unit; ax must have ratio times other's
            k_ax = abs(ax.px1 - ax.px0) / abs(ax.range[1] - ax.range[0])
            k_ot = abs(other.px1 - other.px0) / abs(other.range[1] - other.range[0])
            target = min(k_ax / ratio, k_ot)  # other's px/unit after the fix
            for a, k_new in ((ax, target * ratio), (other, target)):
                k_old = abs(a.px1 - a.px0) / abs(a.range[1] - a.range[0])
                if k_old <= k_new * (1 + 1e-9):
                    continue
                if (a.spec.get("constrain") or "range") == "domain":
                    c = (a.px0 + a.px1) / 2
                    half = abs(a.range[1] - a.range[0]) * k_new / 2
                    sign = 1 if a.px1 > a.px0 else -1
                    a.px0, a.px1 = c - sign * half, c + sign * half
                else:
                    c = (a.range[0] + a.range[1]) / 2
                    half = (a.range[1] - a.range[0]) * k_old / k_new / 2
                    a.range = [c - half, c + half]

    # --- trace helpers --------------------------------------------------------------------------
    def _cell_edges(self, tr, ax: _Axis, letter: str, n: int) -> np.ndarray:
        vals = tr.get(letter)
        if vals is not None and len(vals) in (n, n + 1):
            c = ax.coords(vals)
            if len(c) == n + 1:
                return c
            if n == 1:
                return np.array([c[0] - 0.5, c[0] + 0.5])
            mids = (c[:-1] + c[1:]) / 2
            return np.concatenate([[c[0] - (mids[0] - c[0])], mids, [c[-1] + (c[-1] - mids[-1])]])
        x0 = tr.get(f"{letter}0", 0)
        d = float(tr.get(f"d{letter}", 1) or 1)
        x0 = ax.coord(x0) if isinstance(x0, str) else float(x0 or 0)
        return x0 + (np.arange(n + 1) - 0.5) * d

    def _image_array(self, tr) -> np.ndarray | None:
        z = tr.get("z")
        if z is not None:
            arr = np.asarray(z)
            if arr.ndim == 3:
                model = tr.get("colormodel") or ("rgba" if arr.shape[2] == 4 else "rgb")
                arr = arr.astype(np.float64)
                if model == "rgba" and arr.shape[2] == 4:
                    a = arr[..., 3:4] * (255.0 if arr[..., 3].max() <= 1.0 else 1.0)
                    return np.concatenate([arr[..., :3], a], axis=2).clip(0, 255).astype(np.uint8)
                rgb = arr[..., :3].clip(0, 255).astype(np.uint8)
                return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
            return None
        src = tr.get("source")
        return _decode_data_uri(src) if isinstance(src, str) else None

    def _color_info(self, tr) -> tuple[list, float, float, bool] | None:
        """(colorscale, cmin, cmax, reverse) of a heatmap, from the trace or its coloraxis."""
        ca = tr.get("coloraxis")
        if ca:
            spec = self.lay.get(ca, {})
            scale = spec.get("colorscale") or "viridis"
            lo, hi = spec.get("cmin"), spec.get("cmax")
            if lo is None or hi is None:
                zs = [np.asarray(t.get("z"), dtype=np.float64) for t in self.data if t.get("coloraxis") == ca]
                lo = np.nanmin([np.nanmin(z) for z in zs]) if lo is None else lo
                hi = np.nanmax([np.nanmax(z) for z in zs]) if hi is None else hi
            return scale, float(lo), float(hi), bool(spec.get("reversescale"))
        z = np.asarray(tr.get("z"), dtype=np.float64)
        lo, hi = tr.get("zmin"), tr.get("zmax")
        if lo is None or tr.get("zauto") is True:
            lo = float(np.nanmin(z)) if np.isfinite(z).any() else 0.0
        if hi is None or tr.get("zauto") is True:
            hi = float(np.nanmax(z)) if np.isfinite(z).any() else 1.0
        return tr.get("colorscale") or "viridis", float(lo), float(hi), bool(tr.get("reversescale"))

    def _clip_box(self, xa: _Axis, ya: _Axis) -> tuple[int, int, int, int]:
        x0, x1 = self.S(xa.lo_px), self.S(xa.hi_px)
        y0, y1 = self.S(ya.lo_px), self.S(ya.hi_px)
        return tuple(int(math.floor(v + 0.5)) for v in (x0, y0, x1, y1))

    def _blend(self, rgba: np.ndarray, x0: int, y0: int):
        """Alpha-composite a float RGBA array (RGB 0..255, alpha 0..1) at device pixel (x0, y0)."""
        if rgba.size == 0:
            return
        layer = np.empty(rgba.shape[:2] + (4,), dtype=np.uint8)
        layer[..., :3] = np.clip(np.rint(rgba[..., :3]), 0, 255)
        layer[..., 3] = np.clip(np.rint(rgba[..., 3] * 255), 0, 255)
        self.img.alpha_composite(Image.fromarray(layer, "RGBA"), dest=(int(x0), int(y0)))

    def _raster(self, xa, ya, xedges, yedges, colors: np.ndarray, smooth_values=None, gaps=(0, 0)):
        """Paint cells (``colors [ny, nx, 4]``) whose edges are given in data units, clipped to the box."""
        bx0, by0, bx1, by1 = self._clip_box(xa, ya)
        if bx1 <= bx0 or by1 <= by0:
            return
        px = np.arange(bx0, bx1) + 0.5
        py = np.arange(by0, by1) + 0.5
        dx = xa.from_px(px / self.s)
        dy = ya.from_px(py / self.s)

        def index(edges, vals):
            e = np.asarray(edges, dtype=np.float64)
            if e[-1] < e[0]:
                j = np.searchsorted(-e, -vals, side="right") - 1
            else:
                j = np.searchsorted(e, vals, side="right") - 1
            ok = (j >= 0) & (j < len(e) - 1)
            return np.clip(j, 0, len(e) - 2), ok

        jx, okx = index(xedges, dx)
        jy, oky = index(yedges, dy)
        out = colors[jy][:, jx].copy()
        mask = oky[:, None] & okx[None, :]
        gx, gy = gaps
        for g, j, e, ax, pos, axis in ((gx, jx, xedges, xa, px, 1), (gy, jy, yedges, ya, py, 0)):
            if g and g > 0:
                epx = ax.to_px(np.asarray(e, dtype=np.float64)) * self.s
                lo = np.minimum(epx[j], epx[j + 1])
                hi = np.maximum(epx[j], epx[j + 1])
                inside = (pos - lo >= g * self.s / 2) & (hi - pos >= g * self.s / 2)
                mask &= inside[None, :] if axis == 1 else inside[:, None]
        out[..., 3] = np.where(mask, out[..., 3], 0.0)
        self._blend(out, bx0, by0)

    # --- traces -------------------------------------------------------------------------------
    def _draw_heatmap(self, tr):
        z = np.asarray(tr.get("z"), dtype=np.float64)
        if z.ndim != 2 or z.size == 0:
            return
        xa = self._axis_for(tr.get("xaxis") or "x")
        ya = self._axis_for(tr.get("yaxis") or "y")
        scale, lo, hi, rev = self._color_info(tr)
        opacity = float(tr.get("opacity", 1.0) if tr.get("opacity") is not None else 1.0)
        xe = self._cell_edges(tr, xa, "x", z.shape[1])
        ye = self._cell_edges(tr, ya, "y", z.shape[0])
        smooth = tr.get("zsmooth")
        if smooth in ("best", "fast") and min(z.shape) > 1:
            self._draw_smooth_heatmap(z, xa, ya, xe, ye, scale, lo, hi, rev, opacity)
        else:
            colors = cm.sample(scale, z, lo, hi, reverse=rev)
            colors[..., 3] *= opacity
            self._raster(xa, ya, xe, ye, colors, gaps=(float(tr.get("xgap") or 0), float(tr.get("ygap") or 0)))
        tmpl = tr.get("texttemplate")
        if tmpl:
            self._heatmap_text(tr, z, xa, ya, xe, ye, scale, lo, hi, rev, tmpl)

    def _draw_smooth_heatmap(self, z, xa, ya, xe, ye, scale, lo, hi, rev, opacity):
        bx0, by0, bx1, by1 = self._clip_box(xa, ya)
        if bx1 <= bx0 or by1 <= by0:
            return
        xc = (xe[:-1] + xe[1:]) / 2
        yc = (ye[:-1] + ye[1:]) / 2
        dx = xa.from_px((np.arange(bx0, bx1) + 0.5) / self.s)
        dy = ya.from_px((np.arange(by0, by1) + 0.5) / self.s)

        def frac(centres, vals):
            order = np.argsort(centres)
            c = centres[order]
            f = np.interp(vals, c, np.arange(len(c)))
            return f, order

        fx, ox = frac(xc, dx)
        fy, oy = frac(yc, dy)
        zz = z[oy][:, ox]
        x0 = np.floor(fx).astype(int).clip(0, zz.shape[1] - 1)
        y0 = np.floor(fy).astype(int).clip(0, zz.shape[0] - 1)
        x1 = np.minimum(x0 + 1, zz.shape[1] - 1)
        y1 = np.minimum(y0 + 1, zz.shape[0] - 1)
        tx = (fx - x0)[None, :]
        ty = (fy - y0)[:, None]
        top = zz[y0][:, x0] * (1 - tx) + zz[y0][:, x1] * tx
        bottom = zz[y1][:, x0] * (1 - tx) + zz[y1][:, x1] * tx
        v = top * (1 - ty) + bottom * ty
        inside_x = (dx >= min(xe[0], xe[-1])) & (dx <= max(xe[0], xe[-1]))
        inside_y = (dy >= min(ye[0], ye[-1])) & (dy <= max(ye[0], ye[-1]))
        colors = cm.sample(scale, v, lo, hi, reverse=rev)
        colors[..., 3] *= opacity * (inside_y[:, None] & inside_x[None, :])
        self._blend(colors, bx0, by0)

    def _heatmap_text(self, tr, z, xa, ya, xe, ye, scale, lo, hi, rev, tmpl):
        size = float(_get(tr, "textfont", "size", default=self.base_font))
        fixed = _get(tr, "textfont", "color")
        cols = cm.sample(scale, z, lo, hi, reverse=rev)
        xs = xa.to_px((xe[:-1] + xe[1:]) / 2)
        ys = ya.to_px((ye[:-1] + ye[1:]) / 2)
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                if not np.isfinite(z[i, j]):
                    continue
                if not (xa.lo_px <= xs[j] <= xa.hi_px and ya.lo_px <= ys[i] <= ya.hi_px):
                    continue
                r, g, b = cols[i, j, :3]
                lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
                color = fixed if fixed and fixed != "auto" else ("#000000" if lum > 140 else "#ffffff")
                self._text(xs[j], ys[i], _fmt_template(tmpl, {"z": float(z[i, j])}), size, color)

    def _draw_image(self, tr):
        arr = self._image_array(tr)
        if arr is None:
            return
        xa = self._axis_for(tr.get("xaxis") or "x")
        ya = self._axis_for(tr.get("yaxis") or "y")
        h, w = arr.shape[:2]
        x0, dx = float(tr.get("x0", 0) or 0), float(tr.get("dx", 1) or 1)
        y0, dy = float(tr.get("y0", 0) or 0), float(tr.get("dy", 1) or 1)
        xe = x0 + (np.arange(w + 1) - 0.5) * dx
        ye = y0 + (np.arange(h + 1) - 0.5) * dy
        colors = arr.astype(np.float64)
        colors[..., 3] = colors[..., 3] / 255.0 * float(tr.get("opacity") if tr.get("opacity") is not None else 1.0)
        self._raster(xa, ya, xe, ye, colors)

    def _layer(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        layer = Image.new("RGBA", self.img.size, (0, 0, 0, 0))
        return layer, ImageDraw.Draw(layer)

    def _composite_clipped(self, layer: Image.Image, box):
        x0, y0, x1, y1 = box
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(self.img.size[0], x1), min(self.img.size[1], y1)
        if x1 <= x0 or y1 <= y0:
            return
        self.img.alpha_composite(layer.crop((x0, y0, x1, y1)), dest=(x0, y0))

    def _draw_bar(self, tr):
        xa = self._axis_for(tr.get("xaxis") or "x")
        ya = self._axis_for(tr.get("yaxis") or "y")
        horizontal = tr.get("orientation") == "h"
        cat_ax, val_ax = (ya, xa) if horizontal else (xa, ya)
        cats = cat_ax.coords(tr.get("y" if horizontal else "x"))
        vals = np.asarray(_as_list(tr.get("x" if horizontal else "y")) or [], dtype=np.float64)
        n = min(len(cats), len(vals))
        if n == 0:
            return
        gap = float(self.lay.get("bargap") if self.lay.get("bargap") is not None else 0.2)
        spacing = float(np.min(np.diff(np.sort(cats[:n])))) if n > 1 else 1.0
        width = float(tr.get("width") or spacing * (1 - gap))
        color = _get(tr, "marker", "color", default="#636efa")
        colors = _as_list(color) if isinstance(color, (list, tuple, np.ndarray)) else [color] * n
        opacity = float(tr.get("opacity") if tr.get("opacity") is not None else 1.0)
        layer, draw = self._layer()
        ends = []
        for i in range(n):
            if not (np.isfinite(cats[i]) and np.isfinite(vals[i])):
                ends.append(None)
                continue
            c0, c1 = cat_ax.to_px(cats[i] - width / 2), cat_ax.to_px(cats[i] + width / 2)
            v0, v1 = val_ax.to_px(0.0), val_ax.to_px(vals[i])
            if horizontal:
                box = (min(v0, v1), min(c0, c1), max(v0, v1), max(c0, c1))
            else:
                box = (min(c0, c1), min(v0, v1), max(c0, c1), max(v0, v1))
            fill = _with_opacity(_rgba(colors[i % len(colors)]), opacity)
            x0b, y0b = self.S(box[0]), self.S(box[1])
            x1b, y1b = max(x0b, self.S(box[2]) - 1), max(y0b, self.S(box[3]) - 1)  # sub-pixel bars stay 1 px
            draw.rectangle([x0b, y0b, x1b, y1b], fill=fill)
            ends.append((cat_ax.to_px(cats[i]), v1, vals[i] >= 0))
        self._composite_clipped(layer, self._clip_box(xa, ya))
        texts = _as_list(tr.get("text"))
        pos = tr.get("textposition") or "none"
        if texts and pos != "none":
            size = float(_get(tr, "textfont", "size", default=self.base_font))
            tcolor = _get(tr, "textfont", "color", default=self.font_color)
            if isinstance(tcolor, (list, tuple)):
                tcolor = tcolor[0]
            for i, end in enumerate(ends):
                if end is None or i >= len(texts) or texts[i] in (None, ""):
                    continue
                c, v, positive = end
                inside = pos == "inside"
                pad = 4
                if horizontal:
                    sign = 1 if positive else -1
                    x = v - sign * pad if inside else v + sign * pad
                    anchor = ("right" if positive else "left") if inside else ("left" if positive else "right")
                    self._text(x, c, _clean_text(texts[i]), size, "white" if inside else tcolor, xanchor=anchor)
                else:
                    sign = -1 if positive else 1
                    y = v - sign * pad if inside else v + sign * pad
                    anchor = ("top" if positive else "bottom") if inside else ("bottom" if positive else "top")
                    self._text(c, y, _clean_text(texts[i]), size, "white" if inside else tcolor, yanchor=anchor)

    def _marker_colors(self, tr, n):
        color = _get(tr, "marker", "color", default="#636efa")
        if isinstance(color, (list, tuple, np.ndarray)):
            vals = _as_list(color)
            if vals and all(_is_number(v) for v in vals):
                arr = np.asarray(vals, dtype=np.float64)
                scale = _get(tr, "marker", "colorscale", default="viridis")
                lo = _get(tr, "marker", "cmin", default=float(np.nanmin(arr)))
                hi = _get(tr, "marker", "cmax", default=float(np.nanmax(arr)))
                rgba = cm.sample(scale, arr, lo, hi)
                return [(int(r), int(g), int(b), int(round(255 * a))) for r, g, b, a in rgba]
            return [_rgba(vals[i % len(vals)]) for i in range(n)]
        return [_rgba(color)] * n

    def _draw_scatter(self, tr):
        xa = self._axis_for(tr.get("xaxis") or "x")
        ya = self._axis_for(tr.get("yaxis") or "y")
        xs = xa.to_px(xa.coords(tr.get("x")))
        ys = ya.to_px(ya.coords(tr.get("y")))
        n = min(len(xs), len(ys))
        if n == 0:
            return
        mode = tr.get("mode") or ("lines+markers" if n < 20 else "lines")
        opacity = float(tr.get("opacity") if tr.get("opacity") is not None else 1.0)
        layer, draw = self._layer()
        if tr.get("fill") == "toself":
            self._fill_toself(tr, draw, xs[:n], ys[:n], opacity)
        if "lines" in mode:
            lc = _with_opacity(_rgba(_get(tr, "line", "color", default="#636efa")), opacity)
            lw = max(1, round(self.S(float(_get(tr, "line", "width", default=2)))))
            seg = []
            for i in range(n + 1):
                if i < n and np.isfinite(xs[i]) and np.isfinite(ys[i]):
                    seg.append((self.S(xs[i]), self.S(ys[i])))
                else:
                    if len(seg) > 1:
                        draw.line(seg, fill=lc, width=lw, joint="curve")
                    seg = []
        if "markers" in mode:
            size = _get(tr, "marker", "size", default=6)
            sizes = _as_list(size) if isinstance(size, (list, tuple, np.ndarray)) else [size] * n
            mop = float(_get(tr, "marker", "opacity", default=1.0)) * opacity
            colors = self._marker_colors(tr, n)
            symbol = str(_get(tr, "marker", "symbol", default="circle"))
            lcol = _get(tr, "marker", "line", "color")
            lwid = float(_get(tr, "marker", "line", "width", default=0) or 0)
            if mop > 0:
                for i in range(n):
                    if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
                        continue
                    col = _with_opacity(colors[i], mop)
                    edge = _with_opacity(_rgba(lcol), mop) if lcol and lwid > 0 else None
                    self._marker(draw, self.S(xs[i]), self.S(ys[i]), self.S(float(sizes[i % len(sizes)])),
                                 symbol, col, edge, self.S(lwid))
        self._composite_clipped(layer, self._clip_box(xa, ya))
        if "text" in mode:
            texts = _as_list(tr.get("text")) or []
            size = float(_get(tr, "textfont", "size", default=self.base_font))
            color = _get(tr, "textfont", "color", default=self.font_color)
            for i in range(min(n, len(texts))):
                if np.isfinite(xs[i]) and np.isfinite(ys[i]) and texts[i] not in (None, ""):
                    self._text(xs[i], ys[i], _clean_text(texts[i]), size, color,
                               stroke=bool(_get(tr, "textfont", "shadow")))

    def _fill_toself(self, tr, draw, xs, ys, opacity):
        """``fill="toself"``: each run of finite points (gaps split runs, as in plotly.js) is a
        closed polygon filled with ``fillcolor`` — plotly's default is the line colour at half alpha."""
        fc = tr.get("fillcolor")
        if fc is None:
            r, g, b, a = _rgba(_get(tr, "line", "color", default="#636efa"))
            fill = (r, g, b, a // 2)
        else:
            fill = _rgba(fc)
        fill = _with_opacity(fill, opacity)
        if fill[3] == 0:
            return
        run = []
        for i in range(len(xs) + 1):
            if i < len(xs) and np.isfinite(xs[i]) and np.isfinite(ys[i]):
                run.append((self.S(xs[i]), self.S(ys[i])))
                continue
            if len(run) > 2:
                draw.polygon(run, fill=fill)
            run = []

    def _marker(self, draw, x, y, d, symbol, fill, edge, edge_w):
        r = max(0.5, d / 2)
        is_open = symbol.endswith("-open")
        base = symbol.replace("-open", "")
        outline_col = fill if is_open else edge
        width = max(1, round(edge_w if not is_open else max(edge_w, self.s * 1.5)))
        fill_col = None if is_open else fill
        if base == "square":
            draw.rectangle([x - r, y - r, x + r, y + r], fill=fill_col, outline=outline_col, width=width)
        elif base == "diamond":
            draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=fill_col, outline=outline_col,
                         width=width)
        elif base.startswith("triangle"):
            pts = {"triangle-down": [(x - r, y - r), (x + r, y - r), (x, y + r)],
                   "triangle-left": [(x + r, y - r), (x + r, y + r), (x - r, y)],
                   "triangle-right": [(x - r, y - r), (x - r, y + r), (x + r, y)]}.get(
                base, [(x - r, y + r), (x + r, y + r), (x, y - r)])
            draw.polygon(pts, fill=fill_col, outline=outline_col, width=width)
        elif base in ("x", "cross"):
            w = max(1, round(r / 2))
            if base == "x":
                draw.line([(x - r, y - r), (x + r, y + r)], fill=fill, width=w)
                draw.line([(x - r, y + r), (x + r, y - r)], fill=fill, width=w)
            else:
                draw.line([(x - r, y), (x + r, y)], fill=fill, width=w)
                draw.line([(x, y - r), (x, y + r)], fill=fill, width=w)
        else:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill_col, outline=outline_col, width=width)

    # --- text ---------------------------------------------------------------------------------
    def _text(self, x, y, text, size, color=None, xanchor="center", yanchor="middle", angle=0.0,
              bg=None, pad=0.0, stroke=False, border=None, border_w=0.0):
        """Draw (possibly multi-line) text anchored at CSS-pixel point (x, y)."""
        text = _clean_text(text)
        if not text.strip():
            return (0.0, 0.0)
        font = _font(round(self.S(size)))
        lines = text.split("\n")
        asc, desc = font.getmetrics() if hasattr(font, "getmetrics") else (self.S(size), 0)
        line_h = asc + desc
        widths = [font.getlength(ln) if hasattr(font, "getlength") else font.getbbox(ln)[2] for ln in lines]
        sw = max(1, round(self.S(size) / 9)) if stroke else 0
        p = self.S(pad) + sw
        bw = max(0, round(self.S(border_w)))
        tw = int(math.ceil(max(widths) + 2 * p + 2 * bw))
        th = int(math.ceil(line_h * len(lines) + 2 * p + 2 * bw))
        tile = Image.new("RGBA", (max(1, tw), max(1, th)), (0, 0, 0, 0))
        d = ImageDraw.Draw(tile)
        if bg:
            d.rectangle([0, 0, tw - 1, th - 1], fill=_rgba(bg),
                        outline=_rgba(border) if border and bw else None, width=bw)
        fill = _rgba(color or self.font_color)
        for i, ln in enumerate(lines):
            lx = p + bw + (max(widths) - widths[i]) / 2
            d.text((lx, p + bw + i * line_h), ln, font=font, fill=fill,
                   stroke_width=sw, stroke_fill=(0, 0, 0, 230) if sw else None)
        if angle:
            tile = tile.rotate(-angle, expand=True, resample=Image.BICUBIC)
        w, h = tile.size
        px, py = self.S(x), self.S(y)
        ox = {"left": 0, "center": w / 2, "right": w}.get(xanchor, w / 2)
        oy = {"top": 0, "middle": h / 2, "bottom": h}.get(yanchor, h / 2)
        dest = (int(round(px - ox)), int(round(py - oy)))
        self._paste(tile, dest)
        return (w / self.s, h / self.s)

    def _paste(self, tile: Image.Image, dest):
        x, y = dest
        W, H = self.img.size
        cx0, cy0 = max(0, -x), max(0, -y)
        cx1, cy1 = min(tile.size[0], W - x), min(tile.size[1], H - y)
        if cx1 <= cx0 or cy1 <= cy0:
            return
        self.img.alpha_composite(tile.crop((cx0, cy0, cx1, cy1)), dest=(x + cx0, y + cy0))

    def _text_size(self, text, size) -> tuple[float, float]:
        font = _font(round(self.S(size)))
        lines = _clean_text(text).split("\n")
        asc, desc = font.getmetrics()
        return max(font.getlength(ln) for ln in lines) / self.s, (asc + desc) * len(lines) / self.s

    # --- axes ---------------------------------------------------------------------------------
    def _ticks(self, ax: _Axis) -> list[tuple[float, str]]:
        spec = ax.spec
        if spec.get("showticklabels") is False and not spec.get("showgrid") and not spec.get("ticks"):
            return []
        lo, hi = sorted(ax.range)
        tv = spec.get("tickvals")
        if tv is not None and (spec.get("tickmode") in (None, "array")):
            tt = spec.get("ticktext")
            vals = _as_list(tv)
            texts = _as_list(tt) if tt is not None else None
            out = []
            for i, v in enumerate(vals):
                pos = ax.coord(v)
                if not np.isfinite(pos) or pos < lo - 1e-9 or pos > hi + 1e-9:
                    continue
                label = texts[i] if texts is not None and i < len(texts) else (
                    _fmt_number(float(v), 1.0, spec.get("tickformat")) if _is_number(v) else str(v))
                out.append((pos, str(label)))
            return out
        size = float(_get(spec, "tickfont", "size", default=self.base_font))
        length = abs(ax.px1 - ax.px0)
        if ax.is_category:
            cats = ax.categories or []
            idx = [i for i in range(len(cats)) if lo - 1e-9 <= i <= hi + 1e-9]
            if not idx:
                return []
            if ax.letter == "x":
                per = max(self._text_size(cats[i], size)[0] for i in idx) + 8
            else:
                per = size * 1.3
            step = max(1, math.ceil(per / max(length / len(idx), 1e-6)))
            return [(float(i), cats[i]) for i in idx[::step]]
        dtick = spec.get("dtick")
        max_n = _n_ticks(length, 80 if ax.letter == "x" else 40)  # plotly's density
        step = float(dtick) if _is_number(dtick) and dtick > 0 and (hi - lo) / float(dtick) <= 4 * max_n else \
            _nice_step(hi - lo, max_n)
        start = math.ceil((lo - 1e-9 * step) / step) * step
        vals = np.arange(start, hi + step * 1e-9, step)
        return [(float(v), _fmt_number(float(v), step, spec.get("tickformat"))) for v in vals]

    def _axis_partner_box(self, ax: _Axis):
        anchor = ax.spec.get("anchor")
        if anchor and anchor != "free":
            return self._axis_for(anchor)
        suffix = ax.name[5:]
        other = ("y" if ax.letter == "x" else "x") + "axis" + suffix
        return self.axes.get(other)

    def _draw_axis_grid(self, ax: _Axis, ticks):
        spec = ax.spec
        if not spec.get("showgrid"):
            return
        partner = self._axis_partner_box(ax)
        if partner is None:
            return
        color = _rgba(spec.get("gridcolor") or "#eeeeee")
        width = max(1, round(self.S(float(spec.get("gridwidth") or 1))))
        layer, draw = self._layer()
        for pos, _ in ticks:
            p = self.S(float(ax.to_px(pos)))
            if ax.letter == "x":
                draw.line([(p, self.S(partner.lo_px)), (p, self.S(partner.hi_px))], fill=color, width=width)
            else:
                draw.line([(self.S(partner.lo_px), p), (self.S(partner.hi_px), p)], fill=color, width=width)
        self.img.alpha_composite(layer)

    def _draw_axis(self, ax: _Axis, ticks):
        spec = ax.spec
        partner = self._axis_partner_box(ax)
        if partner is None or spec.get("visible") is False:
            return
        side = spec.get("side") or ("bottom" if ax.letter == "x" else "left")
        line_col = _rgba(spec.get("linecolor") or "#444444")
        lw = float(spec.get("linewidth") or 1)
        layer, draw = self._layer()
        if ax.letter == "x":
            base = partner.hi_px if side == "bottom" else partner.lo_px
            out = 1 if side == "bottom" else -1
        else:
            base = partner.lo_px if side == "left" else partner.hi_px
            out = -1 if side == "left" else 1
        if spec.get("showline"):
            if ax.letter == "x":
                draw.line([(self.S(ax.lo_px), self.S(base)), (self.S(ax.hi_px), self.S(base))], fill=line_col,
                          width=max(1, round(self.S(lw))))
            else:
                draw.line([(self.S(base), self.S(ax.lo_px)), (self.S(base), self.S(ax.hi_px))], fill=line_col,
                          width=max(1, round(self.S(lw))))
        tick_kind = spec.get("ticks") or ""
        tlen = float(spec.get("ticklen") if spec.get("ticklen") is not None else 5) if tick_kind else 0.0
        tcol = _rgba(spec.get("tickcolor") or "#444444")
        for pos, _ in ticks:
            p = float(ax.to_px(pos))
            if tick_kind == "outside" or tick_kind == "inside":
                sgn = out if tick_kind == "outside" else -out
                if ax.letter == "x":
                    draw.line([(self.S(p), self.S(base)), (self.S(p), self.S(base + sgn * tlen))], fill=tcol,
                              width=max(1, round(self.s)))
                else:
                    draw.line([(self.S(base), self.S(p)), (self.S(base + sgn * tlen), self.S(p))], fill=tcol,
                              width=max(1, round(self.s)))
        self.img.alpha_composite(layer)
        off = (tlen if tick_kind == "outside" else 0.0) + 3
        size = float(_get(spec, "tickfont", "size", default=self.base_font))
        color = _get(spec, "tickfont", "color", default=self.font_color)
        angle = float(spec.get("tickangle") or 0) if spec.get("tickangle") not in (None, "auto") else 0.0
        extent = 0.0
        if spec.get("showticklabels") is not False:
            for pos, label in ticks:
                p = float(ax.to_px(pos))
                if ax.letter == "x":
                    y = base + out * off
                    if angle:
                        w, h = self._text(p, y, label, size, color, xanchor="center",
                                          yanchor="top" if out > 0 else "bottom", angle=angle)
                    else:
                        w, h = self._text(p, y, label, size, color, yanchor="top" if out > 0 else "bottom")
                    extent = max(extent, h)
                else:
                    x = base + out * off
                    w, h = self._text(x, p, label, size, color, xanchor="right" if out < 0 else "left", angle=angle)
                    extent = max(extent, w)
        title = _clean_text(_get(spec, "title", "text", default=""))
        if title:
            tsize = float(_get(spec, "title", "font", "size", default=self.base_font))
            tcolor = _get(spec, "title", "font", "color", default=self.font_color)
            standoff = float(_get(spec, "title", "standoff", default=6) or 6)
            mid = (ax.px0 + ax.px1) / 2
            dist = off + extent + standoff
            if ax.letter == "x":
                self._text(mid, base + out * dist, title, tsize, tcolor, yanchor="top" if out > 0 else "bottom")
            else:
                self._text(base + out * dist, mid, title, tsize, tcolor, xanchor="right" if out < 0 else "left",
                           angle=-90 if out < 0 else 90)

    # --- shapes and annotations ----------------------------------------------------------------
    def _ref_x(self, ref, v) -> float:
        ref = ref or "paper"
        if ref == "paper":
            return self.paper_x(float(v))
        if ref.endswith(" domain"):
            ax = self._axis_for(ref.split()[0])
            return ax.lo_px + float(v) * (ax.hi_px - ax.lo_px)
        ax = self._axis_for(ref)
        return float(ax.to_px(ax.coord(v)))

    def _ref_y(self, ref, v) -> float:
        ref = ref or "paper"
        if ref == "paper":
            return self.paper_y(float(v))
        if ref.endswith(" domain"):
            ax = self._axis_for(ref.split()[0])
            return ax.hi_px - float(v) * (ax.hi_px - ax.lo_px)
        ax = self._axis_for(ref)
        return float(ax.to_px(ax.coord(v)))

    def _with_defaults(self, items, key: str) -> list[dict]:
        """Items merged over the template's ``shapedefaults``/``annotationdefaults`` (as plotly does)."""
        base = _get(self.lay, "template", "layout", key, default={}) or {}
        if not base:
            return list(items or [])
        out = []
        for it in items or []:
            merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
            for k, v in it.items():
                if isinstance(v, dict) and isinstance(merged.get(k), dict):
                    merged[k].update(v)
                else:
                    merged[k] = v
            out.append(merged)
        return out

    def _draw_shapes(self, layer_name: str):
        shapes = [s for s in self._with_defaults(self.lay.get("shapes"), "shapedefaults")
                  if (s.get("layer") or "above") == layer_name]
        if not shapes:
            return
        layers: dict = {}  # clip box (or None for paper shapes) -> (layer, draw)
        for sh in shapes:
            if sh.get("visible") is False:
                continue
            xr, yr = sh.get("xref") or "paper", sh.get("yref") or "paper"
            clip = None
            if xr != "paper" and yr != "paper" and not xr.endswith("domain") and not yr.endswith("domain"):
                clip = self._clip_box(self._axis_for(xr), self._axis_for(yr))  # plotly clips data shapes
            if clip not in layers:
                layers[clip] = self._layer()
            layer, draw = layers[clip]
            kind = sh.get("type") or "rect"
            try:
                x0 = self._ref_x(sh.get("xref"), sh.get("x0", 0))
                x1 = self._ref_x(sh.get("xref"), sh.get("x1", 0))
                y0 = self._ref_y(sh.get("yref"), sh.get("y0", 0))
                y1 = self._ref_y(sh.get("yref"), sh.get("y1", 0))
            except (TypeError, ValueError):
                continue
            op = float(sh.get("opacity") if sh.get("opacity") is not None else 1.0)
            lw = float(_get(sh, "line", "width", default=2))
            lc = _with_opacity(_rgba(_get(sh, "line", "color", default="#444444")), op) if lw > 0 else None
            fc = sh.get("fillcolor")
            fill = _with_opacity(_rgba(fc), op) if fc else None
            if fill is not None and fill[3] == 0:
                fill = None  # a transparent fill must not erase what the layer already holds
            w = max(1, round(self.S(lw)))
            pts = [self.S(x0), self.S(y0), self.S(x1), self.S(y1)]
            if kind == "line":
                if lc:
                    draw.line([(pts[0], pts[1]), (pts[2], pts[3])], fill=lc, width=w)
            elif kind in ("rect", "circle"):
                box = [min(pts[0], pts[2]), min(pts[1], pts[3]), max(pts[0], pts[2]), max(pts[1], pts[3])]
                half = w / 2 if lc else 0  # plotly strokes centred on the edge
                outer = [box[0] - half, box[1] - half, box[2] + half, box[3] + half]
                if kind == "rect":
                    if fill:
                        draw.rectangle(box, fill=fill)
                    if lc:
                        _stroke_rect(draw, box, lc, self.S(lw))
                else:
                    draw.ellipse(outer, fill=fill, outline=lc, width=w if lc else 0)
        for clip, (layer, _) in layers.items():
            if clip is None:
                self.img.alpha_composite(layer)
            else:
                self._composite_clipped(layer, clip)

    def _draw_annotations(self):
        for an in self._with_defaults(self.lay.get("annotations"), "annotationdefaults"):
            if an.get("visible") is False or not an.get("text"):
                continue
            xref, yref = an.get("xref") or "paper", an.get("yref") or "paper"
            try:
                x = self._ref_x(xref, an.get("x", 0.5))
                y = self._ref_y(yref, an.get("y", 0.5))
            except (TypeError, ValueError):
                continue
            size = float(_get(an, "font", "size", default=self.base_font))
            color = _get(an, "font", "color", default=self.font_color)
            xa, ya = an.get("xanchor") or "auto", an.get("yanchor") or "auto"
            arrow = an.get("showarrow", True) is not False
            if xa == "auto":
                xv = float(an.get("x", 0.5)) if xref == "paper" else 0.5
                side = "left" if xv <= 1 / 3 else "right" if xv >= 2 / 3 else "center"
                xa = "center" if (arrow or xref != "paper") else side
            if ya == "auto":
                yv = float(an.get("y", 0.5)) if yref == "paper" else 0.5
                side = "bottom" if yv <= 1 / 3 else "top" if yv >= 2 / 3 else "middle"
                ya = "middle" if (arrow or yref != "paper") else side
            tx = x + float(an.get("xshift") or 0)
            ty = y - float(an.get("yshift") or 0)
            if arrow:
                ax_, ay_ = float(an.get("ax", -10) or 0), float(an.get("ay", -30) or 0)
                layer, draw = self._layer()
                draw.line([(self.S(x), self.S(y)), (self.S(tx + ax_), self.S(ty + ay_))],
                          fill=_rgba(an.get("arrowcolor") or color), width=max(1, round(self.s)))
                self.img.alpha_composite(layer)
                tx, ty = tx + ax_, ty + ay_
            self._text(tx, ty, an.get("text"), size, color, xanchor=xa, yanchor=ya,
                       angle=float(an.get("textangle") or 0), bg=an.get("bgcolor"),
                       pad=float(an.get("borderpad") if an.get("borderpad") is not None else 1),
                       border=an.get("bordercolor"), border_w=float(an.get("borderwidth") or 0))

    def _draw_title(self):
        title = self.lay.get("title") or {}
        text = title.get("text") if isinstance(title, dict) else title
        if not text:
            return
        size = float(_get(title, "font", "size", default=self.base_font * 1.4))
        color = _get(title, "font", "color", default=self.font_color)
        xref = title.get("xref") or "container"
        xf = title.get("x")
        xf = 0.5 if xf is None else float(xf)
        x = self.paper_x(xf) if xref == "paper" else xf * self.W
        xa = title.get("xanchor") or "auto"
        if xa == "auto":
            xa = "left" if xf < 1 / 3 else "right" if xf > 2 / 3 else "center"
        yf = title.get("y")
        if yf is None or yf == "auto":
            y, ya = self.m["t"] / 2, "middle"
        else:
            if (title.get("yref") or "container") == "container":
                y = (1 - float(yf)) * self.H
            else:
                y = self.paper_y(float(yf))
            ya = title.get("yanchor") or "middle"
            ya = "middle" if ya == "auto" else ya
        self._text(x, y, text, size, color, xanchor=xa, yanchor=ya)

    # --- colour bars ----------------------------------------------------------------------------
    def _colorbars(self) -> list[tuple[dict, list, float, float, bool]]:
        bars = []
        seen_axes = set()
        for tr in self.data:
            t = tr.get("type") or "scatter"
            if t == "heatmap":
                ca = tr.get("coloraxis")
                if ca:
                    if ca in seen_axes:
                        continue
                    seen_axes.add(ca)
                    spec = self.lay.get(ca, {})
                    if spec.get("showscale") is False:
                        continue
                    scale, lo, hi, rev = self._color_info(tr)
                    bars.append((spec.get("colorbar") or {}, scale, lo, hi, rev))
                elif tr.get("showscale") is not False:
                    scale, lo, hi, rev = self._color_info(tr)
                    bars.append((tr.get("colorbar") or {}, scale, lo, hi, rev))
            elif t in ("scatter", "scattergl") and _get(tr, "marker", "showscale"):
                vals = np.asarray(_get(tr, "marker", "color", default=[0]), dtype=np.float64)
                lo = _get(tr, "marker", "cmin", default=float(np.nanmin(vals)))
                hi = _get(tr, "marker", "cmax", default=float(np.nanmax(vals)))
                bars.append((_get(tr, "marker", "colorbar", default={}),
                             _get(tr, "marker", "colorscale", default="viridis"), lo, hi, False))
        return bars

    def _draw_colorbar(self, spec, scale, lo, hi, rev):
        thick = float(spec.get("thickness") or 30)
        length_f = float(spec.get("len") if spec.get("len") is not None else 1.0)
        length = length_f * self.ph if (spec.get("lenmode") or "fraction") == "fraction" else length_f
        xf = float(spec.get("x") if spec.get("x") is not None else 1.02)
        yf = float(spec.get("y") if spec.get("y") is not None else 0.5)
        xpad = float(spec.get("xpad") if spec.get("xpad") is not None else 10)
        ypad = float(spec.get("ypad") if spec.get("ypad") is not None else 10)
        x_left = self.paper_x(xf) + xpad
        if (spec.get("xanchor") or "left") == "center":
            x_left -= thick / 2
        elif spec.get("xanchor") == "right":
            x_left -= thick
        ya = spec.get("yanchor") or "middle"
        yc = self.paper_y(yf)
        top = {"middle": yc - length / 2, "top": yc, "bottom": yc - length}.get(ya, yc - length / 2)
        top, length = top + ypad, length - 2 * ypad  # plotly pads the bar inside its box
        top = max(top, 2.0)
        length = max(4.0, min(length, self.H - top - 2))
        # keep the bar, its ticks and its title on the canvas
        x_left = min(x_left, self.W - thick - 70)
        x0, x1 = self.S(x_left), self.S(x_left + thick)
        y0, y1 = self.S(top), self.S(top + length)
        n = max(2, int(round(y1 - y0)))
        vals = np.linspace(hi, lo, n)
        rgba = cm.sample(scale, vals, lo, hi, reverse=rev)
        col = np.repeat(rgba[:, None, :], max(1, int(round(x1 - x0))), axis=1)
        col[..., 3] = 1.0
        self._blend(col, int(round(x0)), int(round(y0)))
        # ticks
        size = float(_get(spec, "tickfont", "size", default=self.base_font))
        color = _get(spec, "tickfont", "color", default=self.font_color)
        if spec.get("tickvals") is not None:
            tv = _as_list(spec.get("tickvals"))
            tt = _as_list(spec.get("ticktext")) or [_fmt_number(float(v), 1.0, spec.get("tickformat")) for v in tv]
            ticks = [(float(v), str(t)) for v, t in zip(tv, tt) if lo <= float(v) <= hi]
        else:
            step = _nice_step(hi - lo, _n_ticks(length, 70))
            start = math.ceil((lo - 1e-9 * step) / step) * step
            ticks = [(float(v), _fmt_number(float(v), step, spec.get("tickformat")))
                     for v in np.arange(start, hi + 1e-9 * step, step)]
        layer, draw = self._layer()
        label_w = 0.0
        for v, label in ticks:
            yp = top + (hi - v) / (hi - lo) * length if hi > lo else top + length / 2
            draw.line([(x1, self.S(yp)), (x1 + self.S(4), self.S(yp))], fill=_rgba("#444444"),
                      width=max(1, round(self.s)))
        self.img.alpha_composite(layer)
        for v, label in ticks:
            yp = top + (hi - v) / (hi - lo) * length if hi > lo else top + length / 2
            w, _ = self._text(x_left + thick + 7, yp, label, size, color, xanchor="left")
            label_w = max(label_w, w)
        title = _clean_text(_get(spec, "title", "text", default=""))
        if title:
            tsize = float(_get(spec, "title", "font", "size", default=self.base_font))
            tcolor = _get(spec, "title", "font", "color", default=self.font_color)
            if (_get(spec, "title", "side") or "top") == "right":
                self._text(x_left + thick + 10 + label_w + 4, top + length / 2, title, tsize, tcolor,
                           xanchor="left", angle=90)
            else:
                self._text(x_left, top - 4, title, tsize, tcolor, xanchor="left", yanchor="bottom")

    # --- main -----------------------------------------------------------------------------------
    def render(self) -> Image.Image:
        self._setup_axes()
        plot_bg = _rgba(self.lay.get("plot_bgcolor") or "white")
        layer, draw = self._layer()
        for xa, ya in self.pairs:
            draw.rectangle([self.S(xa.lo_px), self.S(ya.lo_px), self.S(xa.hi_px) - 1, self.S(ya.hi_px) - 1],
                           fill=plot_bg)
        self.img.alpha_composite(layer)
        ticks = {name: self._ticks(ax) for name, ax in self.axes.items() if ax.range is not None}
        for name, ax in self.axes.items():
            if name in ticks and any(ax in p for p in self.pairs):
                self._draw_axis_grid(ax, ticks[name])
        self._draw_shapes("below")
        for tr in self.data:
            if tr.get("visible") in (False, "legendonly"):
                continue
            t = tr.get("type") or "scatter"
            if t == "heatmap":
                self._draw_heatmap(tr)
            elif t == "image":
                self._draw_image(tr)
            elif t == "bar":
                self._draw_bar(tr)
            elif t in ("scatter", "scattergl"):
                self._draw_scatter(tr)
        for name, ax in self.axes.items():
            if name in ticks and any(ax in p for p in self.pairs):
                self._draw_axis(ax, ticks[name])
        self._draw_shapes("above")
        for spec, scale, lo, hi, rev in self._colorbars():
            self._draw_colorbar(spec, scale, lo, hi, rev)
        self._draw_annotations()
        self._draw_title()
        return self.img.convert("RGB")


# =============================================================================================
# public API
# =============================================================================================
def render_figure(fig, scale: float = 1.0) -> Image.Image:
    """The figure drawn by the Pillow rasteriser as an RGB ``PIL.Image`` of
    ``(round(width*scale), round(height*scale))`` pixels (plotly's 700 x 450 default size)."""
    return _Renderer(fig, scale).render()


def figure_to_png(fig, scale: float = 1) -> bytes:
    """PNG bytes of the figure, pure Python (Pillow + numpy): no browser, no kaleido."""
    buf = io.BytesIO()
    render_figure(fig, scale).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _slug(text: str) -> str:
    s = re.sub(r"[^0-9A-Za-z]+", "_", str(text)).strip("_").lower()
    return s or "trace"


def _array(values) -> np.ndarray | None:
    if values is None:
        return None
    vals = _as_list(values) if not isinstance(values, np.ndarray) else values
    if isinstance(vals, np.ndarray):
        return vals
    if any(isinstance(v, str) for v in vals):
        return np.array(["" if v is None else str(v) for v in vals])
    return np.array([np.nan if v is None else v for v in vals], dtype=np.float64)


def figure_data(fig, include_images: bool = False) -> dict[str, np.ndarray]:
    """The numbers behind a figure, one array per field, keyed ``"<i>_<name>_<field>"``.

    Heatmaps give ``z`` (and ``x``/``y`` when set explicitly), bars and scatters give
    ``x`` and ``y`` (category names as strings), images give ``image`` when
    ``include_images`` (they are the input, so left out by default).
    """
    out: dict[str, np.ndarray] = {}
    for i, tr in enumerate(fig.data):
        t = tr.type
        key = f"{i}_{_slug(tr.name or t)}"
        if t == "heatmap":
            if tr.z is not None:
                out[f"{key}_z"] = np.asarray(tr.z, dtype=np.float64)
            for f in ("x", "y"):
                v = _array(getattr(tr, f))
                if v is not None:
                    out[f"{key}_{f}"] = v
        elif t == "image":
            if include_images and tr.z is not None:
                out[f"{key}_image"] = np.asarray(tr.z)
        elif t in ("bar", "scatter", "scattergl"):
            for f in ("x", "y"):
                v = _array(getattr(tr, f))
                if v is not None:
                    out[f"{key}_{f}"] = v
    return out


def figure_to_npz(fig, include_images: bool = False) -> bytes:
    """:func:`figure_data` as compressed ``.npz`` bytes (``np.load(io.BytesIO(b))`` reads it back)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **figure_data(fig, include_images))
    return buf.getvalue()


CSV_HEADER = ["key", "dtype", "row", "col", "value"]


def figure_to_csv(fig, include_images: bool = False) -> str:
    """:func:`figure_data` as tidy CSV: ``key,dtype,row,col,value`` (``col`` empty for 1-D arrays).

    Floats are written with ``repr`` (exact round trip, ``nan`` for gaps); read back with
    :func:`data_from_csv`.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for key, arr in figure_data(fig, include_images).items():
        a = np.asarray(arr)
        if a.dtype.kind in "US":
            dtype = "str"
        elif a.dtype.kind in "iub":
            dtype = "int"
        else:
            dtype = "float"
        if a.ndim > 2:
            a = a.reshape(a.shape[0], -1)
        if a.ndim == 1:
            for i, v in enumerate(a.tolist()):
                w.writerow([key, dtype, i, "", repr(float(v)) if dtype == "float" else v])
        else:
            rows, cols = np.indices(a.shape)
            for r, c, v in zip(rows.ravel().tolist(), cols.ravel().tolist(), a.ravel().tolist()):
                w.writerow([key, dtype, r, c, repr(float(v)) if dtype == "float" else v])
    return buf.getvalue()


def data_from_csv(text: str) -> dict[str, np.ndarray]:
    """Read :func:`figure_to_csv` output back into ``{key: array}``."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != CSV_HEADER:
        raise ValueError(f"not a Patchlight figure CSV: expected the header {','.join(CSV_HEADER)}.")
    groups: dict[str, list] = {}
    for key, dtype, r, c, v in rows[1:]:
        groups.setdefault(key, []).append((dtype, int(r), None if c == "" else int(c), v))
    out = {}
    for key, items in groups.items():
        dtype = items[0][0]
        conv = {"float": float, "int": int, "str": str}[dtype]
        if items[0][2] is None:
            arr = np.array([conv(v) for _, _, _, v in sorted(items, key=lambda t: t[1])])
        else:
            nr = max(t[1] for t in items) + 1
            nc = max(t[2] for t in items) + 1
            arr = np.empty((nr, nc), dtype=object)
            for _, r, c, v in items:
                arr[r, c] = conv(v)
            arr = arr.astype({"float": np.float64, "int": np.int64, "str": str}[dtype])
        out[key] = arr
    return out


def overlay_image(image, attn_map, cmap: str = "inferno", alpha: float = 0.6, *, upsample: str = "smooth",
                  zmin: float | None = None, zmax: float | None = None) -> np.ndarray:
    """``(1 - alpha) * image + alpha * colour(map)`` as uint8 ``[H_px, W_px, 3]``.

    The map is upsampled with :func:`viz.maps.upsample_map` when the image is a whole
    number of patches (else resized bilinearly) and coloured with the range
    ``min(0, min) .. max`` unless given — the same rule and colours as
    :func:`viz.attention.attention_overlay_figure`, so file and screen agree.
    """
    img = image_array(image)
    m = float_array(attn_map, 2, "attn_map", "[h, w] over the patch grid")
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha={alpha!r}; expected an opacity between 0 and 1.")
    H, W = img.shape[:2]
    h, w = m.shape
    if H % h == 0 and W % w == 0 and H // h == W // w:
        big = upsample_map(m, H // h, upsample)
    else:
        resample = Image.NEAREST if upsample == "nearest" else Image.BILINEAR
        big = np.asarray(Image.fromarray(m.astype(np.float32), "F").resize((W, H), resample), dtype=np.float64)
    lo = min(0.0, float(m.min())) if zmin is None else float(zmin)
    hi = float(m.max()) if zmax is None else float(zmax)
    if not hi > lo:
        hi = lo + 1.0
    colors = cm.sample(cm.colorscale(cmap), big, lo, hi)[..., :3]
    out = (1.0 - a) * img.astype(np.float64) + a * colors
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def overlay_png(image, attn_map, cmap: str = "inferno", alpha: float = 0.6, *, upsample: str = "smooth",
                zmin: float | None = None, zmax: float | None = None) -> bytes:
    """PNG bytes of :func:`overlay_image` at the image's own size (for ``explain --out FILE.png``)."""
    buf = io.BytesIO()
    Image.fromarray(overlay_image(image, attn_map, cmap, alpha, upsample=upsample, zmin=zmin, zmax=zmax),
                    "RGB").save(buf, format="PNG")
    return buf.getvalue()
