"""Showing a figure: as its dict made once (what caches keep and st.plotly_chart sends), with
Streamlit's colour placeholders made safe, plotly's toolbar settings and the PNG / CSV downloads.
UI glue only; the figures come from viz."""
from __future__ import annotations

import json
import os
import re
import time

import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

import viz
from app_core.figure_json import numbers_as_text, text_engine_available
from app_core.figure_png import figure_png, png_export_available
from model.env import parse_flag


def frozen(fig: go.Figure) -> go.Figure:
    """The figure as a cache keeps it and st.plotly_chart sends it: its JSON, written once, and
    its layout, in an empty shell that ``st.plotly_chart`` accepts.

    st.plotly_chart calls ``to_dict`` and ``plotly.io.to_json`` on every run that shows the
    figure, for every session — a deep copy of every array and a serialisation each time; the
    shell hands back one dict (issue 15: ~10 ms per run for the in-browser overlay of
    dinov2-small) whose JSON :func:`_to_json` returns as written here (0.2-2.3 ms per run and
    figure). Besides the JSON the dict keeps only the layout, the one part st.plotly_chart
    reads (for the figure's width): a cache entry holds each array once, as sent. Streamlit's
    colour placeholders are made safe here (see :func:`_safe_scale`), and on request the maps
    go as JSON numbers (app_core.figure_json). :func:`full` gives the figure back for the
    downloads."""
    if getattr(fig, "_patchlight_spec", None) is not None:
        return fig
    spec = fig.to_dict()
    _safe_colors(spec)
    if numbers_as_text_wanted():
        numbers_as_text(spec)
    sent = _SentSpec(layout=spec["layout"])
    sent.json = _PLOTLY_TO_JSON(spec, validate=False)
    shell = go.Figure()
    shell.to_dict = lambda: sent  # noqa: E731  (an instance attribute: plotly allows existing names)
    shell._patchlight_spec = sent
    return shell


class _SentSpec(dict):
    """A frozen figure's layout, with the whole figure's JSON as sent (written once, by
    :func:`frozen`)."""

    __slots__ = ("json",)


_PLOTLY_TO_JSON = getattr(pio.to_json, "plotly_to_json", pio.to_json)


def _to_json(fig, *args, **kwargs):
    """``plotly.io.to_json``, which st.plotly_chart calls on every run that shows a figure: a
    frozen figure's JSON is the one :func:`frozen` wrote; anything else goes to plotly's own."""
    if type(fig) is _SentSpec and not args and set(kwargs) <= {"validate"}:
        return fig.json
    return _PLOTLY_TO_JSON(fig, *args, **kwargs)


_to_json.plotly_to_json = _PLOTLY_TO_JSON
pio.to_json = _to_json


def numbers_as_text_wanted() -> bool:
    """Maps as JSON numbers (app_core.figure_json): where the websocket is deflated (demo.sh) and
    plotly writes with orjson, unless ``PATCHLIGHT_MAPS_AS_NUMBERS=0`` (demo.sh
    ``--maps-as-base64``). Deflated they are 14-26% fewer bytes than base64 float32; undeflated
    (the local app) they would be more, so base64 stays there. Since attention weights go as
    whole counts (viz._figure.on_wire, base64 either way) they touch fewer figures: at 40
    visitors on 2 cores, 28 KB per interaction on the wire instead of 29, a new query 50 KB
    median either way (p95 71 KB instead of 77), no more server CPU (README, Load, fifth pass)."""
    return (parse_flag(os.environ.get(MAPS_AS_NUMBERS_ENV, "1")) is not False
            and bool(st.get_option("server.enableWebsocketCompression")) and text_engine_available())


MAPS_AS_NUMBERS_ENV = "PATCHLIGHT_MAPS_AS_NUMBERS"


def full(fig: go.Figure) -> go.Figure:
    """A figure with its traces and layout: a frozen one rebuilt from its JSON (for downloads)."""
    spec = getattr(fig, "_patchlight_spec", None)
    return fig if spec is None else go.Figure(json.loads(spec.json), _validate=False)


# Streamlit's plotly frontend rewrites the colours #000001…#000030 in every figure (they are its
# theme placeholders), whatever the `theme` argument; inferno and magma start at #000004, which
# would turn the zero end of every map violet. The same colour written as rgb() is left alone.
_PLACEHOLDER = re.compile(r"#0000([0-3][0-9])")


def _safe_scale(scale):
    if not isinstance(scale, (list, tuple)) or not scale:
        return None
    fixed = [[pos, f"rgb(0,0,{int(m.group(1))})" if isinstance(c, str) and (m := _PLACEHOLDER.fullmatch(c.lower()))
              else c] for pos, c in scale]
    return fixed if fixed != [list(stop) for stop in scale] else None


def _safe_colors(spec) -> None:
    """Rewrite placeholder-looking colorscale stops anywhere in a figure dict (traces, markers,
    colour axes, frames), in place."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "colorscale":
                fixed = _safe_scale(value)
                if fixed:
                    spec[key] = fixed
            elif isinstance(value, (dict, list)):
                _safe_colors(value)
    elif isinstance(spec, list):
        for value in spec:
            _safe_colors(value)


PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"], "scrollZoom": False,
                 "toImageButtonOptions": {"format": "png", "scale": 2}}  # the camera icon: slide-sized PNGs


def show_figure(fig: go.Figure, key: str, file_stem: str, *, on_select=None, downloads: bool = True,
                width="content"):
    """Draw a viz figure as built (its own theme, not Streamlit's) with PNG and CSV downloads.

    The files are made only when a button is pressed (deferred data), so an unused download
    costs nothing on a rerun.
    """
    fig = frozen(fig)
    config = dict(PLOTLY_CONFIG, toImageButtonOptions=dict(PLOTLY_CONFIG["toImageButtonOptions"], filename=file_stem))
    kwargs = dict(theme=None, key=key, config=config, width=width)
    if on_select is not None:
        event = st.plotly_chart(fig, on_select=on_select, selection_mode="points", **kwargs)
    else:
        event = st.plotly_chart(fig, **kwargs)
    if downloads:
        download_row(fig, key, file_stem)
    return event


_PNG_CHECK: dict = {}  # (BROWSER_PATH, PATH) -> (when, answer)


def png_available(ttl_s: float = 60.0) -> bool:
    """figure_png.png_export_available(), asked again when the settings it reads change and at
    most once a minute otherwise: under load its PATH search (a stat per directory, each a GIL
    hand-off) cost ~0.6 ms per figure shown (issue 15)."""
    key = (os.environ.get("BROWSER_PATH"), os.environ.get("PATH"))
    now = time.monotonic()
    when, answer = _PNG_CHECK.get(key, (None, False))
    if when is None or now - when > ttl_s:
        answer = png_export_available()
        _PNG_CHECK.clear()
        _PNG_CHECK[key] = (now, answer)
    return answer


def download_row(fig: go.Figure, key: str, file_stem: str) -> None:
    row = st.container(horizontal=True, gap="small")
    if png_available():  # else the camera icon above the figure is the PNG export
        row.download_button("PNG", data=lambda: figure_png(full(fig)), file_name=f"{file_stem}.png", mime="image/png",
                            key=f"png_{key}", on_click="ignore", icon=":material/download:")
    row.download_button("CSV", data=lambda: viz.figure_to_csv(full(fig)), file_name=f"{file_stem}.csv", mime="text/csv",
                        key=f"csv_{key}", on_click="ignore", icon=":material/download:")
