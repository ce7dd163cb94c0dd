"""viz.dataset: the data-set figures checked by their data (plain loops as the reference)."""

import math

import numpy as np
import pytest

import viz

RNG = np.random.default_rng(7)


def test_head_spread_dots_are_the_mean_and_std_over_images_of_each_head():
    M, L, H = 6, 3, 4
    v = RNG.random((M, L, H)) * 50
    v[2, 1, 3] = np.nan  # one image without a value for one head
    fig = viz.head_spread_figure(v, quantity="mean attention distance", unit=" px", top=224.0)
    dots, line = fig.data
    for layer in range(L):
        for head in range(H):
            i = layer * H + head
            vals = [v[m, layer, head] for m in range(M) if not math.isnan(v[m, layer, head])]
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((x - mean) ** 2 for x in vals) / len(vals))
            assert dots.y[i] == pytest.approx(mean)
            assert dots.error_y.array[i] == pytest.approx(std)
            assert abs(dots.x[i] - layer) <= 0.3 + 1e-9
            assert tuple(dots.customdata[i][:2]) == (layer, head) and dots.customdata[i][6] == len(vals)
            assert dots.customdata[i][4] == pytest.approx(np.percentile(vals, 10))
    # heads of one layer side by side, left to right in head order
    assert list(np.argsort(dots.x[:H])) == list(range(H))
    np.testing.assert_allclose(line.y, np.nanmean(np.nanmean(v, axis=0), axis=1))
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= 224.0
    assert "mean attention distance (px)" == fig.layout.yaxis.title.text
    assert fig.layout.showlegend and fig.layout.font.size >= 14
    # the CSV download holds the means and their spread, heads in layer-major order
    data = viz.figure_data(fig)
    np.testing.assert_allclose(data["0_heads_mean_std_y"], np.nanmean(v, axis=0).ravel())
    np.testing.assert_allclose(data["0_heads_mean_std_error_y"], np.nanstd(v, axis=0).ravel())


def test_head_spread_one_image_has_no_spread_and_bad_input_says_what_fits():
    v = RNG.random((1, 2, 3))
    fig = viz.head_spread_figure(v, quantity="entropy", unit=" nats")
    np.testing.assert_allclose(fig.data[0].y, v[0].ravel())
    np.testing.assert_array_equal(fig.data[0].error_y.array, 0)
    with pytest.raises(ValueError, match=r"\[M, L, H\]"):
        viz.head_spread_figure(v[0], quantity="entropy")
    with pytest.raises(ValueError, match="empty"):
        viz.head_spread_figure(np.zeros((0, 2, 3)), quantity="entropy")


def test_artifact_frequency_map_and_counts():
    share = np.zeros((3, 4))
    share[0, 3], share[2, 1] = 0.5, 0.25
    fig = viz.artifact_frequency_figure(share, images=8)
    heat = fig.data[0]
    np.testing.assert_allclose(heat.z, share)
    assert tuple(heat.customdata[0][3]) == (3, 0, 3, 4)  # patch 3, row 0, col 3, flagged in 4 of 8 images
    assert (heat.zmin, heat.zmax) == (0.0, 0.5)
    with pytest.raises(ValueError, match="fractions"):
        viz.artifact_frequency_figure(share * 3, images=8)

    counts = np.array([0, 2, 2, 0, 0, 5])
    bars = viz.artifact_count_figure(counts).data[0]
    np.testing.assert_array_equal(bars.x, np.arange(6))
    np.testing.assert_array_equal(bars.y, [3, 0, 2, 0, 0, 1])
    with pytest.raises(ValueError, match="whole numbers"):
        viz.artifact_count_figure(np.array([0.5]))


