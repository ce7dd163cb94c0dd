"""viz.attention: overlays, small multiples on one colour scale, the L x H grid, the T x T matrix;
viz.specs: the TokenLayout naming rule and MapStyle's checks."""

import time

import numpy as np
import pytest

import viz
from viz import MapStyle, TokenLayout
from viz._figure import WEIGHT_SCALE as W
from viz._figure import shown
from viz.maps import tile_maps, untile, upsample_map

RNG = np.random.default_rng(2)
IMG = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)  # 4 x 6 patches of 8 px


def counts(values) -> np.ndarray:
    """Attention weights as the figures send them: whole counts of 0.0001 (NaN gaps kept)."""
    return np.clip(np.rint(np.asarray(values, dtype=np.float64) * W), 0, W - 1)


def _axes(fig, letter):
    return [k for k in fig.layout.to_plotly_json() if k.startswith(letter + "axis")]


def test_shown_values_print_as_the_exact_values_do():
    """Maps travel rounded to the three significant digits a hover prints (viz._figure.shown):
    what the hover prints is what it would print for the exact value, the colour moves by < 0.5%,
    and each value is the float32 nearest its 3-digit decimal, so its shortest form is that
    decimal (what app_core.figure_json writes as a JSON number)."""
    rng = np.random.default_rng(7)
    # softmax-like weights over many decades (float32 subnormals too), negative relevance, edges
    exact = np.concatenate([rng.dirichlet(np.full(257, 0.05), 200).ravel(),
                            -rng.random(2000) * 10.0 ** rng.uniform(-20, 3, 2000),
                            np.array([0.1235, 0.12349999, 9.995e-5, 0.9995, 1.0, 0.0, 3e-39, 4e-44])]).astype(np.float32)
    got = shown(exact)
    assert got.dtype == np.float32 and got.shape == exact.shape
    assert [format(float(x), ".3g") for x in got] == [format(float(x), ".3g") for x in exact]
    normal = np.abs(exact) >= np.finfo(np.float32).tiny
    assert normal.sum() > 40_000 and ((exact != 0) & ~normal).sum() > 100
    np.testing.assert_array_less(np.abs(got[normal] - exact[normal]), 0.005 * np.abs(exact[normal]))
    shortest = [np.format_float_scientific(x, unique=True) for x in got[normal]]  # e.g. "6.97e-03"
    assert max(len(t.split("e")[0].lstrip("-").replace(".", "")) for t in shortest) <= 3
    special = shown(np.array([np.nan, np.inf, -np.inf, 0.0]))
    assert np.isnan(special[0]) and list(special[1:]) == [np.inf, -np.inf, 0.0]


def test_upsample_nearest_and_smooth():
    m = RNG.random((3, 4))
    near = upsample_map(m, 5)
    assert near.shape == (15, 20)
    np.testing.assert_array_equal(near[5:10, 10:15], m[1, 2])
    assert upsample_map(m, 4, "smooth").shape == (12, 16)
    np.testing.assert_allclose(upsample_map(np.full((3, 4), 0.25), 4, "smooth"), 0.25)
    # half-pixel alignment, clamped at the border (torch bilinear, align_corners=False)
    x = upsample_map(np.array([[0.0, 1.0]]), 2, "smooth")[0]
    np.testing.assert_allclose(x, [0.0, 0.25, 0.75, 1.0])
    # bilinear is separable: an outer product upsamples to the outer product of the rows
    a, b = RNG.random(3), RNG.random(4)
    up_a = upsample_map(a[:, None], 4, "smooth")[:, 0]
    up_b = upsample_map(b[None, :], 4, "smooth")[0]
    np.testing.assert_allclose(upsample_map(np.outer(a, b), 4, "smooth"), np.outer(up_a, up_b))
    with pytest.raises(ValueError, match="upsample"):
        upsample_map(m, 4, "cubic")


