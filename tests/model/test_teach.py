"""model/teach.py: a linear head taught on a frozen backbone (issue 11), and `fit-head` / `--head` in the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from model import Preprocessor, ViT, ViTConfig
from model.cli import main
from model.heads import attach_head, load_head
from model.native import save_native
from model.teach import (ExamplesError, Recipe, augmented_views, fit_linear_head, heldout_split, image_features,
                         read_example_folder, teach)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def tiny_backbone() -> ViT:
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=(24, 24), patch_size=6, embed_dim=24, depth=2, num_heads=3, mlp_dim=48,
                    num_classes=0, head_type="none", name="tiny")
    vit = ViT(cfg).eval()
    vit.preprocessor = Preprocessor(resize_to=(24, 24), image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
    vit.source = "tiny"
    return vit


def colour_images(rgb, n, seed):
    """Noisy images of one dominant colour: classes a random backbone can tell apart."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = np.array(rgb, float) + rng.normal(0, 25, 3)
        pixels = np.clip(base + rng.normal(0, 30, (28, 36, 3)), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(pixels))
    return out


@pytest.fixture(scope="module")
def backbone():
    return tiny_backbone()


def test_softmax_regression_converges_on_separable_data_and_folds_the_standardisation():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 10)) * 4
    y = np.repeat(np.arange(3), 20)
    x = (centres[y] + rng.normal(0, 1, (60, 10))) * rng.uniform(0.1, 10, 10) + 5  # scaled, shifted features
    steps = []
    W, b, losses, held = fit_linear_head(x, y, 3, steps=200, lr=0.05, weight_decay=0.0,
                                         on_step=lambda s, loss, h: steps.append((s, loss)))
    assert losses[0] == pytest.approx(np.log(3), abs=1e-6)  # W = 0: the uniform guess
    assert losses[-1] < 0.02 and held is None and [s for s, _ in steps] == list(range(201))
    # The head reads raw features: its loss on them is the loss the fit reached.
    z = x @ W.T.astype(np.float64) + b
    z -= z.max(axis=1, keepdims=True)
    ce = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(60), y])
    assert ce == pytest.approx(losses[-1], abs=1e-4)
    assert np.mean(np.argmax(z, axis=1) == y) == 1.0


def test_views_are_seeded_by_the_image_and_the_seed():
    image = colour_images(COLOURS["red"], 1, 0)[0]
    a, b = augmented_views(image, 5, seed=3), augmented_views(image, 5, seed=3)
    assert len(a) == 5 and a[0] is not None
    assert all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(a, b))
    assert np.array_equal(np.asarray(a[1]), np.asarray(image)[:, ::-1])  # view 1: the mirror image
    c = augmented_views(image, 5, seed=4)
    assert any(np.asarray(u).shape != np.asarray(v).shape or not np.array_equal(np.asarray(u), np.asarray(v))
               for u, v in zip(a[2:], c[2:]))


def test_teach_separates_classes_and_reports_held_out_accuracy(backbone):
    examples = {name: colour_images(rgb, 10, k) for k, (name, rgb) in enumerate(COLOURS.items())}
    losses = []
    result = teach(backbone, examples, Recipe(name="colours", views=2, steps=120, holdout=0.3),
                   on_step=lambda s, loss, h: losses.append((s, loss, h)))
    assert result.heldout_count == 9 and result.train_count == 21
    assert result.heldout_accuracy == 1.0 and np.trace(result.confusion) == 9
    assert losses[-1][1] < 0.5 * losses[0][1] and losses[-1][2] is not None
    head = result.head
    assert head.class_names == list(COLOURS) and head.backbone == "tiny" and head.head_type == "cls_patch_mean"
    recipe = head.recipe
    assert recipe["name"] == "colours" and recipe["heldout_accuracy"] == 1.0 and recipe["train_views"] == 42
    assert len(recipe["loss_curve"]) == 121 and recipe["images_per_class"] == [10, 10, 10]
    # The attached head gives the logits of its definition on the frozen features.
    model = attach_head(backbone, head)
    image = colour_images(COLOURS["blue"], 1, 99)[0]
    features = image_features(backbone, [image], "cls_patch_mean")[0].astype(np.float64)
    logits, _ = model(model.to_pixels([image]))
    np.testing.assert_allclose(logits[0].detach().numpy(), features @ head.weight.T + head.bias, atol=1e-4)
    assert model.cfg.has_head and int(logits.argmax()) == 2
    trace = model.trace([image], grad_class="top")  # gradients flow through the frozen backbone
    assert trace.attention_grads is not None and float(trace.attention_grads.abs().sum()) > 0


def test_held_out_split_keeps_one_image_to_train_on():
    split = heldout_split([10, 1, 2, 5], 0.5, seed=0)
    assert [len(s) for s in split] == [5, 0, 1, 2]
    assert all(len(set(s.tolist())) == len(s) for s in split)


