"""CLIP: its image tower is this project's ViT, its classes are text prompts typed by the user.

model/hf.py converts the image tower of a transformers CLIP checkpoint (CLIPModel,
CLIPVisionModel, CLIPVisionModelWithProjection) into our ViT and keeps what the image tower does
not use beside it as `model.clip` (a `ClipParts`): the visual projection P (E×D), the logit
scale s and the directory the text tower is read from. The text side runs through transformers
itself (CLIPTextModelWithProjection, the same computation as CLIPModel.get_text_features):

    t_k = text_projection(text_model(tokenizer(template.format(prompt_k))))     (E,)
    W_k = exp(s) · t_k / |t_k|                                                 a row of the head
    y_k = W_k · normalise(P · LN(zL)[cls]) = exp(s) · cos(image embedding, t_k)

which is CLIPModel's logits_per_image. `prompt_head` returns that head as a `model.heads.Head`
(head_type "clip"), so logits, loss and class-specific maps work for any typed label through the
one head mechanism (`attach_head`); `with_prompts` is the two in one call.
"""
from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .heads import Head, attach_head

DEFAULT_TEMPLATE = "a photo of a {}."
PUBLIC_MAX_PROMPTS = 20  # the hosted demo's bounds on what a visitor may type
PUBLIC_MAX_PROMPT_CHARS = 60


@dataclass(frozen=True)
class ClipParts:
    """What a CLIP image tower needs beside the ViT to score text prompts."""

    directory: str  # the local checkpoint directory (config, weights, tokenizer files)
    projection: np.ndarray | None  # (E, D) visual_projection.weight; None for a bare CLIPVisionModel
    logit_scale: float | None  # s; the logits are exp(s)·cosine. None without a text tower
    has_text: bool  # the checkpoint holds the text tower and its projection (a whole CLIPModel)


def clip_parts(state: dict, directory: str | Path) -> ClipParts:
    """The projection, logit scale and text-tower presence of a CLIP checkpoint's state dict."""
    projection = state.get("visual_projection.weight")
    scale = state.get("logit_scale")
    has_text = "text_projection.weight" in state and any(k.startswith("text_model.") for k in state)
    return ClipParts(
        str(directory),
        None if projection is None else projection.detach().float().cpu().numpy(),
        None if scale is None else float(scale.reshape(-1)[0]),
        has_text and scale is not None,
    )


def is_clip(model) -> bool:
    """True for a ViT converted from a CLIP checkpoint (whatever head it carries now)."""
    return getattr(model, "clip", None) is not None


def parse_prompts(prompts, max_count: int | None = None, max_length: int | None = None) -> list[str]:
    """Class prompts from text ("cat, dog, car", commas or new lines) or a list: stripped,
    inner whitespace collapsed, empty and repeated ones dropped, order kept.

    Raises ValueError when fewer than two remain, or when more than `max_count` or one longer
    than `max_length` characters is given (the public demo's bounds).
    """
    items = re.split(r"[,\n]", prompts) if isinstance(prompts, str) else [str(p) for p in prompts]
    seen: list[str] = []
    for item in items:
        text = " ".join(item.split())
        if text and text not in seen:
            seen.append(text)
    if len(seen) < 2:
        raise ValueError("type at least two class prompts separated by commas, e.g. 'cat, dog, car'")
    if max_count is not None and len(seen) > max_count:
        raise ValueError(f"{len(seen)} class prompts given; this demo takes at most {max_count}: remove some")
    if max_length is not None:
        long = [p for p in seen if len(p) > max_length]
        if long:
            raise ValueError(f"a class prompt has {len(long[0])} characters; keep each under {max_length + 1}")
    return seen


def check_template(template: str) -> str:
    """The prompt template, which must hold `{}` exactly once (where the class prompt goes)."""
    if template.count("{}") != 1 or re.search(r"[{}]", template.replace("{}", "", 1)):
        raise ValueError(f"template {template!r} must contain {{}} exactly once, e.g. {DEFAULT_TEMPLATE!r}")
    return template


