"""viz.export: the pure-Python PNG path (pixels at known spots), NPZ/CSV data round trips, overlays."""

import io
import time

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

import viz
from viz import colormaps as cm
from viz.maps import upsample_map

RNG = np.random.default_rng(5)
IMG = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)


def _png(fig, scale=1):
    data = viz.figure_to_png(fig, scale=scale)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def _colour(scale, v, lo, hi):
    return cm.sample(scale, [v], lo, hi)[0, :3]


def _close(pixel, expected, tol=2):
    assert np.abs(np.asarray(pixel, dtype=float) - np.asarray(expected, dtype=float)).max() <= tol, (pixel, expected)


def _plot_box(fig):
    lay = fig.layout
    l, r, t, b = lay.margin.l, lay.margin.r, lay.margin.t, lay.margin.b
    return l, t, lay.width - l - r, lay.height - t - b


def _equal_aspect_box(fig, nx, ny):
    """Where an equal-aspect, constrain='domain' plot of nx x ny data units lands (centred)."""
    l, t, pw, ph = _plot_box(fig)
    k = min(pw / nx, ph / ny)
    return l + (pw - nx * k) / 2, t + (ph - ny * k) / 2, k


def test_plain_heatmap_cells_have_colormap_colours():
    z = np.array([[0.0, 0.25, 0.5, 2.0], [np.nan, 0.75, 1.0, -3.0]])
    fig = go.Figure(go.Heatmap(z=z, colorscale="viridis", zmin=0, zmax=1, showscale=False))
    fig.update_layout(width=200, height=100, margin=dict(l=0, r=0, t=0, b=0), plot_bgcolor="white",
                      xaxis=dict(range=[-0.5, 3.5]), yaxis=dict(range=[1.5, -0.5]))
    px = _png(fig)
    assert px.shape == (100, 200, 3)
    scale = cm.colorscale("viridis")
    _close(px[25, 25], _colour(scale, 0.0, 0, 1))  # top-left cell
    _close(px[25, 75], _colour(scale, 0.25, 0, 1))
    _close(px[25, 175], _colour(scale, 1.0, 0, 1))  # 2.0 clipped to zmax
    _close(px[75, 175], _colour(scale, 0.0, 0, 1))  # -3 clipped to zmin
    _close(px[75, 25], (255, 255, 255))  # NaN left empty: background


def test_png_size_and_scale():
    fig = viz.attention_entropy_figure(RNG.random((3, 4)), num_keys=10)
    assert _png(fig).shape[:2] == (fig.layout.height, fig.layout.width)
    assert _png(fig, scale=2).shape[:2] == (2 * fig.layout.height, 2 * fig.layout.width)
    with pytest.raises(ValueError, match="scale"):
        viz.figure_to_png(fig, scale=0)


