"""app_core.figure_json: maps rounded to what their hover shows go to a deflated websocket as
JSON numbers; every other array stays base64 (issue 15)."""
from __future__ import annotations

import json
import zlib

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

import viz
from app_core.figure_json import _decoded, numbers_as_text, text_engine_available
from viz._figure import shown

RNG = np.random.default_rng(3)


def _maps(*shape) -> np.ndarray:
    """Softmax-like attention: most weights tiny, a few large."""
    return RNG.dirichlet(np.full(shape[-1], 0.1), shape[:-1]).astype(np.float32)


def _deflated(text: str) -> int:
    """Bytes after permessage-deflate as the demo's websocket sets it up (scripts/serve.py: zlib
    level 1, 32 KB window, memLevel 8)."""
    c = zlib.compressobj(1, zlib.DEFLATED, -15, 8)
    return len(c.compress(text.encode()) + c.flush())


def test_orjson_is_plotlys_engine_here():
    """requirements.txt installs orjson; without it the app keeps base64 (figure_json's docstring)."""
    assert text_engine_available()


def test_shown_arrays_become_numbers_and_exact_ones_stay_base64():
    grid = shown(np.where(RNG.random((5, 7)) < 0.2, np.nan, _maps(5, 7)))  # NaN = a separator
    exact = _maps(1, 9)[0]  # not rounded: stays as it is
    fig = go.Figure([go.Heatmap(z=grid, customdata=np.arange(35, dtype=np.uint8).reshape(5, 7)),
                     go.Scatter(x=exact, y=exact, marker={"color": shown(exact)})],
                    frames=[go.Frame(data=[go.Scatter(marker={"color": shown(_maps(1, 9)[0])})])])
    spec = fig.to_dict()
    assert numbers_as_text(spec) == 3  # the heatmap, the marker colours and the frame's colours
    z = spec["data"][0]["z"]
    assert isinstance(z, np.ndarray) and z.shape == (5, 7)
    np.testing.assert_array_equal(z, grid)
    assert isinstance(spec["data"][0]["customdata"], dict)  # integers stay base64
    assert isinstance(spec["data"][1]["x"], dict) and spec["data"][1]["x"]["dtype"] == "f4"
    assert isinstance(spec["frames"][0]["data"][0]["marker"]["color"], np.ndarray)

    sent = json.loads(pio.to_json(spec, validate=False))
    back = np.array([[np.nan if v is None else v for v in row] for row in sent["data"][0]["z"]], dtype=np.float32)
    np.testing.assert_array_equal(back, grid)  # every value, and the separators as null
    text = pio.to_json(spec, validate=False)
    assert "e-" in text or "0.0" in text  # written as decimals
    first = format(float(grid[np.isfinite(grid)][0]), ".3g")
    assert first.replace("e-0", "e-") in text  # the shortest form: as the hover prints it
    # the base64 array decodes to the original values
    assert np.array_equal(_decoded(spec["data"][1]["x"]), exact)


def test_a_scrubbing_figure_sends_weights_as_counts():
    """The in-browser figure of one query (every layer x head): its maps (and the click targets'
    copies of them) go as whole counts of 0.0001 (viz._figure.on_wire), base64 either way, and
    deflated the whole figure is well under half of what its maps alone cost as three-digit
    JSON numbers (the previous way: the bytes a new query costs, issue 15)."""
    L, H, h, w = 12, 6, 16, 16  # dinov2-small's shape
    img = np.full((128, 128, 3), 120, dtype=np.uint8)  # a flat photo: the maps are the bytes
    logits = RNG.normal(0.0, 2.5, (L, H, h * w))  # softmax of logits with a real ViT's spread
    maps = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    fig = viz.attention_scrub_figure(img, maps.reshape(L, H, h, w), layer=1, head=2, query=5)
    spec = fig.to_dict()
    as_base64 = pio.to_json(spec, validate=False)
    assert numbers_as_text(spec) == 0  # integers stay base64
    assert pio.to_json(spec, validate=False) == as_base64
    assert json.loads(as_base64)["frames"][0]["data"][0]["z"]["dtype"] == "u2"
    three_digits = json.dumps([shown(m).tolist() for m in maps.reshape(-1, h * w)] * 2)  # each map twice
    assert _deflated(as_base64) < 0.5 * _deflated(three_digits), (_deflated(as_base64), _deflated(three_digits))


def test_frozen_figures_use_numbers_only_where_wanted(monkeypatch):
    from app_pages import charts

    img = RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    relevance = RNG.normal(size=(4, 4)).astype(np.float32)  # not weights: three significant digits
    fig = viz.attention_overlay_figure(img, relevance, style=viz.MapStyle(upsample="nearest"))
    monkeypatch.setattr(charts, "numbers_as_text_wanted", lambda: False)
    assert isinstance(json.loads(charts.frozen(fig).to_dict().json)["data"][1]["z"], dict)  # base64
    monkeypatch.setattr(charts, "numbers_as_text_wanted", lambda: True)
    shell = charts.frozen(fig)
    z = json.loads(shell.to_dict().json)["data"][1]["z"]
    assert isinstance(z, list)
    np.testing.assert_array_equal(np.asarray(z, dtype=np.float32), shown(fig.data[1].z))
    assert len(charts.full(shell).data) == len(fig.data)  # downloads still get the figure
    assert viz.figure_to_csv(charts.full(shell))
    weights = viz.attention_overlay_figure(img, _maps(4, 4), style=viz.MapStyle(upsample="nearest"))
    assert json.loads(charts.frozen(weights).to_dict().json)["data"][1]["z"]["dtype"] == "u2"  # counts


def test_a_frozen_figure_is_serialised_once(monkeypatch):
    """st.plotly_chart calls plotly.io.to_json on every run that shows a figure; a frozen one's
    JSON was written once, identical to what plotly writes, and anything else is plotly's."""
    from app_pages import charts

    img = RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    fig = viz.attention_overlay_figure(img, _maps(4, 4))
    spec = charts.frozen(fig).to_dict()
    plain = fig.to_dict()
    charts._safe_colors(plain)
    assert spec.json == pio.to_json(plain, validate=False)  # what plotly writes for the figure
    calls = []

    def counted(fig, *args, **kwargs):
        calls.append(fig)
        return "{}"

    monkeypatch.setattr(charts, "_PLOTLY_TO_JSON", counted)
    assert pio.to_json(spec, validate=False) is spec.json and not calls
    assert pio.to_json({"data": []}, validate=False) == "{}" and len(calls) == 1


def test_maps_go_as_numbers_where_deflated_unless_told_not_to(monkeypatch):
    from app_pages import charts

    monkeypatch.delenv(charts.MAPS_AS_NUMBERS_ENV, raising=False)
    assert not charts.numbers_as_text_wanted()  # the tests' Streamlit does not deflate its websocket
    monkeypatch.setattr(charts.st, "get_option", lambda name: name == "server.enableWebsocketCompression")
    assert charts.numbers_as_text_wanted()  # deflated (demo.sh): numbers by default
    monkeypatch.setenv(charts.MAPS_AS_NUMBERS_ENV, "0")  # demo.sh --maps-as-base64
    assert not charts.numbers_as_text_wanted()
    monkeypatch.setenv(charts.MAPS_AS_NUMBERS_ENV, "1")
    assert charts.numbers_as_text_wanted()
