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
    """The model named by --model, with the head of --head attached when one is given."""
    from .loading import load_model

    model = load_model(args.model, device=args.device)
    if getattr(args, "head", None):
        from .heads import attach_head, head_description, load_head

        if args.head in ("mean", "max", "min") or args.head.isdigit():
            raise CliError(f"--head names a head file (HEAD.safetensors from fit-head), not {args.head!r}; "
                           "for an attention head use --attention-head")
        head = load_head(args.head)
        if head.backbone != str(model.source):
            print(f"warning: {args.head} was taught on {head.backbone!r}, not {model.source!r}; its classes "
                  "mean what they meant there only if the two backbones are the same", file=sys.stderr)
        model = attach_head(model, head)
        print(f"head: {head_description(model)}", file=sys.stderr)
    return model


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
    if not model.cfg.has_head:
        raise CliError(
            f"{args.model} has no classification head (it is a feature backbone), so it cannot predict labels; "
            "teach it classes (`python -m model fit-head`) and pass --head, use a classifier such as fashion-vit, "
            "or `python -m model trace` to look at its attention"
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

    model = load_for(args)
    (image,) = load_images([Path(args.image)] if Path(args.image).is_file() else expand_images([args.image]))
    result = explain(model, image, args.method, label=args.label, layer=args.layer, head=args.attention_head)
    from .overlay import overlay_png  # numpy and Pillow: the command line never imports plotly

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(overlay_png(result.image, result.map, cmap=args.cmap, alpha=args.alpha))
    if args.npz:
        np.savez_compressed(args.npz, map=result.map.astype(np.float32), image=result.image,
                            label_index=np.asarray(-1 if result.label_index is None else result.label_index))
    from .explain import CLASS_METHODS
    from .heads import head_description

    logits_from = f"; logits from {head_description(model)}" if args.method in CLASS_METHODS else ""
    print(f"wrote {out}: {result.description}{logits_from}")


def cmd_fit_head(args) -> None:
    """Teach --model the classes of --data (one sub-folder per class) and save the head."""
    import time

    from .heads import save_head
    from .loading import load_model
    from .teach import Recipe, read_example_folder, teach

    recipe = Recipe(name=args.name or Path(args.data).name, head_type=args.head_type, views=args.views,
                    steps=args.steps, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed, holdout=args.holdout)
    recipe.check()
    examples = read_example_folder(args.data)  # ExamplesError: main prints one line per problem
    model = load_model(args.model, device=args.device)
    counts = ", ".join(f"{name} {len(images)}" for name, images in examples.items())
    print(f"{len(examples)} classes ({counts}); {recipe.views} view(s) per image; backbone {model.source}")
    started = time.perf_counter()
    every = max(1, recipe.steps // 10)

    def on_step(step, loss, heldout_loss):
        if step % every == 0 or step == recipe.steps:
            held = f", held-out loss {heldout_loss:.4f}" if heldout_loss is not None else ""
            print(f"  step {step:4d}/{recipe.steps}  training loss {loss:.4f}{held}", flush=True)

    def on_features(done, total):
        print(f"features of {total} images × {recipe.views} view(s): {time.perf_counter() - started:.1f} s",
              flush=True)

    result = teach(model, examples, recipe, on_step=on_step, on_features=on_features)
    out = save_head(result.head, args.out)
    if result.heldout_accuracy is not None:
        print(f"held-out accuracy: {round(result.heldout_accuracy * result.heldout_count)}/{result.heldout_count} "
              f"= {100 * result.heldout_accuracy:.1f}% (images never trained on; chance "
              f"{100 / len(examples):.0f}%)")
    else:
        print("held-out accuracy: none held back (--holdout 0)")
    print(f"wrote {out}: {result.head.num_classes} classes, {result.train_count} training images, "
          f"{time.perf_counter() - started:.1f} s in all")


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
    common.add_argument("--head", default=None, metavar="HEAD.safetensors",
                        help="a head taught with fit-head (or saved by the app): its classes replace the model's")

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
    p.add_argument("--attention-head", default="mean", metavar="HEAD",
                   help="attention head index, or mean/max/min, for --method attention")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--npz", default=None, metavar="FILE.npz", help="also save the map and image as arrays")
    p.add_argument("--cmap", default="inferno", help="colormap of the overlay (default: inferno)")
    p.add_argument("--alpha", type=float, default=0.6, help="overlay opacity 0…1 (default: 0.6)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("fit-head", help="teach a backbone your classes: a linear head on its frozen features")
    p.add_argument("--model", default="dinov2-small", help="the backbone (default: dinov2-small)")
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda …")
    p.add_argument("--data", required=True, metavar="DIR", help="a folder with one sub-folder of images per class")
    p.add_argument("--out", required=True, metavar="HEAD.safetensors")
    p.add_argument("--name", default=None, help="the head's name (default: the folder's name)")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="share of each class's images held back and scored (default 0.2; 0: train on all)")
    p.add_argument("--views", type=int, default=2, help="views per image: itself, its mirror, then random crops")
    p.add_argument("--steps", type=int, default=150, help="Adam steps of the fit (default 150)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=1e-2, help="on ‖W‖² of the standardised features (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="seeds the crops and the held-out draw")
    p.add_argument("--head-type", default="cls_patch_mean", choices=("cls_patch_mean", "cls"),
                   help="features the head reads: CLS and mean patch token (default), or CLS alone")
    p.set_defaults(func=cmd_fit_head)

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
        from .teach import ExamplesError

        if isinstance(err, ExamplesError):  # a folder of examples: one line per problem
            for problem in err.problems:
                print(f"error: {problem}", file=sys.stderr)
            return 2
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
