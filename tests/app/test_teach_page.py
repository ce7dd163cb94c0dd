"""The Teach classes page (issue 11) through AppTest: classes from the gallery, the fit, the head
on every page (walkthrough steps 5–6 and the Explorer's class maps say which head), download and
upload of the head, one session's head never reaching another session."""
from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from model import Preprocessor, ViT, ViTConfig
from model.heads import load_head
from model.native import save_native

from test_app import APP, assert_clean, plain, texts

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    """A small random backbone without a head (dinov2-small's role, at a test's cost)."""
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=(32, 32), patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_dim=64,
                    num_classes=0, head_type="none", name="tiny-backbone")
    vit = ViT(cfg).eval()
    vit.preprocessor = Preprocessor(resize_to=(32, 32), image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
    return save_native(vit, tmp_path_factory.mktemp("teach") / "backbone")


def open_teach(backbone_dir) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.selectbox(key="model_choice").set_value("path").run()
    at.text_input(key="local_path").set_value(str(backbone_dir)).run()
    at.switch_page("app_pages/teach.py").run()
    assert_clean(at)
    return at


def titles(at) -> list[str]:
    return [(json.loads(el.proto.spec).get("layout", {}).get("title") or {}).get("text", "")
            for el in at.get("plotly_chart")]


def test_teach_from_the_gallery_then_every_page_uses_the_head(backbone_dir):
    at = open_teach(backbone_dir)
    assert at.button(key="teach_fit").disabled  # two empty classes: nothing to teach yet
    assert "has no example images" in texts(at)
    at.button(key="teach_quick").click().run()
    assert_clean(at)
    names = sorted(w.value for w in at.text_input if w.key.startswith("teach_name_"))
    assert names == ["astronaut", "cat", "coffee cup", "rocket"]
    assert [len(c["examples"]) for c in at.session_state["_teach_classes"]] == [6, 6, 6, 6]
    at.selectbox(key="teach_holdout").set_value(0.3)
    at.slider(key="teach_steps").set_value(60)
    at.text_input(key="teach_head_name").set_value("four photos").run()
    at.button(key="teach_fit").click().run()
    assert_clean(at)
    assert any('**taught head "four photos" (4 classes: cat, coffee cup, rocket, astronaut)** — in use' in plain(s.value)
               for s in at.success)
    assert not any("\\\\" in s.value for s in at.success)  # escaped once, not twice
    assert "How the loss fell" in titles(at)
    assert [m.label for m in at.metric][:2] == ["Final training loss", "Held-out accuracy"]
    head = load_head(at.session_state["_taught_head"]["data"])
    assert head.class_names == ["cat", "coffee cup", "rocket", "astronaut"] and head.recipe["steps"] == 60
    assert head.recipe["heldout_images"] == 4 and len(head.recipe["loss_curve"]) == 61  # 1 of 6 per class

    at.switch_page("app_pages/walkthrough.py").run()
    at.segmented_control(key="step").set_value("logits").run()
    assert_clean(at)
    page = texts(at)
    assert 'Logits from: taught head "four photos"' in page and "the head is a 64 × 4 matrix" in page
    assert "Not available" not in page and any("Top-5" in t or "prediction" in t.lower() for t in titles(at))
    at.segmented_control(key="step").set_value("loss").run()
    assert_clean(at)
    page = texts(at)
    assert "Logits from: taught head" in page and "nats" in page and "The head was taught" in page
    assert any("Cross-entropy loss" in t for t in titles(at))
    assert any("loss while its head was taught" in t for t in titles(at))

    at.switch_page("app_pages/explorer.py").run()
    at.segmented_control(key="view").set_value("explain").run()
    assert_clean(at)
    assert 'The class maps explain a logit from: taught head "four photos"' in texts(at)

    # Switched off, the backbone has no head again; forgotten, it is gone.
    at.switch_page("app_pages/teach.py").run()
    at.toggle(key="teach_active").set_value(False).run()
    at.switch_page("app_pages/walkthrough.py").run()
    assert "Not available for" in texts(at) and "Teach classes" in texts(at)
    at.switch_page("app_pages/teach.py").run()
    at.button(key="teach_forget").click().run()
    assert "_taught_head" not in at.session_state


def test_a_head_file_loads_back_and_sessions_keep_their_own_heads(backbone_dir, tmp_path):
    at = open_teach(backbone_dir)
    at.button(key="teach_quick").click().run()
    at.slider(key="teach_steps").set_value(30).run()
    at.button(key="teach_fit").click().run()
    data = at.session_state["_taught_head"]["data"]

    other = open_teach(backbone_dir)  # a second visitor: no head, however the first one taught
    other.switch_page("app_pages/walkthrough.py").run()
    other.segmented_control(key="step").set_value("logits").run()
    assert "Not available for" in texts(other)
    assert "_taught_head" not in other.session_state

    # The downloaded file loads back on the same backbone, and is refused on another.
    from app_core import teaching
    from model.heads import head_bytes

    head = teaching.read_head_file(data, str(backbone_dir), 32)
    assert head_bytes(head) == data
    with pytest.raises(ValueError, match="taught on"):
        teaching.read_head_file(data, "dinov2-small", 32)
