"""How faithful is a map to the model? Deletion and insertion curves (Petsiuk et al. 2018, RISE).

The protocol, exactly (so that numbers compare across maps, methods, models and runs):

- class c: the `label` (an index or a class name), else the model's top class on the clean input;
- order the N patches by the map, highest first; ties go by patch index (a stable sort);
- steps k: every k = 0…N when N ≤ 256, else k_i = ⌊i·N/256⌋ for i = 0…256 (N/256-sized steps);
- deletion: the first k patches of the order in the preprocessed input are replaced by the
  baseline; insertion: start from the all-baseline input and restore the first k patches;
- baseline: ``"mean"`` = 0 in the normalised input space (the normalisation's mean colour), or
  ``"blur"`` = the input blurred with a Gaussian of σ = one patch (in model-input pixels);
- record p_c = softmax(logits)[c] at every step; AUC = trapezoid area under p_c against k/N
  on [0, 1]. A faithful map has a LOW deletion AUC and a HIGH insertion AUC;
- random reference: the same curves for 10 random orders (numpy seeds 0…9), their mean curve
  and the mean of their AUCs.

Everything of one image runs in a few forward batches: all steps of all orders (the maps' and
the random ones) are stacked and sent through the model's fast path `batch_size` at a time.
The maps themselves come from `model.explain`; this module only measures them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .vit import ViT

BASELINES = ("mean", "blur")
RANDOM_ORDERS = 10  # the random reference: seeds 0…9
MAX_STEPS = 256  # more patches than this: 256 equal steps instead of one per patch


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves of one patch order (or the mean of the random orders).

    steps [S] the k of each point, fractions [S] = k/N, deletion [S] and insertion [S] the
    class probability p_c at each step; the AUCs by the trapezoid rule over fractions. For the
    random reference, the curves are the mean curves and the AUCs the mean of the orders' AUCs
    (the same numbers: the trapezoid rule is linear).
    """

    steps: np.ndarray
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float


@dataclass(frozen=True)
class Faithfulness:
    """`deletion_insertion`'s answer for one map of one image."""

    map: Curves
    random: Curves | None  # None when random_orders=0
    class_index: int
    label: str | None  # the class name, when the model has names
    clean_probability: float  # p_c of the untouched input
    baseline: str

    def to_json(self) -> dict:
        out = {"label": self.label if self.label is not None else str(self.class_index),
               "class_index": self.class_index, "deletion_auc": self.map.deletion_auc,
               "insertion_auc": self.map.insertion_auc}
        if self.random is not None:
            out.update(random_deletion_auc=self.random.deletion_auc, random_insertion_auc=self.random.insertion_auc)
        return out


# ----------------------------------------------------------------------------- the protocol's parts

def step_counts(num_patches: int) -> np.ndarray:
    """The k of every point: 0…N when N ≤ 256, else ⌊i·N/256⌋ for i = 0…256 (int64, from 0 to N)."""
    N = int(num_patches)
    if N < 1:
        raise ValueError(f"{N} patches; a deletion curve needs at least one")
    if N <= MAX_STEPS:
        return np.arange(N + 1, dtype=np.int64)
    return (np.arange(MAX_STEPS + 1, dtype=np.int64) * N) // MAX_STEPS


def patch_order(relevance) -> np.ndarray:
    """Patch indices (row-major) from the most to the least relevant; ties by patch index."""
    r = np.asarray(relevance, dtype=np.float64).ravel()
    if not np.isfinite(r).all():
        raise ValueError("the map holds NaN or infinite values; a patch order needs finite relevance")
    return np.argsort(-r, kind="stable")


def seeded_orders(num_patches: int, count: int = RANDOM_ORDERS) -> np.ndarray:
    """[count, N]: order s is numpy's ``default_rng(s).permutation(N)`` for s = 0…count−1."""
    return np.stack([np.random.default_rng(s).permutation(int(num_patches)) for s in range(int(count))]) \
        if count else np.zeros((0, int(num_patches)), dtype=np.int64)


