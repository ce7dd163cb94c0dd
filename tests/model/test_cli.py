"""`python -m model trace | predict | explain | card`: the contract's files, the cards and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import Preprocessor, ViT, ViTConfig
from model.cli import main
from model.native import save_native
from small_models import small_classifier

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def classifier_dir(tmp_path):
    model = small_classifier(Preprocessor(resize_to=(24, 24), image_mean=(0.5,) * 3, image_std=(0.5,) * 3))
    return save_native(model, tmp_path / "clf")


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_trace_writes_the_contract_arrays(classifier_dir, images, tmp_path, capsys):
    out = tmp_path / "t.npz"
    assert main(["trace", *map(str, images), "--model", str(classifier_dir), "--out", str(out), "--device", "cpu"]) == 0
    z = np.load(out)
    assert set(z.files) >= {"attentions", "hidden_states", "patch_embeddings", "pos_embed", "pixel_values", "logits",
                            "grid", "patch_size", "num_prefix_tokens"}
    assert z["attentions"].dtype == np.float32 and z["attentions"].shape == (2, 2, 3, 18, 18)
    assert z["hidden_states"].shape == (2, 3, 18, 24) and z["pos_embed"].shape == (18, 24)
    assert z["grid"].tolist() == [4, 4] and int(z["patch_size"]) == 6 and int(z["num_prefix_tokens"]) == 2
    np.testing.assert_allclose(z["attentions"].sum(-1), 1.0, atol=1e-5)
    assert "2 image(s), 2 layers × 3 heads, 18 tokens" in capsys.readouterr().out


def test_predict_json_matches_the_model(classifier_dir, images, capsys):
    assert main(["predict", str(images[0].parent), "--model", str(classifier_dir), "--top", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [Path(r["image"]).name for r in results] == ["img0.png", "img1.png"]
    from model import load_model

    model = load_model(str(classifier_dir), device="cpu")
    probs = model.trace([Image.open(images[0])]).logits.softmax(-1)[0]
    top = results[0]["top"]
    assert len(top) == 2 and top[0]["index"] == int(probs.argmax())
    assert top[0]["label"] == ["cat", "dog", "fox"][top[0]["index"]]
    assert abs(top[0]["prob"] - float(probs.max())) < 1e-5 and top[0]["prob"] >= top[1]["prob"]


def test_explain_writes_png_and_npz(classifier_dir, images, tmp_path, capsys):
    from model.explain import CLASS_METHODS, METHODS

    for method in METHODS:
        png, npz = tmp_path / f"{method}.png", tmp_path / f"{method}.npz"
        assert main(["explain", str(images[0]), "--model", str(classifier_dir), "--method", method,
                     "--label", "dog", "--out", str(png), "--npz", str(npz)]) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert Image.open(png).size == (24, 24)
        z = np.load(npz)
        assert z["map"].shape == (4, 4) and np.isfinite(z["map"]).all()
        if method in CLASS_METHODS:
            assert int(z["label_index"]) == 1, method
    assert "for class 1 (dog)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["predict", "NOFILE.png"], "NOFILE.png: no such file or directory"),
    (["explain", "IMG", "--method", "magic", "--out", "x.png"], "method 'magic' is unknown"),
    (["explain", "IMG", "--method", "chefer", "--label", "zebra", "--out", "x.png"], "label 'zebra' is not a class"),
    (["predict", "BAD"], "is not an image Patchlight can read"),
])
def test_errors_are_one_line_and_exit_2(classifier_dir, images, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    argv = [a.replace("IMG", str(images[0])).replace("BAD", str(bad)) for a in argv]
    argv = [*argv[:1], *(["--model", str(classifier_dir)]), *argv[1:]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_headless_model_cannot_predict(tmp_path, images, capsys):
    model = ViT(ViTConfig(image_size=(24, 24), patch_size=6, embed_dim=24, depth=1, num_heads=3, mlp_dim=48))
    model.preprocessor = Preprocessor(resize_to=(24, 24))
    save_native(model, tmp_path / "backbone")
    assert main(["predict", str(images[0]), "--model", str(tmp_path / "backbone")]) == 2
    assert "has no classification head" in capsys.readouterr().err


def test_module_entry_point_runs_as_a_process(tmp_path):
    r = subprocess.run([sys.executable, "-m", "model", "predict", "missing.png", "--model", "nowhere"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error: ")


def test_card_lists_the_builtins_and_prints_each_card(capsys):
    from model.builtins import BUILTIN_NAMES, builtin_summary, model_card

    assert main(["card"]) == 0
    listing = capsys.readouterr().out
    for name in BUILTIN_NAMES:
        s = builtin_summary(name)
        assert f"{name} " in listing and f"T = {s['tokens']['T']} tokens" in listing
    acc = builtin_summary("fashion-vit")["test_accuracy"]
    assert f"{acc * 100:.2f}% test accuracy" in listing
    for name in BUILTIN_NAMES:
        assert main(["card", name]) == 0
        assert capsys.readouterr().out.strip() == model_card(name).strip()
    assert main(["card", "dinov2-small", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["has_head"] is False and "logits" in facts["unavailable_steps"]


def test_card_of_any_other_model_is_generated_from_it(classifier_dir, capsys):
    assert main(["card", str(classifier_dir)]) == 0
    text = capsys.readouterr().out
    assert "cat" in text and "fox" in text  # its class names
    assert main(["card", str(classifier_dir), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["num_classes"] == 3 and facts["prefix_names"] == ["CLS", "REG0"]


def test_card_of_an_unknown_model_is_one_line(capsys):
    assert main(["card", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "fashion-vit, dinov2-small" in err
