"""viz.logits: top-k probabilities and the cross-entropy loss figure."""

import math

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


def test_training_curve_figure_plots_the_curve_it_is_given():
    curve = {"epoch": [1, 2, 3], "train_loss": [1.5, 0.9, 0.7], "test_loss": [0.8, 0.5, 0.45],
             "test_acc": [0.7, 0.85, 0.875]}
    fig = viz.training_curve_figure(curve)
    train, test = fig.data
    assert list(train.x) == [1, 2, 3] and list(train.y) == [1.5, 0.9, 0.7]
    assert list(test.y) == [0.8, 0.5, 0.45]
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= 1.5
    # a real legend names the lines with their last values, above the plot, in the body font
    assert fig.layout.showlegend and not fig.layout.annotations
    assert [t.name for t in fig.data] == ["train loss (last 0.700)", "test loss (last 0.450, 87.5% correct)"]
    assert all(t.showlegend is not False for t in fig.data)
    assert train.line.color != test.line.color
    leg = fig.layout.legend
    assert leg.orientation == "h" and leg.y >= 1 and leg.yanchor == "bottom"
    assert leg.font.size == fig.layout.font.size
    big = viz.training_curve_figure(curve, theme="classroom")
    assert big.layout.legend.font.size == viz.CLASSROOM.font_size


def test_training_curve_without_accuracy():
    fig = viz.training_curve_figure({"epoch": [1, 2], "train_loss": [1.0, 0.50], "test_loss": [1.1, 0.51]})
    assert fig.data[1].name == "test loss (last 0.510)"


def test_a_loss_that_falls_by_decades_is_drawn_on_a_log_axis():
    """A taught head on a few photos drives the loss from ~1.4 to ~0.001 in a few dozen steps: on a
    linear axis a cliff at step 0 and a flat line at 0. Spanning more than 100×, the axis is log,
    ticked at decades written out; a curve like fashion-vit's (0.35–0.6) stays linear from 0."""
    steps = list(range(150))
    loss = [1.4 * math.exp(-k / 3) + 0.001 for k in steps]
    fig = viz.training_curve_figure({"epoch": steps, "train_loss": loss, "x_title": "Adam step",
                                     "names": ("training", "held-out")})
    ya = fig.layout.yaxis
    assert ya.type == "log" and "log scale" in ya.title.text
    assert 10 ** ya.range[0] < min(loss) and 10 ** ya.range[1] > max(loss)  # every point inside, log10 units
    assert list(ya.ticktext) == ["0.001", "0.01", "0.1", "1"] and list(ya.tickvals) == [0.001, 0.01, 0.1, 1.0]
    flat = viz.training_curve_figure({"epoch": [1, 2, 3], "train_loss": [0.6, 0.4, 0.35],
                                      "test_loss": [0.62, 0.45, 0.41]})
    assert flat.layout.yaxis.type != "log" and flat.layout.yaxis.range[0] == 0


@pytest.mark.parametrize("curve, words", [
    ({"epoch": [1, 2], "train_loss": [1.0]}, "lacks 'test_loss'"),
    ({"epoch": [1, 2], "train_loss": [1.0], "test_loss": [1.0, 0.5]}, "differ in length"),
])
def test_training_curve_refuses_bad_input(curve, words):
    with pytest.raises(ValueError, match=words):
        viz.training_curve_figure(curve)


def test_training_curve_of_a_taught_head_steps_and_optional_held_out_line():
    from viz import training_curve_figure

    curve = {"epoch": list(range(61)), "train_loss": list(np.linspace(1.4, 0.1, 61)), "test_loss": None,
             "x_title": "Adam step", "names": ("training", "held-out")}
    fig = training_curve_figure(curve)
    assert len(fig.data) == 1 and fig.data[0].mode == "lines" and fig.data[0].name.startswith("training loss")
    assert fig.layout.xaxis.title.text == "Adam step"
    curve.update(test_loss=list(np.linspace(1.4, 0.4, 61)), test_acc=[0.75])
    fig = training_curve_figure(curve)
    assert [t.name for t in fig.data] == ["training loss (last 0.100)", "held-out loss (last 0.400, 75.0% correct)"]
    np.testing.assert_allclose(fig.data[1].y, curve["test_loss"])
    with pytest.raises(ValueError, match="lacks 'test_loss'"):
        training_curve_figure({"epoch": [0], "train_loss": [1.0]})  # a built-in's curve still needs both
