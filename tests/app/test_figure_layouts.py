"""Every registry figure fits its own width (issue 10, item 6), for the shapes of the built-in
models at both themes: titles wrap within the figure (and within the width the app may squeeze
it to), captions never run into a colour bar, colour bars are labelled without SI prefixes
("70μ"), and a shared colour scale with a percentile top says that its top is saturated
(issue 10, item 8). Sizes are estimated with the theme's fonts (viz.text.text_px); what the
figures really look like was checked on PNGs exported by app_core.figure_png."""

import concurrent.futures
import pickle
import re

import numpy as np
import pytest
from synthetic_traces import synthetic_inputs

import viz
from app_core import figures
from viz import _figure as F
from viz.text import format_number, format_sig, text_px, wrap_text

CASES = [("dinov2", None), ("dinov2", "classroom"), ("fashion", None), ("fashion", "classroom")]
# a written-out number: optional ≥/≤, optional minus, digits with separators, optional ×10ⁿ
NUMBER = re.compile(r"^(?:[≥≤] )?−?[0-9][0-9,]*(?:\.[0-9]+)?(?:×10⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)?$")


@pytest.fixture(scope="module")
def inputs():
    return {kind: synthetic_inputs(kind) for kind in ("dinov2", "fashion", "registers")}


def _view(td, theme):
    # a patch query in row 3, col 3, and the layer/head with the sharpest CLS-sink heads
    return figures.View(layer=0, head=1, query=td.num_prefix_tokens + 3 * td.grid[1] + 3,
                        classroom=theme == "classroom", class_index=9 if td.has_head else None,
                        loss_label=9 if td.has_head else 0)


@pytest.fixture(scope="module")
def built(inputs):
    """(key, figure, theme) of every registry figure for every case, built once."""
    out = []
    for kind, theme in CASES:
        inp = inputs[kind]
        view = _view(inp.trace, theme)
        out += [(f"{kind}-{theme or 'screen'}-{spec.name}", figures.build(spec.name, inp, view), theme)
                for spec in figures.available(inp)]
    return out


def test_every_registry_figure_passes_plotly_validation(built):
    """Some builders assemble their figure from plain dicts without plotly's validation
    (viz._figure.unchecked_figure: they are rebuilt on every click, issue 15). Every registry
    figure, in every theme and upsampling, must still be one plotly accepts property by property."""
    import plotly.graph_objects as go

    for key, fig, _ in built:
        spec = fig.to_dict()
        checked = go.Figure(spec)  # raises ValueError on an unknown property or a bad value
        assert len(checked.data) == len(spec["data"]), key


def test_smooth_overlays_pass_plotly_validation(inputs):
    import plotly.graph_objects as go

    inp = inputs["dinov2"]
    view = figures.replace(_view(inp.trace, None), upsample="smooth")
    for name in ("attention_overlay", "heads_of_layer", "layers_of_head", "explanations"):
        fig = figures.build(name, inp, view)
        assert any(t.type == "scatter" for t in fig.data), name  # the hover markers of a smooth map
        go.Figure(fig.to_dict())


def _colorbars(fig):
    """(colorbar, owner) of every colour bar the figure shows."""
    lay = fig.layout
    out = []
    for name in lay:
        if name.startswith("coloraxis") and lay[name].showscale is not False and lay[name].colorscale:
            out.append(lay[name].colorbar)
    for t in fig.data:
        if t.type == "heatmap" and t.showscale is not False and t.coloraxis is None:
            out.append(t.colorbar)
    return out


def _plot_box(fig):
    m = fig.layout.margin
    return m.l, fig.layout.width - m.r, fig.layout.width - m.l - m.r  # left, right, plot width


def _annotation_x(fig, a):
    """(left, right) in px of a paper-referenced annotation, its widest line measured."""
    left, _, pw = _plot_box(fig)
    w = max(text_px(line, a.font.size or fig.layout.font.size) for line in str(a.text).split("<br>"))
    x = left + a.x * pw
    if a.xanchor == "left":
        return x, x + w
    if a.xanchor == "right":
        return x - w, x
    return x - w / 2, x + w / 2


def test_titles_fit_the_figure_and_a_narrower_column(built):
    for key, fig, theme in built:
        th = viz.resolve_theme(theme)
        title = fig.layout.title
        assert title.xref == "container" and title.x == 0.5, key  # centred on the figure, not the plot area
        room = min(fig.layout.width - 24 * th.scale, th.title_width)
        for line in title.text.split("<br>"):
            assert text_px(line, title.font.size) <= room + 1e-6, (key, line)
        assert not title.text.endswith("…"), (key, title.text)  # wrapped, never cut short, at these shapes


