"""`python -m model.fit_ood --model fashion-vit`: fit the out-of-distribution check and measure it.

Fits `model.ood` on the 60,000 Fashion-MNIST training images (class means and shared
covariance of the zL CLS token, per-class ink frequencies, limits at 1% of training images),
then measures, with the statistics as stored:
- the fraction of the 10,000 **test** images flagged (the false-positive rate; ~1% expected),
- the fraction of the gallery photos flagged, alone and with crops, flips, rotations and
  rescales of them (the photos' own preprocessing path: decode, gray, resize, auto-invert),
- the fraction of synthetic non-clothing inputs flagged (noise, gradients, stripes, checkers,
  text, flat shades), and that none of the gallery's Fashion-MNIST tiles is,
- the time of one check on a trace.
Writes `ood.safetensors` and `ood.json` (the limits and every figure above) next to the weights.
The same data, seed, thread count and torch version give the same files.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

from . import fashion_mnist as fm
from .ood import OodStats, check_trace, fit_ood, model_inputs, ood_inputs, weights_fingerprint

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DOMAIN = "28×28 Fashion-MNIST clothing images"
SUGGESTION = "for photos choose dinov2-small"


def gallery_photos(samples: Path = SAMPLES) -> dict[str, Image.Image]:
    """The gallery's photos (every .jpg in samples/, see samples/ATTRIBUTION.md), as RGB."""
    from .preprocess import decode_image

    return {p.stem: decode_image(p) for p in sorted(samples.glob("*.jpg"))}


