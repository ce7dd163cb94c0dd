"""The command line with a CLIP model: --prompts gives it classes on predict, explain and trace;
--label on explain may be any text; without prompts it says how to give them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from model import load_model
from model.cli import main
from model.clip import with_prompts


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


def test_predict_with_prompts_gives_the_zero_shot_probabilities(clip_model, image, capsys):
    directory, _ = clip_model
    argv = ["predict", str(image), "--model", str(directory), "--device", "cpu", "--prompts", "cat, dog, car",
            "--top", "3", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    (result,) = json.loads(captured.out)
    model = with_prompts(load_model(str(directory), device="cpu"), ["cat", "dog", "car"])
    with torch.no_grad():
        logits = model(model.to_pixels([Image.open(image).convert("RGB")]))[0][0].double()
    probs = torch.softmax(logits, 0).numpy()
    assert sorted(t["label"] for t in result["top"]) == ["car", "cat", "dog"]
    for t in result["top"]:
        assert t["prob"] == pytest.approx(probs[t["index"]], abs=1e-5)
    assert "3 CLIP text prompts" in captured.err


def test_explain_takes_any_typed_label(clip_model, image, tmp_path, capsys):
    directory, _ = clip_model
    out = tmp_path / "map.png"
    argv = ["explain", str(image), "--model", str(directory), "--device", "cpu", "--prompts", "cat, dog",
            "--method", "chefer", "--label", "a red bicycle", "--out", str(out), "--npz", str(tmp_path / "m.npz")]
    assert main(argv) == 0
    assert "for class 2 (a red bicycle)" in capsys.readouterr().out and out.is_file()
    assert int(np.load(tmp_path / "m.npz")["label_index"]) == 2


def test_trace_with_prompts_writes_their_logits(clip_model, image, tmp_path):
    directory, _ = clip_model
    out = tmp_path / "t.npz"
    assert main(["trace", str(image), "--model", str(directory), "--device", "cpu", "--prompts", "cat,dog,car",
                 "--out", str(out)]) == 0
    assert np.load(out)["logits"].shape == (1, 3)


def test_clip_without_prompts_and_prompts_without_clip_say_what_to_do(clip_model, image, tmp_path, capsys):
    directory, _ = clip_model
    assert main(["predict", str(image), "--model", str(directory), "--device", "cpu"]) == 2
    assert "--prompts" in capsys.readouterr().err
    assert main(["explain", str(image), "--model", str(directory), "--device", "cpu", "--method", "chefer",
                 "--out", str(tmp_path / "m.png")]) == 2
    assert "give its classes as text" in capsys.readouterr().err
    assert main(["predict", str(image), "--model", "fashion-vit", "--prompts", "cat, dog"]) == 2
    assert "is not a CLIP model" in capsys.readouterr().err
    assert main(["predict", str(image), "--model", str(directory), "--prompts", "cat, dog", "--template", "{} {}"]) == 2
    assert "exactly once" in capsys.readouterr().err
    assert main(["predict", str(image), "--model", str(directory), "--prompts", "cat"]) == 2
    assert "at least two class prompts" in capsys.readouterr().err
