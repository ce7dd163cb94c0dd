"""Figures on the wire: maps as JSON numbers where the websocket is deflated (issue 15).

plotly writes numpy arrays as base64 typed arrays (``{"dtype": "f4", "bdata": …}``). A map
rounded to the digits its hover prints (``viz._figure.shown``) is shorter as the numbers
themselves: "0.00697" deflates to ~2.4 bytes a value, base64 float32 to ~3.6, and a new query's
maps are most of what it sends. Undeflated the text is the longer one (~8.7 bytes a value
against 5.3), so the app asks for it only where the websocket is deflated (scripts/demo.sh;
``--maps-as-base64`` turns it off: app_pages.charts.numbers_as_text_wanted), and only with
orjson, the JSON engine plotly uses when it is installed: it writes a float32 as its shortest
decimal and NaN as null, in C (a 20,000-value map in ~1 ms, once per figure:
app_pages.charts.frozen; the standard json engine would write each float32 with 17 digits).

Maps of attention weights no longer come this way: they are whole counts of 0.0001
(``viz._figure.on_wire``), integers that stay base64 (~0.9 bytes a value deflated). Float32
arrays of whole numbers (the layer × head grid's counts, whose NaN gaps need float32) are as
short as text, so they go as numbers too.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from viz._figure import shown
from viz.figure_data import typed_array

__all__ = ["numbers_as_text", "text_engine_available"]


def text_engine_available() -> bool:
    """Whether plotly writes figures with orjson (its "auto" engine picks it when installed)."""
    import plotly.io as pio

    engine = pio.json.config.default_engine
    return engine in ("auto", "orjson") and importlib.util.find_spec("orjson") is not None


def _decoded(typed: dict) -> np.ndarray | None:
    """The float32 array of a base64 typed-array dict, or None for any other dict."""
    if typed.get("dtype") != "f4" or set(typed) - {"dtype", "bdata", "shape"}:
        return None
    return typed_array(typed)


def _float32_arrays(spec, found: list) -> list:
    """(container, key, values) of every base64 float32 array in the figure dict ``spec``."""
    items = spec.items() if isinstance(spec, dict) else enumerate(spec) if isinstance(spec, list) else ()
    for key, value in items:
        if isinstance(value, dict):
            values = _decoded(value)
            if values is None:
                _float32_arrays(value, found)
            else:
                found.append((spec, key, values))
        elif isinstance(value, list):
            _float32_arrays(value, found)
    return found


CHECKED_PER_ARRAY = 32  # values of each array that must be as `shown` leaves them


def numbers_as_text(spec) -> int:
    """Replace in place, anywhere in the figure dict ``spec`` (traces, frames, layout), each
    base64 float32 array of values as ``shown`` leaves them by that numpy array, which plotly's
    orjson engine writes as JSON numbers. Other arrays (exact values, integers) stay base64.
    Returns how many arrays were replaced.

    Up to 32 values of each array, spread over it, are checked, all arrays in one ``shown``
    call (checking every value cost ~2 ms for the T×T matrix, one call per array ~3 ms for the
    in-browser figure's 78). The check only decides the size: orjson writes any float32 as its
    shortest exact decimal, so an array taken for a rounded one is still sent exactly."""
    found = _float32_arrays(spec, [])
    if not found:
        return 0
    picks = [values.ravel()[:: max(1, values.size // CHECKED_PER_ARRAY)][:CHECKED_PER_ARRAY]
             for _, _, values in found]
    flat = np.concatenate(picks)
    # whole numbers (maps of weights as counts with NaN gaps: viz._figure.on_wire) are as short
    same = (shown(flat) == flat) | np.isnan(flat) | ((flat == np.rint(flat)) & (np.abs(flat) < 2 ** 24))
    ends = np.cumsum([pick.size for pick in picks])
    count = 0
    for (container, key, values), start, end in zip(found, np.r_[0, ends[:-1]], ends):
        if same[start:end].all():
            container[key] = values
            count += 1
    return count
