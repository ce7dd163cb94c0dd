"""Exports: the Pillow overlay (pixels against the colormap's LUT), figure data as NPZ/CSV
(round trips), and figure PNGs through plotly's own export (kaleido + Chromium; skipped
where either is missing)."""

import io

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

import viz
from app_core import figure_png as png_export
from viz import colormaps as cm
from viz.maps import upsample_map

RNG = np.random.default_rng(5)
IMG = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)  # 4 x 6 patches of 8 px

needs_browser = pytest.mark.skipif(not png_export.png_export_available(),
                                   reason="PNG export needs kaleido and Chromium (pip install kaleido; "
                                          "apt-get install chromium)")


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


# ---------------------------------------------------------------------------------------------
# overlay: pixels are the colormap's colours
# ---------------------------------------------------------------------------------------------
def test_overlay_pixels_are_lut_colours():
    lut = viz.lut("viridis", 256)
    steps = np.array([[0, 17, 64, 128, 200, 255]] * 4)  # LUT indices, one per patch; row max 255 -> range 0..1
    m = steps / 255.0
    out = viz.overlay_image(IMG, m, "viridis", alpha=1.0, upsample="nearest")
    assert out.shape == IMG.shape and out.dtype == np.uint8
    for r in range(4):
        for c in range(6):
            block = out[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8]
            np.testing.assert_array_equal(block, np.broadcast_to(lut[steps[r, c]], block.shape))


def test_overlay_blends_with_alpha_and_clips_to_the_given_range():
    lut = viz.lut("inferno", 256)
    m = np.zeros((4, 6))
    m[1, 2] = 1.0
    out = viz.overlay_image(IMG, m, "inferno", alpha=0.3, upsample="nearest")
    for (i, j), k in [((9, 17), 255), ((0, 0), 0)]:  # inside patch (1, 2); a patch of zeros
        np.testing.assert_array_equal(out[i, j], np.rint(0.7 * IMG[i, j] + 0.3 * lut[k]).astype(np.uint8))
    clipped = viz.overlay_image(IMG, m * 5, "inferno", alpha=1.0, upsample="nearest", zmin=0.0, zmax=1.0)
    np.testing.assert_array_equal(clipped[9, 17], lut[255])  # 5 is above zmax: the top colour


def test_smooth_overlay_is_the_upsampled_map_in_colour():
    m = RNG.random((4, 6))
    smooth = viz.overlay_image(IMG, m, "inferno", 1.0)
    np.testing.assert_array_equal(smooth, cm.to_rgb8("inferno", upsample_map(m, 8, "smooth"), 0.0, m.max()))
    odd = viz.overlay_image(IMG[:30, :47], m, "inferno", 0.5)  # not a whole number of patches: resized
    assert odd.shape == (30, 47, 3)


def test_overlay_png_decodes_to_overlay_image():
    m = RNG.random((4, 6))
    png = viz.overlay_png(IMG, m, "magma", 0.4)
    np.testing.assert_array_equal(_decode(png), viz.overlay_image(IMG, m, "magma", 0.4))


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=1.5), "alpha=1.5"),
    (dict(upsample="cubic"), "upsample='cubic'"),
    (dict(attn_map=np.ones(24)), "reshape the flat map"),
    (dict(image=IMG.transpose(2, 0, 1)), "channels first"),
])
def test_overlay_errors_name_the_value_and_fix(kwargs, match):
    args = dict(image=IMG, attn_map=np.ones((4, 6)))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        viz.overlay_image(args.pop("image"), args.pop("attn_map"), **args)


# ---------------------------------------------------------------------------------------------
# figure data: NPZ and CSV round trips
# ---------------------------------------------------------------------------------------------
def test_figure_data_of_a_figure_read_back_from_its_json():
    """plotly writes numpy arrays as base64 typed arrays; a figure read back from its JSON (as the
    app keeps figures, app_pages.charts.frozen) gives the same numbers as the figure built."""
    import json

    import plotly.io as pio

    img = RNG.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    figs = [
        viz.attention_grid_figure(RNG.random((2, 2, 3, 4))),
        viz.attention_overlay_figure(img, RNG.random((3, 4)), style=viz.MapStyle(upsample="nearest")),
        viz.attention_distance_figure(RNG.random((2, 3))),
        viz.token_norms_lines_figure(RNG.random((4, 12)) + 1, artifact_tokens=[5]),
    ]
    for fig in figs:
        back = go.Figure(json.loads(pio.to_json(fig, validate=False)), _validate=False)
        built, read = viz.figure_data(fig, include_images=True), viz.figure_data(back, include_images=True)
        assert built.keys() == read.keys()
        for key in built:
            np.testing.assert_array_equal(read[key], built[key], err_msg=key)
    heat = go.Figure(json.loads(pio.to_json(figs[0], validate=False)), _validate=False).data[0]
    assert isinstance(heat.z, dict) and heat.z["dtype"] == "f4"  # what was decoded above


