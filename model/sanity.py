"""The model-randomisation sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

Re-initialise the model from the top down — the head, then block L−1, …, block 0, then the
embeddings — cumulatively (the "cascading" randomisation), and after each step compute every
method's map again for the same image and the same class. A map that stays the same while the
weights it claims to explain are destroyed is not about the model. The change is measured as
the Spearman rank correlation between the trained model's map and each step's map (1: the same
order of patches; near 0: unrelated).

Re-initialisation is the ViT's own: Linear weights and token/position parameters from a
truncated normal of std 0.02 (biases 0), LayerNorm to (1, 0), LayerScale γ to 1 — from a torch
generator seeded with `seed`, so the check is reproducible. The model given is never changed: the
check works on a copy. Maps come from `model.explain.explain`, the one entry point, so every
method in `METHODS` is checked the same way.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .vit import ViT


@dataclass(frozen=True)
class RandomisationCheck:
    """steps [S] names ("trained", "head", "block 3", …, "embeddings"); for each method id:
    maps[method] [S, h, w] and rank_correlation[method] [S] (Spearman against step 0, which is 1)."""

    steps: tuple[str, ...]
    maps: dict
    rank_correlation: dict
    class_index: int | None
    label: str | None

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.maps)


def ranks(values) -> np.ndarray:
    """1-based ranks of a flat array; tied values share the mean of their ranks."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    out = np.empty(v.size, dtype=np.float64)
    start = 0
    for end in range(1, v.size + 1):
        if end == v.size or sorted_v[end] != sorted_v[start]:
            out[order[start:end]] = (start + end + 1) / 2.0  # the mean of ranks start+1 … end
            start = end
    return out


def spearman(a, b) -> float:
    """Spearman rank correlation of two maps (Pearson correlation of their ranks); NaN when
    either map is constant (no order to compare)."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def cascade(vit: ViT) -> list[tuple[str, list]]:
    """The randomisation steps from the top down: (name, modules and parameters to re-initialise)."""
    steps = []
    if vit.head is not None:
        steps.append(("head", [m for m in (vit.head, vit.head_dist, vit.norm) if m is not None]))
    for l in reversed(range(len(vit.blocks))):
        steps.append((f"block {l}", [vit.blocks[l]]))
    embeddings = [vit.patch_embed] + [p for p in (vit.cls_token, vit.dist_token, vit.reg_token, vit.pos_embed)
                                      if p is not None]
    steps.append(("embeddings", embeddings))
    return steps


def reinitialise(parts: list, generator: torch.Generator, std: float = 0.02) -> None:
    """Re-initialise modules (every parameter inside) and bare parameters in place, as a new ViT is."""
    import torch
    from torch import nn

    from .vit import LayerScale

    with torch.no_grad():
        for part in parts:
            if isinstance(part, nn.Parameter):
                nn.init.trunc_normal_(part, std=std, generator=generator)
                continue
            for m in part.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    nn.init.trunc_normal_(m.weight, std=std, generator=generator)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, LayerScale):
                    nn.init.ones_(m.gamma)


def usable_methods(vit: ViT, methods=None) -> tuple[str, ...]:
    """`methods` (default: every method in METHODS), without the class-specific ones when the
    model has no class head."""
    from .explain import CLASS_METHODS, METHODS

    chosen = tuple(METHODS if methods is None else methods)
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise ValueError(f"method {unknown[0]!r} is unknown; choose one of {', '.join(METHODS)}")
    return chosen if vit.cfg.has_head else tuple(m for m in chosen if m not in CLASS_METHODS)


def randomisation_check(vit: ViT, image, methods=None, label=None, seed: int = 0) -> RandomisationCheck:
    """Cascading randomisation of a copy of `vit` (see the module docstring).

    image: a PIL image (as `explain` takes it); methods: method ids (default: every method the
    model can run); label: the class the class-specific maps explain, by index or name (default:
    the trained model's top class — the same class at every step).
    """
    import torch

    from .explain import explain, resolve_label

    chosen = usable_methods(vit, methods)
    if not chosen:
        raise ValueError("no method to check; choose at least one of rollout, attention, …")
    index = resolve_label(vit, label) if vit.cfg.has_head else None
    if vit.cfg.has_head and index is None:
        with torch.inference_mode():
            index = int(vit(vit.to_pixels([image]))[0][0].argmax())
    model = copy.deepcopy(vit).eval()
    generator = torch.Generator().manual_seed(int(seed))
    names, maps = ["trained"], {m: [explain(model, image, m, label=index).map] for m in chosen}
    for name, parts in cascade(model):
        reinitialise(parts, generator)
        names.append(name)
        for m in chosen:
            maps[m].append(explain(model, image, m, label=index).map)
    stacked = {m: np.stack(v).astype(np.float32) for m, v in maps.items()}  # (S, h, w)
    corr = {m: np.array([spearman(v[0], step) for step in v]) for m, v in stacked.items()}
    names_of = vit.cfg.class_names
    return RandomisationCheck(tuple(names), stacked, corr, index,
                              names_of[index] if index is not None and names_of else None)
