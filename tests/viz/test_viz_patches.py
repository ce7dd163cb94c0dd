"""viz.patches: the grid with patch numbers, the mosaic, the flattened patch and embedding matrices."""

from pathlib import Path

import numpy as np
import pytest

import viz
from viz.maps import flatten_patches

ROOT = Path(__file__).resolve().parents[2]

RNG = np.random.default_rng(1)


def _img(h_px, w_px):
    return RNG.integers(0, 256, (h_px, w_px, 3), dtype=np.uint8)


def test_patch_grid_traces_lines_and_labels_non_square():
    img = _img(32, 48)  # 4 x 6 patches of 8 px
    fig = viz.patch_grid_figure(img, 8, tokens=viz.TokenLayout(2, ["CLS", "REG0"]))
    assert [t.type for t in fig.data] == ["image", "scatter"]
    np.testing.assert_array_equal(viz.image_pixels(fig.data[0]), img)  # a small picture: lossless PNG
    assert fig.data[0].z is None and fig.data[0].source.startswith("data:image/png;base64,")
    lines = fig.layout.shapes
    assert len(lines) == (4 - 1) + (6 - 1)
    vertical = sorted(s.x0 for s in lines if s.x0 == s.x1)
    assert vertical == [8 * c - 0.5 for c in range(1, 6)]
    # every patch labelled with its patch index r*w + c at its centre (not its token index)
    labels = {(a.x, a.y): a.text for a in fig.layout.annotations}
    assert len(labels) == 24
    assert labels[(2 * 8 + 3.5, 1 * 8 + 3.5)] == str(1 * 6 + 2)
    assert all(a.font.size >= 14 for a in fig.layout.annotations)
    # hover names every patch by the same number, with its row and column
    assert sorted(fig.data[1].customdata[:, 0].tolist()) == list(range(24))
    assert fig.data[1].customdata[8].tolist() == [8, 1, 2]
    assert fig.data[1].hovertemplate.startswith("patch %{customdata[0]} (row %{customdata[1]}, col %{customdata[2]})")
    assert "patch 0 … 23" in fig.layout.title.text and "after CLS and REG0" in fig.layout.title.text
    # equal aspect, y pointing down, full image in view
    assert fig.layout.yaxis.scaleanchor == "x"
    assert tuple(fig.layout.yaxis.range) == (31.5, -0.5)
    assert tuple(fig.layout.xaxis.range) == (-0.5, 47.5)


def test_patch_grid_big_grid_labels_sparsely_hover_everything():
    img = np.zeros((37 * 14, 37 * 14, 3), np.uint8)
    fig = viz.patch_grid_figure(img, 14)
    n = len(fig.layout.annotations)
    assert 0 < n < 37 * 37 / 3
    assert len(fig.data[1].x) == 37 * 37
    assert "hover" in fig.layout.xaxis.title.text
    assert len(viz.patch_grid_figure(img, 14, labels="none").layout.annotations) == 0


def test_patch_mosaic_gaps():
    img = _img(16, 24)
    fig = viz.patch_mosaic_figure(img, 8, gap=3)
    z = viz.image_pixels(fig.data[0])
    assert z.shape == (2 * 8 + 3, 3 * 8 + 2 * 3, 3)
    np.testing.assert_array_equal(z[:8, 11:19], img[:8, 8:16])  # tile (0, 1)
    assert (z[8:11] == 255).all() and (z[:, 8:11] == 255).all()  # white gutters
    np.testing.assert_array_equal(viz.mosaic_image(img, 8, 3), z)


def test_flattened_patch_matrix_order_and_heatmap():
    img = _img(16, 24)
    X = flatten_patches(img, 8)
    assert X.shape == (6, 8 * 8 * 3)
    # patch 4 = row 1, col 1; element k = pixel (k // 24, (k // 3) % 8), channel k % 3
    k = 3 * (8 * 5 + 2) + 1
    assert X[4, k] == img[8 + 5, 8 + 2, 1]
    fig = viz.patch_matrix_figure(img, 8)
    assert fig.data[0].type == "heatmap"
    np.testing.assert_array_equal(fig.data[0].z, X)
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0, 255)
    assert fig.layout.yaxis.title.text == "patch index"
    assert fig.layout.xaxis.title.text.startswith("pixel value index")