def test_figure_data_npz_and_csv_round_trip():
    maps = RNG.random((2, 2, 3, 3))
    figs = [
        viz.attention_grid_figure(maps),
        viz.topk_figure(RNG.normal(size=5), ["a", "b, c", "d", "e", "f"], k=5),
        viz.attention_distance_figure(RNG.random((2, 3))),
        viz.attention_matrix_figure(np.full((5, 5), 0.2)),
        viz.token_norms_lines_figure(RNG.random((4, 12)) + 1, artifact_tokens=[5]),
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
            assert back[key].dtype.kind == np.asarray(arr).dtype.kind
    grid = viz.figure_data(figs[0])
    assert sorted(grid) == ["0_attention_x", "0_attention_y", "0_attention_z"]
    # the figure sends the weights as whole counts of 0.0001 (meta["z_scale"]); the data are weights
    np.testing.assert_array_equal(grid["0_attention_z"], np.asarray(figs[0].data[0].z, dtype=np.float64) / 10_000)
    np.testing.assert_allclose(grid["0_attention_z"], viz.maps.tile_maps(maps), rtol=0, atol=0.5e-4)
    assert grid["0_attention_x"][0] == "head 0 · col 0" and grid["0_attention_y"][0] == "layer 0 · row 0"
    bars = viz.figure_data(figs[1])
    np.testing.assert_allclose(bars["0_probability_x"], figs[1].data[0].x)
    assert bars["0_probability_y"].tolist() == list(figs[1].data[0].y)
    with pytest.raises(ValueError, match="header"):
        viz.data_from_csv("a,b\n1,2\n")


def test_figure_data_images_optional_and_legend_keys_skipped():
    fig = viz.attention_overlay_figure(IMG, RNG.random((4, 6)))
    assert not any(k.endswith("_image") for k in viz.figure_data(fig))
    data = viz.figure_data(fig, include_images=True)
    np.testing.assert_array_equal(data["0_image_image"], IMG)
    mlp = viz.mlp_activation_figure(RNG.normal(size=64))
    assert [tr.name for tr in mlp.data[1:]] == ["active (> 0)", "inactive (≤ 0)"]  # legend entries, no data
    assert sorted(viz.figure_data(mlp)) == ["0_units_x", "0_units_y"]
    # invisible hover markers (one per patch over a smooth map) are no data of the figure
    smooth = viz.attention_overlay_figure(IMG, RNG.random((4, 6)), style=viz.MapStyle(upsample="smooth"))
    assert smooth.data[2].marker.opacity == 0 and list(viz.figure_data(smooth)) == ["1_attention_z"]


# ---------------------------------------------------------------------------------------------
# figure PNG: plotly's own export
# ---------------------------------------------------------------------------------------------
def _cells_figure(width=300, height=200):
    z = np.array([[0.0, 0.25, 0.5], [0.75, 1.0, 2.0]])
    fig = go.Figure(go.Heatmap(z=z, colorscale="viridis", zmin=0, zmax=1, showscale=False))
    fig.layout = dict(width=width, height=height, margin=dict(l=0, r=0, t=0, b=0), template="none",
                      xaxis=dict(range=[-0.5, 2.5], visible=False), yaxis=dict(range=[1.5, -0.5], visible=False))
    return fig, z


@needs_browser
def test_figure_png_size_is_layout_times_scale_and_cells_have_colormap_colours():
    fig, z = _cells_figure()
    lut = viz.lut("viridis", 256)
    for scale in (1, 2):
        px = _decode(png_export.figure_png(fig, scale=scale))
        assert px.shape[:2] == (200 * scale, 300 * scale)
        for r in range(2):
            for c in range(3):  # the centre of each cell; 2.0 is clipped to zmax
                pixel = px[int((r + 0.5) * 100 * scale), int((c + 0.5) * 100 * scale)]
                expected = lut[round(min(z[r, c], 1.0) * 255)]
                assert np.abs(pixel - expected).max() <= 2, (r, c, pixel, expected)


@needs_browser
def test_figure_png_is_plotlys_own_export_of_a_real_figure():
    fig = viz.residual_stream_figure(np.array([1.0, 2.0]), np.array([2.0, 1.0]), np.array([3.0, 5.0, 6.0]),
                                     token_name="CLS")
    png = png_export.figure_png(fig)  # scale 2 by default: slide-sized
    assert _decode(png).shape[:2] == (2 * fig.layout.height, 2 * fig.layout.width)
    assert png == fig.to_image(format="png", scale=2)  # the same kaleido render, byte for byte


def test_figure_png_says_how_to_get_it_when_unavailable(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    assert png_export.browser_path() is None and not png_export.png_export_available()
    with pytest.raises(png_export.PngExportUnavailable, match="pip install kaleido; apt-get install chromium"):
        png_export.figure_png(_cells_figure()[0])
    with pytest.raises(ValueError, match="scale=0"):
        png_export.figure_png(_cells_figure()[0], scale=0)