def test_bad_examples_and_recipes_get_one_line_each(backbone, tmp_path):
    with pytest.raises(ExamplesError, match="at least 2 classes"):
        teach(backbone, {"red": colour_images(COLOURS["red"], 2, 0)})
    with pytest.raises(ExamplesError) as err:
        teach(backbone, {"red": [], "blue": colour_images(COLOURS["blue"], 2, 0)})
    assert err.value.problems == ["class 'red' has no example images; add a few (5–20 is plenty) or remove the class"]
    with pytest.raises(ValueError, match="views = 0"):
        teach(backbone, {"a": [], "b": []}, Recipe(views=0))


def write_tree(root, classes, n=4, size=(28, 36)):
    for k, (name, rgb) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(colour_images(rgb, n, 10 * k)):
            image.resize(size[::-1]).save(root / name / f"{i}.png")
    return root


def test_reading_a_folder_names_every_problem(tmp_path):
    good = write_tree(tmp_path / "good", COLOURS)
    examples = read_example_folder(good)
    assert list(examples) == ["blue", "green", "red"] and all(len(v) == 4 for v in examples.values())
    one = write_tree(tmp_path / "one", {"red": COLOURS["red"]})
    with pytest.raises(ExamplesError) as err:
        read_example_folder(one)
    assert len(err.value.problems) == 1 and "only 'red'" in err.value.problems[0]
    bad = write_tree(tmp_path / "bad", COLOURS)
    (bad / "empty").mkdir()
    (bad / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (bad / "green" / "notes.txt").write_text("hello")
    with pytest.raises(ExamplesError) as err:
        read_example_folder(bad)
    problems = err.value.problems
    assert len(problems) == 3
    assert any("empty holds no images" in p for p in problems)
    assert any("broken.png cannot be read as an image" in p for p in problems)
    assert any("notes.txt is not an image file" in p for p in problems)
    with pytest.raises(ExamplesError, match="is not a folder"):
        read_example_folder(tmp_path / "missing")


@pytest.fixture()
def backbone_dir(tmp_path):
    return save_native(tiny_backbone(), tmp_path / "backbone")


def test_cli_fit_head_then_predict_explain_and_trace_with_it(backbone_dir, tmp_path, capsys):
    data = write_tree(tmp_path / "colours", COLOURS, n=5)
    head_path = tmp_path / "colours.safetensors"
    assert main(["fit-head", "--model", str(backbone_dir), "--data", str(data), "--out", str(head_path),
                 "--device", "cpu", "--steps", "60", "--holdout", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "3 classes (blue 5, green 5, red 5)" in out and "step   60/60" in out
    assert "held-out accuracy: 3/3 = 100.0%" in out and f"wrote {head_path}" in out
    head = load_head(head_path)
    assert head.class_names == ["blue", "green", "red"] and head.recipe["name"] == "colours"
    assert head.backbone == str(backbone_dir)

    probe = tmp_path / "probe.png"
    colour_images(COLOURS["green"], 1, 123)[0].save(probe)
    assert main(["predict", str(probe), "--model", str(backbone_dir), "--head", str(head_path), "--json",
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["top"][0]["label"] == "green"
    assert 'head: taught head "colours" (3 classes: blue, green, red)' in captured.err

    png = tmp_path / "map.png"
    assert main(["explain", str(probe), "--model", str(backbone_dir), "--head", str(head_path), "--method", "chefer",
                 "--label", "red", "--out", str(png), "--device", "cpu"]) == 0
    assert 'for class 2 (red)' in capsys.readouterr().out and png.read_bytes()[:4] == b"\x89PNG"

    from model import load_model

    loaded = load_model(str(backbone_dir), device="cpu", head=head_path)  # the Python way: backbone + head
    assert loaded.cfg.has_head and loaded.cfg.class_names == ["blue", "green", "red"]

    npz = tmp_path / "t.npz"
    assert main(["trace", str(probe), "--model", str(backbone_dir), "--head", str(head_path), "--out", str(npz),
                 "--device", "cpu"]) == 0
    assert np.load(npz)["logits"].shape == (1, 3)


def test_cli_fit_head_bad_folders_print_one_line_each(backbone_dir, tmp_path, capsys):
    one = write_tree(tmp_path / "one", {"red": COLOURS["red"]})
    assert main(["fit-head", "--model", str(backbone_dir), "--data", str(one), "--out", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "at least 2" in err[0]

    bad = write_tree(tmp_path / "bad", COLOURS)
    (bad / "empty").mkdir()
    (bad / "red" / "broken.jpg").write_bytes(b"\xff\xd8 junk")
    assert main(["fit-head", "--model", str(backbone_dir), "--data", str(bad), "--out", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "h").exists()

    assert main(["predict", str(tmp_path), "--model", str(backbone_dir), "--head", "3"]) == 2
    assert "--attention-head" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--model", str(backbone_dir), "--head", str(tmp_path / "none.st")]) == 2
    assert "could not be read" in capsys.readouterr().err
