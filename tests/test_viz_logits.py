"""viz.logits: top-k probabilities and the cross-entropy loss figure."""

import numpy as np
import pytest

import viz

RNG = np.random.default_rng(4)


def _reference_softmax(y):
    y = np.asarray(y, dtype=np.longdouble)
    e = np.exp(y - y.max())
    return (e / e.sum()).astype(np.float64)


def test_softmax_stable_and_correct():
    y = np.array([1000.0, 999.0, -1000.0])
    p = viz.softmax(y)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p, _reference_softmax(y))
    np.testing.assert_allclose(np.exp(viz.log_softmax(y)), p)


def test_topk_bars_probabilities_and_labels():
    y = RNG.normal(size=10) * 3
    names = [f"c{i}" for i in range(10)]
    fig = viz.topk_figure(y, names, k=10)
    bar = fig.data[0]
    assert bar.type == "bar" and bar.orientation == "h"
    ref = _reference_softmax(y)
    assert np.sum(bar.x) == pytest.approx(1.0)
    order = np.argsort(-ref)
    np.testing.assert_allclose(bar.x, ref[order])
    assert list(bar.y) == [names[i] for i in order]
    assert list(bar.customdata) == order.tolist()
    assert bar.text[0] == f"{100 * ref[order[0]]:.1f}%"
    assert sum(fig.layout.meta["probs"]) == pytest.approx(1.0)
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # best class on top
    top3 = viz.topk_figure(y, names, k=3)
    assert len(top3.data[0].x) == 3 and "Top-3" in top3.layout.title.text


def test_topk_duplicate_and_long_names_stay_distinct():
    fig = viz.topk_figure([1.0, 2.0, 3.0], ["dog", "dog", "x" * 80], k=3)
    assert len(set(fig.data[0].y)) == 3
    assert max(len(s) for s in fig.data[0].y) <= 40
    assert "x" * 80 in fig.data[0].hovertext


def test_loss_figure_value_and_highlight():
    y = RNG.normal(size=12) * 2
    names = [f"class {i}" for i in range(12)]
    label = int(np.argsort(y)[0])  # the least likely class: not in the top-k
    fig = viz.loss_figure(y, names, label=label, k=4)
    expected = -np.log(_reference_softmax(y)[label])
    assert fig.layout.meta["loss"] == pytest.approx(expected)
    text = fig.layout.annotations[0].text
    assert f"{expected:.4f}" in text and "−log p" in text
    assert f"{expected:.3f}" in fig.layout.title.text
    bar = fig.data[0]
    assert label in list(bar.customdata) and len(bar.x) == 4
    i = list(bar.customdata).index(label)
    colours = list(bar.marker.color)
    assert colours.count(colours[i]) == 1  # only the chosen class has the accent colour
    by_name = viz.loss_figure(y, names, label=names[label], k=4)
    assert by_name.layout.meta["loss"] == fig.layout.meta["loss"]


def test_logit_errors():
    with pytest.raises(ValueError, match="class_names has 2"):
        viz.topk_figure([1.0, 2.0, 3.0], ["a", "b"])
    with pytest.raises(ValueError, match="batch"):
        viz.topk_figure(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="out of range"):
        viz.loss_figure([1.0, 2.0], None, label=5)
    with pytest.raises(ValueError, match="not a class name"):
        viz.loss_figure([1.0, 2.0], ["a", "b"], label="c")