def test_small_multiples_fit_the_page_column_unless_their_text_needs_more(built):
    """Rows of maps (Compare, the randomisation maps) squeezed into a narrower column drift apart
    from their titles and notes (the page keeps the height): such a figure is at most
    FIT_WIDTH_PX wide, or each map is just as wide as its longest title or note line needs."""
    from viz.faithfulness import FIT_WIDTH_PX

    checked = 0
    for key, fig, theme in built:
        if key.endswith("-explanations"):  # one row: squeezed, its maps hang from their titles
            assert all(fig.layout[f"yaxis{i or ''}"].constraintoward == "top"
                       for i in range(len(fig.layout.annotations) + 1) if i != 1), key
        if not key.endswith(("-compare", "-randomisation_maps", "-faithfulness")):
            continue
        checked += 1
        th = viz.resolve_theme(theme)
        _, _, pw = _plot_box(fig)
        tile = (fig.layout.xaxis.domain[1] - fig.layout.xaxis.domain[0]) * pw
        second = fig.to_dict()["layout"].get("xaxis2")
        gap = (second["domain"][0] - fig.layout.xaxis.domain[1]) * pw if second else 0
        words = [re.sub("</?b>", "", a.text) for a in fig.layout.annotations
                 if a.yanchor in ("bottom", "top") and a.xanchor == "center"]
        text_w = max(text_px(line, th.font_size) for w in words for line in w.split("<br>")) + 8
        assert fig.layout.width <= th.px(FIT_WIDTH_PX) + 1 or tile <= text_w + 1, (key, fig.layout.width, tile, text_w)
        assert tile + gap / 2 >= text_w - 1, key  # and the text still fits the map
    assert checked >= 10


def test_randomisation_maps_show_at_most_seven_steps_first_and_last_kept():
    assert figures.shown_steps(7) == list(range(7))
    shown = figures.shown_steps(14)
    assert len(shown) == 7 and shown[0] == 0 and shown[-1] == 13 and shown == sorted(set(shown))


def test_colour_bars_are_written_out_and_fit(built):
    seen = 0
    for key, fig, theme in built:
        for bar in _colorbars(fig):
            seen += 1
            assert bar.tickmode == "array" and len(bar.ticktext) >= 2, key
            assert all(NUMBER.match(t) for t in bar.ticktext), (key, bar.ticktext)  # no "70μ", no "1e-05"
            left, right, pw = _plot_box(fig)
            if bar.orientation == "h":
                # a horizontal bar above the plot (in the top margin), its end labels inside the figure
                assert bar.y > 1 and bar.yanchor == "bottom", key
                first, last = (text_px(bar.ticktext[i], bar.tickfont.size) / 2 for i in (0, -1))
                assert left + bar.x * pw - first >= 0, (key, bar.ticktext)
                assert left + (bar.x + bar.len) * pw + last <= fig.layout.width + 1, (key, bar.ticktext)
                continue
            # the bar, its labels and its vertical title inside the figure
            need = bar.thickness + 6 + max(text_px(t, bar.tickfont.size) for t in bar.ticktext) \
                + bar.title.font.size * 1.4
            assert right + (bar.x - 1) * pw + need <= fig.layout.width + 1, (key, bar.ticktext)
    assert seen > 30


def test_captions_stay_clear_of_colour_bars_and_inside_the_figure(built):
    checked = 0
    for key, fig, theme in built:
        bars = _colorbars(fig)
        _, right, pw = _plot_box(fig)
        bar_left = min((right + (b.x - 1) * pw for b in bars if b.orientation != "h"), default=fig.layout.width)
        for a in fig.layout.annotations or ():
            if a.xref != "paper":
                continue
            checked += 1
            x0, x1 = _annotation_x(fig, a)
            assert x0 >= 0 and x1 <= fig.layout.width, (key, a.text)
            assert x1 <= bar_left - 2, (key, a.text, x1, bar_left)
    assert checked > 20


