"""Patchlight's model layer: one transparent ViT, its trace, loaders, preprocessing, attribution."""
from .config import ViTConfig
from .loading import load_model, resolve_device
from .preprocess import ImageError, Preprocessor, decode_image
from .trace import Trace
from .vit import ViT

__all__ = [
    "ViT", "ViTConfig", "Trace", "load_model", "resolve_device",
    "Preprocessor", "decode_image", "ImageError",
]
