"""CLIP cost: on a random CLIPModel of openai/clip-vit-base-patch32's shape (image tower D 768,
12 layers, 224 px, patch 32 → 50 tokens; text tower width 512, 12 layers), in one run, it times
  (a) ViT.trace of the converted image tower with a prompt head (every intermediate captured),
  (b) the same with the attention gradients of one class (a class map),
  (c) transformers CLIPVisionModel eager forward with output_attentions and output_hidden_states,
  (d) building a prompt head of 10 prompts (the text tower reads them; loaded once beforehand),
interleaved round by round, and prints medians, minima and the ratios a/c and b/a. Also the one-time
costs: loading the image tower and loading the text tower.
Usage: python bench/bench_clip.py [--repeats 10] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PROMPTS = ["cat", "dog", "bird", "horse", "car", "bicycle", "person", "tree", "flower", "food"]


def build(directory: str):
    import torch
    import transformers
    from conftest import tiny_clip_tokenizer  # an offline tokenizer (no hub): byte-level, no merges

    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer()
    ids = tokenizer.get_vocab()
    cfg = transformers.CLIPConfig(
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32),
        text_config=dict(vocab_size=len(ids), hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=77, bos_token_id=ids["<|startoftext|>"],
                         eos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"]),
        projection_dim=512)
    model = transformers.CLIPModel(cfg).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    model.set_attn_implementation("eager")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from model import load_model
    from model.clip import prompt_head, text_encoder, with_prompts

    with tempfile.TemporaryDirectory() as directory:
        ref = build(directory)
        t0 = time.perf_counter()
        backbone = load_model(directory, device="cpu")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        text_encoder(directory)
        text_load_s = time.perf_counter() - t0
        model = with_prompts(backbone, PROMPTS)
        pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        times = {"trace": [], "trace+grad": [], "hf eager": [], "prompt head": []}
        for _ in range(2):  # warm-up
            model.trace(pixels)
        for _ in range(args.repeats):
            t = time.perf_counter()
            model.trace(pixels)
            times["trace"].append(time.perf_counter() - t)
            t = time.perf_counter()
            model.trace(pixels, grad_class=3)
            times["trace+grad"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with torch.inference_mode():
                ref.vision_model(pixel_values=pixels, output_attentions=True, output_hidden_states=True)
            times["hf eager"].append(time.perf_counter() - t)
            t = time.perf_counter()
            prompt_head(backbone, PROMPTS)
            times["prompt head"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    low = {k: min(v) * 1000 for k, v in times.items()}
    print(f"CLIP ViT-B/32-sized, random weights, 1 image 224 px, {args.threads} threads, {args.repeats} rounds")
    print(f"  load image tower {load_s * 1000:.0f} ms, load text tower {text_load_s * 1000:.0f} ms (once)")
    for k, v in med.items():
        print(f"  {k:12s} {v:8.1f} ms median, {low[k]:8.1f} ms min")
    for name, t in (("medians", med), ("minima", low)):
        print(f"  {name}: trace / transformers eager = {t['trace'] / t['hf eager']:.2f}; "
              f"trace with a class's gradients / trace = {t['trace+grad'] / t['trace']:.2f}")


if __name__ == "__main__":
    main()
