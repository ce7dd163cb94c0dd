"""Teach a backbone your classes (issue 11): a linear head fitted on its frozen features.

The recipe, in the order it runs:

1. every example image becomes `views` images — itself, its mirror image, then random crops
   (each mirrored or not), drawn from a generator seeded by the recipe's seed and the image's
   own pixels, so the same image always gives the same views;
2. the frozen backbone turns each view into one feature vector, read from LN(zL) as the head
   will read it (``cls``: the CLS token; ``cls_patch_mean``: CLS and the mean patch token
   side by side, as Dinov2ForImageClassification and the DINOv2 paper's linear probe do);
3. the features are standardised (each feature to mean 0 and variance 1 over the training
   views) and a softmax regression y = W x + b is fitted by full-batch Adam on the mean
   cross-entropy plus ``weight_decay · ‖W‖²``, from W = 0, b = 0 (the problem is convex, so the
   start does not matter and the fit is deterministic);
4. the standardisation is folded into W and b, so the head reads the raw features:
   W' = W / σ, b' = b − W' μ.

`teach` runs it all and reports (step, loss) through `on_step` while it fits, so a page can
draw the loss falling; whole images can be held back (``holdout``) and scored on their
original view. The result is a `model.heads.Head` with the recipe recorded in ``head.recipe``.
`read_example_folder` reads a folder with one sub-folder per class and names every problem.
"""
from __future__ import annotations

import math
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .heads import Head

TAUGHT_TYPES = ("cls_patch_mean", "cls")
MAX_VIEWS = 16


class ExamplesError(ValueError):
    """Examples that cannot be taught from; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class Recipe:
    """How a head is taught; written into the head's file as ``recipe`` with the counts."""

    name: str = "taught head"
    head_type: str = "cls_patch_mean"
    views: int = 4  # per image: the original, its mirror, then views − 2 random crops
    steps: int = 150  # full-batch Adam steps
    lr: float = 0.05
    weight_decay: float = 1e-2  # the best of 0, 1e-3, 1e-2, 1e-1 on Fashion-MNIST features (README, Measured)
    seed: int = 0
    holdout: float = 0.0  # share of each class's images held back and scored, never trained on
    crop_scale: tuple[float, float] = (0.35, 1.0)  # area of a random crop, as a share of the image

    def check(self) -> None:
        problems = []
        if self.head_type not in TAUGHT_TYPES:
            problems.append(f"head type {self.head_type!r} cannot be taught; choose one of {', '.join(TAUGHT_TYPES)}")
        if not 1 <= self.views <= MAX_VIEWS:
            problems.append(f"views = {self.views}; use 1 (the image alone) to {MAX_VIEWS}")
        if not 1 <= self.steps <= 10_000:
            problems.append(f"steps = {self.steps}; use 1 to 10000")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr = {self.lr}; use a positive learning rate such as 0.05")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            problems.append(f"weight decay = {self.weight_decay}; use 0 or more")
        if not 0 <= self.holdout < 1:
            problems.append(f"holdout = {self.holdout}; use a share from 0 (none) to below 1, e.g. 0.2")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["crop_scale"] = list(self.crop_scale)
        return d


@dataclass
class TeachResult:
    """A taught head and how the teaching went."""

    head: Head
    losses: list[float]  # the training cross-entropy (nats) before each step, and after the last
    heldout_losses: list[float] | None  # the same for the held-out images, when some were held back
    heldout_accuracy: float | None  # top-1 on the held-out images' original views
    heldout_count: int
    train_count: int  # training images (each gives `views` feature vectors)
    seconds_features: float
    seconds_fit: float
    confusion: list[list[int]] = field(default_factory=list)  # held-out [true][predicted] counts


# ----------------------------------------------------------------------------- views and features


def image_key(image: Image.Image) -> int:
    """A number taken from the image's own pixels, so its random crops do not depend on its name
    or its place in a folder."""
    small = image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
    return zlib.crc32(small.tobytes()) ^ (image.width << 16) ^ image.height


