"""Many images: the batched CLI against a plain batched loop, and dataset mode local against Ray (issue 14).

Every figure is one whole process, start-up included, timed from outside; the kinds run
interleaved, round after round, so a busy machine slows them alike and the ratios within one
run are the figures to trust. The data: the Fashion-MNIST test set written once as PNG files
(and as a Parquet file with an image-bytes column) under --data.

    python bench/bench_batch.py --images 10000 --rounds 3                 # predict: CLI vs plain loop
    python bench/bench_batch.py --only trace,dataset --images 2000        # trace and dataset mode
    python bench/bench_batch.py --before /work/main                       # also the CLI of another checkout

Kinds: predict (CLI, `python -m model predict DIR`), predict-loop (load, decode, preprocess and
forward in batches of 256, nothing else), trace (CLI to one NPZ), trace-loop (`ViT.trace` on
batches, the same NPZ written), dataset (CLI, local engine), dataset-ray (CLI, --engine ray, a
local Ray started by the command).
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREDICT_LOOP = """
import sys
from pathlib import Path
import torch
from model.loading import load_model
from model.preprocess import decode_image
model = load_model("fashion-vit", device="cpu")
paths = sorted(Path(sys.argv[1]).iterdir())
with torch.inference_mode():
    for i in range(0, len(paths), 256):
        chunk = paths[i:i + 256]
        pixels = model.to_pixels([decode_image(p.read_bytes(), name=str(p)) for p in chunk])
        probs = model(pixels)[0].softmax(-1)
        for p, row in zip(chunk, probs.tolist()):
            print(p, max(row))
"""

TRACE_LOOP = """
import sys
from pathlib import Path
import numpy as np
import torch
from model.loading import load_model
from model.preprocess import decode_image
model = load_model("fashion-vit", device="cpu")
paths = sorted(Path(sys.argv[1]).iterdir())
parts = []
for i in range(0, len(paths), 256):
    chunk = paths[i:i + 256]
    parts.append(model.trace([decode_image(p.read_bytes(), name=str(p)) for p in chunk]).arrays())
arrays = dict(parts[0])
for name in ("attentions", "hidden_states", "patch_embeddings", "pixel_values", "logits"):
    arrays[name] = np.concatenate([a[name] for a in parts])
np.savez_compressed(sys.argv[2], **arrays)
"""


def write_data(folder: Path, n: int) -> tuple[Path, Path]:
    """The first n Fashion-MNIST test images as PNGs (folder/png-n/) and as one Parquet file."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from model.fashion_mnist import load_split

    pngs, parquet = folder / f"png-{n}", folder / f"fashion-test-{n}.parquet"
    if pngs.is_dir() and len(list(pngs.iterdir())) == n and parquet.is_file():
        return pngs, parquet
    images, labels = load_split("test")
    shutil.rmtree(pngs, ignore_errors=True)
    pngs.mkdir(parents=True)
    blobs = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="PNG")
        blobs.append(buf.getvalue())
        (pngs / f"{i:05d}.png").write_bytes(blobs[-1])
    pq.write_table(pa.table({"image": blobs, "label": np.asarray(labels[:n], np.int32),
                             "path": [f"{i:05d}.png" for i in range(n)]}), parquet)
    return pngs, parquet


def commands(kind: str, pngs: Path, parquet: Path, scratch: Path, before: str | None) -> tuple[list[str], str]:
    py = sys.executable
    out = scratch / kind
    shutil.rmtree(out, ignore_errors=True)
    if out.with_suffix(".npz").exists():
        out.with_suffix(".npz").unlink()
    table = {
        "predict": [py, "-m", "model", "predict", str(pngs), "--model", "fashion-vit"],
        "predict-before": [py, "-m", "model", "predict", str(pngs), "--model", "fashion-vit"],
        "predict-loop": [py, "-c", PREDICT_LOOP, str(pngs)],
        "trace": [py, "-m", "model", "trace", str(pngs), "--model", "fashion-vit", "--batch-size", "256",
                  "--out", str(out.with_suffix(".npz"))],
        "trace-loop": [py, "-c", TRACE_LOOP, str(pngs), str(out.with_suffix(".npz"))],
        "dataset": [py, "-m", "model", "dataset", str(parquet), "--model", "fashion-vit", "--out", str(out)],
        "dataset-ray": [py, "-m", "model", "dataset", str(parquet), "--model", "fashion-vit", "--out", str(out),
                        "--engine", "ray"],
    }
    cwd = before if kind.endswith("-before") else str(ROOT)
    return table[kind], cwd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000, help="how many Fashion-MNIST test images (default 10000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="predict,predict-loop", help="kinds, comma-separated (see the docstring)")
    ap.add_argument("--before", default=None, help="a checkout whose predict CLI to time too (kind predict-before)")
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "patchlight-bench-batch"))
    args = ap.parse_args()
    kinds = args.only.split(",") + (["predict-before"] if args.before else [])
    pngs, parquet = write_data(Path(args.data), args.images)
    scratch = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    env = {**os.environ, "PYTHONPATH": ""}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for r in range(args.rounds):
            for kind in kinds:
                cmd, cwd = commands(kind, pngs, parquet, scratch, args.before)
                t0 = time.perf_counter()
                done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
                dt = time.perf_counter() - t0
                if done.returncode != 0:
                    sys.exit(f"{kind} failed: {done.stderr.strip().splitlines()[-1:]}")
                times[kind].append(dt)
                print(f"round {r + 1} {kind:15s} {dt:7.2f} s  {args.images / dt:8.1f} images/s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{args.images} images, {args.rounds} rounds, medians (start-up included), load avg "
          f"{os.getloadavg()[0]:.2f}:")
    med = {k: statistics.median(v) for k, v in times.items()}
    for kind, t in med.items():
        print(f"  {kind:15s} {t:7.2f} s  {args.images / t:8.1f} images/s  (min {min(times[kind]):.2f} s)")
    for a, b in (("predict", "predict-loop"), ("trace", "trace-loop"), ("predict", "predict-before"),
                 ("dataset", "dataset-ray")):
        if a in med and b in med:
            print(f"  throughput {a} / {b}: {med[b] / med[a]:.2f}")


if __name__ == "__main__":
    main()
