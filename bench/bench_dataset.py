"""Time the Data set page's work on a real result: reading it, the q/k embedding, every figure.

    python bench/bench_dataset.py                      # fashion-vit over 600 Fashion-MNIST test images
    python bench/bench_dataset.py --images 200 --parquet OUT   # also keep the file it wrote
    python bench/bench_dataset.py --parquet OUT --reuse          # time an existing result only

The result is written with the tests' writer (tests/app/dataset_fixtures.py: the schema of issue
14 filled from real traces; `python -m model dataset` writes the same format), then read as an
upload would be (the file's bytes). Every step is timed over --rounds and the median printed,
with the bytes each figure sends to the browser (its JSON).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere
sys.path.insert(0, str(ROOT / "tests" / "app"))


def write_result(out: Path, images: int, qk: tuple[int, int]) -> Path:
    import numpy as np
    from PIL import Image

    import dataset_fixtures as fx
    from model import fashion_mnist, load_model

    pixels, labels = fashion_mnist.load_split("test")
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(images):
        path = folder / f"test-{i:05d}.png"
        Image.fromarray(np.asarray(pixels[i], dtype=np.uint8)).save(path)
        paths.append(path)
    model = load_model("fashion-vit", device="cpu")
    t0 = time.perf_counter()
    rows, meta = fx.trace_rows(model, paths, [int(x) for x in labels[:images]], qk)
    print(f"traced and measured {images} images in {time.perf_counter() - t0:.1f} s")
    return fx.write(out / "part-00000.parquet", rows, meta)


def median_ms(fn, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--parquet", type=Path, help="where to write (or, with --reuse, read) the result")
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()

    from app_core import dataset_figures, dataset_views, datasets

    out = args.parquet or Path(tempfile.mkdtemp(prefix="patchlight-dataset-"))
    path = datasets.shard_paths(out)[0] if args.reuse else write_result(out, args.images, (1, 0))
    data = path.read_bytes()
    print(f"file: {path} ({len(data) / 1e6:.2f} MB)")
    ms, ds = median_ms(lambda: datasets.read_dataset(data, path.name), args.rounds)
    print(f"read and check: {ms:.0f} ms for {ds.rows} rows ({ds.L} layers × {ds.H} heads)")
    ms, emb = median_ms(lambda: dataset_views.qk_embedding(ds), args.rounds)
    print(f"q/k embedding (AttentionViz normalisation + PCA): {ms:.0f} ms for {len(emb.xy):,} points "
          f"({emb.images_shown} of {emb.images_total} images)")
    inputs = dataset_figures.DataSetInputs(ds, lambda: emb)
    for name in dataset_figures.DATASET_FIGURES:
        view = dataset_figures.DataSetView()
        ms, fig = median_ms(lambda: dataset_figures.build(name, inputs, view), args.rounds)
        print(f"{name:26s} build {ms:6.0f} ms   JSON {len(fig.to_json()) / 1e3:7.0f} KB")


if __name__ == "__main__":
    main()