def photo_variants(photos: dict[str, Image.Image]) -> dict[str, Image.Image]:
    """Each photo and 11 variants: flips, a rotation, six crops (quarters, centre half, 80%), two rescales."""
    out = {}
    boxes = {"top-left": (0, 0, .5, .5), "top-right": (.5, 0, 1, .5), "bottom-left": (0, .5, .5, 1),
             "bottom-right": (.5, .5, 1, 1), "centre": (.25, .25, .75, .75), "crop80": (.1, .1, .9, .9)}
    for name, im in photos.items():
        W, H = im.size
        out[name] = im
        out[f"{name}/mirror"] = ImageOps.mirror(im)
        out[f"{name}/upside-down"] = ImageOps.flip(im)
        out[f"{name}/rot90"] = im.rotate(90, expand=True)
        for key, (a, b, c, d) in boxes.items():
            out[f"{name}/{key}"] = im.crop((int(a * W), int(b * H), int(c * W), int(d * H)))
        out[f"{name}/64px"] = im.resize((64, 64), Image.BICUBIC)
        out[f"{name}/squashed"] = im.resize((W, H // 2), Image.BICUBIC)
    return out


def synthetic_inputs(seed: int = 0) -> dict[str, Image.Image]:
    """27 non-clothing inputs: noise, gradients, stripes and checkers, lines of text, flat shades."""
    rng = np.random.default_rng(seed)

    def gray(a):
        return Image.fromarray(np.ascontiguousarray(a).astype(np.uint8)).convert("RGB")

    out = {f"uniform noise {k}": Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
           for k in range(5)}
    out["gaussian noise"] = Image.fromarray(np.clip(rng.normal(128, 40, (100, 100, 3)), 0, 255).astype(np.uint8))
    ramp = np.tile(np.linspace(0, 255, 128), (128, 1))
    out["gradient left-right"] = gray(ramp)
    out["gradient top-bottom"] = gray(ramp.T)
    yy, xx = np.meshgrid(np.linspace(-1, 1, 128), np.linspace(-1, 1, 128))
    out["gradient radial"] = gray(255 * np.clip(1 - np.hypot(yy, xx), 0, 1))
    for period in (4, 8, 16):
        bars = np.tile((np.arange(128) // period) % 2 * 255, (128, 1))
        out[f"stripes vertical {period}px"] = gray(bars)
        out[f"stripes horizontal {period}px"] = gray(bars.T)
        out[f"checker {period}px"] = gray(((np.arange(128)[:, None] // period + np.arange(128) // period) % 2) * 255)
    for k, text in enumerate(["Hello world", "Patchlight ViT", "lorem ipsum dolor sit amet"]):
        page = Image.new("RGB", (200, 120), "white")
        draw = ImageDraw.Draw(page)
        for row in range(5):
            draw.text((5, 5 + 22 * row), text, fill="black")
        out[f"text {k}"] = page
        out[f"text {k} inverted"] = ImageOps.invert(page)
    out["black"] = Image.new("RGB", (28, 28), "black")
    out["white"] = Image.new("RGB", (28, 28), "white")
    out["gray"] = Image.new("RGB", (28, 28), (128, 128, 128))
    return out


def flagged(model, stats: OodStats, images: dict[str, Image.Image]) -> dict[str, bool]:
    """name -> far, each image through the model's own preprocessing."""
    pixels = torch.cat([model.to_pixels([im]) for im in images.values()])
    tokens, images01 = ood_inputs(model, pixels)
    blank = stats.pixel_range(images01) < stats.blank_range
    far = (stats.scores(tokens, images01) > 1.0) | blank
    return dict(zip(images, far.tolist()))


def time_check(model, stats: OodStats, repeats: int = 2000) -> float:
    """Median seconds of one check on a one-image trace (what `check_ood` adds to a trace)."""
    tile = next(iter(sorted(SAMPLES.glob("fashion-*.png"))))
    trace = model.trace([Image.open(tile).convert("RGB")])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        check_trace(stats, trace)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def measure(model, stats: OodStats, test_images: np.ndarray) -> dict:
    """The figures stored in ood.json and printed (see the module docstring)."""
    tokens, images01 = ood_inputs(model, model_inputs(model, test_images))
    test_far = (stats.scores(tokens, images01) > 1.0) | (stats.pixel_range(images01) < stats.blank_range)
    photos = flagged(model, stats, photo_variants(gallery_photos()))
    originals = {k: v for k, v in photos.items() if "/" not in k}
    synthetic = flagged(model, stats, synthetic_inputs())
    tiles = flagged(model, stats, {p.stem: Image.open(p).convert("RGB") for p in sorted(SAMPLES.glob("fashion-*.png"))})
    return {
        "test_images": int(len(test_far)),
        "test_flag_rate": round(float(test_far.mean()), 5),
        "gallery_photos_flagged": f"{sum(originals.values())}/{len(originals)}",
        "photo_variants_flag_rate": round(sum(photos.values()) / len(photos), 4),
        "photo_variants": len(photos),
        "photo_variants_missed": sorted(k for k, v in photos.items() if not v),
        "synthetic_flag_rate": round(sum(synthetic.values()) / len(synthetic), 4),
        "synthetic_inputs": len(synthetic),
        "synthetic_missed": sorted(k for k, v in synthetic.items() if not v),
        "gallery_tiles_flagged": f"{sum(tiles.values())}/{len(tiles)}",
    }


def ablation(model, x_train, y_train, x_test) -> list[dict]:
    """Each test alone, and the head's own input, at its own 99% training limit: why the check has
    the parts it has. Rows: name, % of test images, gallery photos, % of photo variants, % of synthetic."""
    photos = photo_variants(gallery_photos())
    synthetic = synthetic_inputs()
    sets = {"train": model_inputs(model, x_train), "test": model_inputs(model, x_test),
            "photos": torch.cat([model.to_pixels([im]) for im in photos.values()]),
            "synthetic": torch.cat([model.to_pixels([im]) for im in synthetic.values()])}
    inputs = {k: ood_inputs(model, v) for k, v in sets.items()}
    base = fit_ood(model, x_train, y_train)  # class means, ink counts; limits set below per row

    def head_input(tokens):  # LN(zL)[cls], what the head reads
        with torch.inference_mode():
            return model.norm(torch.as_tensor(tokens, dtype=model.pos_embed.dtype)).double().numpy()

    normed = {k: head_input(t) for k, (t, _) in inputs.items()}
    means = np.stack([normed["train"][y_train == c].mean(0) for c in range(model.cfg.num_classes)])
    dev = normed["train"] - means[y_train]
    head_stats = OodStats(means, np.linalg.inv(np.linalg.cholesky(dev.T @ dev / len(dev))), base.ink_counts,
                          base.class_counts, base.input_size, base.image_mean, base.image_std, 1.0, 1.0)
    rows = {
        "distance of the head's input LN(zL)[cls]": {k: head_stats.feature_distance(normed[k]) for k in sets},
        "distance of zL[cls] (before the final norm)": {k: base.feature_distance(t) for k, (t, _) in inputs.items()},
        "pixel layout alone": {k: base.layout_surprise(x) for k, (_, x) in inputs.items()},
        "the check (all three tests)": {k: np.where(base.pixel_range(x) < base.blank_range, np.inf,
                                                              base.scores(t, x)) for k, (t, x) in inputs.items()},
    }
    originals = np.array(["/" not in k for k in photos])
    out = []
    for name, score in rows.items():
        limit = 1.0 if name.startswith("the check") else np.quantile(score["train"], 0.99)
        far = {k: v > limit for k, v in score.items()}
        out.append({"test": far["test"].mean(), "gallery": f"{far['photos'][originals].sum()}/{originals.sum()}",
                    "variants": far["photos"].mean(), "synthetic": far["synthetic"].mean(), "name": name})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.fit_ood", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion-vit", help="fashion-vit or a Patchlight directory of a "
                        "Fashion-MNIST model (default: fashion-vit)")
    parser.add_argument("--out", default=None, help="directory for ood.safetensors/ood.json (default: next to the weights)")
    parser.add_argument("--limit", type=int, default=None, help="fit on the first N training images only (a quick look)")
    parser.add_argument("--ablation", action="store_true", help="also print each test alone (writes nothing more)")
    parser.add_argument("--no-measure", action="store_true", help="skip the test-set, photo and timing figures")
    args = parser.parse_args(argv)
    from .builtins import BUILTIN_NAMES, HERE
    from .loading import load_model

    try:
        model = load_model(args.model, device="cpu")
        x_train, y_train = fm.load_split("train")
        x_test, _ = fm.load_split("test") if not args.no_measure else (None, None)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else (HERE / "weights" / args.model if args.model in BUILTIN_NAMES
                                           else Path(args.model))
    if not out.is_dir():
        print(f"error: {out} is not a directory; give --out DIR", file=sys.stderr)
        return 2
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    info = {"model": model.cfg.name, "domain": DOMAIN, "suggestion": SUGGESTION,
            "weights_sha256": weights_fingerprint(model), "fit_data": "Fashion-MNIST train",
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    start = time.perf_counter()
    stats = fit_ood(model, x_train, y_train, info=info)
    stats.info["fit_seconds"] = round(time.perf_counter() - start, 1)
    print(f"fitted on {len(y_train)} training images in {stats.info['fit_seconds']} s: distance limit "
          f"{stats.feature_limit:.2f}, layout limit {stats.layout_limit:.1f} nats (training quantile "
          f"{stats.info['fit_quantile']}), {stats.info['train_flag_rate'] * 100:.2f}% of training images flagged")
    if not args.no_measure:
        figures = measure(model, stats, x_test)
        figures["check_seconds"] = round(time_check(model, stats), 6)
        stats.info.update(figures)
        print(f"test images flagged: {figures['test_flag_rate'] * 100:.2f}% of {figures['test_images']}; "
              f"gallery photos {figures['gallery_photos_flagged']}; photo variants "
              f"{figures['photo_variants_flag_rate'] * 100:.1f}% of {figures['photo_variants']}; synthetic "
              f"{figures['synthetic_flag_rate'] * 100:.1f}% of {figures['synthetic_inputs']}; gallery tiles "
              f"{figures['gallery_tiles_flagged']}; one check {figures['check_seconds'] * 1e6:.0f} µs")
    paths = stats.save(out)
    if args.ablation:
        print("| detector (limit: 99% of training images) | test images flagged (of 10,000) | gallery photos | "
              "photos with crops, flips, rescales (96) | synthetic (27) |")
        print("|---|---|---|---|---|")
        for r in ablation(model, x_train, y_train, x_test):
            print(f"| {r['name']} | {r['test'] * 100:.2f}% | {r['gallery']} | {r['variants'] * 100:.1f}% | "
                  f"{r['synthetic'] * 100:.1f}% |")
    print("wrote " + ", ".join(f"{p} ({p.stat().st_size / 1024:.1f} KB)" for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
