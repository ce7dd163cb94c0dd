"""The ViT's six steps as Patchlight teaches them: one vocabulary for the walk-through, the
model cards, the built-in model summaries and the CLI.

1 patch embedding, 2 position embedding, 3 attention, 4 feed-forward, 5 logits, 6 loss.
Explanation maps (rollout, class-specific relevance) are not a step of the model but a view
on its attention; models without a classification head lose steps 5–6 and the class-specific
maps.
"""
from __future__ import annotations

STEPS = ("patches", "positions", "attention", "mlp", "logits", "loss")
STEP_TITLES = {
    "patches": "1 · Patch embedding",
    "positions": "2 · Position embedding",
    "attention": "3 · Attention",
    "mlp": "4 · Feed-forward & residual stream",
    "logits": "5 · Logits",
    "loss": "6 · Loss",
}
STEP_SHORT = {"patches": "1 Patches", "positions": "2 Positions", "attention": "3 Attention", "mlp": "4 MLP",
              "logits": "5 Logits", "loss": "6 Loss"}
HEAD_STEPS = ("logits", "loss")  # need a classification head
EXPLAIN = "explain"  # the explanation maps: rollout needs attention only, class maps need a head
