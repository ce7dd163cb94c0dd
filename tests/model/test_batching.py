"""Batched predict, trace and explain (model/batching.py) equal one image at a time; sizes are grouped."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from small_models import small_classifier
from model import ViT, ViTConfig
from model.batching import auto_batch_size, explain_many, predict_many, prepare, size_batches, trace_batches
from model.cli import main
from model.explain import explain
from model.native import save_native


def aspect_keeping_classifier() -> ViT:
    """A small classifier whose preprocessing keeps the aspect ratio, so images come out in different sizes."""
    return small_classifier()


@pytest.fixture(scope="module")
def model():
    return aspect_keeping_classifier()


@pytest.fixture()
def mixed_images(tmp_path):
    """Seven PNGs in three shapes (→ 24×32, 24×24 and 32×24 inputs), shapes interleaved."""
    rng = np.random.default_rng(1)
    shapes = [(30, 40), (40, 40), (30, 40), (40, 30), (40, 40), (30, 40), (40, 30)]
    paths = []
    for i, (h, w) in enumerate(shapes):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_size_batches_groups_by_key_keeps_order_and_caps_the_size():
    items = [("a", 0), ("b", 1), ("a", 2), ("a", 3), ("c", 4), ("a", 5), ("b", 6)]
    batches = list(size_batches(items, 2, key=lambda x: x[0]))
    assert [[i for _, i in b] for b in batches] == [[0, 2], [3, 5], [1, 6], [4]]
    assert all(len({k for k, _ in b}) == 1 for b in batches)
    assert sorted(i for b in batches for _, i in b) == list(range(7))
    with pytest.raises(ValueError, match="at least 1"):
        list(size_batches(items, 0, key=lambda x: x[0]))


def test_mixed_sizes_are_traced_in_groups_equal_to_one_at_a_time(model, mixed_images):
    prepared = [prepare(model, p, i) for i, p in enumerate(mixed_images)]
    assert {tuple(p.pixels.shape[1:]) for p in prepared} == {(24, 32), (24, 24), (32, 24)}
    seen = []
    for batch, trace in trace_batches(model, prepared, batch_size=2, grad_class="top"):
        assert len({tuple(p.pixels.shape) for p in batch}) == 1 and len(batch) <= 2
        for b, p in enumerate(batch):
            seen.append(p.index)
            one = model.trace([Image.open(mixed_images[p.index])], grad_class="top").numpy()
            assert trace.grid == one.grid
            np.testing.assert_allclose(trace.attentions[b], one.attentions[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(trace.hidden_states[b], one.hidden_states[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(trace.logits[b], one.logits[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(trace.attention_grads[b], one.attention_grads[0], rtol=1e-4, atol=1e-6)
    assert sorted(seen) == list(range(len(mixed_images)))


def test_batched_predict_equals_one_at_a_time(model, mixed_images):
    results = predict_many(model, mixed_images, batch_size=3)
    assert [r.index for r in results] == list(range(len(mixed_images)))
    for path, r in zip(mixed_images, results):
        with torch.inference_mode():
            one = model(model.to_pixels([Image.open(path)]))[0][0].numpy()
        assert r.error is None and r.name == str(path)
        np.testing.assert_allclose(r.logits, one, rtol=1e-5, atol=1e-5)


def test_batched_explain_equals_explain(model, mixed_images):
    from model.explain import METHODS

    for method in METHODS:  # the model methods (legrad, attnlrp, gradcam) re-run the model per image
        many = explain_many(model, mixed_images, method, label="dog", batch_size=2)
        for path, got in zip(mixed_images, many):
            want = explain(model, Image.open(path), method, label="dog")
            np.testing.assert_allclose(got.map, want.map, rtol=1e-5, atol=1e-7)
            assert got.description == want.description and got.label_index == want.label_index
            np.testing.assert_array_equal(got.image, want.image)


def test_a_bad_file_is_an_error_not_a_crash(model, mixed_images, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    results = predict_many(model, [mixed_images[0], bad, mixed_images[1]], batch_size=4)
    assert results[0].error is None and results[2].error is None
    assert "is not an image Patchlight can read" in results[1].error and results[1].logits is None


def test_auto_batch_size_scales_with_the_trace():
    small = aspect_keeping_classifier()
    assert auto_batch_size(small) == 256  # tiny traces: capped
    big = ViT(ViTConfig(image_size=(224, 224), patch_size=14, embed_dim=384, depth=12, num_heads=6, mlp_dim=1536))
    n, n_grad = auto_batch_size(big), auto_batch_size(big, gradients=True)
    T = 257  # a trace with gradients of n_grad images stays within the 1 GiB budget, one more does not
    per_image = 4 * (12 * (6 * T * T * 2 + 6 * T * 384) + 2 * T * 384)
    assert n_grad * per_image <= 2**30 < (n_grad + 1) * per_image and n > n_grad >= 1


# ---- the command line --------------------------------------------------------------------------
@pytest.fixture()
def model_dir(model, tmp_path):
    return save_native(model, tmp_path / "clf")


def test_cli_trace_writes_one_file_per_size(model_dir, mixed_images, tmp_path, capsys):
    out = tmp_path / "t.npz"
    assert main(["trace", str(mixed_images[0].parent), "--model", str(model_dir), "--out", str(out),
                 "--batch-size", "2", "--device", "cpu"]) == 0
    files = sorted(tmp_path.glob("t-*.npz"))
    assert [f.name for f in files] == ["t-24x24.npz", "t-24x32.npz", "t-32x24.npz"]
    z = np.load(tmp_path / "t-24x32.npz")
    assert [p.rsplit("/", 1)[-1] for p in z["images"]] == ["im0.png", "im2.png", "im5.png"]  # input order
    assert z["attentions"].shape[:1] == (3,) and z["grid"].tolist() == [4, 5]
    ref = aspect_keeping_classifier().trace([Image.open(mixed_images[2])]).numpy()
    np.testing.assert_allclose(z["attentions"][1], ref.attentions[0], rtol=1e-5, atol=1e-6)
    assert capsys.readouterr().out.count("wrote ") == 3


def test_cli_explain_many_writes_one_png_per_image(model_dir, mixed_images, tmp_path, capsys):
    out, npz = tmp_path / "maps", tmp_path / "arrays"
    assert main(["explain", *map(str, mixed_images[:3]), "--model", str(model_dir), "--method", "chefer",
                 "--out", str(out), "--npz", str(npz)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png", "im2.png"]
    want = explain(aspect_keeping_classifier(), Image.open(mixed_images[1]), "chefer")
    np.testing.assert_allclose(np.load(npz / "im1.npz")["map"], want.map, rtol=1e-5, atol=1e-7)
    assert capsys.readouterr().out.count("wrote ") == 3


@pytest.mark.parametrize("argv, message", [
    (["explain", "IMG", "IMG2", "--method", "rollout", "--out", "x.png"], "need a folder for --out"),
    (["predict", "IMG", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["trace", "IMG", "BAD", "--out", "t.npz"], "is not an image Patchlight can read"),
    (["explain", "IMG", "BAD", "--method", "rollout", "--out", "maps"], "is not an image Patchlight can read"),
])
def test_cli_errors_for_many_images(model_dir, mixed_images, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    subs = {"IMG": str(mixed_images[0]), "IMG2": str(mixed_images[1]), "BAD": str(bad)}
    argv = [subs.get(a, a) for a in argv]
    assert main([*argv[:1], "--model", str(model_dir), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_progress_bar_shows_on_long_runs_only(capsys, model, mixed_images):
    from model.batching import Progress

    with Progress(len(mixed_images), 2, enabled=True) as bar:
        predict_many(model, mixed_images, batch_size=2, progress=bar)
    assert "/7 [" in capsys.readouterr().err  # tqdm redraws at most every 0.5 s, so the last count may not show
    with Progress(len(mixed_images), 2) as bar:  # not a terminal: no bar
        predict_many(model, mixed_images, batch_size=2, progress=bar)
    assert capsys.readouterr().err == ""


def test_batched_out_of_distribution_verdicts_equal_one_at_a_time():
    """fashion-vit's check (model.ood) on the batched pass: far photos get check_ood's verdict, tiles none."""
    from pathlib import Path

    from model import load_model
    from model.ood import check_ood

    samples = Path(__file__).resolve().parents[2] / "samples"
    paths = sorted(samples.glob("*.jpg"))[:3] + sorted(samples.glob("fashion-*.png"))[:4]
    fashion = load_model("fashion-vit", device="cpu")
    for path, r in zip(paths, predict_many(fashion, paths, batch_size=4)):
        one = check_ood(fashion, fashion.to_pixels([Image.open(path)]))
        assert (r.out_of_distribution is not None) == one.far, path.name
        if one.far:
            assert r.out_of_distribution.message == one.message
            assert r.out_of_distribution.score == pytest.approx(one.score, rel=1e-4)