class TextEncoder:
    """A CLIP checkpoint's tokenizer and text tower (transformers), shared by every prompt set.

    Fast tokenizers must not be used from two threads at once (the app serves sessions in
    threads), so encoding holds a lock.
    """

    def __init__(self, directory: str):
        import torch
        from transformers import AutoTokenizer, CLIPConfig, CLIPTextModelWithProjection

        from .checkpoint import read_weights_dir

        self.directory = directory
        where = Path(directory)
        files = (where / "tokenizer.json").is_file() or all((where / f).is_file() for f in ("vocab.json", "merges.txt"))
        problem = None if files else "no tokenizer files"
        if files:  # without them transformers would build a near-empty tokenizer and say nothing
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            except Exception as err:  # noqa: BLE001 - tokenizer files fail in many ways; each gets this one message
                problem = type(err).__name__
        if problem:
            raise ValueError(
                f"{directory}: its CLIP tokenizer could not be loaded ({problem}); the directory needs the "
                "tokenizer files saved with the model (tokenizer.json, or vocab.json and merges.txt)"
            )
        config = CLIPConfig.from_pretrained(directory)
        text_config = config.text_config
        text_config.projection_dim = config.projection_dim  # the text config keeps its own default
        self.model = CLIPTextModelWithProjection(text_config).eval()
        state = read_weights_dir(Path(directory))
        text = {k: v for k, v in state.items()
                if k.startswith(("text_model.", "text_projection.")) and not k.endswith("position_ids")}
        with torch.no_grad():
            self.model.load_state_dict(text, strict=True)
        self.max_length = int(text_config.max_position_embeddings)
        self.lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """t_k for each text: (K, E) float64, not normalised."""
        import torch

        with self.lock, torch.inference_mode():
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt")
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            return out.text_embeds.double().numpy()


_ENCODER_LOCK = threading.Lock()


def text_encoder(directory: str) -> TextEncoder:
    """The TextEncoder of a CLIP directory, loaded once per process (at most 4 kept); the lock
    keeps two sessions asking at once from loading it twice."""
    with _ENCODER_LOCK:
        return _load_text_encoder(directory)


@functools.lru_cache(maxsize=4)
def _load_text_encoder(directory: str) -> TextEncoder:
    return TextEncoder(directory)


def _parts_of(source) -> tuple[ClipParts, str, int]:
    """(ClipParts, backbone name, D) of a converted CLIP ViT or a CLIP checkpoint directory."""
    if hasattr(source, "cfg"):
        if not is_clip(source):
            raise ValueError(f"{source.source!r} is not a CLIP model, so text prompts cannot be its classes; "
                             "load a CLIP checkpoint (e.g. hf:openai/clip-vit-base-patch32)")
        return source.clip, source.source, source.cfg.embed_dim
    from .checkpoint import read_weights_dir

    directory = Path(source)
    raw = json.loads((directory / "config.json").read_text()) if (directory / "config.json").is_file() else {}
    if raw.get("model_type") not in ("clip", "clip_vision_model"):
        raise ValueError(f"{directory} is not a CLIP checkpoint directory (config.json model_type 'clip')")
    parts = clip_parts(read_weights_dir(directory), directory)
    D = None if parts.projection is None else parts.projection.shape[1]
    return parts, str(directory), D


def prompt_head(source, prompts, template: str = DEFAULT_TEMPLATE) -> Head:
    """A head (head_type "clip") whose classes are `prompts`: rows exp(s)·t_k/|t_k|, the
    projection P from the checkpoint (see the module docstring).

    source: a CLIP ViT from `load_model`, or a CLIP checkpoint directory. prompts: a list, or
    text with commas (`parse_prompts`). The class names are the prompts as typed; the template
    (holding `{}` once) makes the sentence the text tower reads.
    """
    parts, backbone, D = _parts_of(source)
    if parts.projection is None or not parts.has_text:
        raise ValueError(
            f"{backbone} holds only CLIP's image tower (no text tower or projection), so it cannot score "
            "text prompts; load a whole CLIPModel checkpoint (e.g. hf:openai/clip-vit-base-patch32)"
        )
    names = parse_prompts(prompts)
    template = check_template(template)
    t = text_encoder(parts.directory).encode([template.format(n) for n in names])  # (K, E)
    rows = np.exp(parts.logit_scale) * t / np.linalg.norm(t, axis=1, keepdims=True)
    return Head("clip", rows, None, names, backbone, D, parts.projection,
                {"name": template, "template": template, "prompts": names})


def with_prompts(model, prompts, template: str = DEFAULT_TEMPLATE):
    """`model` (a CLIP ViT) with the prompt head of `prompts` attached, sharing its backbone."""
    return attach_head(model, prompt_head(model, prompts, template))