def test_shared_scales_in_the_registry_say_their_top_is_saturated(inputs):
    """heads_of_layer / layers_of_head / layer_head_grid use views.color_top (99.5th percentile)."""
    inp = inputs["dinov2"]
    view = _view(inp.trace, None).__class__(layer=0, head=0, query=0)  # CLS, layer 0: one patch takes 0.6
    for name in ("heads_of_layer", "layers_of_head", "layer_head_grid"):
        fig = figures.build(name, inp, view)
        bar = fig.layout.coloraxis.colorbar if fig.layout.coloraxis.colorbar.ticktext else fig.data[0].colorbar
        assert bar.ticktext[-1].startswith("≥ "), (name, bar.ticktext)
    heads = figures.build("heads_of_layer", inp, view)
    assert heads.layout.coloraxis.cmax < 0.6 * F.WEIGHT_SCALE  # (in counts of 0.0001) the sharp head saturates; the other heads keep their colours


def test_registry_names_patches_by_patch_index(inputs):
    inp = inputs["registers"]
    td = inp.trace
    view = figures.View(layer=2, head=1, query=td.num_prefix_tokens + 24)  # patch 24 = row 1, col 8
    scores = figures.build("attention_scores", inp, view)
    assert "patch 24 (row 1, col 8)" in scores.layout.title.text.replace("<br>", " ")
    grid = figures.build("patch_grid", inp, view)
    assert grid.layout.annotations[0].text == "0" and "after CLS, REG0, REG1, REG2 and REG3" in \
        grid.layout.title.text.replace("<br>", " ")
    matrix = figures.build("attention_matrix", inp, view)
    assert matrix.data[0].x[5] == "p0 (r0,c0)" and matrix.data[0].x[29] == "p24 (r1,c8)"
    # the clickable overlay: its click targets hover the patch's name and attention, and still carry the token
    overlay = figures.build("attention_overlay", inp, view)
    targets = overlay.data[-1]
    assert targets.name == "click targets"
    assert np.asarray(targets.customdata)[24, :4].tolist() == [29, 24, 1, 8]
    assert targets.hovertemplate.startswith("patch %{customdata[1]} (row %{customdata[2]}, col %{customdata[3]})")
    # the value as the map sends it: a weight as whole counts of 0.0001 (uint16 with the indices)
    heat = next(t for t in overlay.data if t.type == "heatmap")
    scale = heat.meta["z_scale"]
    assert np.asarray(targets.customdata).dtype == np.uint16 and scale == F.WEIGHT_SCALE
    assert f"attention {F.value_format('customdata[4]', scale)}" in targets.hovertemplate
    np.testing.assert_array_equal(np.asarray(targets.customdata)[:, 4], np.ravel(heat.z))


# ---------------------------------------------------------------------------------------------
# the pieces: numbers, colour-bar ticks, wrapping
# ---------------------------------------------------------------------------------------------
def test_numbers_never_use_si_prefixes():
    step = 5e-6
    assert [format_number(v, step) for v in (0, 5e-6, 1e-5, 1.5e-5)] == ["0", "0.000005", "0.00001", "0.000015"]
    assert [format_number(v, 5e-9) for v in (5e-9, 1e-8)] == ["5×10⁻⁹", "10×10⁻⁹"]
    assert format_number(-2.5, 0.5) == "−2.5" and format_number(1200, 100) == "1,200"
    assert format_sig(0.0000162) == "1.62×10⁻⁵" and format_sig(-0.1224) == "−0.122"


@pytest.mark.parametrize("lo, hi, values, first, last", [
    (0.0, 1.6e-5, None, "0", "0.000015"),
    (0.0, 0.08, None, "0", "0.08"),
    (-1.0, 1.0, None, "−1", "1"),
    (0.0, 0.0123, np.array([0.0, 0.6]), "0", "≥ 0.0123"),
    (0.1, 0.9, np.array([0.0, 0.5]), "≤ 0.1", "0.8"),
])
def test_colorbar_ticks(lo, hi, values, first, last):
    bar = F.colorbar(viz.SCREEN, "attention weight", lo, hi, values)
    assert bar["tickmode"] == "array"
    assert bar["ticktext"][0] == first and bar["ticktext"][-1] == last
    assert all(lo - 1e-12 <= v <= hi + 1e-12 for v in bar["tickvals"])
    assert len(set(bar["ticktext"])) == len(bar["ticktext"])


