"""The fashion-vit training script: its augmentations and a one-epoch smoke run."""
import json

import numpy as np
import pytest
import torch

from model import fashion_mnist as fm
from model.native import load_native
from model.train_fashion import autocast, augment, erase_boxes, main, random_erase, train


def test_erase_boxes_are_single_rectangles_of_the_promised_size():
    masks = erase_boxes(2000, 28, 28, torch.Generator().manual_seed(1), p=1.0)
    areas = masks.sum((1, 2)).float() / (28 * 28)
    # every image gets one box; rounding h and w moves the area a little off [0.02, 0.25]
    assert bool((areas > 0.01).all()) and bool((areas < 0.33).all())
    assert 0.11 < float(areas.mean()) < 0.15  # the uniform fraction's mean, 0.135
    for m in masks[:200]:
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        assert int(m.sum()) == len(rows) * len(cols)  # filled box: rows × cols
        assert int(rows[-1] - rows[0]) + 1 == len(rows) and int(cols[-1] - cols[0]) + 1 == len(cols)  # contiguous


def test_erase_probability_is_respected():
    gen = torch.Generator().manual_seed(2)
    assert not erase_boxes(500, 28, 28, gen, p=0.0).any()
    hit = erase_boxes(4000, 28, 28, gen, p=0.5).flatten(1).any(1).float().mean()
    assert abs(float(hit) - 0.5) < 0.04


def test_random_erase_changes_only_the_box():
    images = torch.full((64, 28, 28), 7, dtype=torch.uint8)
    out = random_erase(images, torch.Generator().manual_seed(3), p=1.0)
    mask = erase_boxes(64, 28, 28, torch.Generator().manual_seed(3), p=1.0)  # same draws, same order
    assert torch.equal(out[~mask], images[~mask])
    assert float((out[mask] != 7).float().mean()) > 0.9  # noise, not the old pixels


def test_flip_mirrors_and_the_seed_reproduces():
    images = torch.arange(4 * 28 * 28, dtype=torch.int64).reshape(4, 28, 28).to(torch.uint8)
    a = augment(images, torch.Generator().manual_seed(5), flip=True)
    b = augment(images, torch.Generator().manual_seed(5), flip=True)
    assert torch.equal(a, b)
    for x, y in zip(images, a):
        assert torch.equal(y, x) or torch.equal(y, x.flip(1))
    assert torch.equal(augment(images, torch.Generator(), flip=False), images)


def test_bf16_autocast_runs_the_matrix_products_in_bfloat16_only():
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with autocast(torch.device("cpu"), "bf16"):
        y = lin(x)
    assert y.dtype == torch.bfloat16 and lin.weight.dtype == torch.float32
    with autocast(torch.device("cpu"), "fp32"):
        assert lin(x).dtype == torch.float32
    torch.testing.assert_close(y.float(), lin(x), atol=0.05, rtol=0.02)
    with pytest.raises(ValueError, match="precision='fp16'"):
        autocast(torch.device("cpu"), "fp16")


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs 0"),
    (["--erase", "1.5"], "--erase 1.5"),
    (["--label-smoothing", "1"], "--label-smoothing 1"),
    (["--precision", "fp16"], "invalid choice: 'fp16'"),
])
def test_cli_rejects_bad_settings(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(not fm.available(), reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
@pytest.mark.slow
def test_one_epoch_smoke_run_writes_a_loadable_model(tmp_path):
    lines = []
    summary = train(epochs=1, out=tmp_path, limit=256, threads=1, log=lines.append)
    assert summary["label_smoothing"] == 0.1 and "random erasing" in summary["augmentation"]
    assert summary["precision"] == "bf16"
    assert any("epoch  1/1" in line for line in lines)
    model = load_native(tmp_path)
    assert model.preprocessor is not None and model.cfg.class_names == list(fm.CLASS_NAMES)
    saved = json.loads((tmp_path / "patchlight.json").read_text())["training"]
    assert saved["test_accuracy"] == summary["test_accuracy"]
    curve = json.loads((tmp_path / "training_curve.json").read_text())
    assert curve["epoch"] == [1] and 0 <= curve["test_acc"][0] <= 1
    assert np.isfinite(curve["train_loss"][0])
