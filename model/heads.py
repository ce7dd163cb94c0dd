"""Classification heads apart from their backbone: taught heads and text-prompt heads.

A head turns the final normalised tokens LN(zL) into K logits. The ViT's own head (a built-in
classifier's, or one converted from transformers) is one case; this module adds the others, one
mechanism for all of them:

- a *taught* head: a linear layer fitted on a frozen backbone's features (issue 11), e.g.
  ``head_type="cls_patch_mean"``: y = W [LN(zL)[cls]; mean_p LN(zL)[p]] + b;
- a *prompt* head (CLIP): ``head_type="clip"``: y = W · normalise(P · LN(zL)[cls]), where P is the
  visual projection (E×D) and the rows of W are the normalised text embeddings of the prompts
  times the logit scale, so y_k = scale · cos(image embedding, text embedding k).

`Head` holds the weights with the class names, the backbone it was made for and a recipe (how it
was made); `attach_head(vit, head)` gives a model with ``cfg.has_head`` true that *shares* every
backbone parameter with `vit` (a taught head costs its K×F weights, not a second backbone), so
everything that works for a classifier — logits, loss, gradient maps — works for it.
`save_head`/`load_head` keep a head in one safetensors file (tensors plus JSON metadata).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

HEAD_FORMAT = 1
ATTACHABLE_TYPES = ("cls", "cls_patch_mean", "clip")


@dataclass
class Head:
    """A classification head as data: y = weight · features (+ bias).

    weight (K, F) and bias (K,) or None; F is D for ``cls``, 2D for ``cls_patch_mean`` and E
    (the projection's width) for ``clip``, whose `projection` is (E, D). backbone names the model
    the head was made on (a model source such as ``dinov2-small``); embed_dim is its D.
    """

    head_type: str
    weight: np.ndarray
    bias: np.ndarray | None
    class_names: list[str]
    backbone: str
    embed_dim: int
    projection: np.ndarray | None = None
    recipe: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head_type not in ATTACHABLE_TYPES:
            raise ValueError(f"head type {self.head_type!r} is not supported; expected one of {ATTACHABLE_TYPES}")
        self.weight = np.asarray(self.weight, dtype=np.float32)
        self.bias = None if self.bias is None else np.asarray(self.bias, dtype=np.float32)
        self.projection = None if self.projection is None else np.asarray(self.projection, dtype=np.float32)
        self.class_names = [str(n) for n in self.class_names]
        if self.weight.ndim != 2:
            raise ValueError(f"head weight has shape {self.weight.shape}; expected (classes, features)")
        K, F = self.weight.shape
        if not 2 <= K:
            raise ValueError(f"a head needs at least 2 classes; this one has {K}")
        if len(self.class_names) != K:
            raise ValueError(f"{len(self.class_names)} class names for {K} classes; give one name per class")
        if len(set(self.class_names)) != K:
            raise ValueError(f"class names must differ; got {self.class_names}")
        if self.bias is not None and self.bias.shape != (K,):
            raise ValueError(f"head bias has shape {self.bias.shape}; expected ({K},)")
        if (self.head_type == "clip") != (self.projection is not None):
            raise ValueError("a 'clip' head needs its visual projection, and only a 'clip' head has one")
        expected = self.features(self.embed_dim)
        if F != expected:
            raise ValueError(
                f"head weight reads {F} features, but a {self.head_type!r} head on a D={self.embed_dim} backbone "
                f"reads {expected}"
            )

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    def features(self, embed_dim: int) -> int:
        """F, how many features this head type reads from a backbone of width `embed_dim`."""
        if self.head_type == "clip":
            return int(self.projection.shape[0])
        return 2 * embed_dim if self.head_type == "cls_patch_mean" else embed_dim


def attach_head(vit, head: Head):
    """A ViT with `head` as its classification head, sharing every other parameter with `vit`.

    `vit` is left unchanged (its own head, if any, is simply not used by the result). Raises
    ValueError when the head was made for a backbone of another width.
    """
    D = vit.cfg.embed_dim
    if head.embed_dim != D:
        raise ValueError(
            f"this head was made on {head.backbone!r} (D={head.embed_dim}); {vit.source!r} has D={D}: "
            "load the backbone it was made for"
        )
    if head.head_type == "clip" and head.projection.shape[1] != D:
        raise ValueError(f"the head's projection reads {head.projection.shape[1]} features; {vit.source!r} has D={D}")
    cfg = dataclasses.replace(
        vit.cfg, num_classes=head.num_classes, head_type=head.head_type, class_names=list(head.class_names),
        projection_dim=head.weight.shape[1] if head.head_type == "clip" else 0,
    )
    new = copy.copy(vit)  # a shallow copy; the module tables are copied below so `vit` is untouched
    for table in ("_modules", "_parameters", "_buffers"):
        object.__setattr__(new, table, dict(getattr(vit, table)))
    new.cfg = cfg
    param = next(vit.parameters())
    device, dtype = param.device, param.dtype

    def tensor(array):
        return torch.as_tensor(array, dtype=dtype, device=device)

    linear = nn.Linear(head.weight.shape[1], head.num_classes, bias=head.bias is not None, device=device, dtype=dtype)
    with torch.no_grad():
        linear.weight.copy_(tensor(head.weight))
        if head.bias is not None:
            linear.bias.copy_(tensor(head.bias))
    new.head = linear
    new.head_dist = None
    new.head_proj = None
    if head.head_type == "clip":
        proj = nn.Linear(D, head.projection.shape[0], bias=False, device=device, dtype=dtype)
        with torch.no_grad():
            proj.weight.copy_(tensor(head.projection))
        new.head_proj = proj
    new.source = f"{vit.source} + {head.recipe.get('name', 'head')}"
    new.attached_head = head
    return new


def head_from_model(vit) -> Head | None:
    """The Head a ViT carries (attached, or its own cls/cls_patch_mean/clip head), or None."""
    attached = getattr(vit, "attached_head", None)
    if attached is not None:
        return attached
    cfg = vit.cfg
    if not cfg.has_head or cfg.head_type not in ATTACHABLE_TYPES:
        return None
    proj = getattr(vit, "head_proj", None)
    return Head(
        cfg.head_type, vit.head.weight.detach().float().cpu().numpy(),
        None if vit.head.bias is None else vit.head.bias.detach().float().cpu().numpy(),
        cfg.class_names or [str(k) for k in range(cfg.num_classes)], vit.source, cfg.embed_dim,
        None if proj is None else proj.weight.detach().float().cpu().numpy(),
    )


HEAD_KINDS = ("built-in", "taught", "clip")


def head_kind(vit) -> str | None:
    """Which head gives `vit` its logits: "built-in" (the checkpoint's own classifier), "taught"
    (a linear head fitted on the frozen backbone, `model.teach`), "clip" (text prompts), or None
    without a head."""
    if not vit.cfg.has_head:
        return None
    head = getattr(vit, "attached_head", None)
    if vit.cfg.head_type == "clip":
        return "clip"
    return "taught" if head is not None else "built-in"


def head_description(vit, quote=str) -> str | None:
    """One phrase saying which head the logits come from, for the walkthrough's logits and loss
    steps, the Explorer's class maps and the CLI, e.g. ``taught head "fruit" (3 classes: apple,
    pear, plum)``; None without a head. `quote` makes user-chosen names (a recipe name, class
    names, prompts) inert where the phrase becomes markdown."""
    kind = head_kind(vit)
    if kind is None:
        return None
    names = list(vit.cfg.class_names or [])
    K = vit.cfg.num_classes
    shown = ", ".join(quote(n) for n in names[:6]) + (", …" if len(names) > 6 else "")
    listing = f": {shown}" if names else ""
    head = getattr(vit, "attached_head", None)
    name = (head.recipe.get("name") if head is not None else None) or None
    if kind == "clip":
        called = f' "{quote(name)}"' if name else ""
        return f"CLIP text prompts{called} ({K} prompts{listing})"
    if kind == "taught":
        called = f' "{quote(name)}"' if name else ""
        return f"taught head{called} ({K} classes{listing})"
    return f"the model's built-in head ({K} classes{listing})"


def head_bytes(head: Head) -> bytes:
    """`head` as the bytes of one safetensors file: tensors weight, bias, projection; JSON metadata."""
    from safetensors.numpy import save

    tensors = {"weight": head.weight}
    if head.bias is not None:
        tensors["bias"] = head.bias
    if head.projection is not None:
        tensors["projection"] = head.projection
    meta = {
        "format": HEAD_FORMAT, "head_type": head.head_type, "class_names": head.class_names,
        "backbone": head.backbone, "embed_dim": head.embed_dim, "recipe": head.recipe,
    }
    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                metadata={"patchlight_head": json.dumps(meta)})


def head_digest(head: Head) -> str:
    """The sha256 of the head's file bytes: the cache key of everything a model with this head computes."""
    import hashlib

    return hashlib.sha256(head_bytes(head)).hexdigest()


def save_head(head: Head, path: str | Path) -> Path:
    """Write `head` as one safetensors file (`head_bytes`)."""
    path = Path(path)
    path.write_bytes(head_bytes(head))
    return path


def load_head(source) -> Head:
    """A Head from a safetensors file written by `save_head` (a path, or the file's bytes)."""
    from safetensors.numpy import load

    label = "the head file"
    try:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            label = str(source)
            data = Path(source).read_bytes()
        tensors = load(data)
        meta_text = _metadata(data).get("patchlight_head")
    except OSError as err:
        raise ValueError(f"{label} could not be read ({err.strerror or err}); check the path") from None
    except Exception:
        raise ValueError(f"{label} is not a safetensors file; give a head saved by Patchlight (fit-head)") from None
    if not meta_text:
        raise ValueError(f"{label} holds tensors but no Patchlight head metadata; give a head saved by fit-head")
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError:
        raise ValueError(f"{label}: its head metadata is not valid JSON; save the head again") from None
    if meta.get("format") != HEAD_FORMAT:
        raise ValueError(f"{label} has head format {meta.get('format')!r}; this Patchlight reads format {HEAD_FORMAT}")
    if "weight" not in tensors:
        raise ValueError(f"{label} has no 'weight' tensor; save the head again")
    try:
        return Head(meta["head_type"], tensors["weight"], tensors.get("bias"), meta["class_names"],
                    meta["backbone"], int(meta["embed_dim"]), tensors.get("projection"), meta.get("recipe") or {})
    except KeyError as err:
        raise ValueError(f"{label}: its head metadata lacks {err.args[0]!r}; save the head again") from None


def _metadata(data: bytes) -> dict:
    """The string metadata of a safetensors byte string (its JSON header's __metadata__)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return header.get("__metadata__") or {}
