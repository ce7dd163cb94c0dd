"""The Teach page's logic without Streamlit: example images kept small, the public demo's
bounds, teaching a head from them (`model.teach`) and the session's taught head as bytes.

A session's taught head is small per-session state: the head's safetensors bytes (K × 2D
floats, ~30 KB for 5 classes on dinov2-small) and their sha256. Everything computed with it
(the model with the head attached, traces, gradients, figures) is cached under a model key
that carries that digest (`model_key_with_head`), so sessions with different heads never
see each other's results, and sessions with the same head bytes share them.
"""
from __future__ import annotations

import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image

from model.heads import Head, attach_head, load_head
from model.teach import Recipe, check_examples

from .uploads import decode_upload, image_digest

MAX_CLASSES = 10
MAX_PER_CLASS = 20
EXAMPLE_SIDE = 336  # px: examples are kept at most this large (the models see 224 px; crops need a margin)
MAX_STEPS = 400
MAX_VIEWS = 8
PUBLIC_MAX_VIEWS = 4
PUBLIC_MAX_FEATURE_VIEWS = 240  # images × views per fit in the hosted demo: about 30–60 s of one core


def teach_slots(environ=None) -> int:
    """How many fits one server process runs at once (PATCHLIGHT_TEACH_SLOTS, default 1)."""
    raw = (environ if environ is not None else os.environ).get("PATCHLIGHT_TEACH_SLOTS", "1")
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


class Turns:
    """At most ``slots`` holders at once, first come first served; the others wait and are told
    how many are ahead of them. A fit is seconds to a minute of backbone passes: forty at once
    on two cores finish together at the end and meanwhile starve every other click (issue 15:
    12 teaching visitors among 40 took the others' p95 from 0.34 to 1.26 s), while one at a
    time per process serves the first soonest and leaves the rest of the machine to the class."""

    def __init__(self, slots: int):
        self.slots = max(1, int(slots))
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._running = 0

    @contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None, poll_s: float = 0.5) -> Iterator[None]:
        """Hold a turn for the ``with`` block. While waiting, ``on_wait(ahead)`` is called every
        ``poll_s`` seconds with the number of holders and waiters ahead; what it raises (a
        visitor who left) gives the place up."""
        ticket, holding = object(), False
        with self._cond:
            self._queue.append(ticket)
        try:
            while True:
                with self._cond:
                    if self._queue[0] is ticket and self._running < self.slots:
                        self._queue.popleft()
                        self._running += 1
                        holding = True
                        break
                    ahead = self._running + self._queue.index(ticket)
                if on_wait is not None:
                    on_wait(ahead)
                with self._cond:
                    self._cond.wait(poll_s)
            yield
        finally:
            with self._cond:
                if holding:
                    self._running -= 1
                else:
                    self._queue.remove(ticket)
                self._cond.notify_all()


FITS = Turns(teach_slots())  # this process's fits


@dataclass(frozen=True)
class Example:
    """One example image of a class: its (re-encoded, at most EXAMPLE_SIDE px) bytes."""

    label: str  # where it came from, e.g. "chelsea.jpg" or "chelsea.jpg, crop 2"
    data: bytes
    digest: str


def example_from_bytes(data: bytes, label: str) -> Example:
    """An upload or gallery file as an Example: checked and decoded like any upload (ImageError
    with the reason otherwise), shrunk to EXAMPLE_SIDE px and stored as JPEG (PNG when small)."""
    return example_from_image(decode_upload(data, label), label)


def example_from_image(image: Image.Image, label: str) -> Example:
    image = image.convert("RGB")
    image.thumbnail((EXAMPLE_SIDE, EXAMPLE_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if image.width * image.height <= 128 * 128:
        image.save(buf, format="PNG")  # a 28×28 tile stays exact
    else:
        image.save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    return Example(label, data, image_digest(data))


def crops_of(data: bytes, label: str, count: int, seed: int = 0) -> list[Example]:
    """`count` random crops of an image (the views `model.teach` makes, beyond the mirror) as
    examples of their own: a class taught from one gallery photo still has several images."""
    from model.teach import augmented_views

    image = decode_upload(data, label)
    views = augmented_views(image, count + 2, seed=seed, crop_scale=(0.3, 0.8))[2:]
    return [example_from_image(v, f"{label}, crop {i + 1}") for i, v in enumerate(views)]


def example_image(example: Example) -> Image.Image:
    return Image.open(io.BytesIO(example.data)).convert("RGB")


def recipe_problems(recipe: Recipe, counts: list[int], public: bool) -> list[str]:
    """What keeps these settings from being taught here, one line each (the public demo bounds
    the work of one fit)."""
    problems = []
    if recipe.steps > MAX_STEPS:
        problems.append(f"{recipe.steps} steps; the app fits at most {MAX_STEPS}")
    max_views = PUBLIC_MAX_VIEWS if public else MAX_VIEWS
    if recipe.views > max_views:
        problems.append(f"{recipe.views} views per image; {'this demo' if public else 'the app'} makes at most "
                        f"{max_views}")
    if public and sum(counts) * recipe.views > PUBLIC_MAX_FEATURE_VIEWS:
        problems.append(f"{sum(counts)} images × {recipe.views} views = {sum(counts) * recipe.views} passes of the "
                        f"backbone; this demo runs at most {PUBLIC_MAX_FEATURE_VIEWS} per fit: use fewer views or "
                        "fewer images")
    return problems


def class_problems(classes: dict[str, list[Example]]) -> list[str]:
    return check_examples(classes, max_classes=MAX_CLASSES, max_per_class=MAX_PER_CLASS)


def model_key_with_head(model_key: str, digest: str | None) -> str:
    """The cache key of a model with a taught head: the backbone's key and the head's digest."""
    return model_key if not digest else f"{model_key}|head:{digest}"


def backbone_key(model_key: str) -> str:
    """The backbone's cache key in the key of a model with a taught head (model_key_with_head)."""
    return model_key.split("|head:", 1)[0]


def head_applies(head: Head, source: str, embed_dim: int) -> str | None:
    """Why `head` cannot be used on the backbone `source`, or None when it can."""
    if head.backbone != source:
        return f"this head was taught on {head.backbone}; choose {head.backbone} in the sidebar to use it"
    if head.embed_dim != embed_dim:
        return f"this head reads width {head.embed_dim}, the backbone has {embed_dim}"
    return None


def read_head_file(data: bytes, source: str, embed_dim: int) -> Head:
    """A head file uploaded in the app, checked against the current backbone (ValueError otherwise)."""
    head = load_head(data)
    if head.head_type == "clip":
        raise ValueError("this is a CLIP prompt head; load it with its CLIP model, not on the Teach page")
    problem = head_applies(head, source, embed_dim)
    if problem:
        raise ValueError(problem)
    return head


def with_head(model, data: bytes):
    """The backbone `model` with the head in `data` (its bytes) attached (shares the backbone)."""
    return attach_head(model, load_head(data))

