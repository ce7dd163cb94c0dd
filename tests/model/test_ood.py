"""The out-of-distribution check (issue 10 item 11): stored statistics that reproduce, ~1% of
test images flagged, every gallery photo flagged, the CLI's warning line and JSON field."""
from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import ViT, ViTConfig, decode_image, load_model
from model import fashion_mnist as fm
from model.cli import main
from model.fit_ood import main as fit_main
from model.fit_ood import synthetic_inputs
from model.ood import INFO_NAME, STATS_NAME, OodStats, check_ood, fit_ood, model_inputs, ood_inputs, ood_stats

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
WEIGHTS = ROOT / "model" / "weights" / "fashion-vit"
PHOTOS = sorted(SAMPLES.glob("*.jpg"))
TILES = sorted(SAMPLES.glob("fashion-*.png"))

needs_fashion = pytest.mark.skipif(
    not fm.available(), reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist"
)


@pytest.fixture(scope="module")
def fashion():
    return load_model("fashion-vit", device="cpu")


@pytest.fixture(scope="module")
def stats(fashion):
    found = ood_stats(fashion)
    assert found is not None, "fashion-vit has no ood statistics; run `python -m model.fit_ood --model fashion-vit`"
    return found


def far_flags(model, stats: OodStats, pixels: torch.Tensor) -> np.ndarray:
    tokens, images01 = ood_inputs(model, pixels)
    return (stats.scores(tokens, images01) > 1.0) | (stats.pixel_range(images01) < stats.blank_range)


# ---- the stored statistics ---------------------------------------------------------------------
def test_stored_stats_are_small_and_carry_their_figures(stats):
    assert (WEIGHTS / STATS_NAME).stat().st_size < 64 * 1024
    info = json.loads((WEIGHTS / INFO_NAME).read_text())
    assert info["threshold"] == 1.0 and info["fit_images"] == 60000 and info["train_flag_rate"] == pytest.approx(0.01, abs=1e-3)
    assert info["test_flag_rate"] <= 0.02 and info["gallery_photos_flagged"] == "8/8"
    assert info["gallery_tiles_flagged"] == "0/10" and info["check_seconds"] < 1e-3
    assert stats.class_means.shape == (10, 96) and stats.ink_counts.shape == (10, 28 * 28)
    assert np.allclose(stats.whitener, np.tril(stats.whitener))


@needs_fashion
def test_fit_is_deterministic_and_agrees_with_the_stored_fit_on_a_subset(fashion, stats):
    x, y = fm.load_split("train")
    x, y = x[:3000], y[:3000]
    a, b = fit_ood(fashion, x, y), fit_ood(fashion, x, y)
    np.testing.assert_array_equal(a.class_means, b.class_means)
    np.testing.assert_array_equal(a.whitener, b.whitener)
    assert (a.feature_limit, a.layout_limit) == (b.feature_limit, b.layout_limit)
    # 3,000 of the 60,000 images: class means within sampling noise (~300 images per class; in
    # whitened units the expected shift is about sqrt(96/300) = 0.57), limits within 5%.
    shift = np.linalg.norm((a.class_means - stats.class_means) @ stats.whitener.T, axis=1)
    assert shift.max() < 1.2, shift
    assert a.feature_limit == pytest.approx(stats.feature_limit, rel=0.05)
    assert a.layout_limit == pytest.approx(stats.layout_limit, rel=0.05)
    # the stored limits flag about 1% of these training images, as they were chosen to
    assert 0.003 <= far_flags(fashion, stats, model_inputs(fashion, x)).mean() <= 0.02


