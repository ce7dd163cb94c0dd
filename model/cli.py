"""`python -m model …`: trace, predict, explain and model cards from the command line.

Errors print one line that says what is wrong and how to fix it, and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .numerics import softmax
from .explain import CLASS_METHODS as EXPLAIN_CLASS_METHODS, METHODS as EXPLAIN_METHODS


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def expand_images(items: list[str]) -> list[Path]:
    from .preprocess import IMAGE_SUFFIXES  # late: preprocess imports torch

    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise CliError(f"{p} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise CliError(f"{item}: no such file or directory")
    return paths


def load_images(paths: list[Path]):
    from .preprocess import decode_image

    return [decode_image(p.read_bytes(), name=str(p)) for p in paths]


def load_for(args):
    """The model named by --model; a CLIP model with the classes of --prompts attached."""
    from .clip import is_clip, with_prompts
    from .loading import load_model

    model = load_model(args.model, device=args.device)
    prompts = getattr(args, "prompts", None)
    if prompts:
        if not is_clip(model):
            raise CliError(f"--prompts gives a CLIP model its classes; {args.model} is not a CLIP model")
        prompts = with_label(prompts, getattr(args, "label", None))
        model = with_prompts(model, prompts, args.template)
        names = model.cfg.class_names
        print(f"classes: {len(names)} CLIP text prompts ({args.template!r}): {', '.join(names)}", file=sys.stderr)
    return model


def with_label(prompts: str, label: str | None) -> list[str]:
    """The prompts, plus --label when it is a new text: a CLIP model explains any typed label
    (a prompt's logit, and so its map, does not depend on the other prompts)."""
    from .clip import parse_prompts

    names = parse_prompts(prompts) if "," in prompts or "\n" in prompts else [prompts.strip()]
    text = " ".join((label or "").split())
    if text and not text.lstrip("-").isdigit() and text.lower() not in [n.lower() for n in names]:
        names.append(text)
    return parse_prompts(names)


def needs_head(model, args) -> None:
    """CliError unless the model has a head (a CLIP model gets one from --prompts)."""
    from .clip import is_clip

    if model.cfg.has_head:
        return
    if is_clip(model):
        raise CliError(f"{args.model} is a CLIP model: give its classes as text, e.g. --prompts \"cat, dog, car\"")
    raise CliError(
        f"{args.model} has no classification head (it is a feature backbone), so it cannot predict labels; "
        "use a classifier such as fashion-vit, or `python -m model trace` to look at its attention"
    )


def cmd_trace(args) -> None:
    model = load_for(args)
    trace = model.trace(load_images(expand_images(args.images)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **trace.arrays())
    B, L, H, T, _ = trace.attentions.shape
    print(f"wrote {out}: {B} image(s), {L} layers × {H} heads, {T} tokens ({trace.num_prefix_tokens} prefix + "
          f"{trace.grid[0]}×{trace.grid[1]} patches)")


def top_k(logits: np.ndarray, labels: list[str] | None, k: int) -> list[dict]:
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": labels[i] if labels else str(i), "index": int(i), "prob": float(probs[i])} for i in order]


def cmd_predict(args) -> None:
    from .ood import check_ood

    model = load_for(args)
    needs_head(model, args)
    paths = expand_images(args.images)
    results = []
    for path in paths:  # one at a time: images may come out in different sizes
        import torch

        pixels = model.to_pixels(load_images([path]))
        with torch.inference_mode():
            logits, _ = model(pixels)
        ood = check_ood(model, pixels)  # None: the model has no fitted check
        results.append({"image": str(path), "top": top_k(logits[0].float().cpu().numpy(), model.cfg.class_names, args.top),
                        "out_of_distribution": ood.to_json() if ood is not None and ood.far else None})
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(r["image"])
        for t in r["top"]:
            print(f"  {t['prob'] * 100:6.2f}%  {t['label']}  (class {t['index']})")
        if r["out_of_distribution"]:
            print(f"  warning: {r['out_of_distribution']['message']}")


def cmd_explain(args) -> None:
    from .clip import is_clip
    from .explain import CLASS_METHODS, explain

    model = load_for(args)
    if args.method in CLASS_METHODS and is_clip(model):
        needs_head(model, args)  # a CLIP model without --prompts: say how to give it classes
    (image,) = load_images([Path(args.image)] if Path(args.image).is_file() else expand_images([args.image]))
    result = explain(model, image, args.method, label=args.label, layer=args.layer, head=args.head)
    from .overlay import overlay_png  # numpy and Pillow: the command line never imports plotly

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(overlay_png(result.image, result.map, cmap=args.cmap, alpha=args.alpha))
    if args.npz:
        np.savez_compressed(args.npz, map=result.map.astype(np.float32), image=result.image,
                            label_index=np.asarray(-1 if result.label_index is None else result.label_index))
    print(f"wrote {out}: {result.description}")


def cmd_card(args) -> None:
    from .builtins import BUILTIN_NAMES, builtin_summary, model_card

    if args.name is None:  # the list of built-ins, one line each
        rows = [builtin_summary(name) for name in BUILTIN_NAMES]
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        for r in rows:
            a, t = r["architecture"], r["tokens"]
            head = (f"{r['num_classes']} classes" + (f", {r['test_accuracy'] * 100:.2f}% test accuracy"
                                                     if r.get("test_accuracy") else "")) if r["has_head"] else "no head"
            print(f"{r['name']:14s} patch {a['patch_size']}, D {a['embed_dim']}, {a['depth']} layers × "
                  f"{a['num_heads']} heads, T = {t['T']} tokens, {head}")
        print("\n`python -m model card NAME` prints a model's card.")
        return
    if args.name in BUILTIN_NAMES:
        print(json.dumps(builtin_summary(args.name), indent=2) if args.json else model_card(args.name))
        return
    from .cards import model_card_text, model_facts
    from .loading import load_model

    model = load_model(args.name, device=args.device)  # any other source: a card generated from the model
    print(json.dumps(model_facts(model), indent=2) if args.json else model_card_text(model))


def build_parser() -> argparse.ArgumentParser:
    prog = "patchlight" if Path(sys.argv[0]).stem == "patchlight" else "python -m model"
    parser = argparse.ArgumentParser(prog=prog, description="Patchlight: look inside a Vision Transformer.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default="fashion-vit", help="built-in name, local path or hf:<repo id> (default: fashion-vit)")
    common.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1 …")
    common.add_argument("--prompts", default=None, metavar="'cat, dog, car'",
                        help="a CLIP model's classes as text prompts, comma-separated")
    common.add_argument("--template", default="a photo of a {}.",
                        help="the sentence each prompt is put in for CLIP's text tower (default: 'a photo of a {}.')")

    p = sub.add_parser("trace", parents=[common], help="write every intermediate of the model for images to an .npz")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="FILE.npz")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("predict", parents=[common], help="top-K labels and probabilities per image")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--top", type=int, default=5, metavar="K")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", parents=[common], help="an explanation map over the image, as PNG (and NPZ)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--method", required=True, metavar="METHOD",
                   help=f"one of {', '.join(EXPLAIN_METHODS)}; {', '.join(EXPLAIN_CLASS_METHODS)} explain a class "
                        "and need a model with a classification head; attention-flow is offered for small grids "
                        "(L·T² ≤ 10,000)")
    p.add_argument("--label", default=None, help="class name or index for class-specific methods (default: top class)")
    p.add_argument("--layer", type=int, default=-1, help="layer for --method attention (default: last)")
    p.add_argument("--head", default="mean", help="head index, or mean/max/min, for --method attention")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--npz", default=None, metavar="FILE.npz", help="also save the map and image as arrays")
    p.add_argument("--cmap", default="inferno", help="colormap of the overlay (default: inferno)")
    p.add_argument("--alpha", type=float, default=0.6, help="overlay opacity 0…1 (default: 0.6)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("card", help="a model's card (source, licence, architecture, tokens, accuracy, steps)")
    p.add_argument("name", nargs="?", default=None,
                   help="fashion-vit, dinov2-small, or any model source (a local path, hf:<repo id>); "
                        "none: list the built-in models")
    p.add_argument("--json", action="store_true", help="the facts as JSON instead of the markdown card")
    p.add_argument("--device", default="cpu", help="device to load a non-built-in model on (default: cpu)")
    p.set_defaults(func=cmd_card)

    # handled in main() before parsing, so that every option goes to `streamlit run` untouched
    sub.add_parser("app", help="start the Streamlit UI from the repository checkout (options go to `streamlit run`)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["app"]:
        from .launcher import run_app

        return run_app(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "top", 1) < 1:
        print("error: --top must be at least 1", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except (CliError, ValueError, OSError) as err:  # ImageError is a ValueError
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