def test_wrap_text_breaks_at_natural_places_and_never_overflows():
    title = "Attention matrix layer 0 head 0 (257×257; 1 prefix + 256 patches)"
    text, lines = wrap_text(title, 19, 600)
    assert lines == 2 and text == "Attention matrix layer 0 head 0<br>(257×257; 1 prefix + 256 patches)"
    long = "How patch 51 (row 3, col 3) attends: q·k/√d → softmax; top 20 of 257 keys (15% of the weight)"
    for width in (300, 450, 600):
        text, lines = wrap_text(long, 19, width)
        assert all(text_px(line, 19) <= width for line in text.split("<br>")) and lines <= 3
    assert wrap_text("short", 19, 600) == ("short", 1)


def test_percent_axes_never_repeat_a_label():
    for top in (0.02, 0.017, 0.3, 1.0):
        ticks = F.percent_ticks(top)
        labels = [f"{100 * k * ticks['dtick']:.{int(ticks['tickformat'][1:-1])}f}%"
                  for k in range(int(top / ticks["dtick"]) + 1)]
        assert len(set(labels)) == len(labels), (top, labels)


# ---------------------------------------------------------------------------------------------
# the in-browser scrubbing figure (issue 15): layers as frames, heads as buttons
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dinov2", "fashion", "registers"])
def test_scrub_figure_frames_per_layer_buttons_per_head(inputs, kind):
    from app_core import views

    inp = inputs[kind]
    td = inp.trace
    L, H = td.L, td.H
    layer, head = L - 1, H - 1
    view = figures.View(layer=layer, head=head, query=td.num_prefix_tokens + 3, opacity=0.5)
    fig = figures.build("attention_scrub", inp, view)
    maps = views.grid_maps(td, view.query)  # [L, H, h, w]
    assert [t.type for t in fig.data] == ["image"] + ["heatmap", "scatter"] * H
    assert fig.data[0].source.startswith("data:image/") and fig.data[0].z is None
    maps_, targets = fig.data[1::2], fig.data[2::2]
    h, w = td.grid
    rows, cols = np.divmod(np.arange(h * w), w)
    # initial state = the view: head `head` visible, the slider at `layer`, the map of (layer, head)
    assert [t.visible for t in maps_] == [k == head for k in range(H)] == [t.visible for t in targets]
    shown = maps_[head]
    # weights as whole counts of 10^-k, k per map: 4, more where its colour scale tops out below
    # 0.01 (the synthetic traces have heads that give the patches < 1e-7: three digits there)
    scales = F.weight_scales(maps, maps.max(axis=(2, 3)))
    assert (scales == F.WEIGHT_SCALE).mean() > 0.5 and set(np.unique(scales)) <= {1} | {10 ** k for k in range(4, 10)}
    assert shown.meta == {"z_scale": scales[layer, head]}
    np.testing.assert_array_equal(shown.z, F.on_wire(maps[layer, head].ravel(), scales[layer, head]))
    # drawn in patch units, whatever width the page gives the figure: patch i at (col, row)
    np.testing.assert_array_equal(shown.x, cols) and np.testing.assert_array_equal(shown.y, rows)
    assert shown.zsmooth is False and shown.opacity == 0.5 and shown.hoverinfo == "skip"
    np.testing.assert_array_equal(targets[head].marker.color, shown.z)
    assert targets[head].marker.opacity <= 0.01 and targets[head].mode == "markers"
    assert {c for _, c in targets[head].marker.colorscale} == {"rgba(0,0,0,0)"}  # the values draw no colour
    assert targets[head].legendgroup == f"layer {layer} head {head}" and targets[head].meta == str(layer)
    slider, menu = fig.layout.sliders[0], fig.layout.updatemenus[0]
    assert slider.active == layer and len(slider.steps) == L and slider.currentvalue.prefix == "layer "
    assert menu.active == head and len(menu.buttons) == H
    # frames: one per layer, each carrying every head's map at that layer
    assert [f.name for f in fig.frames] == [str(l) for l in range(L)]
    for l, frame in enumerate(fig.frames):
        assert list(frame.traces) == list(range(1, 2 * H + 1))
        for k in range(H):
            hm, tg = frame.data[2 * k], frame.data[2 * k + 1]
            assert hm.type == "heatmap" and tg.type == "scatter"
            scale = int(scales[l, k])
            assert hm.meta == {"z_scale": scale}
            assert hm.z.dtype == (np.float32 if scale == 1 else np.uint16 if hm.z.max() < 2 ** 16 else np.uint32)
            np.testing.assert_array_equal(hm.z, F.on_wire(maps[l, k].ravel(), scale))
            np.testing.assert_array_equal(tg.marker.color, hm.z)
            assert hm.zmax == pytest.approx(float(maps[l, k].max()) * scale, rel=1e-6)
            assert max(hm.colorbar.tickvals) > 0.5 * hm.zmax  # ticks in counts too (labelled as weights)
            assert F.value_format("marker.color", scale) in tg.hovertemplate  # counts back as 0.0039
            assert tg.legendgroup == f"layer {l} head {k}" and tg.meta == str(l)
    assert all(list(s.args[0]) == [str(l)] and s.method == "animate" for l, s in enumerate(slider.steps))
    for k, b in enumerate(menu.buttons):
        assert b.method == "restyle"
        assert list(b.args[0]["visible"]) == [True] + [j == k for j in range(H) for _ in range(2)]
    # hover names the patch and gives its value; a click reports point index = patch index
    assert "patch %{pointNumber} (row %{customdata[0]}, col %{customdata[1]})" in targets[0].hovertemplate
    assert np.asarray(targets[0].customdata)[td.grid[1] + 2].tolist() == [1, 2]


