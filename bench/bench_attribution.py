"""Time Patchlight's attribution and statistics math on one image.

    python bench/bench_attribution.py                  # synthetic dinov2-small-shaped data
    python bench/bench_attribution.py --npz trace.npz  # arrays from `python -m model trace`
    python bench/bench_attribution.py --model dinov2-small [--image samples/chelsea.jpg]
                                      # a real trace, and the forward and gradient passes timed

Shapes default to dinov2-small at 224 px: L=12 layers, H=6 heads, T=257 tokens (1 CLS +
16×16 patches), D=384, P=14. The timing of this math does not depend on the values, so
synthetic softmax attentions give the same figures as real ones; the output says which
was used. Targets (DESIGN: changing a layer, head or query never re-runs the model, so
these run on every click): every map for one query < 50 ms; all L×H maps for one query
< 150 ms. Per-image statistics have no target of their own and are listed for reference.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

# numpy and the model modules are imported in main(), after --blas-threads has set the
# thread count: OpenBLAS reads it once, when it loads.
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

MAP_TARGET_MS = 50.0
GRID_TARGET_MS = 150.0


def synthetic(L=12, H=6, grid=(16, 16), D=384, patch_size=14, p=1, seed=0) -> dict:
    """Softmax attentions and Gaussian activations of the given shapes (float32, as a trace)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    N = grid[0] * grid[1]
    T = p + N
    logits = rng.normal(scale=3.0, size=(L, H, T, T)).astype(np.float32)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return {
        "attentions": e / e.sum(axis=-1, keepdims=True),
        "gradients": rng.normal(size=(L, H, T, T)).astype(np.float32),
        "hidden_states": rng.normal(size=(L + 1, T, D)).astype(np.float32),
        "patch_embeddings": rng.normal(size=(N, D)).astype(np.float32),
        "pos_embed": rng.normal(size=(T, D)).astype(np.float32),
        "grid": grid,
        "patch_size": patch_size,
        "num_prefix_tokens": p,
        "source": "synthetic softmax attentions and Gaussian activations",
    }


def from_npz(path: str) -> dict:
    """One image of a trace file; gradients are synthetic unless it holds attention_grads."""
    import numpy as np

    if not Path(path).is_file():
        sys.exit(f"error: no trace file at {path}; write one with `python -m model trace IMAGE "
                 f"--model SOURCE --out FILE.npz` or leave out --npz for synthetic data")
    z = np.load(path)
    missing = [k for k in ("attentions", "hidden_states", "patch_embeddings", "pos_embed",
                           "grid", "patch_size", "num_prefix_tokens") if k not in z.files]
    if missing:
        sys.exit(f"error: {path} lacks {missing}; write it with `python -m model trace IMAGE "
                 f"--model SOURCE --out FILE.npz`")

    def first_image(name, ndim):
        a = z[name]
        return a[0] if a.ndim == ndim + 1 else a

    data = {
        "attentions": first_image("attentions", 4),
        "hidden_states": first_image("hidden_states", 3),
        "patch_embeddings": first_image("patch_embeddings", 2),
        "pos_embed": z["pos_embed"],
        "grid": tuple(int(g) for g in np.asarray(z["grid"]).ravel()[:2]),
        "patch_size": int(np.asarray(z["patch_size"]).ravel()[0]),
        "num_prefix_tokens": int(np.asarray(z["num_prefix_tokens"]).ravel()[0]),
    }
    if "attention_grads" in z.files:
        data["gradients"] = first_image("attention_grads", 4)
        data["source"] = f"{path} (attentions and gradients from the trace)"
    else:
        rng = np.random.default_rng(0)
        data["gradients"] = rng.normal(size=data["attentions"].shape).astype(np.float32)
        data["source"] = f"{path} (attentions from the trace; gradients synthetic)"
    return data


def from_model(source: str, image: str, repeats: int) -> dict:
    """A real trace of `image`, with the trace and the gradient pass timed beside each other.

    A model without a class head (dinov2-small) gets a temporary random 1000-class linear
    head on CLS for the gradient pass: the backward pass costs the same for any head, and
    the figure says so.
    """
    import torch

    from model import load_model

    model = load_model(source, device="cpu")
    note = ""
    if not model.cfg.has_head:
        model.cfg.num_classes, model.cfg.head_type = 1000, "cls"
        model.head = torch.nn.Linear(model.cfg.embed_dim, 1000)
        note = " (temporary random 1000-class head: the model has none)"
    from model.preprocess import decode_image

    img = decode_image(image)
    pixels = model.to_pixels([img])
    fwd, fwd_min = time_ms(lambda: model.trace(pixels), repeats)
    grad, grad_min = time_ms(lambda: model.trace(pixels, grad_class="top"), repeats)
    trace = model.trace(pixels, grad_class="top")
    print(f"model {source}: trace (forward) median {fwd:.1f} ms (min {fwd_min:.1f}); "
          f"trace + attention gradients median {grad:.1f} ms (min {grad_min:.1f}){note}; "
          f"ratio {grad / fwd:.2f}")
    return {
        "attentions": trace.attentions[0].numpy(),
        "gradients": trace.attention_grads[0].numpy(),
        "hidden_states": trace.hidden_states[0].numpy(),
        "patch_embeddings": trace.patch_embeddings[0].numpy(),
        "pos_embed": trace.pos_embed.numpy(),
        "grid": trace.grid,
        "patch_size": trace.patch_size,
        "num_prefix_tokens": trace.num_prefix_tokens,
        "source": f"{source} on {image} (a real trace and its attention gradients){note}",
    }