def area_under(fractions: np.ndarray, curve: np.ndarray) -> float:
    """Trapezoid area under `curve` against `fractions` (the last axis)."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(curve, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[..., 1:] + y[..., :-1]) / 2.0, axis=-1))


def gaussian_blur(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) blurred per channel by a Gaussian of std `sigma` px (separable, truncated at
    3σ, reflected at the border)."""
    import torch
    import torch.nn.functional as F

    B, C, H, W = pixels.shape
    radius = max(1, min(int(np.ceil(3 * sigma)), H - 1, W - 1))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    kernel = (kernel / kernel.sum()).to(pixels.dtype).to(pixels.device)  # (2r+1,)
    flat = pixels.reshape(B * C, 1, H, W)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))  # along x
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))  # along y
    return flat.reshape(B, C, H, W)


def baseline_input(pixels: torch.Tensor, baseline: str, patch_size: int) -> torch.Tensor:
    """The all-baseline input of the same shape: zeros (the mean colour) or the blurred input."""
    import torch

    if baseline == "mean":
        return torch.zeros_like(pixels)
    if baseline == "blur":
        return gaussian_blur(pixels, float(patch_size))
    raise ValueError(f"baseline {baseline!r} is unknown; choose one of {', '.join(BASELINES)}")


def patch_masks(orders: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """[M, S, N] bool: True on the first k patches of each order [M, N] at each step k."""
    M, N = orders.shape
    rank = np.empty_like(orders)
    rank[np.arange(M)[:, None], orders] = np.arange(N)  # rank[m, patch] = its position in order m
    return rank[:, None, :] < steps[None, :, None]  # (M, S, N)


def _pixel_masks(cells: torch.Tensor, grid: tuple[int, int], patch_size: int, size: tuple[int, int]) -> torch.Tensor:
    """(b, N) bool per patch -> (b, 1, H, W) bool per pixel; pixels outside the grid (H or W not a
    multiple of P) are never masked."""
    import torch

    b = cells.shape[0]
    h, w = grid
    P = int(patch_size)
    blocks = cells.reshape(b, 1, h, 1, w, 1).expand(b, 1, h, P, w, P).reshape(b, 1, h * P, w * P)
    H, W = size
    out = torch.zeros((b, 1, H, W), dtype=torch.bool, device=cells.device)
    out[:, :, : h * P, : w * P] = blocks
    return out


def probability_curves(vit: ViT, pixels: torch.Tensor, orders: np.ndarray, class_index: int,
                       baseline: str = "mean", batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(deletion [M, S], insertion [M, S]) p_c along each order of `orders` [M, N] (float64).

    pixels (1, C, H, W) preprocessed. Every masked input of every order is built on the fly and
    sent through the fast forward, deleted and inserted inputs together, `batch_size` steps at a
    time (fewer for large inputs).
    """
    import torch

    x = pixels.to(vit.device, vit.pos_embed.dtype)
    _, _, H, W = x.shape
    grid = vit.grid_for(H, W)
    N = grid[0] * grid[1]
    orders = np.asarray(orders, dtype=np.int64).reshape(-1, N)
    steps = step_counts(N)
    base = baseline_input(x, baseline, vit.cfg.patch_size)  # (1, C, H, W)
    cells = torch.from_numpy(patch_masks(orders, steps).reshape(-1, N)).to(x.device)  # (M·S, N)
    # at most ~4 M input pixels per chunk (83 steps at 224 px, all 256 at 28 px): bounded memory
    chunk = max(1, min(int(batch_size), (1 << 22) // (H * W)))
    probs = []  # deletion then insertion of each chunk
    with torch.inference_mode():
        for start in range(0, cells.shape[0], chunk):
            gone = _pixel_masks(cells[start:start + chunk], grid, vit.cfg.patch_size, (H, W))  # (b, 1, H, W)
            deleted = torch.where(gone, base, x)  # the first k patches replaced by the baseline
            inserted = torch.where(gone, x, base)  # only the first k patches restored
            logits, _ = vit(torch.cat([deleted, inserted]))  # (2b, K)
            p = logits.double().softmax(-1)[:, int(class_index)].cpu().numpy()
            probs.append(p.reshape(2, -1))
    p = np.concatenate(probs, axis=1).reshape(2, len(orders), len(steps))  # (2, M, S)
    return p[0], p[1]


def _curves(steps: np.ndarray, N: int, deletion: np.ndarray, insertion: np.ndarray) -> Curves:
    fractions = steps / float(N)
    return Curves(steps, fractions, deletion.mean(axis=0), insertion.mean(axis=0),
                  float(np.mean([area_under(fractions, d) for d in deletion])),
                  float(np.mean([area_under(fractions, i) for i in insertion])))


# ----------------------------------------------------------------------------- the entry points

def check_classifier(vit: ViT) -> None:
    if not vit.cfg.has_head:
        raise ValueError(
            f"{vit.source} has no classification head, so there is no class probability p_c to delete or insert "
            "patches against; deletion/insertion needs a classifier (e.g. fashion-vit)"
        )


def _as_pixels(vit: ViT, pixels) -> torch.Tensor:
    import torch

    x = torch.as_tensor(np.asarray(pixels, dtype=np.float32)) if not isinstance(pixels, torch.Tensor) else pixels
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"pixels have shape {tuple(x.shape)}; expected one preprocessed image (1, 3, H, W) or (3, H, W)")
    return vit.to_pixels(x)


def evaluate_maps(vit: ViT, pixels, maps: dict, label=None, baseline: str = "mean",
                  random_orders_count: int = RANDOM_ORDERS, batch_size: int = 256) -> tuple[dict, Curves | None, int, float]:
    """Deletion/insertion of several maps of ONE image (and the random reference once):
    ``({name: Curves}, random Curves or None, class index c, clean p_c)``. maps: ``{name: [h, w]}``."""
    import torch

    from .explain import resolve_label

    check_classifier(vit)
    if baseline not in BASELINES:
        raise ValueError(f"baseline {baseline!r} is unknown; choose one of {', '.join(BASELINES)}")
    x = _as_pixels(vit, pixels)
    grid = vit.grid_for(*x.shape[-2:])
    N = grid[0] * grid[1]
    for name, m in maps.items():
        if np.size(m) != N:
            raise ValueError(f"map {name!r} has {np.size(m)} values but this input has {grid[0]}×{grid[1]} = {N} "
                             "patches; give one value per patch")
    with torch.inference_mode():
        clean = vit(x)[0][0].double().softmax(-1)  # (K,)
    index = resolve_label(vit, label)
    c = int(clean.argmax()) if index is None else index
    orders = [patch_order(m) for m in maps.values()]
    randoms = seeded_orders(N, random_orders_count)
    deletion, insertion = probability_curves(vit, x, np.concatenate([np.stack(orders), randoms]) if orders else randoms,
                                             c, baseline, batch_size)
    steps = step_counts(N)
    out = {name: _curves(steps, N, deletion[i:i + 1], insertion[i:i + 1]) for i, name in enumerate(maps)}
    rand = _curves(steps, N, deletion[len(orders):], insertion[len(orders):]) if random_orders_count else None
    return out, rand, c, float(clean[c])


def deletion_insertion(vit: ViT, pixels, relevance, label=None, baseline: str = "mean",
                       random_orders: int = RANDOM_ORDERS, batch_size: int = 256) -> Faithfulness:
    """Deletion and insertion curves and AUCs of one map (see the module docstring for the protocol).

    vit: a classifier; pixels: one preprocessed image, (1, 3, H, W) or (3, H, W), tensor or array;
    relevance: its map over the patch grid, [h, w] (or [N], row-major); label: a class index or
    name (None: the top class on the clean input); baseline: "mean" or "blur"; random_orders:
    how many seeded random orders to average as the reference (0: none).
    """
    maps, rand, c, p_clean = evaluate_maps(vit, pixels, {"map": relevance}, label, baseline, random_orders, batch_size)
    names = vit.cfg.class_names
    return Faithfulness(maps["map"], rand, c, names[c] if names else None, p_clean, baseline)
