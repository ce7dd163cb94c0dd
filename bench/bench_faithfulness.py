"""What deletion/insertion and the randomisation check cost, on the built-in models.

    python bench/bench_faithfulness.py [--repeats 3] [--threads N]

fashion-vit (49 patches): the Explorer's three maps and the random reference in one call
(`evaluate_maps`, 13 orders × 50 steps × 2 curves = 1,300 forward passes), one map alone, and the
randomisation check of every method. dinov2-small (256 patches) has no class head; as in
bench_attribution.py a temporary random 1000-class head is added (the forward pass costs about
the same for any head), and ONE map without the random reference is timed (257 steps × 2 = 514
forward passes at 224 px); the random reference costs 10 times that again. Its randomisation
check (no head: rollout and attention) is timed as is. Medians of `--repeats` runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    import torch
    from PIL import Image

    from model import load_model
    from model.explain import explain
    from model.faithfulness import deletion_insertion, evaluate_maps
    from model.sanity import randomisation_check

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--skip-dinov2", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")

    vit = load_model("fashion-vit", device="cpu")
    image = Image.open(ROOT / "samples" / "fashion-9-ankle-boot.png")
    x = vit.to_pixels([image])
    maps = {m: explain(vit, image, m).map for m in ("rollout", "gradient-rollout", "chefer")}
    t3 = timed(lambda: evaluate_maps(vit, x, maps), args.repeats)
    t1 = timed(lambda: deletion_insertion(vit, x, maps["chefer"], random_orders=0), args.repeats)
    ts = timed(lambda: randomisation_check(vit, image), args.repeats)
    print(f"fashion-vit: 3 maps + random reference {t3:.2f} s; one map alone {t1:.3f} s; "
          f"randomisation check (4 methods, 7 steps) {ts:.2f} s")

    if args.skip_dinov2:
        return 0
    dino = load_model("dinov2-small", device="cpu")
    photo = Image.open(ROOT / "samples" / "chelsea.jpg").convert("RGB")
    ts = timed(lambda: randomisation_check(dino, photo), 1)
    print(f"dinov2-small: randomisation check (rollout, attention; 14 steps) {ts:.1f} s")
    rollout = explain(dino, photo, "rollout").map
    torch.manual_seed(0)
    dino.head = torch.nn.Linear(dino.cfg.embed_dim, 1000)  # temporary: dinov2-small has no class head
    dino.cfg.num_classes, dino.cfg.head_type = 1000, "cls"
    px = dino.to_pixels([photo])
    t1 = timed(lambda: deletion_insertion(dino, px, rollout, random_orders=0, batch_size=64), 1)
    print(f"dinov2-small with a temporary head: one map (514 forward passes) {t1:.1f} s; with the random "
          f"reference about {11 * t1:.0f} s (11 × one order)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
