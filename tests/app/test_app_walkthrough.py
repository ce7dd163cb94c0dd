"""The Walkthrough page (AppTest): every step on fashion-vit, moving between steps and figures, the
attention step's token/layer/head, the loss for any label, the feed-forward step."""
from __future__ import annotations

import pytest

from model import steps
from test_app import assert_clean, figures, needs_fashion, new_app, texts, titles

pytestmark = pytest.mark.filterwarnings("ignore")


def test_sources_hold_no_control_characters():
    """A "\t" or "\b" in a string that is not raw becomes a tab or a backspace: in an equation
    (r"\tfrac" typed where the r was lost) KaTeX then draws something else. Sources are plain text."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = [f for d in ("app_pages", "app_core", "viz", "model", "bench", "scripts") for f in (root / d).rglob("*")
             if f.suffix in (".py", ".md", ".sh", ".json")] + [root / "app.py", root / "README.md"]
    assert len(files) > 50
    bad = [f"{f.relative_to(root)}:{n}" for f in files
           for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
           if any(ord(ch) < 32 and ch != "\t" for ch in line) or (f.suffix == ".py" and "\t" in line)]
    assert not bad, bad


@needs_fashion
def test_walkthrough_every_step_fashion_vit():
    at = new_app()
    assert "Walkthrough" in at.title[0].value
    for step in steps.STEPS:
        at.segmented_control(key="step").set_value(step).run()
        assert_clean(at)
        assert at.header[0].value == steps.STEP_TITLES[step]
        assert at.latex, f"step {step} has no equation"
        assert all(ch >= " " or ch == "\n" for e in at.latex for ch in e.value), step  # TeX, not "\t" read as a tab
        assert any(e.label == "Answer" for e in at.expander), f"step {step} has no question"
        assert "On this image" in texts(at) or step in ("loss",), step
        assert figures(at), f"step {step} shows no figure"
    assert "nats" in texts(at)
    # the loss step explains the floor label smoothing puts under the loss (ε = 0.1, K = 10)
    assert "its target for the true class was p = 0.91" in texts(at) and "0.094" in texts(at)
    assert "fashion-vit: loss during training" in titles(at)


@needs_fashion
def test_walkthrough_back_next_and_figure_choices():
    at = new_app()
    at.button(key="step_next").click().run()
    assert at.session_state["step"] == "positions"
    at.button(key="step_back").click().run()
    assert at.session_state["step"] == "patches"
    for choice in ("grid", "one", "mosaic", "flattened", "embeddings", "pca"):
        at.radio(key="wt_patch_fig").set_value(choice).run()
        assert_clean(at)
        assert len(figures(at)) == 1
    at.segmented_control(key="step").set_value("positions").run()
    for choice in ("similarity", "z0"):
        at.radio(key="wt_pos_fig").set_value(choice).run()
        assert_clean(at)


@needs_fashion
def test_walkthrough_attention_uses_the_chosen_token_layer_and_head():
    at = new_app(step="attention")
    at.selectbox(key="query").set_value(9).run()
    at.slider(key="layer").set_value(2).run()
    at.segmented_control(key="head").set_value(1).run()
    assert_clean(at)
    assert "patch 8 (row 1, col 1), layer 2, head 1" in texts(at)
    assert at.dataframe, "the q·k table is missing"
    at.radio(key="wt_attn_fig").set_value("heads").run()
    assert_clean(at)
    assert any("All heads of layer 2" in t for t in titles(at))
    for choice in ("scores", "mix", "row"):
        at.radio(key="wt_attn_fig").set_value(choice).run()
        assert_clean(at)
        assert len(figures(at)) == 1
    spec = figures(at)[0]  # the softmax row on the image: the traced attention of token 9
    assert spec["data"][1]["type"] == "heatmap"


@needs_fashion
def test_walkthrough_loss_for_any_label():
    at = new_app(step="loss")
    losses = set()
    for label in (-1, 0, 3, 9):
        at.selectbox(key="loss_label").set_value(label).run()
        assert_clean(at)
        spec = figures(at)[0]
        losses.add(round(spec["layout"]["meta"]["loss"], 6))
    assert len(losses) >= 3


@needs_fashion
def test_walkthrough_ffn_step_table_and_figures():
    at = new_app(step="mlp")
    at.selectbox(key="query").set_value(0).run()
    assert_clean(at)
    assert at.dataframe and "‖MLP update‖" in at.dataframe[0].value.columns
    for choice in ("stream", "units", "lines", "heatmap"):
        at.radio(key="wt_mlp_fig").set_value(choice).run()
        assert_clean(at)
        assert len(figures(at)) == 1, choice
    at.radio(key="wt_mlp_fig").set_value("units").run()
    at.slider(key="layer").set_value(2).run()
    assert_clean(at)
    assert "block 2" in titles(at)[0]


# ----------------------------------------------------------------------------- explorer
