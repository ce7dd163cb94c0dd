"""`python -m model …`: trace, predict, explain (one image or many, in batches), evaluate, dataset mode,
fit-head and model cards.

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
    """The model named by --model: with the head of --head attached, or, for a CLIP model, with
    the classes of --prompts."""
    from .clip import is_clip, with_prompts
    from .loading import load_model

    model = load_model(args.model, device=args.device)
    prompts = getattr(args, "prompts", None)
    if getattr(args, "head", None):
        from .heads import attach_head, head_description, load_head

        if prompts:
            raise CliError("give a model its classes by --head or by --prompts, not both")
        if args.head in ("mean", "max", "min") or args.head.isdigit():
            raise CliError(f"--head names a head file (HEAD.safetensors from fit-head), not {args.head!r}; "
                           "for an attention head use --attention-head")
        head = load_head(args.head)
        if head.backbone != str(model.source):
            print(f"warning: {args.head} was taught on {head.backbone!r}, not {model.source!r}; its classes "
                  "mean what they meant there only if the two backbones are the same", file=sys.stderr)
        model = attach_head(model, head)
        print(f"head: {head_description(model)}", file=sys.stderr)
    elif prompts:
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
        "teach it classes (`python -m model fit-head`) and pass --head, use a classifier such as fashion-vit, "
        "or `python -m model trace` to look at its attention"
    )


def cmd_trace(args) -> None:
    from .batching import Progress, prepare, trace_batches

    model = load_for(args)
    paths = expand_images(args.images)
    prepared = [prepare(model, p, i) for i, p in enumerate(paths)]
    bad = next((p for p in prepared if p.error is not None), None)
    if bad is not None:
        raise CliError(bad.error)
    groups: dict[tuple, list] = {}  # preprocessed size -> [(batch, its contract arrays)]
    with Progress(len(paths), args.batch_size or 1) as progress:
        for batch, trace in trace_batches(model, prepared, args.batch_size, progress=progress):
            groups.setdefault(tuple(batch[0].pixels.shape[1:]), []).append((batch, trace.arrays()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for (height, width), parts in groups.items():  # one file per size; one file when all are alike
        target = out if len(groups) == 1 else out.with_name(f"{out.stem}-{height}x{width}{out.suffix}")
        arrays = concat_trace_arrays(parts)
        np.savez_compressed(target, **arrays)
        B, L, H, T, _ = arrays["attentions"].shape
        grid = arrays["grid"]
        print(f"wrote {target}: {B} image(s), {L} layers × {H} heads, {T} tokens "
              f"({int(arrays['num_prefix_tokens'])} prefix + {grid[0]}×{grid[1]} patches)")


def concat_trace_arrays(parts: list) -> dict[str, np.ndarray]:
    """One size's batches as the trace contract's arrays, images in input order, plus `images` (the paths)."""
    order = np.argsort([p.index for batch, _ in parts for p in batch], kind="stable")
    per_batch = [arrays for _, arrays in parts]
    arrays = dict(per_batch[0])
    for name, first in per_batch[0].items():
        if name not in ("pos_embed", "grid", "patch_size", "num_prefix_tokens") and np.ndim(first) and len(parts) > 1:
            arrays[name] = np.concatenate([a[name] for a in per_batch])[order]
    arrays["images"] = np.asarray([p.name for batch, _ in parts for p in batch])[order]
    return arrays


def top_k(logits: np.ndarray, labels: list[str] | None, k: int) -> list[dict]:
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": labels[i] if labels else str(i), "index": int(i), "prob": float(probs[i])} for i in order]


def cmd_predict(args) -> None:
    from .batching import Progress, predict_many

    model = load_for(args)
    needs_head(model, args)
    paths = expand_images(args.images)
    with Progress(len(paths), args.batch_size) as progress:
        predictions = predict_many(model, paths, args.batch_size, progress=progress)
    bad = next((p for p in predictions if p.error is not None), None)
    if bad is not None:
        raise CliError(bad.error)
    results = [{"image": str(p.name), "top": top_k(p.logits, model.cfg.class_names, args.top),
                "out_of_distribution": p.out_of_distribution.to_json() if p.out_of_distribution else None}
               for p in predictions]
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
    from .batching import Progress, explain_many
    from .clip import is_clip
    from .explain import CLASS_METHODS
    from .heads import head_description
    from .overlay import overlay_png  # numpy and Pillow: the command line never imports plotly

    model = load_for(args)
    if args.method in CLASS_METHODS and is_clip(model):
        needs_head(model, args)  # a CLIP model without --prompts: say how to give it classes
    paths = expand_images(args.images)
    many = len(paths) > 1 or Path(args.out).is_dir()
    if many and Path(args.out).suffix.lower() == ".png":
        raise CliError(f"{len(paths)} images need a folder for --out, got the file name {args.out}; "
                       "give a directory (one PNG per image is written there)")
    with Progress(len(paths), args.batch_size or 1) as progress:
        results = explain_many(model, paths, args.method, label=args.label, layer=args.layer, head=args.attention_head,
                               batch_size=args.batch_size, progress=progress)
    logits_from = f"; logits from {head_description(model)}" if args.method in CLASS_METHODS else ""
    pngs = output_names(paths, Path(args.out), ".png") if many else [Path(args.out)]
    npzs = (output_names(paths, Path(args.npz), ".npz") if many else [Path(args.npz)]) if args.npz else None
    for i, result in enumerate(results):
        pngs[i].parent.mkdir(parents=True, exist_ok=True)
        pngs[i].write_bytes(overlay_png(result.image, result.map, cmap=args.cmap, alpha=args.alpha))
        if npzs:
            npzs[i].parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(npzs[i], map=result.map.astype(np.float32), image=result.image,
                                label_index=np.asarray(-1 if result.label_index is None else result.label_index))
        print(f"wrote {pngs[i]}: {result.description}{logits_from}")


def output_names(paths: list[Path], folder: Path, suffix: str) -> list[Path]:
    """One file per input in `folder`, named after the input's stem (made unique with -1, -2 … if two clash)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        n = seen[p.stem] = seen.get(p.stem, -1) + 1
        names.append(folder / (f"{p.stem}{suffix}" if n == 0 else f"{p.stem}-{n}{suffix}"))
    return names


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