def _points(n_images=2, h=2, w=3, p=1):
    T = p + h * w
    token = np.tile(np.arange(T), n_images)
    image = np.repeat(np.arange(n_images), T)
    patch = token - p
    row, col = np.where(patch >= 0, patch // w, -1), np.where(patch >= 0, patch % w, -1)
    n = len(token)
    xy = RNG.normal(size=(2 * n, 2))
    return {"xy": xy, "is_key": np.repeat([False, True], n), "image": np.tile(image, 2),
            "token": np.tile(token, 2), "row": np.tile(row, 2), "col": np.tile(col, 2)}


@pytest.mark.parametrize("colour_by", viz.QK_COLOUR_BY)
def test_qk_embedding_every_point_once_with_its_role_and_position(colour_by):
    d = _points()
    fig = viz.qk_embedding_figure(d["xy"], d["is_key"], image=d["image"], token=d["token"], row=d["row"],
                                  col=d["col"], names=["a.png", "b.png"], colour_by=colour_by,
                                  explained=[0.5, 0.25])
    queries, keys, prefix = fig.data
    assert [t.name for t in fig.data][:2] == ["queries", "keys"] and all(t.type == "scattergl" for t in fig.data)
    seen = []
    for trace in fig.data:
        for (x, y), cd in zip(zip(trace.x, trace.y), trace.customdata):
            i = int(cd[0])  # a click reads the point's own index from customdata
            assert (x, y) == pytest.approx(tuple(d["xy"][i]))
            assert tuple(cd[1:]) == (d["image"][i], d["token"][i], d["row"][i], d["col"][i])
            seen.append(i)
    assert sorted(seen) == list(range(len(d["xy"])))  # every point exactly once
    assert not any(d["is_key"][int(cd[0])] for cd in queries.customdata)
    assert all(d["is_key"][int(cd[0])] for cd in keys.customdata)
    assert all(d["row"][int(cd[0])] == -1 for cd in prefix.customdata)
    assert set(queries.text) == {"a.png", "b.png"}
    assert queries.hovertemplate.startswith("query of patch ") and keys.hovertemplate.startswith("key of patch ")
    if colour_by == "kind":
        assert queries.marker.color != keys.marker.color
    else:
        field = "row" if colour_by == "row" else "col"
        np.testing.assert_array_equal(queries.marker.color, [d[field][int(cd[0])] for cd in queries.customdata])
    assert "50% of the variance" in fig.layout.xaxis.title.text
    assert fig.layout.yaxis.scaleanchor == "x"  # distances are what the picture is about: equal scales
    assert fig.layout.clickmode == "event+select"


def test_qk_embedding_refuses_mismatched_inputs():
    d = _points()
    with pytest.raises(ValueError, match="one entry per point"):
        viz.qk_embedding_figure(d["xy"], d["is_key"][:-1], image=d["image"], token=d["token"], row=d["row"],
                                col=d["col"])
    with pytest.raises(ValueError, match="colour_by"):
        viz.qk_embedding_figure(d["xy"], d["is_key"], image=d["image"], token=d["token"], row=d["row"],
                                col=d["col"], colour_by="size")


def test_legends_keep_the_rows_they_need_in_the_pages_figure_column():
    """The data-set page draws these figures beside their text, ~500 px wide at a 1280-px screen:
    Streamlit squeezes them (the height kept), their legend wraps onto more rows, and the room
    above the plot must hold those rows under the title (they overlapped it)."""
    from viz import _figure as F

    th = viz.resolve_theme(None)
    v = RNG.random((300, 4, 4)) * 20
    for fig in (viz.head_spread_figure(v, quantity="mean attention distance", unit=" px", top=28.0),
                viz.head_spread_figure(v, quantity="attention entropy", unit=" nats",
                                       title="Attention entropy per head over 300 images (mean ± std; at most ln 50 "
                                             "= 3.91)")):
        m = fig.layout.margin
        names = [t.name for t in fig.data]
        rows = F.legend_rows(th, names, F.FIGURE_COLUMN_PX - m.l - m.r)
        assert rows > F.legend_rows(th, names, fig.layout.width - m.l - m.r)  # the squeeze adds a row here
        title_lines = fig.layout.title.text.count("<br>") + 1
        assert m.t >= th.margin["t"] + (title_lines - 1) * round(th.title_size * 1.3) \
            + (rows - 1) * th.legend_row_height, fig.layout.title.text
