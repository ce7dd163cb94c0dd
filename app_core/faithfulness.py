"""How far to trust a map, for the app: deletion/insertion of the maps on screen, the
randomisation check, and the panels of the Compare page (numbers from model.faithfulness and
model.sanity; Streamlit-free, the page caches the results).

Which maps: whatever the explanation view shows (``views.explanation_maps``, the one entry point
``model.explain``), so a method added there is measured here with no change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import viz
from model.faithfulness import Curves, evaluate_maps
from model.sanity import RandomisationCheck, randomisation_check
from model.trace import Trace

from .uploads import decode_upload

# Deletion/insertion is computed at once up to this many patches (fashion-vit: 49, about 0.6 s for
# its three maps and the random reference on 2 CPU cores); beyond it, when the user asks (dinov2-
# sized inputs, 256 patches: 257 steps × 2 curves × 13 orders ≈ 6,700 forward passes).
AUTO_PATCHES = 64
BASELINE_LABELS = {"mean": "mean colour (0 after normalisation)", "blur": "blurred image"}


@dataclass(frozen=True)
class MapsFaithfulness:
    """Deletion/insertion of several maps of one image for one class, and the random reference."""

    curves: dict  # {map title: model.faithfulness.Curves}
    random: Curves
    class_index: int
    class_name: str
    clean_probability: float
    baseline: str


def measure(model, trace: Trace, maps: dict, class_index: int | None, baseline: str = "mean") -> MapsFaithfulness:
    """Deletion/insertion of `maps` ({title: [h, w]}) on the trace's own model input; class:
    `class_index` (None: the top class)."""
    curves, rand, c, p = evaluate_maps(model, trace.pixel_values[0][None].copy(), maps, label=class_index,
                                       baseline=baseline)
    return MapsFaithfulness(curves, rand, c, trace.class_names()[c], p, baseline)


def curve_panels(result: MapsFaithfulness) -> list[viz.CurvePanel]:
    """One viz panel per map, with the random reference in each."""
    r = result.random
    return [viz.CurvePanel(name, c.fractions, c.deletion, c.insertion, c.deletion_auc, c.insertion_auc,
                           r.deletion, r.insertion, r.deletion_auc, r.insertion_auc)
            for name, c in result.curves.items()]


def auc_note(curves: Curves | None, random: Curves | None = None) -> str:
    """The lines under a compared map: its AUCs (and the random ones), or why there are none."""
    if curves is None:
        return "no class head: no deletion/insertion"
    if random is None:
        return f"deletion {curves.deletion_auc:.2f}<br>insertion {curves.insertion_auc:.2f}"
    # one short line per curve, so that four maps a row keep their notes apart; in brackets: random orders
    return (f"deletion {curves.deletion_auc:.2f} ({random.deletion_auc:.2f})<br>"
            f"insertion {curves.insertion_auc:.2f} ({random.insertion_auc:.2f})")


def is_quick(trace: Trace) -> bool:
    """True when deletion/insertion of a few maps takes about a second on a CPU (see AUTO_PATCHES)."""
    return trace.N <= AUTO_PATCHES


def run_randomisation(model, data: bytes, name: str, class_index: int | None) -> RandomisationCheck:
    """The cascading randomisation check of every method the model can run, for this image."""
    return randomisation_check(model, decode_upload(data, name), label=class_index)


def randomisation_summary(check: RandomisationCheck, titles: dict) -> str:
    """The check in words: each method's rank correlation once the head is random and once every
    block is."""
    steps = list(check.steps)
    last_block = max((i for i, s in enumerate(steps) if s.startswith("block")), default=len(steps) - 1)
    parts = []
    for method, rho in check.rank_correlation.items():
        text = f"{titles.get(method, method)}: ρ = "
        if "head" in steps:
            text += f"{rho[steps.index('head')]:.2f} with a random head, "
        parts.append(text + f"{rho[last_block]:.2f} with every block random")
    return "; ".join(parts) + "."


def query_in(query: int, source: Trace, target: Trace) -> int:
    """The token of `target` at the place of `source`'s token `query`: a prefix token stays a prefix
    token of the same index (CLS is CLS); a patch goes to the patch of `target` holding its centre
    (two models may cut the image into different grids)."""
    p, q = source.num_prefix_tokens, int(query)
    if q < p:
        return min(q, target.num_prefix_tokens - 1) if target.num_prefix_tokens else target.num_prefix_tokens
    r, c = divmod(q - p, source.grid[1])
    (h, w), (H, W) = source.grid, target.grid
    return target.num_prefix_tokens + min(int((r + 0.5) / h * H), H - 1) * W + min(int((c + 0.5) / w * W), W - 1)


def compare_panels(items: list[tuple[str, Trace, np.ndarray, Curves | None, Curves | None, int]]) -> list[viz.MapPanel]:
    """viz panels from (title, trace, map, curves or None, random curves or None, query token)."""
    panels = []
    for title, trace, m, curves, rand, query in items:
        p = trace.num_prefix_tokens
        panels.append(viz.MapPanel(trace.image(0), m, title, auc_note(curves, rand),
                                   query - p if query >= p else None))
    return panels