def test_overlay_nearest_data_outline_and_alpha():
    m = RNG.random((4, 6))
    q = 1 + 2 * 6 + 3  # patch row 2, col 3
    fig = viz.attention_overlay_figure(IMG, m, query=q, style=MapStyle(opacity=0.4))
    assert [t.type for t in fig.data] == ["image", "heatmap"]
    heat = fig.data[1]
    # attention weights on the wire as whole counts of 0.0001 (viz._figure.on_wire), said in meta
    np.testing.assert_array_equal(heat.z, counts(m))
    assert heat.z.dtype == np.uint16 and heat.meta == {"z_scale": W}
    assert "attention 0.%{z:04d}" in heat.hovertemplate
    np.testing.assert_allclose(viz.figure_data(fig)["1_attention_z"], m, rtol=0, atol=0.5e-4)
    assert fig.data[0].z is None and fig.data[0].source.startswith("data:image/")  # the photo, compressed
    assert viz.image_pixels(fig.data[0]).shape == IMG.shape
    assert (heat.x0, heat.dx, heat.y0, heat.dy) == (3.5, 8, 3.5, 8)
    assert heat.opacity == 0.4
    assert (heat.zmin, heat.zmax) == (0.0, pytest.approx(m.max() * W))
    assert heat.colorbar.title.text == "attention weight"
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert rects and all((s.x0, s.y0, s.x1, s.y1) == (23.5, 15.5, 31.5, 23.5) for s in rects)
    assert "patch 15 (row 2, col 3)" in fig.layout.title.text  # patch index 2*6 + 3, not token 16
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]
    # a prefix query is not a patch: no outline
    assert len(viz.attention_overlay_figure(IMG, m, query=0).layout.shapes) == 0


def test_overlay_smooth_is_documented_upsampling():
    m = RNG.random((4, 6))
    fig = viz.attention_overlay_figure(IMG, m, style=MapStyle(upsample="smooth", zmin=0.1, zmax=0.9,
                                                               colormap="magma"))
    np.testing.assert_array_equal(fig.data[1].z, counts(upsample_map(m, 8, "smooth")))
    assert (fig.data[1].zmin, fig.data[1].zmax) == (pytest.approx(0.1 * W), pytest.approx(0.9 * W))
    # the smooth map has no hover of its own; one marker per patch names it and gives its value
    assert fig.data[1].hoverinfo == "skip"
    points = fig.data[2]
    assert points.type == "scatter" and len(points.x) == 24
    np.testing.assert_array_equal(points.customdata[:, 3], counts(m.ravel()))
    assert "0.%{customdata[3]:04d}" in points.hovertemplate
    assert points.customdata[13, :3].tolist() == [13, 2, 1]  # patch 13 = row 2, col 1
    assert "patch %{customdata[0]} (row %{customdata[1]}, col %{customdata[2]})" in points.hovertemplate


@pytest.mark.parametrize("kwargs, match", [
    (dict(attn_map=np.zeros((5, 6))), "not a 5x6 grid"),
    (dict(attn_map=np.zeros((1, 4, 6))), "batch"),
    (dict(attn_map=np.zeros(24)), "reshape"),
    (dict(attn_map=np.zeros((4, 6)), query=99), "out of range"),
    (dict(attn_map=np.zeros((4, 6)), tokens=TokenLayout(grid=(3, 8))), "tokens.grid"),
    (dict(attn_map=np.zeros((4, 6)), style={"opacity": 0.5}), "viz.MapStyle"),
    (dict(attn_map=np.full((4, 6), np.nan)), "NaN"),
])
def test_overlay_errors_name_shape_and_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        viz.attention_overlay_figure(IMG, **kwargs)