def augmented_views(image: Image.Image, views: int, seed: int = 0,
                    crop_scale: tuple[float, float] = (0.35, 1.0)) -> list[Image.Image]:
    """`views` images from one: itself, its mirror image, then random crops (area a share
    `crop_scale` of the image, aspect ratio 3:4 … 4:3, each mirrored with probability ½)."""
    image = image.convert("RGB")
    out = [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)][:views]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, image_key(image)])
    W, H = image.size
    while len(out) < views:
        area = rng.uniform(*crop_scale) * W * H
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = max(1, min(W, round(math.sqrt(area * aspect))))
        h = max(1, min(H, round(math.sqrt(area / aspect))))
        left, top = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        crop = image.crop((left, top, left + w, top + h))
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return out


def feature_width(vit, head_type: str) -> int:
    return 2 * vit.cfg.embed_dim if head_type == "cls_patch_mean" else vit.cfg.embed_dim


def image_features(vit, images: list[Image.Image], head_type: str = "cls_patch_mean",
                   batch_size: int = 32) -> np.ndarray:
    """The features a ``head_type`` head reads, for each image: (n, F) float32.

    LN(zL) of the frozen backbone (its fused fast path, no gradients); ``cls``: LN(zL)[cls];
    ``cls_patch_mean``: [LN(zL)[cls]; mean over the patch tokens of LN(zL)]."""
    if head_type not in TAUGHT_TYPES:
        raise ValueError(f"head type {head_type!r} cannot be taught; choose one of {', '.join(TAUGHT_TYPES)}")
    p = vit.cfg.num_prefix_tokens
    chunks = []
    for start in range(0, len(images), batch_size):
        with torch.inference_mode():
            z = vit.forward_features(vit.to_pixels(list(images[start:start + batch_size])))  # (B, T, D)
            cls = z[:, 0]  # (B, D)
            x = torch.cat([cls, z[:, p:].mean(dim=1)], dim=-1) if head_type == "cls_patch_mean" else cls
        chunks.append(x.float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, feature_width(vit, head_type)), np.float32)


def example_features(vit, image: Image.Image, recipe: Recipe) -> np.ndarray:
    """(views, F): the features of one example image's views (view 0 is the image itself)."""
    return image_features(vit, augmented_views(image, recipe.views, recipe.seed, recipe.crop_scale), recipe.head_type)


# ----------------------------------------------------------------------------- the fit