@pytest.mark.parametrize("kind", ["dinov2", "registers"])
def test_scrub_figure_passes_plotly_validation(inputs, kind):
    """The scrubbing figure is assembled without plotly's validation (it is rebuilt on every new
    query): every key it holds must still be one plotly accepts, value by value."""
    import plotly.graph_objects as go

    td = inputs[kind].trace
    fig = figures.build("attention_scrub", inputs[kind], figures.View(query=td.num_prefix_tokens + 1, layer=1))
    spec = fig.to_dict()
    checked = go.Figure(spec)  # raises on any unknown property or bad value
    assert checked.to_dict()["data"][2]["legendgroup"] == "layer 1 head 0"
    assert len(checked.frames) == td.L and len(checked.data) == 2 * td.H + 1


def test_plain_figures_are_written_as_plotly_writes_them(inputs):
    """Figures assembled from plain dicts stay dicts until something reads their plotly
    objects (viz._figure.PlainFigure): what they write (to_dict, what the app sends) is what
    plotly writes for the same dicts (arrays as typed arrays; that plotly accepts them property
    by property is the test above); reading them builds the same figure."""
    import json

    import plotly.graph_objects as go

    from viz import _figure

    def as_json(spec):
        return json.dumps(spec, sort_keys=True, default=str)

    built = [(f"{kind}-{theme or 'screen'}-{spec.name}",
              figures.build(spec.name, inputs[kind], _view(inputs[kind].trace, theme)))
             for kind, theme in CASES for spec in figures.available(inputs[kind])]
    plain_figures = [(key, fig) for key, fig in built
                     if isinstance(fig, _figure.PlainFigure) and fig.__dict__["_plain"] is not None]
    names = {key.split("-", 2)[2] for key, _ in plain_figures}
    assert {"attention_scrub", "heads_of_layer", "layers_of_head", "layer_head_grid", "attention_matrix",
            "mass_mask", "explanations"} <= names
    for key, fig in plain_figures:
        dicts = fig.__dict__["_plain"]
        written = fig.to_dict()
        assert fig.__dict__["_plain"] is dicts, key  # writing it built nothing
        assert as_json(written) == as_json(go.Figure(dicts, _validate=False).to_dict()), key  # as plotly writes it
        assert len(fig.data) == len(written["data"]) and fig.__dict__["_plain"] is None, key  # read: built
        assert as_json(fig.to_dict()) == as_json(written), key
    td = inputs["registers"].trace
    fig = figures.build("attention_scrub", inputs["registers"], figures.View(query=td.num_prefix_tokens + 2))
    plain = fig.to_dict()
    assert plain["frames"][0]["data"][0]["z"]["dtype"] in ("u2", "u4", "f4")  # typed arrays, as plotly writes them
    assert [f.name for f in go.Figure(fig).frames] == [f["name"] for f in plain["frames"]]  # a checked copy
    late = _figure.unchecked_figure([{"type": "scatter", "x": [1, 2], "name": None}], {"template": "none"})
    late.update_layout(width=300)  # a change builds the objects first, and is kept
    assert late.to_dict()["layout"]["width"] == 300 and "name" not in late.to_dict()["data"][0]
    assert type(pickle.loads(pickle.dumps(late))) is go.Figure
    shared = [_figure.unchecked_figure([{"type": "scatter", "x": [i]}] * 3, {"template": "none"}) for i in range(200)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # each read by four sessions at once
        counts = list(pool.map(lambda f: len(f.data), [f for f in shared for _ in range(4)]))
    assert counts == [3] * 800
    odd = {"a": np.arange(3, dtype=np.int64), "range": np.arange(2.0), "b": np.zeros((2, 3), ">f4"),
           "c": [np.arange(2.0)], "d": np.zeros(0, np.float32)}
    assert _as_json(_figure._plotly_dict(odd)) == _as_json(_converted(odd))  # the rarer arrays too


def _converted(d: dict) -> dict:
    from _plotly_utils.utils import convert_to_base64

    out = {k: (v.copy() if isinstance(v, np.ndarray) else list(v)) for k, v in d.items()}
    convert_to_base64(out)
    return out


def _as_json(d: dict) -> str:
    import json

    return json.dumps(d, sort_keys=True, default=lambda a: a.tolist())


def test_scrub_figure_data_is_each_heads_map_once(inputs):
    """The CSV/NPZ of the in-browser figure: every head's map at the opening layer with its
    patch columns and rows, not the click targets' copy of it."""
    from app_core import views

    inp = inputs["registers"]
    td = inp.trace
    view = figures.View(query=td.num_prefix_tokens + 2, layer=1, head=1)
    data = viz.figure_data(figures.build("attention_scrub", inp, view))
    maps = views.grid_maps(td, view.query)
    assert sorted(data) == sorted(f"{2 * k + 1}_head_{k}_{c}" for k in range(td.H) for c in "xyz")
    for k in range(td.H):
        # to the counts' precision (four decimals, more for a dim map), or three significant digits
        np.testing.assert_allclose(data[f"{2 * k + 1}_head_{k}_z"], maps[1, k].ravel(), rtol=5e-3,
                                   atol=0.5 / F.weight_scale(maps[1, k]) if F.weight_scale(maps[1, k]) > 1 else 0)
    assert data["1_head_0_x"].tolist() == list(range(td.grid[1])) * td.grid[0]


def test_scrub_click_reports_token_layer_and_head(inputs):
    from app_core import clicks

    td = inputs["registers"].trace
    point = {"point_index": 24, "curve_number": 2, "legendgroup": "layer 2 head 1", "x": 8, "y": 1}
    assert clicks.scrub_from_points([point], td) == (td.num_prefix_tokens + 24, 2, 1)
    assert clicks.scrub_from_points([dict(point, legendgroup="")], td) == (td.num_prefix_tokens + 24, None, None)
    assert clicks.scrub_from_points([dict(point, legendgroup=f"layer {td.L} head 0")], td)[1] is None
    assert clicks.scrub_from_points([dict(point, point_index=td.N)], td) is None


@pytest.mark.parametrize("as_numbers", [False, True])
def test_scrub_figure_is_small_on_the_wire(inputs, as_numbers):
    """One figure per (image, query) holds every layer and head, each map twice side by side (the
    heatmap and its click targets' values, issue 15): deflated as the demo's websocket deflates
    (scripts/serve.py: level 1, 32 KB window) the second copy costs next to nothing. No float64."""
    import json
    import zlib

    import plotly.io as pio

    from app_core import views
    from app_core.figure_json import numbers_as_text

    inp = inputs["dinov2"]
    td = inp.trace
    spec = figures.build("attention_scrub", inp, figures.View(query=td.num_prefix_tokens)).to_dict()
    maps = views.grid_maps(td, td.num_prefix_tokens)
    plain = F.weight_scales(maps, maps.max(axis=(2, 3))) == 1  # the synthetic heads that give patches < 1e-7
    if as_numbers:  # weights go as whole counts (uint16), base64 either way; the rest as numbers
        assert numbers_as_text(spec) == 2 * (plain.sum() + plain[0].sum())
    text = pio.to_json(spec, validate=False)
    assert '"f8"' not in text

    def wire(s: str) -> int:
        z = zlib.compressobj(1, zlib.DEFLATED, -15, 8)
        return len(z.compress(s.encode()) + z.flush(zlib.Z_SYNC_FLUSH))

    once = json.loads(text)
    for t in once["data"] + [t for f in once["frames"] for t in f["data"]]:
        if t["type"] == "scatter":
            t.pop("marker", None)
    values = td.L * td.H * td.N * 2 * 4 / 3  # uint16 in base64
    assert len(text) > 1.8 * values  # the payload holds the maps twice ...
    assert wire(text) < 1.15 * wire(json.dumps(once)), (wire(text), wire(json.dumps(once)))  # ... the wire once
