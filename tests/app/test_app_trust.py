"""How far to trust a map, in the app (AppTest): deletion/insertion under the Explorer's maps, the
randomisation check, and the Compare page."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from model import load_model
from model.explain import EXTRA_METHODS, CLASS_METHODS, METHOD_TITLES, METHODS, default_methods
from test_app import assert_clean, figures, needs_dinov2, needs_fashion, new_app, texts

pytestmark = pytest.mark.filterwarnings("ignore")


def _values(value) -> np.ndarray:
    """A trace's values as the browser gets them (plotly sends numpy arrays base64-encoded)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype=float)


def _titles(at):
    return [(f.get("layout", {}).get("title") or {}).get("text", "") for f in figures(at)]


@needs_fashion
def test_explorer_maps_show_their_deletion_and_insertion():
    from model import deletion_insertion
    from model.explain import explain
    from model.gallery import get_sample
    from model.preprocess import decode_image

    at = new_app("explorer", view="explain")
    fig = figures(at)[2]
    assert fig["layout"]["title"]["text"].startswith("Deletion and insertion for “Ankle boot”")
    shown = [METHOD_TITLES[m] for m in default_methods(True)]  # whatever the maps above are, in their order
    assert [a["text"].split("<br>")[0] for a in fig["layout"]["annotations"][:len(shown)]] == [
        f"<b>{t}</b>" for t in shown]
    chefer = shown.index("Chefer et al.")
    # the numbers are the library's on the same input: Chefer's map of CLS for the top class
    vit = load_model("fashion-vit", device="cpu")
    image = decode_image(get_sample("fashion-ankle-boot").path.read_bytes())
    expected = deletion_insertion(vit, vit.to_pixels([image]), explain(vit, image, "chefer").map)
    np.testing.assert_allclose(fig["layout"]["meta"]["aucs"][chefer], [expected.map.deletion_auc,
                                                                        expected.map.insertion_auc], atol=1e-6)
    assert f"(random {expected.random.deletion_auc:.2f})" in fig["layout"]["annotations"][chefer]["text"]
    assert "A faithful map: deletion AUC below" in texts(at)
    at.radio(key="baseline").set_value("blur").run()
    assert_clean(at)
    assert "baseline: blurred image" in _titles(at)[2].replace("<br>", " ")


@needs_fashion
def test_randomisation_check_view():
    at = new_app("explorer", view="sanity")
    assert "Randomisation check" in _titles(at)[1].replace("<br>", " ")
    lines = figures(at)[1]["data"]
    names = [t["name"] for t in lines]
    assert names == [METHOD_TITLES[m] for m in METHODS]  # every method
    assert all(_values(t["y"])[0] == pytest.approx(1.0) for t in lines)  # step 0: the trained model's own map
    assert _values(lines[names.index("rollout")]["y"])[1] == pytest.approx(1.0)  # rollout never reads the head
    assert "with every block random" in texts(at)
    grid = figures(at)[2]  # the maps themselves: one row per method, one column per step
    steps = len(lines[0]["x"])
    assert len(grid["layout"]["meta"]["notes"]) == len(METHODS) * steps
    assert grid["layout"]["meta"]["notes"][0] == "ρ = 1.00"


def _top_classes(sample: str, k: int) -> list[int]:
    import torch

    from model.gallery import get_sample
    from model.preprocess import decode_image

    vit = load_model("fashion-vit", device="cpu")
    with torch.no_grad():
        logits = vit(vit.to_pixels([decode_image(get_sample(sample).path.read_bytes())]))[0][0]
    return [int(i) for i in torch.argsort(logits, descending=True)[:k]]