def heldout_split(counts: list[int], holdout: float, seed: int) -> list[np.ndarray]:
    """For each class, the indices of its images held back: floor(holdout · n), keeping at least
    one image to train on (a class of one image holds none back)."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1])
    out = []
    for n in counts:
        k = min(int(math.floor(holdout * n)), n - 1) if n > 1 else 0
        out.append(np.sort(rng.permutation(n)[:k]))
    return out


def fit_linear_head(x: np.ndarray, y: np.ndarray, num_classes: int, *, steps: int, lr: float, weight_decay: float,
                    heldout: tuple[np.ndarray, np.ndarray] | None = None, on_step=None):
    """Softmax regression on standardised features by full-batch Adam.

    x (n, F) features, y (n,) class indices. Minimises mean CE(W x̂ + b, y) + weight_decay·‖W‖²,
    x̂ = (x − μ) / σ over the training rows. Returns (W (K, F), b (K,)) for the *raw* features,
    the training CE before each step and after the last (steps + 1 values) and, with `heldout`
    = (x, y), the held-out CE at the same points. ``on_step(step, loss, heldout_loss)`` is called
    at each of them."""
    # One thread: the matrices are tiny (n × F by F × K), so a second thread only adds a barrier per
    # operation, and on a busy machine each barrier waits for a time slice: 150 steps measured 24–28 s
    # with 2 threads against 0.8–0.9 s with 1 on this box at load 13.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(x, y, num_classes, steps, lr, weight_decay, heldout, on_step)
    finally:
        torch.set_num_threads(threads)


def _fit(x, y, num_classes, steps, lr, weight_decay, heldout, on_step):
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    mean = xt.mean(dim=0)
    std = xt.std(dim=0, unbiased=False).clamp_min(1e-6)  # a constant feature stays 0 after scaling
    xs = (xt - mean) / std
    hx = hy = None
    if heldout is not None and len(heldout[1]):
        hx = (torch.as_tensor(heldout[0], dtype=torch.float32) - mean) / std
        hy = torch.as_tensor(heldout[1], dtype=torch.long)
    W = torch.zeros(num_classes, xs.shape[1], requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr)
    losses, held = [], [] if hx is not None else None
    for step in range(steps + 1):
        ce = torch.nn.functional.cross_entropy(xs @ W.T + b, yt)
        losses.append(float(ce.detach()))
        if hx is not None:
            with torch.no_grad():
                held.append(float(torch.nn.functional.cross_entropy(hx @ W.T + b, hy)))
        if on_step is not None:
            on_step(step, losses[-1], held[-1] if held else None)
        if step == steps:
            break
        opt.zero_grad()
        (ce + weight_decay * (W**2).sum()).backward()
        opt.step()
    with torch.no_grad():
        W_raw = W / std  # (K, F): W x̂ = (W/σ)(x − μ)
        b_raw = b - W_raw @ mean
    return W_raw.numpy(), b_raw.numpy(), losses, held


def teach(vit, examples: dict[str, list[Image.Image]], recipe: Recipe | None = None, *, backbone: str | None = None,
          on_step=None, on_features=None, features_of=None) -> TeachResult:
    """Fit a linear head for `examples` ({class name: images}) on `vit`'s frozen features.

    on_features(done, total): after each image's features; on_step(step, loss, heldout_loss):
    during the fit. features_of(image) → (views, F) replaces `example_features` (the app passes
    a cached one). backbone: the source name recorded in the head (default: ``vit.source``)."""
    recipe = recipe or Recipe()
    recipe.check()
    problems = check_examples(examples)
    if problems:
        raise ExamplesError(problems)
    names = list(examples)
    counts = [len(examples[n]) for n in names]
    held_idx = heldout_split(counts, recipe.holdout, recipe.seed)
    t0 = time.perf_counter()
    flat = [(k, i, image) for k, name in enumerate(names) for i, image in enumerate(examples[name])]
    if features_of is None:  # every view of every image through the backbone in batches
        views = [augmented_views(image, recipe.views, recipe.seed, recipe.crop_scale) for _, _, image in flat]
        feats = image_features(vit, [v for vs in views for v in vs], recipe.head_type)  # (images × views, F)
        if on_features is not None:
            on_features(len(flat), len(flat))
        per_image = np.split(feats, np.cumsum([len(vs) for vs in views])[:-1])
    else:
        per_image = []
        for done, (_, _, image) in enumerate(flat, 1):
            per_image.append(np.asarray(features_of(image)))  # (views, F)
            if on_features is not None:
                on_features(done, len(flat))
    held_sets = [set(h.tolist()) for h in held_idx]
    train_x, train_y, test_x, test_y = [], [], [], []
    for (k, i, _), feats in zip(flat, per_image):
        if i in held_sets[k]:
            test_x.append(feats[:1])  # scored on the image itself, not on its crops
            test_y.append(k)
        else:
            train_x.append(feats)
            train_y += [k] * len(feats)
    seconds_features = time.perf_counter() - t0
    x = np.concatenate(train_x)
    heldout = (np.concatenate(test_x), np.asarray(test_y)) if test_x else None
    t1 = time.perf_counter()
    W, b, losses, held_losses = fit_linear_head(x, np.asarray(train_y), len(names), steps=recipe.steps, lr=recipe.lr,
                                                weight_decay=recipe.weight_decay, heldout=heldout, on_step=on_step)
    seconds_fit = time.perf_counter() - t1
    accuracy, confusion = None, []
    if heldout is not None:
        predicted = np.argmax(heldout[0] @ W.T.astype(np.float64) + b, axis=1)
        accuracy = float(np.mean(predicted == heldout[1]))
        confusion = np.zeros((len(names), len(names)), int)
        np.add.at(confusion, (heldout[1], predicted), 1)
        confusion = confusion.tolist()
    n_train = sum(counts) - len(test_y)
    record = dict(recipe.to_dict(), classes=len(names), train_images=n_train, heldout_images=len(test_y),
                  images_per_class=counts, train_views=int(len(x)), final_loss=round(losses[-1], 6),
                  heldout_accuracy=accuracy, loss_curve=[round(v, 5) for v in losses],
                  heldout_loss_curve=[round(v, 5) for v in held_losses] if held_losses else None,
                  seconds=round(seconds_features + seconds_fit, 2))
    head = Head(recipe.head_type, W, b, names, backbone or str(vit.source), vit.cfg.embed_dim, recipe=record)
    return TeachResult(head, losses, held_losses, accuracy, len(test_y), n_train, seconds_features, seconds_fit,
                       confusion)


# ----------------------------------------------------------------------------- checking examples


def check_examples(examples: dict, max_classes: int | None = None, max_per_class: int | None = None) -> list[str]:
    """Every problem with {class name: images} as one line each (empty: fine to teach)."""
    problems = []
    names = [str(n).strip() for n in examples]
    if any(not n for n in names):
        problems.append("a class has no name; give every class a name")
    if len(set(n.lower() for n in names)) != len(names):
        problems.append(f"class names repeat ({', '.join(names)}); give every class its own name")
    if len(examples) < 2:
        problems.append(f"{len(examples)} class{'es' if len(examples) != 1 else ''} given; teaching needs at least "
                        "2 classes to tell apart")
    if max_classes is not None and len(examples) > max_classes:
        problems.append(f"{len(examples)} classes given; this demo teaches at most {max_classes}")
    for name, images in examples.items():
        if not images:
            problems.append(f"class {name!r} has no example images; add a few (5–20 is plenty) or remove the class")
        elif max_per_class is not None and len(images) > max_per_class:
            problems.append(f"class {name!r} has {len(images)} images; this demo takes at most {max_per_class} per class")
    return problems


def read_example_folder(root: str | Path, max_pixels: int | None = None) -> dict[str, list[Image.Image]]:
    """{class name: images} from a folder holding one sub-folder per class (the folder's name
    is the class name). Raises ExamplesError naming every problem: no such folder, fewer than
    two classes, a class without images, a file that is not a readable image."""
    from .preprocess import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, decode_image

    root = Path(root)
    if not root.is_dir():
        raise ExamplesError([f"{root} is not a folder; give a folder with one sub-folder of images per class"])
    problems: list[str] = []
    examples: dict[str, list[Image.Image]] = {}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if loose:
        problems.append(f"{root} holds images outside any class folder ({', '.join(loose[:3])}"
                        f"{', …' if len(loose) > 3 else ''}); move each into the sub-folder of its class")
    for folder in folders:
        images, bad_files = [], False
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                problems.append(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)}); remove it from the "
                                "class folder")
                bad_files = True
                continue
            try:
                images.append(decode_image(path, max_pixels=max_pixels or DEFAULT_MAX_PIXELS))
            except ValueError as err:
                problems.append(f"{path} cannot be read as an image ({str(err).splitlines()[0]}); replace or "
                                "remove it")
                bad_files = True
        if not images and not bad_files:
            problems.append(f"class folder {folder} holds no images; add a few examples or remove the folder")
        examples[folder.name] = images
    if len(folders) < 2:
        found = f"only {folders[0].name!r}" if folders else "none"
        problems.append(f"{root} has {found} as class folder{'s' if not folders else ''}; teaching needs at least 2: "
                        "one sub-folder of images per class, named after the class")
    if problems:
        raise ExamplesError(problems)
    return examples
