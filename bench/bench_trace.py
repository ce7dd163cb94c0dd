"""Trace cost: our explicit trace vs our fused forward vs transformers' eager forward.

On the same weights (a ViT-S/14 — DINOv2-small shape — built with transformers and loaded
into our ViT) and the same 224 px input, in one run, it times
  (a) ViT.trace (explicit attention, every intermediate captured),
  (b) ViT.forward (PyTorch's fused scaled-dot-product attention, nothing captured),
  (c) transformers Dinov2Model eager with output_attentions and output_hidden_states,
interleaved round by round so machine noise hits all three alike, and prints the median
times, the ratios a/b and a/c, and the trace's peak extra memory (measured in a child
process). Usage: python bench/bench_trace.py [--repeats 20] [--batch 1] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(directory: str):
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                         image_size=224, patch_size=14)
    transformers.Dinov2Model(cfg).save_pretrained(directory)


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_child(directory: str, batch: int, mode: str, queue) -> None:
    import gc

    import torch

    from model import load_model

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = load_model(directory, device="cpu")
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        model(x)  # warm up allocator and kernels
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: reset the peak resident set size (VmHWM) to the current one
    base = status_kib("VmRSS")
    if mode == "trace":
        out = model.trace(x)
    else:
        with torch.inference_mode():
            out = model(x)
    queue.put(max(0, status_kib("VmHWM") - base) * 1024)
    del out  # held until the peak was read: the output is part of what a run keeps resident


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch
    import transformers

    from model import load_model

    torch.set_num_threads(args.threads)
    os.environ["BENCH_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as d:
        build(d)
        ours = load_model(d, device=args.device)
        ref = transformers.Dinov2Model.from_pretrained(d, attn_implementation="eager").eval().to(args.device)
        x = torch.randn(args.batch, 3, 224, 224, device=args.device)
        sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)

        def run_trace():
            return ours.trace(x)

        def run_fused():
            with torch.inference_mode():
                return ours(x)

        def run_ref():
            with torch.inference_mode():
                return ref(pixel_values=x, output_attentions=True, output_hidden_states=True)

        fns = {"a trace": run_trace, "b fused forward": run_fused, "c transformers eager": run_ref}
        for fn in fns.values():  # warm-up
            fn(); fn()
        times = {k: [] for k in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
        # parity on this very input, so the timed runs are known to compute the same thing
        t = run_trace()
        o = run_ref()
        err = max((t.attentions[:, l] - o.attentions[l].cpu()).abs().max().item() for l in range(12))

        peaks = {}
        if args.device == "cpu":
            ctx = mp.get_context("spawn")
            for mode in ("trace", "fused"):
                q = ctx.Queue()
                p = ctx.Process(target=peak_child, args=(d, args.batch, mode, q))
                p.start()
                peaks[mode] = q.get(timeout=600)
                p.join()

    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"ViT-S/14 at 224 px (T = 257), batch {args.batch}, device {args.device}, torch threads {args.threads}, "
          f"{args.repeats} interleaved rounds; attention max |ours - transformers| = {err:.1e}")
    for k, v in med.items():
        print(f"  {k:22s} median {v:8.1f} ms   (min {min(times[k]) * 1000:.1f})")
    ab = med["a trace"] / med["b fused forward"]
    ac = med["a trace"] / med["c transformers eager"]
    print(f"  a/b = {ab:.2f}  (target ≤ 1.25)    a/c = {ac:.2f}  (target ≤ 1.00)")
    print("  throughput, images/s: " + ", ".join(f"{k[2:]} {args.batch / v * 1000:.1f}" for k, v in med.items()))
    if peaks:
        print(f"  peak extra memory: trace {peaks['trace'] / 2**20:.0f} MiB, fused forward {peaks['fused'] / 2**20:.0f} MiB")
    print(f"  trace output size: {sum(v.nbytes for v in t.arrays().values()) / 2**20:.1f} MiB of contract arrays")


if __name__ == "__main__":
    main()