def test_grid_figure_png_top_left_cell_and_colourbar():
    maps = RNG.random((3, 2, 4, 6))
    fig = viz.attention_grid_figure(maps)
    px = _png(fig)
    heat = fig.data[0]
    ny, nx = np.asarray(heat.z).shape
    x0, y0, k = _equal_aspect_box(fig, nx, ny)
    scale = heat.colorscale
    # centre of cell (0, 0) of tile (layer 0, head 0), and of cell (1, 2) of tile (layer 2, head 1)
    _close(px[int(y0 + 0.5 * k), int(x0 + 0.5 * k)], _colour(scale, maps[0, 0, 0, 0], heat.zmin, heat.zmax))
    r, c = 2 * 5 + 1, 1 * 7 + 2
    _close(px[int(y0 + (r + 0.5) * k), int(x0 + (c + 0.5) * k)],
           _colour(scale, maps[2, 1, 1, 2], heat.zmin, heat.zmax))
    # a separator (NaN gap) shows the white background
    _close(px[int(y0 + 4.5 * k), int(x0 + 2.5 * k)], (255, 255, 255))
    # colour bar: top has the colour of zmax, bottom of zmin
    l, t, pw, ph = _plot_box(fig)
    bar_x = int(l + 1.02 * pw + 10 + heat.colorbar.thickness / 2)  # plotly's xpad = ypad = 10 px
    _close(px[t + 12, bar_x], _colour(scale, heat.zmax, heat.zmin, heat.zmax), tol=4)
    _close(px[t + ph - 13, bar_x], _colour(scale, heat.zmin, heat.zmin, heat.zmax), tol=4)
    # the title is drawn: dark text pixels in the top band
    assert (px[:t // 2 + 10].sum(axis=2) < 200).any()


def test_overlay_figure_png_blends_map_over_image():
    m = RNG.random((4, 6))
    fig = viz.attention_overlay_figure(IMG, m, alpha=0.5)
    px = _png(fig)
    x0, y0, k = _equal_aspect_box(fig, 48, 32)
    heat = fig.data[1]
    for (i, j) in [(3, 3), (20, 45), (30, 10)]:
        colour = _colour(heat.colorscale, m[i // 8, j // 8], heat.zmin, heat.zmax)
        expected = 0.5 * IMG[i, j] + 0.5 * colour
        _close(px[int(y0 + (i + 0.5) * k), int(x0 + (j + 0.5) * k)], expected, tol=3)


def test_query_outline_drawn_on_the_patch_edge():
    grey = np.full((32, 48, 3), 128, np.uint8)
    fig = viz.attention_overlay_figure(grey, np.zeros((4, 6)), query=1 + 2 * 6 + 3, alpha=0.0)
    px = _png(fig)
    x0, y0, k = _equal_aspect_box(fig, 48, 32)
    left_edge_x = int(round(x0 + (3 * 8) * k))  # data x = 23.5, the left side of patch column 3
    mid_y = int(y0 + (2 * 8 + 4) * k)
    _close(px[mid_y, left_edge_x], cm.parse_color(viz.SCREEN.highlight_color)[:3], tol=3)
    _close(px[mid_y, int(x0 + (3 * 8 + 4) * k)], (128, 128, 128))  # inside: untouched image


def test_smooth_overlay_png_matches_upsampled_values():
    m = RNG.random((4, 6))
    fig = viz.attention_overlay_figure(IMG, m, alpha=1.0, upsample="smooth")
    px = _png(fig)
    x0, y0, k = _equal_aspect_box(fig, 48, 32)
    up = upsample_map(m, 8, "smooth")
    heat = fig.data[1]
    for (i, j) in [(5, 7), (17, 30)]:
        _close(px[int(y0 + (i + 0.5) * k), int(x0 + (j + 0.5) * k)],
               _colour(heat.colorscale, up[i, j], heat.zmin, heat.zmax), tol=3)


def test_bar_chart_png_bar_colours():
    y = np.array([3.0, 1.0, 0.0, -1.0])
    fig = viz.loss_figure(y, ["a", "b", "c", "d"], label=0, k=4)
    px = _png(fig)
    l, t, pw, ph = _plot_box(fig)
    bar = fig.data[0]
    n = len(bar.x)
    xr = fig.layout.xaxis.range[1]
    y_px = int(t + 0.5 * ph / n)  # first category (top)
    x_px = int(l + bar.x[0] / 2 / xr * pw)
    _close(px[y_px, x_px], cm.parse_color(bar.marker.color[0])[:3])
    assert bar.marker.color[0] == viz.SCREEN.accent_color  # label 0 is also the top class


def test_tiny_bars_render():
    fig = viz.topk_figure([20.0, 0.0, -5.0], ["a", "b", "c"], k=3)  # two bars far below a pixel
    assert _png(fig).shape[:2] == (fig.layout.height, fig.layout.width)


def test_scatter_markers_drawn():
    d = np.array([[10.0, 50.0]])
    fig = viz.attention_distance_figure(d)
    px = _png(fig)
    l, t, pw, ph = _plot_box(fig)
    xr, yr = fig.layout.xaxis.range, fig.layout.yaxis.range
    x = l + (0 - xr[0]) / (xr[1] - xr[0]) * pw
    yy = t + ph - (50.0 - yr[0]) / (yr[1] - yr[0]) * ph
    _close(px[int(yy), int(x)], cm.parse_color(viz.SCREEN.bar_color)[:3], tol=40)  # marker opacity 0.85 on white


def test_every_builder_renders():
    from test_viz_theme import BUILDERS

    for name, build in BUILDERS.items():
        fig = build()
        img = _png(fig)
        assert img.shape[:2] == (fig.layout.height, fig.layout.width), name
        assert img.std() > 10, name  # something was drawn


def test_lxh_png_is_quick():
    fig = viz.attention_grid_figure(RNG.random((12, 12, 14, 14)))
    t = time.perf_counter()
    viz.figure_to_png(fig)
    assert time.perf_counter() - t < 3.0


def test_figure_data_npz_and_csv_round_trip():
    maps = RNG.random((2, 2, 3, 3))
    figs = [
        viz.attention_grid_figure(maps),
        viz.topk_figure(RNG.normal(size=5), ["a", "b, c", "d", "e", "f"], k=5),
        viz.attention_distance_figure(RNG.random((2, 3))),
        viz.attention_matrix_figure(np.full((5, 5), 0.2)),
    ]
    for fig in figs:
        data = viz.figure_data(fig)
        assert data
        npz = np.load(io.BytesIO(viz.figure_to_npz(fig)))
        back = viz.data_from_csv(viz.figure_to_csv(fig))
        assert set(npz.files) == set(back) == set(data)
        for key, arr in data.items():
            np.testing.assert_array_equal(npz[key], arr)
            np.testing.assert_array_equal(back[key], arr)
    grid = viz.figure_data(figs[0])
    assert list(grid) == ["0_attention_z"]
    np.testing.assert_array_equal(grid["0_attention_z"], figs[0].data[0].z)
    bars = viz.figure_data(figs[1])
    np.testing.assert_allclose(bars["0_probability_x"], figs[1].data[0].x)
    assert bars["0_probability_y"].tolist() == list(figs[1].data[0].y)
    with pytest.raises(ValueError, match="header"):
        viz.data_from_csv("a,b\n1,2\n")


def test_figure_data_images_optional():
    fig = viz.attention_overlay_figure(IMG, RNG.random((4, 6)))
    assert not any(k.endswith("_image") for k in viz.figure_data(fig))
    data = viz.figure_data(fig, include_images=True)
    np.testing.assert_array_equal(data["0_image_image"], IMG)


def test_overlay_png_direct():
    m = RNG.random((4, 6))
    out = np.asarray(Image.open(io.BytesIO(viz.overlay_png(IMG, m, "viridis", 0.3, upsample="nearest"))))
    assert out.shape == IMG.shape
    colour = cm.to_rgb8("viridis", m, 0.0, m.max())
    expected = np.rint(0.7 * IMG[9, 17] + 0.3 * cm.sample("viridis", [m[1, 2]], 0, m.max())[0, :3])
    np.testing.assert_allclose(out[9, 17], expected, atol=1)
    assert colour.shape == (4, 6, 3)
    smooth = viz.overlay_image(IMG, m, "inferno", 1.0)
    np.testing.assert_array_equal(smooth, cm.to_rgb8("inferno", upsample_map(m, 8, "smooth"), 0.0, m.max()))
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay_png(IMG, m, alpha=1.5)