def test_heads_small_multiples_share_one_colour_axis():
    maps = RNG.random((5, 4, 6))
    fig = viz.attention_heads_figure(maps, image=IMG, layer=2, query=7, cols=3)
    heats = [t for t in fig.data if t.type == "heatmap"]
    # the photo once, as the first tile (issue 15: not under every map), then the maps opaque
    images = [t for t in fig.data if t.type == "image"]
    assert len(heats) == 5 and len(images) == 1 and fig.data[0] is images[0] and images[0].source
    for i, t in enumerate(heats):
        np.testing.assert_array_equal(t.z, counts(maps[i]))
        assert t.coloraxis == "coloraxis" and t.xaxis == f"x{i + 2}" and t.opacity in (None, 1)
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, pytest.approx(maps.max() * W))
    assert len(_axes(fig, "x")) == 6  # 2 rows x 3 cols of subplots: the image and 5 heads
    assert [a.text for a in fig.layout.annotations] == ["the image"] + [f"head {i}" for i in range(5)]
    assert "layer 2" in fig.layout.title.text
    assert fig.layout.yaxis3.scaleanchor == "x3"


def test_layers_small_multiples_without_image():
    maps = RNG.random((4, 4, 6))
    fig = viz.attention_layers_figure(maps, head=1, style=MapStyle(zmax=0.5))
    assert [t.type for t in fig.data] == ["heatmap"] * 4
    np.testing.assert_array_equal(fig.data[3].z, counts(maps[3]))
    assert fig.layout.coloraxis.cmax == 0.5 * W
    assert fig.layout.annotations[2].text == "layer 2"


def test_grid_tiles_data_and_shared_range():
    maps = RNG.random((3, 2, 4, 6))
    fig = viz.attention_grid_figure(maps, query=1)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (3 * 5 - 1, 2 * 7 - 1)
    np.testing.assert_array_equal(untile(z, 3, 2, 4, 6), counts(maps))
    assert np.isnan(z[4]).all() and np.isnan(z[:, 6]).all()  # separators (so counts as float32)
    np.testing.assert_array_equal(z, counts(tile_maps(maps)))
    assert z.dtype == np.float32 and fig.data[0].meta == {"z_scale": W}
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, pytest.approx(maps.max() * W))
    assert list(fig.layout.xaxis.ticktext) == ["0", "1"] and list(fig.layout.yaxis.ticktext) == ["0", "1", "2"]
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    # the query patch (row 0, col 0) is marked once per tile
    assert len(fig.data[1].x) == 6 and fig.data[1].x[1] == "head 1 · col 0" and fig.data[1].y[2] == "layer 1 · row 0"


@pytest.mark.parametrize("L, H", [(12, 6), (12, 12)])
def test_grid_12_layers_builds_fast(L, H):
    maps = RNG.random((L, H, 14, 14)).astype(np.float32)
    viz.attention_grid_figure(maps[:1, :1])  # warm imports
    t = time.perf_counter()
    fig = viz.attention_grid_figure(maps, query=20)
    assert time.perf_counter() - t < 0.5
    assert len(fig.layout.xaxis.tickvals) >= H // 2


