"""Colormaps as data and the one rule that turns values into colours (numpy and Pillow only).

The named scales the app offers are stored as their plotly colorscale stops in
``colormaps.json`` (written from ``plotly.colors`` by ``python -m viz.colormaps --write``; a
test keeps them equal), so the command line can colour a map without importing plotly, and
the figures (``viz.colormaps``) use the very same stops. Values map to colours by linear
interpolation in RGB between stops — the rule plotly.js uses for heatmap bricks — so an
overlay pixel has the colour the browser shows for the same value.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import ImageColor

SEQUENTIAL = ("viridis", "inferno", "magma", "plasma", "cividis", "gray")
DIVERGING = ("balance", "rdbu_r", "curl", "delta")
DATA = Path(__file__).with_name("colormaps.json")


@lru_cache(maxsize=1)
def named_scales() -> dict[str, list[list]]:
    """{name: [[position, colour], …]} of the stored scales (lower-case names, not reversed)."""
    return {name: [[float(p), c] for p, c in stops] for name, stops in json.loads(DATA.read_text()).items()}


_RGBA = re.compile(r"^rgba?\(\s*([^)]*)\)$", re.IGNORECASE)


def parse_color(color) -> tuple[int, int, int, float]:
    """Any colour plotly accepts in these figures -> ``(r, g, b, alpha)``; alpha in [0, 1].

    Handles ``#rgb``, ``#rrggbb``, ``rgb(r,g,b)``, ``rgba(r,g,b,a)`` with CSS alpha
    (0..1), CSS names and ``(r, g, b)`` tuples with 0..255 or 0..1 components.
    """
    if color is None:
        raise ValueError("colour is None; expected a CSS colour string such as '#ff0000'")
    if isinstance(color, (tuple, list, np.ndarray)):
        vals = [float(v) for v in color]
        if len(vals) not in (3, 4):
            raise ValueError(f"colour tuple {color!r} has {len(vals)} components; expected 3 (RGB) or 4 (RGBA)")
        if max(vals[:3]) <= 1.0:
            vals[:3] = [v * 255.0 for v in vals[:3]]
        a = vals[3] if len(vals) == 4 else 1.0
        return int(round(vals[0])), int(round(vals[1])), int(round(vals[2])), float(a)
    text = str(color).strip()
    m = _RGBA.match(text)
    if m:
        parts = [p.strip() for p in m.group(1).split(",")]
        if len(parts) not in (3, 4):
            raise ValueError(f"colour {color!r}: expected rgb(r, g, b) or rgba(r, g, b, a)")

        def channel(p: str) -> int:
            return int(round(float(p[:-1]) * 2.55)) if p.endswith("%") else int(round(float(p)))

        a = float(parts[3]) if len(parts) == 4 else 1.0
        return channel(parts[0]), channel(parts[1]), channel(parts[2]), a
    if text.lower() == "transparent":
        return 0, 0, 0, 0.0
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError as err:
        raise ValueError(
            f"unknown colour {color!r}; expected '#rrggbb', 'rgb(r,g,b)', 'rgba(r,g,b,a)' or a CSS name"
        ) from err
    if len(rgb) == 4:
        return rgb[0], rgb[1], rgb[2], rgb[3] / 255.0
    return rgb[0], rgb[1], rgb[2], 1.0


def colorscale(name_or_scale) -> list[list]:
    """A colorscale ``[[pos, colour], …]`` from a stored name (``_r`` reverses it) or an
    explicit list of stops; ValueError names the stored scales for anything else."""
    if isinstance(name_or_scale, str):
        name = name_or_scale.strip().lower()
        reverse = name.endswith("_r")
        stops = named_scales().get(name[:-2] if reverse else name)
        if stops is None:
            raise ValueError(f"unknown colormap {name_or_scale!r}; expected one of {', '.join(SEQUENTIAL + DIVERGING)} "
                             "(add '_r' to reverse)")
        return [[round(1.0 - p, 12), c] for p, c in reversed(stops)] if reverse else [list(s) for s in stops]
    try:
        scale = [[float(p), c] for p, c in name_or_scale]
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"colorscale {name_or_scale!r} is not a name or a list of [position, colour] pairs"
        ) from err
    if len(scale) < 2 or scale[0][0] != 0.0 or scale[-1][0] != 1.0:
        raise ValueError("a colorscale needs at least 2 stops, the first at 0 and the last at 1")
    return scale


def scale_stops(name_or_scale) -> tuple[np.ndarray, np.ndarray]:
    """Stop positions ``[n]`` and RGBA stop colours ``[n, 4]`` (floats, 0..255 and alpha 0..1)."""
    scale = colorscale(name_or_scale)
    pos = np.array([p for p, _ in scale], dtype=np.float64)
    cols = np.array([parse_color(c) for _, c in scale], dtype=np.float64)
    return pos, cols


def sample(name_or_scale, values, zmin: float, zmax: float, reverse: bool = False) -> np.ndarray:
    """Colours of ``values`` under the colormap with range ``[zmin, zmax]`` -> RGBA float [..., 4].

    Values are clipped to the range; NaN values get alpha 0 (transparent), as plotly
    leaves NaN bricks empty. RGB is 0..255 (float), alpha 0..1.
    """
    pos, cols = scale_stops(name_or_scale)
    if reverse:
        pos = 1.0 - pos[::-1]
        cols = cols[::-1]
    v = np.asarray(values, dtype=np.float64)
    span = float(zmax) - float(zmin)
    t = (v - float(zmin)) / span if span > 0 else np.full_like(v, 0.5)
    nan = ~np.isfinite(t)
    t = np.clip(np.where(nan, 0.0, t), 0.0, 1.0)
    out = np.empty(v.shape + (4,), dtype=np.float64)
    for ch in range(4):
        out[..., ch] = np.interp(t, pos, cols[:, ch])
    out[..., 3] = np.where(nan, 0.0, out[..., 3])
    return out


def to_rgb8(name_or_scale, values, zmin: float, zmax: float) -> np.ndarray:
    """``sample`` rounded to uint8 RGB ``[..., 3]`` (NaN shown black): the colours of an overlay PNG."""
    rgba = sample(name_or_scale, values, zmin, zmax)
    return np.clip(np.rint(rgba[..., :3]), 0, 255).astype(np.uint8)


def lut(name_or_scale, n: int = 256) -> np.ndarray:
    """A ``[n, 3]`` uint8 lookup table of the colormap, evenly spaced from 0 to 1."""
    return to_rgb8(name_or_scale, np.linspace(0.0, 1.0, n), 0.0, 1.0)
