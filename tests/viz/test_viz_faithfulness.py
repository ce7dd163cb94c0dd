"""viz.faithfulness: deletion/insertion panels, the randomisation check, maps compared side by side."""
from __future__ import annotations

import numpy as np
import pytest

import viz
from viz import CurvePanel, MapPanel
from viz._figure import shown


def panel(name, seed, random=True):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, 11)
    d, i = np.sort(rng.random(11))[::-1], np.sort(rng.random(11))
    extra = dict(random_deletion=d * 0.9, random_insertion=i * 0.9, random_deletion_auc=0.4,
                 random_insertion_auc=0.41) if random else {}
    return CurvePanel(name, x, d, i, 0.21, 0.63, **extra)


def test_faithfulness_panels_carry_the_curves_and_aucs():
    panels = [panel("rollout", 0), panel("Chefer et al.", 1)]
    fig = viz.faithfulness_figure(panels, class_name="Sneaker")
    assert len(fig.data) == 8  # deletion, insertion, random deletion, random insertion per panel
    np.testing.assert_allclose(fig.data[0].y, panels[0].deletion)
    np.testing.assert_allclose(fig.data[5].y, panels[1].insertion)
    assert fig.data[2].line.dash == "dot" and fig.data[0].line.dash == "solid"
    assert fig.data[6].xaxis == "x2"
    texts = [a.text for a in fig.layout.annotations]
    assert "deletion AUC 0.21 (random 0.40)<br>insertion AUC 0.63 (random 0.41)" in texts[0]
    assert fig.layout.meta["aucs"] == [[0.21, 0.63], [0.21, 0.63]]
    assert "Sneaker" in fig.layout.title.text and fig.layout.font.size >= 14
    assert len(viz.faithfulness_figure([panel("a", 0, random=False)]).data) == 2
    with pytest.raises(ValueError, match="panels is empty"):
        viz.faithfulness_figure([])


def test_randomisation_lines():
    steps = ["trained", "head", "block 1", "block 0"]
    fig = viz.randomisation_figure(steps, {"rollout": [1, 1, 0.8, 0.1], "chefer": [1, 0.3, 0.2, 0.0]})
    assert [t.name for t in fig.data] == ["rollout", "chefer"]
    assert list(fig.data[0].x) == steps and list(fig.data[1].y) == [1, 0.3, 0.2, 0.0]
    with pytest.raises(ValueError, match="one value per step"):
        viz.randomisation_figure(steps, {"rollout": [1, 2]})


def test_compare_panels_share_one_scale_and_show_notes():
    small = np.zeros((28, 28, 3), np.uint8)
    big = np.zeros((56, 56, 3), np.uint8)
    m1 = np.arange(49.0).reshape(7, 7)
    m2 = np.arange(16.0).reshape(4, 4) * 3
    fig = viz.compare_figure([MapPanel(small, m1, "fashion-vit", "del 0.2 · ins 0.6", query_patch=8),
                              MapPanel(big, m2, "other", "no class head")])
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2 and all(t.coloraxis == "coloraxis" for t in heat)
    np.testing.assert_array_equal(heat[0].z, shown(m1 / 48))  # each ÷ its max: one 0…1 scale
    assert heat[1].dx == 14 and heat[0].dx == 4  # each over its own image
    assert fig.layout.coloraxis.cmax == 1.0 and fig.layout.meta["notes"] == ["del 0.2 · ins 0.6", "no class head"]
    assert len(fig.layout.shapes) == 2  # the query outline (halo and line) on the first panel only
    assert fig.layout.shapes[0].x0 == 3.5 and fig.layout.shapes[0].y0 == 3.5  # patch 8 = row 1, col 1, P = 4