def time_ms(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up: first-touch allocations, BLAS thread start
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", help="trace file from `python -m model trace` (else synthetic)")
    parser.add_argument("--model", help="load this model and trace --image (a real trace; times the gradient pass)")
    parser.add_argument("--image", default=str(Path(__file__).resolve().parents[1] / "samples" / "chelsea.jpg"))
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per method")
    parser.add_argument("--query", type=int, default=0, help="query token (0 = CLS)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="BLAS threads (default: the library's own choice); 1 gives stable "
                             "figures on a shared machine and is what a many-session server wants")
    args = parser.parse_args(argv)
    if args.blas_threads is not None:
        for var in _BLAS_ENV:
            os.environ[var] = str(args.blas_threads)

    import numpy as np

    from model.attribution import (
        all_heads_maps,
        all_layers_maps,
        attention_mass_mask,
        attention_rollout,
        chefer_relevance,
        gradient_rollout,
        layer_head_grid,
        patch_map,
        query_attention,
    )
    from model.embedding_stats import patch_embedding_pca, pos_embed_similarity
    from model.explain import explanation_maps
    from model.head_stats import (
        artifact_tokens,
        attention_entropy,
        mean_attention_distance,
        prefix_attention,
        token_norms,
    )

    if args.model:
        d = from_model(args.model, args.image, max(3, args.repeats // 3))
    else:
        d = from_npz(args.npz) if args.npz else synthetic()
    a, g = d["attentions"], d["gradients"]
    grid, P, p, q = d["grid"], d["patch_size"], d["num_prefix_tokens"], args.query
    L, H, T, _ = a.shape
    m = patch_map(attention_rollout(a, num_prefix_tokens=p)[q], grid, p)

    def rollout_map(**kw):
        return lambda: patch_map(attention_rollout(a, num_prefix_tokens=p, **kw)[q], grid, p)

    # (name, function, target ms or None)
    cases = [
        ("rollout mean, discard 0.9 (map)", rollout_map(head_fusion="mean", discard_ratio=0.9), MAP_TARGET_MS),
        ("rollout max,  discard 0.9 (map)", rollout_map(head_fusion="max", discard_ratio=0.9), MAP_TARGET_MS),
        ("rollout min,  discard 0.9 (map)", rollout_map(head_fusion="min", discard_ratio=0.9), MAP_TARGET_MS),
        ("rollout mean, discard 0 (map)", rollout_map(head_fusion="mean"), MAP_TARGET_MS),
        ("gradient rollout (map)",
         lambda: patch_map(gradient_rollout(a, g, num_prefix_tokens=p)[q], grid, p), MAP_TARGET_MS),
        ("chefer relevance (map)", lambda: patch_map(chefer_relevance(a, g)[q], grid, p), MAP_TARGET_MS),
        ("explanation_maps (the app's 3 maps)",
         lambda: explanation_maps(a, g, num_prefix_tokens=p, grid=grid, discard_ratio=0.9, query=q),
         3 * MAP_TARGET_MS),
        ("query_attention (one map)",
         lambda: patch_map(query_attention(a, L - 1, "mean", q), grid, p), MAP_TARGET_MS),
        ("all_heads_maps (H maps)", lambda: all_heads_maps(a, L - 1, q, grid, p), MAP_TARGET_MS),
        ("all_layers_maps mean (L maps)", lambda: all_layers_maps(a, "mean", q, grid, p), MAP_TARGET_MS),
        ("layer_head_grid (L×H maps)", lambda: layer_head_grid(a, q, grid, p), GRID_TARGET_MS),
        ("attention_mass_mask", lambda: attention_mass_mask(m, 0.6), MAP_TARGET_MS),
        ("attention_entropy [L,H]", lambda: attention_entropy(a), None),
        ("mean_attention_distance [L,H]", lambda: mean_attention_distance(a, grid, P, p), None),
        ("prefix_attention [L,H]", lambda: prefix_attention(a, p), None),
        ("token_norms [L+1,T]", lambda: token_norms(d["hidden_states"]), None),
        ("artifact_tokens", lambda: artifact_tokens(d["hidden_states"], p, grid=grid), None),
        ("patch_embedding_pca", lambda: patch_embedding_pca(d["patch_embeddings"], grid), None),
        ("pos_embed_similarity", lambda: pos_embed_similarity(d["pos_embed"], grid, p), None),
    ]

    print(f"data: {d['source']}")
    print(f"shapes: L={L} H={H} T={T} D={d['hidden_states'].shape[-1]} grid={grid} P={P} p={p} "
          f"dtype={a.dtype}; numpy {np.__version__}, {os.cpu_count()} CPUs visible")
    threads = {v: os.environ[v] for v in _BLAS_ENV if v in os.environ}
    print(f"BLAS threads: {threads or 'library default'}")
    print(f"median / min of {args.repeats} runs after one warm-up, query token {q}\n")
    print(f"{'method':36s} {'median ms':>10s} {'min ms':>8s}  target")
    failed = []
    for name, fn, target in cases:
        med, low = time_ms(fn, args.repeats)
        if target is None:
            verdict = "per image"
        elif med < target:
            verdict = f"< {target:.0f} ok"
        else:
            verdict = f"< {target:.0f} MISSED"
            failed.append(name)
        print(f"{name:36s} {med:10.2f} {low:8.2f}  {verdict}")
    print()
    print("all targets met" if not failed else f"targets missed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
