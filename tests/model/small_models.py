"""Small random-weight models the model tests share (built here, never downloaded)."""
from __future__ import annotations

import torch

from model import Preprocessor, ViT, ViTConfig


def small_classifier(preprocessor: Preprocessor | None = None) -> ViT:
    """A 2-layer classifier of 3 classes (cat, dog, fox) with a register token, weights perturbed
    enough that its attention is not uniform. preprocessor: None keeps each image's aspect ratio
    (shortest edge 24 px), so images of different shapes come out in different sizes."""
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=(24, 24), patch_size=6, embed_dim=24, depth=2, num_heads=3, mlp_dim=48,
                    num_classes=3, class_names=["cat", "dog", "fox"], num_register_tokens=1)
    model = ViT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    model.preprocessor = preprocessor or Preprocessor(resize_to=None, shortest_edge=24, image_mean=(0.5,) * 3,
                                                      image_std=(0.5,) * 3)
    return model.eval()
