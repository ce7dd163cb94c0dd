"""A CLIP model in the app: the sidebar's Classes box gives it its classes (text prompts), the
logits, loss and class maps follow them, and every page says which head gives the logits."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from app_core import prompts, sources
from test_app import APP, TIMEOUT, assert_clean, figures, plain, texts

pytestmark = pytest.mark.filterwarnings("ignore")


def clip_app(directory, monkeypatch, **query) -> AppTest:
    monkeypatch.delenv(sources.PUBLIC_ENV, raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["model"] = str(directory)
    for key, value in query.items():
        at.query_params[key] = str(value)
    at.run()
    assert_clean(at)
    return at


def test_typed_prompts_are_the_classes_of_logits_loss_and_class_maps(clip_model, monkeypatch):
    directory, _ = clip_model
    at = clip_app(directory, monkeypatch, step="logits")
    assert at.text_area(key="prompts").value == prompts.DEFAULT_PROMPTS
    at.text_area(key="prompts").set_value("cat, dog, red car").run()
    assert_clean(at)
    shown = texts(at)
    assert "come from CLIP's text prompts" in shown  # the sidebar says which head gives the logits
    # the logits are the zero-shot logits of these prompts on the image the model saw
    from model import load_model
    from model.clip import with_prompts

    model = with_prompts(load_model(str(directory), device="cpu"), ["cat", "dog", "red car"])
    image = at.session_state["sample"]
    from model.gallery import get_sample

    pixels = model.to_pixels([Image.open(get_sample(image).path).convert("RGB")])
    with torch.no_grad():
        expected = torch.softmax(model(pixels)[0][0].double(), 0).numpy()
    top = max(range(3), key=lambda k: expected[k])
    names = ["cat", "dog", "red car"]
    assert f"{names[top]}** with p = {expected[top]:.3f}" in shown

    at.segmented_control(key="step").set_value("loss").run()
    assert_clean(at)
    at.selectbox(key="loss_label").set_value(2).run()
    assert_clean(at)
    assert f"p(red car) = {expected[2]:.4f}" in texts(at)

    at.switch_page("app_pages/explorer.py").run()
    at.segmented_control(key="view").set_value("explain").run()
    at.selectbox(key="target_class").set_value(2).run()
    assert_clean(at)
    assert at.selectbox(key="target_class").options[-1] == "red car"
    names = [a["text"] for a in figures(at)[1]["layout"]["annotations"]]
    assert names == ["rollout", "gradient rollout", "Chefer et al."]


def test_unusable_prompts_warn_and_the_head_steps_say_how_to_give_classes(clip_model, monkeypatch):
    directory, _ = clip_model
    at = clip_app(directory, monkeypatch, step="logits")
    at.text_area(key="prompts").set_value("only one").run()
    assert_clean(at)
    assert any("at least two class prompts" in plain(w.value) for w in at.warning)
    assert "Classes box" in texts(at)
    at.text_area(key="prompts").set_value("cat, <b>dog</b>").run()
    assert_clean(at)
    assert any("contains < or >" in plain(w.value) for w in at.warning)


def test_prompts_travel_in_the_link(clip_model, monkeypatch):
    directory, _ = clip_model
    at = clip_app(directory, monkeypatch, step="logits", prompts="apple, pear")
    assert at.text_area(key="prompts").value == "apple, pear"
    topk = json.dumps(figures(at)[0])
    assert '"apple"' in topk and '"pear"' in topk and '"cat"' not in topk  # the logits figure shows the link's classes
    assert at.query_params["prompts"] == "apple, pear"
    at.segmented_control(key="step").set_value("positions").run()  # CLIP's LayerNorm before the blocks
    assert_clean(at)
    assert "LN_pre" in texts(at)


def test_session_prompts_bounds():
    assert prompts.session_prompts("a, b, a", public=False) == ["a", "b"]
    with pytest.raises(ValueError, match="at most 20"):
        prompts.session_prompts(", ".join(f"p{i}" for i in range(21)), public=True)
    assert len(prompts.session_prompts(", ".join(f"p{i}" for i in range(21)), public=False)) == 21
    with pytest.raises(ValueError, match="keep each under 61"):
        prompts.session_prompts("cat, " + "x" * 61, public=True)
    with pytest.raises(ValueError, match="keep them under"):
        prompts.session_prompts("a," * 1500, public=False)
    a = prompts.prompts_model_key("m", ["a", "b"], "{}")
    assert a != prompts.prompts_model_key("m", ["a", "c"], "{}") and a.startswith("m|prompts:")
