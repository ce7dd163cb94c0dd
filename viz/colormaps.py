"""Colormaps for the figures: the stored scales and the colouring rule of
:mod:`model.colormaps` (one implementation, shared with the command line's PNG), plus any
other plotly colorscale name.

Perceptually uniform choices (Smith & van der Walt's viridis family, cividis for colour
vision deficiency) are the sequential defaults; ``balance`` (cmocean) is the diverging
default for signed values such as cosine similarity or embedding entries.
"""

from __future__ import annotations

from model import colormaps as stored
from model.colormaps import DIVERGING, SEQUENTIAL, parse_color  # noqa: F401  (viz's colour helpers)


def colorscale(name_or_scale) -> list[list]:
    """A plotly colorscale ``[[pos, 'rgb(...)'], ...]``: a stored scale, an explicit list of
    stops, or any other plotly colorscale name (``_r`` reverses)."""
    try:
        return stored.colorscale(name_or_scale)
    except ValueError:
        if not isinstance(name_or_scale, str):
            raise
    import plotly.colors as pc

    try:
        return [[float(p), c] for p, c in pc.get_colorscale(name_or_scale)]
    except Exception as err:  # plotly raises its own PlotlyError type
        raise ValueError(
            f"unknown colormap {name_or_scale!r}; expected a plotly colorscale name such as "
            f"{', '.join(SEQUENTIAL + DIVERGING)} (add '_r' to reverse)"
        ) from err


def scale_stops(name_or_scale):
    return stored.scale_stops(colorscale(name_or_scale))


def sample(name_or_scale, values, zmin: float, zmax: float, reverse: bool = False):
    return stored.sample(colorscale(name_or_scale), values, zmin, zmax, reverse)


def to_rgb8(name_or_scale, values, zmin: float, zmax: float):
    return stored.to_rgb8(colorscale(name_or_scale), values, zmin, zmax)


def lut(name_or_scale, n: int = 256):
    return stored.lut(colorscale(name_or_scale), n)


def write_stored_scales() -> None:
    """Store plotly's stops of the scales the app offers in model/colormaps.json, so that the
    command line colours maps exactly as the figures do without importing plotly. Run
    ``python -m viz.colormaps --write`` when plotly's scales change (a test compares them)."""
    import json

    import plotly.colors as pc

    names = ("viridis", "inferno", "magma", "plasma", "cividis", "gray", "balance", "rdbu", "curl", "delta")
    table = {n: [[float(p), c] for p, c in pc.get_colorscale(n)] for n in names}
    stored.DATA.write_text(json.dumps(table, indent=0) + "\n")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        write_stored_scales()
        print(f"wrote {stored.DATA}")
    else:
        print("usage: python -m viz.colormaps --write", file=sys.stderr)
        sys.exit(2)