def test_matrix_prefix_markers_names_and_hover():
    grid = (2, 3)
    p = 4
    T = p + 6
    A = RNG.random((T, T))
    A /= A.sum(1, keepdims=True)
    names = ["CLS", "DIST", "REG0", "REG1"]
    tokens = TokenLayout(p, names, grid)
    fig = viz.attention_matrix_figure(A, tokens=tokens, layer=1, head=2)
    heat = fig.data[0]
    # weights go as whole counts of 0.0001, and the hover writes them back with four decimals
    assert heat.z.dtype == np.uint16 and heat.meta == {"z_scale": 10_000}
    np.testing.assert_array_equal(heat.z, np.round(A * 10_000))
    assert "attention weight 0.%{z:04d}" in heat.hovertemplate
    np.testing.assert_allclose(viz.figure_data(fig)["0_attention_z"], A, rtol=0, atol=0.5e-4)
    assert heat.zmin == 0 and heat.zmax == pytest.approx(A.max() * 10_000)
    bar = heat.colorbar
    for value, text in zip(bar.tickvals, bar.ticktext):  # ticks at counts, labelled as weights
        assert float(text.lstrip("≥≤ ")) == pytest.approx(value / 10_000, abs=1e-9)
    # patches by patch index: the first patch after four prefix tokens is p0, not 4
    assert list(heat.x[:4]) == names and heat.x[4] == "p0 (r0,c0)" and heat.y[9] == "p5 (r1,c2)"
    assert "query %{y}" in heat.hovertemplate and "key %{x}" in heat.hovertemplate
    xs = [s for s in fig.layout.shapes if s.x0 == s.x1]
    ys = [s for s in fig.layout.shapes if s.y0 == s.y1]
    assert xs[0].x0 == p - 0.5 and ys[0].y0 == p - 0.5
    assert set(names) <= set(fig.layout.xaxis.ticktext)
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # query 0 on top
    log = viz.attention_matrix_figure(A, tokens=tokens, log_scale=True)
    np.testing.assert_array_equal(log.data[0].z, np.round(np.log10(np.maximum(A, 1e-6)), 1).astype(np.float32))
    assert "10<sup>%{z:.1f}</sup>" in log.data[0].hovertemplate and log.data[0].meta is None


def test_matrix_counts_edges_and_values_that_are_not_weights():
    # a weight from 0.99995 on is one count short of 10,000: "0.%{z:04d}" must never see 5 digits
    A = np.array([[0.99996, 0.00004, 0.0, 0.0, 0.0]] + [[0.2] * 5] * 4)
    z = viz.attention_matrix_figure(A).data[0].z
    assert z[0, 0] == 9999 and z[0, 1] == 0 and z[1, 0] == 2000 and z.max() < 10_000
    # anything outside [0, 1] (a difference of two heads, a relevance score) keeps its own values
    D = np.linspace(-0.5, 1.5, 25).reshape(5, 5)
    heat = viz.attention_matrix_figure(D).data[0]
    np.testing.assert_array_equal(heat.z, shown(D))
    assert heat.meta is None and "%{z:.3~g}" in heat.hovertemplate
    np.testing.assert_array_equal(viz.figure_data(viz.attention_matrix_figure(D))["0_attention_z"], shown(D))


def test_weights_go_as_whole_counts_with_enough_decimals_for_their_scale():
    """viz._figure.weight_scales / on_wire / value_format: four decimals, more where the colour
    scale tops out below 0.01 (≥ 100 counts to its top), three significant digits where counts
    cannot carry the values (not weights, or a top too small)."""
    from viz import _figure as F

    w = np.array([0.0, 0.004, 0.9])
    assert F.weight_scale(w) == 10 ** 4 and F.weight_scale(w, top=0.005) == 10 ** 5  # 500 counts to the top
    assert F.weight_scale(w, top=1e-8) == 1  # 10^10 counts a unit would not fit uint32
    assert F.weight_scale(np.array([0.1, np.nan]), top=2e-5) == 10 ** 7  # gaps: float32, exact to 2^24
    assert F.weight_scale(np.array([0.1, np.nan]), top=2e-6) == 1
    assert F.weight_scale(np.array([-0.1, 0.5])) == 1 and F.weight_scale(np.array([0.2, 1.5])) == 1
    assert F.weight_scales(w, [[0.5, 0.003], [1e-9, 0.02]]).tolist() == [[10 ** 4, 10 ** 5], [1, 10 ** 4]]
    counts = F.on_wire(w, 10 ** 5)
    assert counts.dtype == np.uint32 and counts.tolist() == [0, 400, 90000]  # past 2^16: uint32
    assert F.on_wire(w, 10 ** 4).dtype == np.uint16 and F.on_wire(w, 1).dtype == np.float32
    gaps = F.on_wire(np.array([0.25, np.nan]), 10 ** 4)
    assert gaps.dtype == np.float32 and gaps[0] == 2500 and np.isnan(gaps[1])
    assert F.value_format("z", 10 ** 5) == "0.%{z:05d}" and F.value_format("z", 1) == "%{z:.3~g}"
    assert F.z_meta(10 ** 5) == {"z_scale": 100000} and F.z_meta(1) is None
    with pytest.raises(ValueError, match="power of ten"):
        F.on_wire(w, 500)


