"""Many images through the model in batches: the CLI's predict, trace and explain, and dataset mode.

Every image is decoded safely and preprocessed on its own (one bad file is one error, not a
crashed run); images whose preprocessed tensors have the same shape are stacked into one batch
(`size_batches`: a model that keeps the aspect ratio gives photos of different shapes different
sizes), and each batch runs on the model's device (CUDA when there is one, see
`model.loading.resolve_device`). Results come back per image, in input order.

Symbols: B images in a batch, K classes, (h, w) the patch grid.
"""
from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from .preprocess import decode_image
from .vit import ViT

Item = TypeVar("Item")

# What one batch of a trace may hold in memory by default (`auto_batch_size`).
TRACE_BATCH_BYTES = 1 << 30
PREDICT_BATCH_SIZE = 256


@dataclass
class Prepared:
    """One input after decoding and preprocessing: `pixels` (3, H, W) on the CPU, or `error`."""

    index: int
    name: str
    pixels: torch.Tensor | None = None
    size: tuple[int, int] | None = None  # the decoded image's (height, width)
    error: str | None = None


def prepare(model: ViT, source, index: int = 0, name: str | None = None) -> Prepared:
    """Decode one image (bytes, a path or a PIL image) and preprocess it as `ViT.to_pixels` does.

    A file that cannot be read or decoded becomes a `Prepared` with its one-line `error`.
    """
    label = name if name is not None else str(source) if isinstance(source, (str, Path)) else f"image {index}"
    if model.preprocessor is None:
        raise ValueError("this model has no preprocessor; it cannot read image files")
    try:
        image = decode_image(source, name=label)
        pre = model.preprocessor
        pixels = pre.to_tensor(pre.prepare(image))  # (3, H, W), as Preprocessor.__call__ makes it
    except (ValueError, OSError) as err:  # ImageError is a ValueError
        return Prepared(index, label, error=(str(err).splitlines() or [type(err).__name__])[0])
    return Prepared(index, label, pixels, (image.height, image.width))


def size_batches(items: Iterable[Item], batch_size: int, key: Callable[[Item], object]) -> Iterator[list[Item]]:
    """Batches of at most `batch_size` items sharing one `key` (a preprocessed size).

    Items are kept in one open bucket per key; a bucket is yielded as soon as it is full, and
    the partly filled ones at the end, in order of their first item. Within a batch the input
    order is kept. Memory: at most (number of distinct keys) × batch_size items are held.
    """
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size} must be at least 1")
    buckets: dict[object, list[Item]] = {}
    for item in items:
        bucket = buckets.setdefault(key(item), [])
        bucket.append(item)
        if len(bucket) == batch_size:
            yield bucket
            del buckets[key(item)]
    yield from buckets.values()


def pixel_shape(item: Prepared) -> tuple[int, ...]:
    return tuple(item.pixels.shape)


def stack(model: ViT, batch: list[Prepared]) -> torch.Tensor:
    """(B, 3, H, W) on the model's device, in its dtype."""
    return torch.stack([p.pixels for p in batch]).to(model.device, model.pos_embed.dtype)