@needs_fashion
@pytest.mark.slow  # the full fit: 30-110 s on 2 cores
def test_the_script_reproduces_the_stored_statistics(tmp_path, stats):
    """On the machine that wrote them the files come out byte-identical; elsewhere float32 kernels
    may round differently, hence the tolerances."""
    assert fit_main(["--model", "fashion-vit", "--out", str(tmp_path), "--no-measure"]) == 0
    refit = OodStats.load(tmp_path)
    np.testing.assert_allclose(refit.class_means, stats.class_means, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(refit.whitener, stats.whitener, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(refit.ink_counts, stats.ink_counts)
    assert refit.feature_limit == pytest.approx(stats.feature_limit, rel=1e-4)
    assert refit.layout_limit == pytest.approx(stats.layout_limit, rel=1e-4)


def test_the_script_writes_both_files_and_refuses_a_missing_directory(tmp_path, capsys):
    if not fm.available():
        pytest.skip("Fashion-MNIST not installed")
    assert fit_main(["--limit", "1000", "--no-measure", "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / INFO_NAME).read_text())
    assert info["fit_images"] == 1000 and info["weights_sha256"] and (tmp_path / STATS_NAME).stat().st_size < 64 * 1024
    assert "1000 training images" in capsys.readouterr().out
    assert fit_main(["--no-measure", "--out", str(tmp_path / "nowhere")]) == 2
    assert "give --out DIR" in capsys.readouterr().err


# ---- what it flags -------------------------------------------------------------------------
@needs_fashion
def test_at_most_2_percent_of_a_1000_image_test_slice_is_flagged(fashion, stats):
    x, _ = fm.load_split("test")
    assert far_flags(fashion, stats, model_inputs(fashion, x[:1000])).mean() <= 0.02


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
def test_every_gallery_photo_is_flagged_with_a_plain_message(fashion, photo):
    result = check_ood(fashion, fashion.trace([decode_image(photo)]))
    assert result.far and result.score > result.threshold == 1.0
    assert "Fashion-MNIST" in result.message and "choose dinov2-small" in result.message
    assert "labels mean little" in result.message


def test_no_fashion_tile_is_flagged(fashion):
    for tile in TILES:
        result = check_ood(fashion, fashion.trace([decode_image(tile)]))
        assert not result.far and result.message == "" and result.score < 1.0, tile.name


def test_blank_and_noise_inputs_are_flagged(fashion):
    synthetic = synthetic_inputs()
    for name in ("black", "white"):  # both are black after auto-invert: one flat shade
        result = check_ood(fashion, fashion.trace([synthetic[name]]))
        assert result.far and "blank" in result.message and result.to_json()["score"] is None, name
    assert check_ood(fashion, fashion.trace([synthetic["gray"]])).far
    assert check_ood(fashion, fashion.trace([synthetic["uniform noise 0"]])).far


def test_trace_and_pixel_paths_agree(fashion):
    images = [decode_image(p) for p in (PHOTOS[0], TILES[0])]
    for im in images:
        pixels = fashion.to_pixels([im])
        a, b = check_ood(fashion, fashion.trace(pixels)), check_ood(fashion, pixels)
        assert a.far == b.far and a.score == pytest.approx(b.score, rel=1e-4)


def test_a_check_costs_under_a_millisecond_beyond_the_trace(fashion):
    trace = fashion.trace([decode_image(TILES[0])])
    check_ood(fashion, trace)
    times = []
    for _ in range(300):
        t = time.perf_counter()
        check_ood(fashion, trace)
        times.append(time.perf_counter() - t)
    assert np.median(times) < 1e-3


# ---- models without statistics -----------------------------------------------------------
def test_models_without_statistics_get_no_check(tiny_vit):
    assert check_ood(tiny_vit, tiny_vit.trace(torch.zeros(1, 3, 24, 24))) is None
    for source in ("dinov2-small", "hf:google/vit-base-patch16-224"):
        with torch.device("meta"):
            model = ViT(ViTConfig(image_size=(28, 28), patch_size=14, embed_dim=24, depth=1, num_heads=2, mlp_dim=48))
        model.source = source
        assert ood_stats(model) is None


def test_statistics_travel_with_a_copied_model_and_refuse_other_weights(tmp_path):
    directory = tmp_path / "fashion-copy"
    shutil.copytree(WEIGHTS, directory)
    model = load_model(str(directory), device="cpu")
    assert ood_stats(model) is not None  # found next to the weights
    changed = load_model(str(directory), device="cpu")
    with torch.no_grad():
        changed.head.bias.add_(0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_ood(changed, changed.trace([decode_image(TILES[0])])) is None
    assert any("fit_ood" in str(w.message) for w in caught)


# ---- the CLI -----------------------------------------------------------------------------
def test_cli_warns_after_the_photo_and_not_after_the_tiles(capsys):
    assert main(["predict", str(SAMPLES / "chelsea.jpg"), *map(str, TILES), "--top", "2", "--device", "cpu"]) == 0
    per_image, current = {}, None
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith(" "):
            current = Path(line).name
            per_image[current] = []
        else:
            per_image[current].append(line.strip())
    assert per_image["chelsea.jpg"][-1].startswith("warning: This image looks unlike the 28×28 Fashion-MNIST")
    assert len(per_image["chelsea.jpg"]) == 3  # two labels, then the warning
    for tile in TILES:
        assert not any(line.startswith("warning") for line in per_image[tile.name]), tile.name


def test_cli_json_has_the_field_for_every_image(capsys):
    assert main(["predict", str(SAMPLES / "chelsea.jpg"), str(TILES[0]), "--json", "--device", "cpu"]) == 0
    photo, tile = json.loads(capsys.readouterr().out)
    ood = photo["out_of_distribution"]
    assert ood["score"] > ood["threshold"] == 1.0 and "dinov2-small" in ood["message"]
    assert set(ood) >= {"score", "threshold", "message"}
    assert "out_of_distribution" in tile and tile["out_of_distribution"] is None


def test_cli_json_field_is_null_for_models_without_statistics(tmp_path, capsys):
    from model import Preprocessor
    from model.native import save_native

    torch.manual_seed(0)
    model = ViT(ViTConfig(image_size=(24, 24), patch_size=6, embed_dim=24, depth=1, num_heads=3, mlp_dim=48,
                          num_classes=3))
    model.preprocessor = Preprocessor(resize_to=(24, 24))
    directory = save_native(model, tmp_path / "clf")
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(image)
    assert main(["predict", str(image), "--model", str(directory), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["out_of_distribution"] is None