def cmd_evaluate(args) -> None:
    """Deletion/insertion AUCs (model.faithfulness) of one method's map, image by image."""
    from .explain import METHODS, explain, resolve_label
    from .faithfulness import BASELINES, deletion_insertion

    if args.method not in METHODS:
        raise CliError(f"method {args.method!r} is unknown; choose one of {', '.join(METHODS)}")
    if args.baseline not in BASELINES:
        raise CliError(f"--baseline {args.baseline!r} is unknown; choose one of {', '.join(BASELINES)}")
    if args.random < 0:
        raise CliError("--random must be 0 (no random reference) or more")
    model = load_for(args)
    if not model.cfg.has_head:
        raise CliError(
            f"{args.model} has no classification head, so there is no class probability to delete or insert patches "
            "against; evaluate needs a classifier such as fashion-vit (or a head: --head from fit-head, "
            "--prompts for CLIP)"
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


def cmd_dataset(args) -> None:
    from .dataset import SHARD_SIZE, DatasetOptions, run_dataset

    qk = None
    if args.qk:
        try:
            qk = tuple(int(v) for v in args.qk.split(","))
        except ValueError:
            qk = ()
        if len(qk) != 2:
            raise CliError(f"--qk {args.qk!r}: expected LAYER,HEAD, two integers such as 11,0")
    options = DatasetOptions(method=args.method, explain_label=args.explain_label, qk=qk, batch_size=args.batch_size)
    summary = run_dataset(args.source, args.model, args.out, options, engine=args.engine, device=args.device,
                          shard_size=args.shard_size or SHARD_SIZE, ray_address=args.ray_address, workers=args.workers)
    resumed = f" ({summary.shards_done_before} already done)" if summary.shards_done_before else ""
    print(f"wrote {summary.out}: {summary.rows} image(s) in {summary.shards} shard(s){resumed}, "
          f"{summary.errors} error row(s) this run")


def add_dataset_parser(sub, common) -> None:
    p = sub.add_parser("dataset", parents=[common],
                       help="per-image prediction, head statistics and an explanation map for a data set, as Parquet")
    p.add_argument("source", metavar="DIR_OR_PARQUET",
                   help="a folder of images, a folder of class folders (label = folder index), or a Parquet file "
                        "with an `image` bytes column (optional `path`, `label`)")
    p.add_argument("--out", required=True, metavar="OUT", help="folder of Parquet shards; an interrupted run resumes")
    p.add_argument("--method", default="rollout", help="the explanation map stored per image (default: rollout)")
    p.add_argument("--explain-label", choices=("top", "true"), default="top",
                   help="class methods explain the top class, or the given label where there is one")
    p.add_argument("--qk", default=None, metavar="LAYER,HEAD", help="also store this head's q and k of every token")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="images per forward pass (default: as many as fit in ~1 GB of trace)")
    p.add_argument("--shard-size", type=int, default=None, metavar="N",
                   help="images per Parquet shard (default: model.dataset.SHARD_SIZE, 1000)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default, no Ray needed) or ray (Ray Data; GPUs as Ray resources)")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --engine ray: auto or HOST:PORT of a running cluster (default: start a local one)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --engine ray: model copies (default: one per GPU, else one)")
    p.set_defaults(func=cmd_dataset)


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
    common.add_argument("--head", default=None, metavar="HEAD.safetensors",
                        help="a head taught with fit-head (or saved by the app): its classes replace the model's")

    p = sub.add_parser("trace", parents=[common], help="write every intermediate of the model for images to an .npz")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--out", required=True, metavar="FILE.npz",
                   help="images of different preprocessed sizes go to FILE-<H>x<W>.npz, one file per size")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="images per forward pass (default: as many as fit in ~1 GB of trace)")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("predict", parents=[common], help="top-K labels and probabilities per image")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--top", type=int, default=5, metavar="K")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="images per forward pass (default: 256)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", parents=[common], help="an explanation map over the image, as PNG (and NPZ)")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="one image, or several (then --out and --npz are folders: one file per image)")
    p.add_argument("--method", required=True, metavar="METHOD",
                   help=f"one of {', '.join(EXPLAIN_METHODS)}; {', '.join(EXPLAIN_CLASS_METHODS)} explain a class "
                        "and need a model with a classification head; attention-flow is offered for small grids "
                        "(L·T² ≤ 10,000)")
    p.add_argument("--label", default=None, help="class name or index for class-specific methods (default: top class)")
    p.add_argument("--layer", type=int, default=-1, help="layer for --method attention (default: last)")
    p.add_argument("--attention-head", default="mean", metavar="HEAD",
                   help="attention head index, or mean/max/min, for --method attention")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--npz", default=None, metavar="FILE.npz", help="also save the map and image as arrays")
    p.add_argument("--cmap", default="inferno", help="colormap of the overlay (default: inferno)")
    p.add_argument("--alpha", type=float, default=0.6, help="overlay opacity 0…1 (default: 0.6)")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="images per forward pass (default: as many as fit in ~1 GB of trace)")
    p.set_defaults(func=cmd_explain)

    add_dataset_parser(sub, common)

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
    for option in ("top", "batch_size", "shard_size", "workers"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            print(f"error: --{option.replace('_', '-')} must be at least 1", file=sys.stderr)
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