@needs_fashion
def test_compare_page_every_mode():
    at = new_app("compare")
    fig = figures(at)[0]
    assert fig["layout"]["title"]["text"] == "Methods on this image"
    notes = fig["layout"]["meta"]["notes"]
    # every method fashion-vit allows: rollout, the gradient maps and each added method (its graph is small
    # enough for attention flow), each with its AUCs
    assert len(notes) == len(default_methods(True)) + len(EXTRA_METHODS)
    assert all(re.fullmatch(r"deletion \d\.\d\d \(\d\.\d\d\)<br>insertion \d\.\d\d \(\d\.\d\d\)", n) for n in notes)
    assert "coloraxis" in fig["layout"]
    at.segmented_control(key="compare_mode").set_value("classes").run()
    assert_clean(at)
    top3 = _top_classes("fashion-ankle-boot", 3)
    assert at.multiselect(key="compare_classes").value == top3 and top3[0] == 9  # the model's top 3 first
    fig = figures(at)[0]
    assert fig["layout"]["title"]["text"] == f"{METHOD_TITLES[CLASS_METHODS[0]]} for several classes"
    names = load_model("fashion-vit").cfg.class_names
    assert [a["text"].split(" (p")[0] for a in fig["layout"]["annotations"][:3]] == [names[k] for k in top3]
    at.multiselect(key="compare_classes").set_value([9, 0]).run()
    assert len(figures(at)[0]["layout"]["meta"]["notes"]) == 2
    at.selectbox(key="query").set_value(20).run()  # the query moves every map that follows it
    at.segmented_control(key="compare_mode").set_value("methods").run()
    assert_clean(at)
    assert len(figures(at)[0]["layout"]["shapes"]) == 2 * (len(default_methods(True)) + len(EXTRA_METHODS))


@needs_fashion
@needs_dinov2
def test_compare_two_models_on_one_image():
    at = new_app("compare", compare_mode="models", query=25)
    assert at.selectbox(key="compare_model").value == "dinov2-small"
    assert at.selectbox(key="compare_method").options == ["rollout"]  # what both models can show
    fig = figures(at)[0]
    notes = fig["layout"]["meta"]["notes"]
    assert notes[0].startswith("deletion ") and notes[1] == "no class head: no deletion/insertion"
    heat = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert heat[0]["dx"] == 4 and heat[1]["dx"] == 14  # each map over its own model's input
    # one query place: fashion-vit's patch 24 (row 3, col 3 of 7×7) is dinov2-small's row 8, col 8 of 16×16
    outlines = [s for s in fig["layout"]["shapes"] if s["line"]["color"] != "rgba(0,0,0,0.85)"]
    assert (outlines[0]["x0"], outlines[1]["x0"]) == (3 * 4 - 0.5, 8 * 14 - 0.5)


@needs_dinov2
def test_headless_model_says_why_there_are_no_aucs():
    at = new_app("explorer", model="dinov2-small", sample="chelsea", view="explain")
    assert "no classification head, so there is no class probability" in texts(at)
    assert len(figures(at)) == 2  # the overlay and the maps; no deletion/insertion
    at.segmented_control(key="view").set_value("sanity").run()
    assert_clean(at)
    assert at.button(key="measure_randomisation")  # slow for 256 patches: only when asked
    assert len(figures(at)) == 1
    at.switch_page("app_pages/compare.py").run()
    at.segmented_control(key="compare_mode").set_value("classes").run()
    assert_clean(at)
    assert "has no classification head, so there are no classes to compare" in texts(at)


def test_query_maps_to_the_same_place_in_another_grid():
    from types import SimpleNamespace

    from app_core.faithfulness import query_in

    fashion = SimpleNamespace(num_prefix_tokens=1, grid=(7, 7))
    dino = SimpleNamespace(num_prefix_tokens=1, grid=(16, 16))
    registers = SimpleNamespace(num_prefix_tokens=5, grid=(16, 16))
    assert query_in(0, fashion, dino) == 0  # CLS stays CLS
    assert query_in(1 + 3 * 7 + 3, fashion, dino) == 1 + 8 * 16 + 8  # the centre patch: (3.5/7)·16 = 8
    assert query_in(1 + 6 * 7 + 6, fashion, dino) == 1 + 14 * 16 + 14  # its centre (6.5/7 = 0.93) is in patch 14
    assert query_in(1, fashion, registers) == 5 + 16 + 1  # patch 0's centre (0.5/7 of the side) is in row 1, col 1
    assert query_in(3, registers, fashion) == 0  # a register of one model: the other's last prefix token


def test_randomisation_summary_in_words():
    from app_core.faithfulness import randomisation_summary
    from model.sanity import RandomisationCheck

    check = RandomisationCheck(("trained", "head", "block 1", "block 0", "embeddings"), {},
                               {"rollout": np.array([1, 1, 0.5, 0.2, 0.1]), "chefer": np.array([1, 0.3, 0.2, 0, 0])},
                               3, "Dress")
    assert randomisation_summary(check, {"chefer": "Chefer et al."}) == (
        "rollout: ρ = 1.00 with a random head, 0.20 with every block random; Chefer et al.: ρ = 0.30 with a random "
        "head, 0.00 with every block random.")