def test_matrix_errors():
    with pytest.raises(ValueError, match="square"):
        viz.attention_matrix_figure(np.ones((5, 6)))
    with pytest.raises(ValueError, match="grid"):
        viz.attention_matrix_figure(np.ones((7, 7)) / 7)  # 6 patches: not a square grid
    with pytest.raises(ValueError, match="prefix_names has 1"):
        TokenLayout(2, ["CLS"])
    with pytest.raises(ValueError, match="grid"):
        viz.attention_matrix_figure(np.ones((7, 7)) / 7, tokens=TokenLayout(1, grid=(2, 2)))


# ---------------------------------------------------------------------------------------------
# one numbering: tokens 0..T-1, prefix tokens by name, patches by patch index (issue 10, item 9)
# ---------------------------------------------------------------------------------------------
def test_token_layout_names_patches_by_patch_index():
    cls = TokenLayout(1, grid=(16, 16))
    assert cls.name(0) == "CLS" and cls.name(25) == "patch 24 (row 1, col 8)"
    assert cls.label(25) == "p24 (r1,c8)" and cls.tick(25) == "p24"
    reg = TokenLayout(5, ("CLS", "REG0", "REG1", "REG2", "REG3"), (16, 16), 14)
    assert reg.name(5) == "patch 0 (row 0, col 0)"  # the first patch is patch 0 whatever the prefix
    assert reg.name(3) == "REG2" and reg.T == 261 and reg.N == 256
    assert reg.row_col(5 + 24) == (1, 8) and reg.patch_index(29) == 24 and reg.token_of_patch(24) == 29
    names = reg.names()
    assert len(names) == len(set(names)) == 261 and names[:6] == ["CLS", "REG0", "REG1", "REG2", "REG3", "p0 (r0,c0)"]
    assert TokenLayout(1).name(7) == "patch 6" and TokenLayout(1).names(3) == ["CLS", "p0", "p1"]  # no grid
    with pytest.raises(ValueError, match="out of range"):
        reg.row_col(261)
    with pytest.raises(ValueError, match="patch_size"):
        TokenLayout(1, patch_size=0)
    assert hash(reg) == hash(TokenLayout(5, ["CLS", "REG0", "REG1", "REG2", "REG3"], [16, 16], 14))  # cache keys


def test_map_style_checks_and_range():
    with pytest.raises(ValueError, match="opacity=2"):
        MapStyle(opacity=2)
    with pytest.raises(ValueError, match="upsample='cubic'"):
        MapStyle(upsample="cubic")
    with pytest.raises(ValueError, match="zmin=0.5 is not below zmax=0.2"):
        MapStyle(zmin=0.5, zmax=0.2)
    assert MapStyle().color_range(np.array([0.2, 0.5])) == (0.0, 0.5)
    assert MapStyle(zmax=0.3).color_range(np.array([0.2, 0.5])) == (0.0, 0.3)
    assert MapStyle().color_range(np.zeros(3)) == (0.0, 1.0)  # a flat map still gets a range


def _hover_names(fig):
    return " ".join(t.hovertemplate or "" for t in fig.data)


