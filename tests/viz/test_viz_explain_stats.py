"""viz.explain, viz.stats, viz.embeddings: figures checked by their data."""

import math

import numpy as np
import pytest

import viz
from viz._figure import shown
from viz.maps import normalise_map, untile, upsample_map

RNG = np.random.default_rng(3)
IMG = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)


def test_normalise_map_rules():
    m = np.array([[0.0, 2.0], [1.0, 4.0]])
    np.testing.assert_allclose(normalise_map(m, "max"), m / 4)
    np.testing.assert_allclose(normalise_map(m + 1, "minmax"), m / 4)
    np.testing.assert_array_equal(normalise_map(m, "none"), m)
    np.testing.assert_array_equal(normalise_map(np.zeros((2, 2)), "max"), 0)
    np.testing.assert_array_equal(normalise_map(np.ones((2, 2)), "minmax"), 0)


def test_explanations_side_by_side_one_scale():
    maps = {"rollout": RNG.random((4, 6)), "gradient rollout": RNG.random((4, 6)) * 7, "Chefer": RNG.random((4, 6))}
    fig = viz.explanation_figure(IMG, maps, style=viz.MapStyle(upsample="nearest"))
    heats = [t for t in fig.data if t.type == "heatmap"]
    assert len(heats) == 3 and len([t for t in fig.data if t.type == "image"]) == 3
    for t, (name, m) in zip(heats, maps.items()):
        np.testing.assert_array_equal(t.z, shown(m / m.max()))
        assert t.coloraxis == "coloraxis" and t.name == name
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 1.0)
    assert [a.text for a in fig.layout.annotations] == list(maps)
    smooth = viz.explanation_figure(IMG, maps)  # default: smooth
    np.testing.assert_array_equal(smooth.data[1].z,
                                  shown(upsample_map(maps["rollout"] / maps["rollout"].max(), 8, "smooth")))
    assert "relevance %{customdata[3]" in smooth.data[2].hovertemplate  # hover per patch over the smooth map
    raw = viz.explanation_figure(IMG, maps, normalise="none", style=viz.MapStyle(upsample="nearest"))
    np.testing.assert_array_equal(raw.data[3].z, shown(maps["gradient rollout"]))
    # the photo is sent compressed (issue 15), once encoded and the same under each map
    photos = [t.source for t in fig.data if t.type == "image"]
    assert len(set(photos)) == 1 and photos[0].startswith("data:image/")
    lo = min(m.min() for m in maps.values())
    hi = max(m.max() for m in maps.values())
    assert (raw.layout.coloraxis.cmin, raw.layout.coloraxis.cmax) == (lo, hi)


def test_explanations_reject_mismatched_grids():
    with pytest.raises(ValueError, match="different grid shapes"):
        viz.explanation_figure(IMG, {"a": np.ones((4, 6)), "b": np.ones((2, 3))})
    with pytest.raises(ValueError, match="normalise"):
        viz.explanation_figure(IMG, {"a": np.ones((4, 6))}, normalise="softmax")


def test_attention_distance_one_dot_per_head():
    d = RNG.random((3, 4)) * 100
    fig = viz.attention_distance_figure(d)
    s = fig.data[0]
    assert s.type == "scatter" and s.mode == "markers"
    np.testing.assert_array_equal(s.x, np.repeat(np.arange(3), 4))
    np.testing.assert_array_equal(s.y, d.ravel())
    np.testing.assert_array_equal(s.customdata, np.tile(np.arange(4), 3))
    assert "head %{customdata}" in s.hovertemplate
    assert "(px)" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= d.max()


def test_entropy_and_prefix_heatmaps():
    e = RNG.random((3, 4)) * 2
    fig = viz.attention_entropy_figure(e, num_keys=197)
    np.testing.assert_array_equal(fig.data[0].z, e)
    assert fig.data[0].zmax == pytest.approx(math.log(197)) and fig.data[0].zmin == 0
    assert "nats" in fig.data[0].colorbar.title.text
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    v = RNG.random((3, 4))
    pf = viz.prefix_attention_figure(v)
    np.testing.assert_array_equal(pf.data[0].z, v)
    assert (pf.data[0].zmin, pf.data[0].zmax) == (0, 1)
    with pytest.raises(ValueError, match="fractions"):
        viz.prefix_attention_figure(v + 1)


def test_token_norms_artifacts_and_prefix_line():
    n = RNG.random((4, 11)) + 1
    fig = viz.token_norms_figure(n, tokens=viz.TokenLayout(2, ["CLS", "REG0"]), artifact_tokens=[5, 9])
    np.testing.assert_array_equal(fig.data[0].z, n)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert lines[0].x0 == 1.5
    assert sorted((r.x0, r.x1) for r in rects) == [(4.5, 5.5), (8.5, 9.5)]
    assert {"CLS", "REG0", "p3", "p7"} <= set(fig.layout.xaxis.ticktext)  # artifact tokens 5, 9 = patches 3, 7
    assert (fig.data[0].x[5], fig.data[0].y[0]) == ("patch 3", "0")  # the hover's names: categories
    assert "layer %{y}, %{x}" in fig.data[0].hovertemplate and fig.data[0].customdata is None
    assert fig.layout.xaxis.type == "category" and fig.layout.xaxis.range == (-0.5, 10.5)
    assert fig.layout.xaxis.tickvals[list(fig.layout.xaxis.ticktext).index("p3")] == "patch 3"
    assert fig.layout.meta["artifact_tokens"] == [5, 9]
    np.testing.assert_allclose(viz.token_norms_figure(n, log_scale=True).data[0].z, np.log10(n))
    with pytest.raises(ValueError, match="out of range"):
        viz.token_norms_figure(n, artifact_tokens=[11])
    with pytest.raises(ValueError, match="repeat a label"):
        viz.token_norms_figure(n, row_labels=["a", "b", "a", "c"])


def test_pos_similarity_tiles():
    s = RNG.uniform(-1, 1, (2, 3, 2, 3))
    fig = viz.pos_similarity_figure(s)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (2 * 3 - 1, 3 * 4 - 1)
    np.testing.assert_array_equal(untile(z, 2, 3, 2, 3), s)
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-1, 1)
    assert fig.data[0].colorbar.title.text == "cosine similarity"
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        viz.pos_similarity_figure(s * 3)
    with pytest.raises(ValueError, match="same grid"):
        viz.pos_similarity_figure(np.zeros((2, 3, 3, 2)))


def test_pca_image():
    rgb = RNG.random((4, 6, 3))
    fig = viz.pca_image_figure(rgb)
    np.testing.assert_array_equal(fig.data[0].z, np.rint(rgb * 255).astype(np.uint8))
    assert fig.layout.yaxis.scaleanchor == "x"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        viz.pca_image_figure(rgb * 2)