def auto_batch_size(model: ViT, shape: tuple[int, int] | None = None, gradients: bool = False,
                    budget: int = TRACE_BATCH_BYTES) -> int:
    """How many images one trace batch holds within `budget` bytes (1…256).

    A trace keeps, per image and layer, A (H·T·T), q, k, v (3·T·D) and the residual stream and both
    branches (3·T·D), float32; gradients add one more H·T·T per layer. `shape` is the input (H, W)
    in pixels (default: the model's native size).
    """
    cfg = model.cfg
    h, w = model.grid_for(*shape) if shape is not None else cfg.native_grid
    T = cfg.num_prefix_tokens + h * w
    per_layer = cfg.num_heads * T * T * (2 if gradients else 1) + 6 * T * cfg.embed_dim
    per_image = 4 * (cfg.depth * per_layer + 2 * T * cfg.embed_dim)
    return int(max(1, min(256, budget // per_image)))


class Progress:
    """A progress bar on stderr (tqdm) for runs longer than one batch, shown only on a terminal."""

    def __init__(self, total: int | None, batch_size: int, what: str = "images", enabled: bool | None = None):
        from tqdm import tqdm  # tqdm comes with huggingface_hub, a runtime dependency

        show = (total is None or total > batch_size) and sys.stderr.isatty() if enabled is None else enabled
        self._bar = tqdm(total=total, unit=" " + what, file=sys.stderr, disable=not show, mininterval=0.5,
                         dynamic_ncols=True, leave=False)

    def update(self, n: int) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- predict -------------------------------------------------------------------------------
@dataclass
class Prediction:
    """One image's logits (K,) and, when the model has a fitted check and finds the image far from its
    training images, that verdict (model.ood.OodResult); None otherwise."""

    index: int
    name: str
    logits: np.ndarray | None = None
    out_of_distribution: object = None  # model.ood.OodResult of a far image, or None
    error: str | None = None


def logits_and_cls(model: ViT, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, K), zL[cls] (B, D) before the final norm) from one fused pass: what predict and
    the out-of-distribution check (`model.ood`, which reads zL[cls]) both need."""
    z = model.embed(pixels).z  # (B, T, D)
    for block in model.blocks:
        z = block(z)  # (B, T, D)
    return model.forward_head(model.norm(z)), z[:, 0]


def predict_many(model: ViT, sources: Iterable, batch_size: int = PREDICT_BATCH_SIZE,
                 names: Iterable[str] | None = None, progress: Progress | None = None) -> list[Prediction]:
    """Logits for every source (bytes, paths or PIL images), in input order; unreadable ones carry `error`."""
    from .ood import judge_many, ood_stats

    if model.head is None:
        raise ValueError(f"model {model.source!r} has no classification head, so it cannot predict labels")
    stats = ood_stats(model)
    pre = model.preprocessor
    names = iter(names) if names is not None else None
    results: list[Prediction] = []
    prepared = (prepare(model, s, i, next(names) if names is not None else None) for i, s in enumerate(sources))

    def good(items):  # errors are recorded at once; only images go on to batching
        for p in items:
            results.append(Prediction(p.index, p.name, error=p.error))
            if p.error is None:
                yield p
            elif progress is not None:
                progress.update(1)

    with torch.inference_mode():
        for batch in size_batches(good(prepared), batch_size, pixel_shape):
            pixels = stack(model, batch)
            logits, cls = logits_and_cls(model, pixels)
            logits = logits.float().cpu().numpy()
            far = [None] * len(batch)
            if stats is not None:  # the check of model.ood on the same pass: zL[cls] and the input in 0…1
                tokens = cls.double().cpu().numpy()  # (B, D)
                images01 = pixels[:, 0].double().cpu().numpy() * pre.image_std[0] + pre.image_mean[0]
                far = judge_many(stats, tokens, images01)
            for b, p in enumerate(batch):
                results[p.index].logits = logits[b]
                results[p.index].out_of_distribution = far[b]
            if progress is not None:
                progress.update(len(batch))
    return results


# ---- trace and explain ----------------------------------------------------------------------
def trace_batches(model: ViT, prepared: Iterable[Prepared], batch_size: int | None = None, grad_class=None,
                  progress: Progress | None = None) -> Iterator[tuple[list[Prepared], object]]:
    """(batch, its numpy `Trace`) for each batch of same-sized images; items with an error are skipped.

    batch_size None: `auto_batch_size` for the batch's input size. grad_class: as `ViT.trace`, or a
    function of the batch giving one class per image.
    """
    gradients = grad_class is not None
    good = (p for p in prepared if p.error is None)
    size = batch_size
    if size is None:  # the size of the first image decides; others are rarely larger
        first = next(good, None)
        if first is None:
            return
        size = auto_batch_size(model, tuple(first.pixels.shape[1:]), gradients)
        good = itertools.chain([first], good)
    for batch in size_batches(good, size, pixel_shape):
        classes = grad_class(batch) if callable(grad_class) else grad_class
        trace = model.trace(stack(model, batch), grad_class=classes).numpy()
        yield batch, trace
        if progress is not None:
            progress.update(len(batch))


def explain_many(model: ViT, sources: list, method: str, label=None, layer: int = -1, head="mean",
                 batch_size: int | None = None, names: list[str] | None = None,
                 progress: Progress | None = None) -> list:
    """`model.explain.explain` for many images, in batches: one `Explanation` per source, in order."""
    from .explain import explanation_of_trace, explanation_request

    label_index, grad_class = explanation_request(model, method, label)
    prepared = [prepare(model, s, i, names[i] if names else None) for i, s in enumerate(sources)]
    bad = next((p for p in prepared if p.error is not None), None)
    if bad is not None:
        raise ValueError(bad.error)
    out = [None] * len(prepared)
    for batch, trace in trace_batches(model, prepared, batch_size, grad_class, progress):
        for b, p in enumerate(batch):
            out[p.index] = explanation_of_trace(trace, b, method, label_index, layer, head, model=model)
    return out
