"""README's faithfulness table: every explanation method's mean deletion and insertion AUC on
the first Fashion-MNIST test images, measured with the command line (`python -m model evaluate`).

    python bench/faithfulness_table.py                     # fashion-vit, first 1,000 test images
    python bench/faithfulness_table.py --images 100 --out /tmp/faith
    python bench/faithfulness_table.py --out /tmp/faith --reuse   # later: only the methods not measured yet

It writes the images as PNGs (named by their test-set index), runs `evaluate --json` once per
method of `model.explain.METHODS` (so methods added there are measured too; a method the model
cannot run is listed as skipped with the CLI's message), keeps each run's JSON beside the
images, and prints a markdown table. The random reference (mean of 10 seeded orders) does not
depend on the method — same image, same class (the top class on the clean input) — so it is
measured once, with the first method, and the others run with `--random 0`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.explain import METHODS  # noqa: E402  (after the path set-up)
from model.fashion_mnist import CLASS_NAMES, load_split  # noqa: E402


def write_images(folder: Path, count: int) -> list[int]:
    """The first `count` test images as grayscale PNGs ``00000.png``…; returns their labels."""
    from PIL import Image

    images, labels = load_split("test")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = folder / f"{i:05d}.png"
        if not path.exists():
            Image.fromarray(images[i], mode="L").save(path)
    return [int(v) for v in labels[:count]]


def run_cli(folder: Path, model: str, method: str, random_orders: int, baseline: str) -> tuple[list | None, str, float]:
    """(rows or None, the CLI's error line, seconds) of one `evaluate --json` run."""
    cmd = [sys.executable, "-m", "model", "evaluate", str(folder), "--model", model, "--method", method, "--json",
           "--random", str(random_orders), "--baseline", baseline]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or ["failed"])[-1], seconds
    return json.loads(done.stdout), "", seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fashion-vit")
    parser.add_argument("--images", type=int, default=1000, help="the first N test images (default 1000)")
    parser.add_argument("--baseline", default="mean", help="mean (default) or blur")
    parser.add_argument("--out", default=None, help="folder for the PNGs and each method's JSON (default: a temp dir)")
    parser.add_argument("--methods", default=None, help="comma-separated subset of METHODS (default: all)")
    parser.add_argument("--reuse", action="store_true",
                        help="read a method's JSON already in --out instead of measuring it again (e.g. to add "
                             "methods merged later to a table measured before)")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="patchlight-faith-"))
    folder = out / "images"
    labels = write_images(folder, args.images)
    methods = args.methods.split(",") if args.methods else list(METHODS)
    rows, skipped, random_rows = {}, {}, None
    if args.reuse:  # the random reference does not depend on the method: any saved run that has it will do
        for saved in sorted(out.glob("*.json")):
            data = json.loads(saved.read_text())
            if data and isinstance(data, list) and "random_deletion_auc" in data[0] and len(data) == args.images:
                random_rows = data
                print(f"random reference: read {saved}", file=sys.stderr)
                break
    for method in methods:
        saved = out / f"{method}.json"
        if args.reuse and saved.is_file():  # measured before with the same --out: read, not run again
            rows[method] = json.loads(saved.read_text())
            random_rows = random_rows or (rows[method] if "random_deletion_auc" in rows[method][0] else None)
            print(f"{method}: read {saved}", file=sys.stderr)
            continue
        data, error, seconds = run_cli(folder, args.model, method, 0 if random_rows else 10, args.baseline)
        if data is None:
            skipped[method] = error
            print(f"{method}: skipped ({error})", file=sys.stderr)
            continue
        (out / f"{method}.json").write_text(json.dumps(data))
        rows[method] = data
        random_rows = random_rows or (data if "random_deletion_auc" in data[0] else None)
        print(f"{method}: {len(data)} images in {seconds:.0f} s", file=sys.stderr)
    if not rows:
        print("no method ran", file=sys.stderr)
        return 1

    rand_del = np.array([r["random_deletion_auc"] for r in random_rows])
    rand_ins = np.array([r["random_insertion_auc"] for r in random_rows])
    correct = np.mean([r["label"] == CLASS_NAMES[y] for r, y in zip(random_rows, labels)])
    print(f"\n{args.model}, first {args.images:,} Fashion-MNIST test images (top-1 {100 * correct:.1f}% on them), "
          f"class = the top class, baseline = {args.baseline}; `python bench/faithfulness_table.py`\n")
    print("| method | deletion AUC ↓ | insertion AUC ↑ | images with deletion below random | "
          "images with insertion above random |")
    print("|---|---|---|---|---|")
    for method, data in rows.items():
        d = np.array([r["deletion_auc"] for r in data])
        i = np.array([r["insertion_auc"] for r in data])
        print(f"| {method} | {d.mean():.3f} | {i.mean():.3f} | {100 * np.mean(d < rand_del):.1f}% | "
              f"{100 * np.mean(i > rand_ins):.1f}% |")
    print(f"| random order (mean of 10) | {rand_del.mean():.3f} | {rand_ins.mean():.3f} | | |")
    for method, error in skipped.items():
        print(f"\n{method}: not measured — {error}")
    print(f"\n(JSON per method in {out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
