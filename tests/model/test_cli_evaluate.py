"""`python -m model evaluate`: deletion/insertion AUCs per image, equal to model.faithfulness; one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from test_cli import classifier_dir, images  # noqa: F401  (fixtures)

from model import Preprocessor, ViT, ViTConfig, deletion_insertion, load_model
from model.cli import main
from model.explain import explain
from model.native import save_native


def test_evaluate_json_equals_the_library(classifier_dir, images, capsys):  # noqa: F811
    assert main(["evaluate", *map(str, images), "--model", str(classifier_dir), "--method", "chefer", "--json",
                 "--label", "dog", "--random", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["image"]).name for r in rows] == ["img0.png", "img1.png"]
    assert set(rows[0]) == {"image", "label", "deletion_auc", "insertion_auc", "random_deletion_auc",
                            "random_insertion_auc"}
    model = load_model(str(classifier_dir), device="cpu")
    for row, path in zip(rows, images):
        image = Image.open(path).convert("RGB")
        expected = deletion_insertion(model, model.to_pixels([image]), explain(model, image, "chefer", label=1).map,
                                      label=1, random_orders=2)
        assert row["label"] == "dog"
        assert row["deletion_auc"] == pytest.approx(expected.map.deletion_auc, abs=1e-6)
        assert row["insertion_auc"] == pytest.approx(expected.map.insertion_auc, abs=1e-6)
        assert row["random_insertion_auc"] == pytest.approx(expected.random.insertion_auc, abs=1e-6)


def test_evaluate_text_blur_and_no_random(classifier_dir, images, capsys):  # noqa: F811
    assert main(["evaluate", str(images[0]), "--model", str(classifier_dir), "--method", "rollout",
                 "--baseline", "blur", "--random", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(images[0])) and "deletion AUC" in out and "random" not in out
    assert main(["evaluate", str(images[0]), "--model", str(classifier_dir), "--method", "rollout", "--json",
                 "--random", "0"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert "random_deletion_auc" not in row and 0 <= row["deletion_auc"] <= 1


@pytest.mark.parametrize("extra, message", [
    (["--method", "magic"], "method 'magic' is unknown"),
    (["--method", "rollout", "--label", "zebra"], "label 'zebra' is not a class"),
    (["--method", "rollout", "--baseline", "noise"], "--baseline 'noise' is unknown; choose one of mean, blur"),
    (["--method", "rollout", "--random", "-1"], "--random must be 0"),
])
def test_evaluate_errors_are_one_line(classifier_dir, images, capsys, extra, message):  # noqa: F811
    assert main(["evaluate", str(images[0]), "--model", str(classifier_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_evaluate_needs_a_class_head(tmp_path, images, capsys):  # noqa: F811
    model = ViT(ViTConfig(image_size=(24, 24), patch_size=6, embed_dim=24, depth=1, num_heads=3, mlp_dim=48))
    model.preprocessor = Preprocessor(resize_to=(24, 24))
    save_native(model, tmp_path / "backbone")
    assert main(["evaluate", str(images[0]), "--model", str(tmp_path / "backbone"), "--method", "rollout"]) == 2
    err = capsys.readouterr().err
    assert "has no classification head, so there is no class probability" in err and err.count("\n") == 1