@pytest.mark.parametrize("upsample", ["nearest", "smooth"])
def test_every_attention_map_hovers_patch_name_and_value(upsample):
    """Hovering a patch of any map names the patch (index, row, col) and gives its attention."""
    tokens = TokenLayout(2, ["CLS", "REG0"], (4, 6), 8)
    style = MapStyle(upsample=upsample)
    maps = RNG.random((3, 4, 6))
    figs = {
        "overlay": viz.attention_overlay_figure(IMG, maps[0], query=5, tokens=tokens, style=style),
        "heads": viz.attention_heads_figure(maps, image=IMG, query=5, tokens=tokens, style=style),
        "layers": viz.attention_layers_figure(maps, image=IMG, query=5, tokens=tokens, style=style),
        "grid": viz.attention_grid_figure(maps[None], query=5, tokens=tokens, style=style),
    }
    for name, fig in figs.items():
        hover = _hover_names(fig)
        assert name == "grid" or "patch %{customdata[" in hover, name
        assert name == "grid" or "(row %{customdata[" in hover, name
        assert "attention 0.%{" in hover, name  # weights: whole counts written back as 0.dddd
        assert "token %{" not in hover, name  # no token indices shown next to patch numbers
    # the grid's hover names layer, head, row and column by its axes' categories (one name per row
    # and per column, not data per cell: issue 15)
    grid = figs["grid"].data[0]
    assert grid.customdata is None and grid.hovertemplate.startswith("%{y}<br>%{x}<br>attention 0.%{z:04d}")
    z = np.asarray(grid.z)
    assert len(grid.x) == z.shape[1] and len(grid.y) == z.shape[0]
    assert len(set(grid.x)) == len(grid.x) and len(set(grid.y)) == len(grid.y)  # categories are unique
    assert grid.x[2] == "head 0 · col 2" and grid.y[1] == "layer 0 · row 1"  # patch 8 = (1, 2)
    assert grid.x[6 + 1 + 2] == "head 1 · col 2"  # the next tile after a 1-column separator
    assert figs["grid"].layout.xaxis.type == "category" and figs["grid"].layout.yaxis.type == "category"
    assert grid.hoverongaps is False
    nearest = figs["overlay"].data[1]
    if upsample == "nearest":
        assert np.asarray(nearest.customdata)[1, 2].tolist() == [8, 1, 2]


def test_shared_scale_says_when_the_top_is_saturated():
    """Issue 10 item 8: a percentile top (zmax below the max) saturates the brightest patches and the
    colour bar's top label says so; without zmax the top is the data's max and no label says "≥"."""
    maps = RNG.random((6, 4, 6)) * 0.05
    maps[0, 1, 1] = 0.6  # one sharp head
    top = float(np.percentile(maps, 99.5))
    for fig in (viz.attention_heads_figure(maps, image=IMG, style=MapStyle(zmax=top)),
                viz.attention_layers_figure(maps, style=MapStyle(zmax=top))):
        axis = fig.layout.coloraxis
        assert axis.cmax == pytest.approx(top * W)
        bar = axis.colorbar
        assert bar.tickmode == "array" and bar.tickvals[-1] == pytest.approx(top * W)
        assert bar.ticktext[-1].startswith("≥ ") and float(bar.ticktext[-1][2:]) == pytest.approx(top, rel=0.02)
        assert not any(t.startswith("≥") for t in bar.ticktext[:-1])
    grid = viz.attention_grid_figure(maps[None], style=MapStyle(zmax=top)).data[0]
    assert grid.zmax == pytest.approx(top * W) and grid.colorbar.ticktext[-1].startswith("≥ ")
    plain = viz.attention_heads_figure(maps).layout.coloraxis
    assert plain.cmax == pytest.approx(maps.max() * W) and not any("≥" in t for t in plain.colorbar.ticktext)


@pytest.mark.parametrize("n, theme, cols", [(6, None, 3), (6, "classroom", 3), (4, None, 2), (12, None, 6),
                                            (12, "classroom", 4), (3, None, 3)])
def test_small_multiples_fill_rows_evenly(n, theme, cols):
    """Six heads as 3 x 2 rather than a strip of six thin tiles (or 4 + 2 in the classroom)."""
    fig = viz.attention_heads_figure(RNG.random((n, 4, 6)), theme=theme)
    assert len({round(a.x, 6) for a in fig.layout.annotations}) == cols
