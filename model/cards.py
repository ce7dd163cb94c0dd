"""What a loaded model is, in words: facts, the model card, and why a step is unavailable.

Shared by `python -m model card` and the app (plain Python; the built-ins' data is read from
`model.builtins` only when a built-in is asked about). `quote` parameters let the app make
checkpoint-supplied text inert markdown, while the CLI prints it as it is.
"""
from __future__ import annotations


def model_facts(model) -> dict:
    """Plain facts about a loaded model for the sidebar and the pages."""
    cfg = model.cfg
    size = model.preprocessor.output_size if model.preprocessor is not None else None
    return {
        "name": cfg.name,
        "source": str(model.source),
        "family": cfg.family,
        "device": str(model.device),
        "params": int(model.num_parameters()),
        **cfg.architecture(),
        "prefix_names": cfg.prefix_names(),
        "num_prefix_tokens": cfg.num_prefix_tokens,
        "has_head": cfg.has_head,
        "num_classes": cfg.num_classes if cfg.has_head else 0,
        "class_names": list(cfg.class_names) if cfg.class_names else None,
        "input_size": tuple(size) if size else tuple(cfg.image_size),
        "native_grid": tuple(cfg.native_grid),
    }


def training_curve_of(model) -> dict | None:
    """How the model's head was trained: the per-epoch curve of a built-in model that ships one,
    the per-step fit of a taught head (`taught_curve`), else None."""
    from .builtins import BUILTIN_NAMES, training_curve

    head = getattr(model, "attached_head", None)
    if head is not None:
        return taught_curve(head.recipe)
    return training_curve(model.source) if model.source in BUILTIN_NAMES else None


def taught_curve(recipe: dict) -> dict | None:
    """A taught head's fit as a training curve (`viz.training_curve_figure`): the training loss at
    every Adam step and, when images were held back, their loss; None without a recorded curve."""
    losses = recipe.get("loss_curve")
    if not losses:
        return None
    held = recipe.get("heldout_loss_curve")
    acc = recipe.get("heldout_accuracy")
    return {"epoch": list(range(len(losses))), "train_loss": list(losses), "test_loss": list(held) if held else None,
            "test_acc": [acc] if held and acc is not None else None, "x_title": "Adam step",
            "names": ("training", "held-out")}


def label_smoothing_target(model) -> float | None:
    """The probability a built-in model was trained to give the true class (1 − ε + ε/K with
    label smoothing ε), or None when it was trained without smoothing or is not a built-in."""
    from .builtins import BUILTIN_NAMES, builtin_summary

    if model.source not in BUILTIN_NAMES or not model.cfg.has_head:
        return None
    eps = float(builtin_summary(model.source).get("label_smoothing") or 0.0)
    return 1 - eps + eps / model.cfg.num_classes if eps > 0 else None


def model_card_text(model, quote=str) -> str:
    """The built-in model card, or a generated summary for any other model.

    `quote` turns checkpoint-supplied text (name, source, class names) into markdown: the app
    passes ``md_text`` so that a crafted repo or label name stays text; the CLI prints as is.
    """
    from .builtins import BUILTIN_NAMES, model_card

    name = model.cfg.name
    if model.source in BUILTIN_NAMES:
        try:
            return model_card(model.source)
        except OSError:
            pass  # the card file is missing: fall back to the facts
    f = model_facts(model)
    grid_h, grid_w = (n // f["patch_size"] for n in f["input_size"])
    names = f["class_names"] or []
    examples = f" ({', '.join(quote(n) for n in names[:5])}{', …' if len(names) > 5 else ''})" if names else ""
    lines = [
        f"**{quote(name)}** ({quote(f['family'] or 'ViT')}), loaded from {quote(f['source'])}",
        "",
        f"- patch size P = {f['patch_size']}, width D = {f['embed_dim']}, {f['depth']} layers × "
        f"{f['num_heads']} heads (d = {f['head_dim']}), MLP {f['mlp_dim']} ({f['activation']})",
        f"- prefix tokens: {', '.join(f['prefix_names']) or 'none'}",
        f"- input {f['input_size'][0]}×{f['input_size'][1]} px → {grid_h} × {grid_w} patches, "
        f"T = {f['num_prefix_tokens'] + grid_h * grid_w} tokens; {f['params']:,} parameters",
        f"- classification head: {f['num_classes']} classes{examples}" if f["has_head"]
        else "- no classification head: the walkthrough's logits and loss steps and the class-specific maps "
             "are unavailable",
    ]
    if getattr(model, "clip", None) is not None:  # model.clip.ClipParts
        lines.append("- CLIP image tower (a LayerNorm before the blocks): its classes are text prompts, "
                     "logit k = e^s · cos(image embedding, text embedding of prompt k)"
                     + ("" if model.clip.has_text else "; this checkpoint has no text tower, so no prompts"))
    return "\n".join(lines)


def unavailable_reason(model, step: str) -> str | None:
    """Why a walkthrough step (``logits``, ``loss``) or the explanation maps (``explain``) are
    unavailable for `model`, or None."""
    if model.cfg.has_head:
        return None
    from .builtins import BUILTIN_NAMES, builtin_summary

    if getattr(model, "clip", None) is not None:
        return ("this is CLIP's image tower, whose classes are text prompts: type at least two, separated by "
                "commas, in the sidebar's Classes box (command line: --prompts)")

    if model.source in BUILTIN_NAMES:
        info = builtin_summary(model.source)
        text = info["unavailable_steps"].get(step) or info["limitations"].get(step)
        if text:
            return text
    return ("this model is a backbone without a classification head: it turns the image into token vectors "
            "but has no class logits, so there is no prediction and no loss to show")
