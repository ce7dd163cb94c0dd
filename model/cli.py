"""`python -m model …`: trace, predict, explain, evaluate and model cards from the command line.

Errors print one line that says what is wrong and how to fix it, and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .numerics import softmax


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


def cmd_trace(args) -> None:
    from .loading import load_model

    model = load_model(args.model, device=args.device)
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
    from .loading import load_model
    from .ood import check_ood

    model = load_model(args.model, device=args.device)
    if not model.cfg.has_head:
        raise CliError(
            f"{args.model} has no classification head (it is a feature backbone), so it cannot predict labels; "
            "use a classifier such as fashion-vit, or `python -m model trace` to look at its attention"
        )
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
    from .explain import explain
    from .loading import load_model

    model = load_model(args.model, device=args.device)
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


def cmd_evaluate(args) -> None:
    """Deletion/insertion AUCs (model.faithfulness) of one method's map, image by image."""
    from .explain import METHODS, explain, resolve_label
    from .faithfulness import BASELINES, deletion_insertion
    from .loading import load_model

    if args.method not in METHODS:
        raise CliError(f"method {args.method!r} is unknown; choose one of {', '.join(METHODS)}")
    if args.baseline not in BASELINES:
        raise CliError(f"--baseline {args.baseline!r} is unknown; choose one of {', '.join(BASELINES)}")
    if args.random < 0:
        raise CliError("--random must be 0 (no random reference) or more")
    model = load_model(args.model, device=args.device)
    if not model.cfg.has_head:
        raise CliError(
            f"{args.model} has no classification head, so there is no class probability to delete or insert patches "
            "against; evaluate needs a classifier such as fashion-vit"
        )
    label = resolve_label(model, args.label)  # checked once, before the first image
    results = []
    for path in expand_images(args.images):
        (image,) = load_images([path])
        explanation = explain(model, image, args.method, label=label)
        result = deletion_insertion(model, model.to_pixels([image]), explanation.map, label=label,
                                    baseline=args.baseline, random_orders=args.random)
        row = {"image": str(path), **result.to_json()}
        row.pop("class_index")
        results.append(row)
        if not args.json:
            extra = (f"  (random: {row['random_deletion_auc']:.4f} / {row['random_insertion_auc']:.4f})"
                     if args.random else "")
            print(f"{path}  {row['label']}: deletion AUC {row['deletion_auc']:.4f}, insertion AUC "
                  f"{row['insertion_auc']:.4f}{extra}")
    if args.json:
        print(json.dumps(results, indent=2))


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
    p.add_argument("--method", required=True, help="rollout, gradient-rollout, chefer or attention")
    p.add_argument("--label", default=None, help="class name or index for class-specific methods (default: top class)")
    p.add_argument("--layer", type=int, default=-1, help="layer for --method attention (default: last)")
    p.add_argument("--head", default="mean", help="head index, or mean/max/min, for --method attention")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--npz", default=None, metavar="FILE.npz", help="also save the map and image as arrays")
    p.add_argument("--cmap", default="inferno", help="colormap of the overlay (default: inferno)")
    p.add_argument("--alpha", type=float, default=0.6, help="overlay opacity 0…1 (default: 0.6)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("evaluate", parents=[common],
                       help="faithfulness of a method's maps: deletion and insertion AUCs per image")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--method", required=True, help="an explain method: rollout, gradient-rollout, chefer, attention …")
    p.add_argument("--label", default=None, help="class name or index to delete/insert against (default: each "
                                                 "image's top class on the clean input)")
    p.add_argument("--baseline", default="mean", help="mean (0 in normalised input space, the default) or blur")
    p.add_argument("--random", type=int, default=10, metavar="N",
                   help="random orders averaged as the reference (seeds 0…N−1; default 10, 0: none)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_evaluate)

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
