"""Time every explanation method of model.explain on one real image, and attention flow's
exact max-flow against the grid size (the figures behind its limit, FLOW_EDGE_LIMIT).

    python bench/bench_methods.py                     # fashion-vit on samples/fashion-7-sneaker.png
    python bench/bench_methods.py --model dinov2-small --image samples/chelsea.jpg
    python bench/bench_methods.py --flow-only         # attention flow vs L and T only

A model without a class head (dinov2-small) gets a temporary random 1000-class head, as
bench_attribution.py does: the backward passes cost the same for any head. Times are medians
of --repeat runs, with the trace (forward pass) timed on its own for the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def flow_table(repeat: int) -> None:
    import numpy as np

    from model.attention_flow import FLOW_EDGE_LIMIT, attention_flow

    print(f"\nattention flow (one query's map: T max-flow problems), limit L·T² ≤ {FLOW_EDGE_LIMIT:,}")
    print(f"{'L':>3} {'T':>4} {'L·T²':>8} {'ms per map':>11} {'ms per max-flow':>16}")
    rng = np.random.default_rng(0)
    for L, T in ((4, 17), (4, 26), (4, 37), (4, 50), (6, 50), (12, 50), (4, 65), (12, 65)):
        a = rng.random((L, 4, T, T)) ** 4
        a /= a.sum(-1, keepdims=True)
        ms = median_ms(lambda: attention_flow(a, enforce_limit=False), max(1, repeat // 3))
        print(f"{L:>3} {T:>4} {L * T * T:>8,} {ms:>11.0f} {ms / T:>16.1f}")


def method_table(model_name: str, image: str, repeat: int) -> None:
    import torch

    from model import load_model
    from model.cli import load_images
    from model.explain import CLASS_METHODS, GRADIENT_METHODS, METHODS, MODEL_METHODS, explanation_maps
    from model.relevance import model_relevance

    vit = load_model(model_name, device="cpu")
    if vit.head is None:
        vit.head = torch.nn.Linear(vit.cfg.embed_dim, 1000)
        vit.cfg.num_classes, vit.cfg.head_type = 1000, "cls"
    (img,) = load_images([Path(image)])
    pixels = vit.to_pixels([img])
    with torch.inference_mode():
        trace = vit.trace(pixels).numpy()
    forward = median_ms(lambda: vit.trace(pixels), repeat)
    print(f"{model_name}: T = {trace.T}, L = {trace.L}; forward trace {forward:.0f} ms (median of {repeat})")
    print(f"{'method':>18} {'ms':>8} {'× forward':>10}  what is timed")
    grads = vit.trace(pixels, grad_class=0).numpy().attention_grads[0]
    for method in METHODS:
        if method == "attention-flow":
            from model.attention_flow import flow_available

            if not flow_available(trace.L, trace.T):
                print(f"{method:>18} {'—':>8} {'—':>10}  not offered: L·T² = {trace.L * trace.T ** 2:,}")
                continue
        if method in MODEL_METHODS:
            def run():
                values = model_relevance(vit, pixels, method, 0).values
                explanation_maps(trace.attentions[0], None, num_prefix_tokens=trace.num_prefix_tokens,
                                 grid=trace.grid, methods=[method], relevance={method: values})
            what = "model_relevance (backward passes) + map"
        elif method in GRADIENT_METHODS:
            def run():
                g = vit.trace(pixels, grad_class=0).numpy().attention_grads[0]
                explanation_maps(trace.attentions[0], g, num_prefix_tokens=trace.num_prefix_tokens, grid=trace.grid,
                                 methods=[method])
            what = "trace with ∂y_c/∂A_l + map"
        else:
            def run():
                explanation_maps(trace.attentions[0], grads, num_prefix_tokens=trace.num_prefix_tokens,
                                 grid=trace.grid, methods=[method])
            what = "map from the cached trace"
        ms = median_ms(run, repeat if method != "attention-flow" else max(1, repeat // 3))
        print(f"{method:>18} {ms:>8.1f} {ms / forward:>10.2f}  {what}" + ("  (class)" if method in CLASS_METHODS else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion-vit")
    parser.add_argument("--image", default="samples/fashion-7-sneaker.png")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a demo session)")
    parser.add_argument("--flow-only", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not args.flow_only:
        method_table(args.model, args.image, args.repeat)
    flow_table(args.repeat)


if __name__ == "__main__":
    main()