def test_patch_embedding_heatmap_diverging_symmetric():
    E = RNG.normal(size=(6, 10))
    fig = viz.patch_embedding_figure(E)
    np.testing.assert_array_equal(fig.data[0].z, E)
    assert fig.data[0].zmin == -fig.data[0].zmax == -np.abs(E).max()
    assert fig.layout.xaxis.title.text == "embedding dim"
    assert fig.layout.yaxis.title.text.startswith("patch")
    assert list(fig.data[0].y) == [f"p{i}" for i in range(6)]  # rows named by patch index
    assert fig.data[0].colorbar.title.text
    fig2 = viz.patch_embedding_figure(E, tokens=viz.TokenLayout(1, grid=(1, 5)), zmax=0.5)
    assert fig2.data[0].zmax == 0.5 and fig2.layout.shapes[0].y0 == 0.5
    assert list(fig2.data[0].y[:3]) == ["CLS", "p0 (r0,c0)", "p1 (r0,c1)"]
    with pytest.raises(ValueError, match="T=6 tokens"):
        viz.patch_embedding_figure(E, tokens=viz.TokenLayout(1, grid=(2, 3)))  # 1 + 6 rows expected


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 32, 32), np.uint8), "transpose"),
    (np.zeros((32, 32), np.uint8), "grayscale"),
    (np.zeros((32, 32, 3), np.float32), "uint8"),
    (np.zeros((30, 32, 3), np.uint8), "30x32 px"),
])
def test_patch_inputs_rejected_with_fix(bad, match):
    with pytest.raises(ValueError, match=match):
        viz.patch_grid_figure(bad, 8)


def test_photo_encoding_is_cached_by_pixels_not_by_array():
    """Every overlay of a photo reuses one encoding (issue 15), keyed by the pixels: an equal copy
    hits it, a single changed pixel or another shape is encoded anew."""
    from viz import _figure

    img = _img(32, 48)
    first = _figure.image_source(img)
    assert _figure.image_source(img.copy()) is first
    changed = img.copy()
    changed[5, 7, 1] ^= 0xFF
    other = _figure.image_source(changed)
    assert other != first
    np.testing.assert_array_equal(viz.image_pixels(_figure.photo_trace(changed)), changed)
    assert _figure.image_source(img.reshape(48, 32, 3)) != first  # same bytes, another picture
    for k in range(_figure.SOURCE_CACHE_ENTRIES + 5):  # bounded
        _figure.image_source(np.full((4, 4, 3), k % 256, np.uint8) + np.uint8(k // 256))
    assert len(_figure._SOURCE_CACHE) == _figure.SOURCE_CACHE_ENTRIES



def test_a_photo_travels_as_webp_close_to_its_pixels():
    """A 224 x 224 photo is too big for lossless PNG: it goes as WebP at quality 80 (JPEG where
    Pillow has no WebP), within 30 dB PSNR of the pixels and smaller than JPEG at 85 would be."""
    import io

    from PIL import Image, features

    from viz import _figure

    img = np.asarray(Image.open(ROOT / "samples" / "chelsea.jpg").convert("RGB").resize((224, 224)))
    uri = _figure.image_source(img)
    kind = "webp" if features.check("webp") else "jpeg"
    assert uri.startswith(f"data:image/{kind};base64,")
    back = viz.image_pixels(_figure.photo_trace(img)).astype(float)
    assert back.shape == img.shape
    assert 10 * np.log10(255 ** 2 / np.mean((back - img) ** 2)) > 30
    if kind == "webp":
        jpeg = io.BytesIO()
        Image.fromarray(img).save(jpeg, format="JPEG", quality=85, optimize=True)
        assert len(uri) * 3 / 4 < 0.8 * jpeg.tell()
