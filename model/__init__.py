"""Patchlight's model layer: one transparent ViT, its trace, loaders, preprocessing, attribution."""
from .attribution import (
    FUSIONS, all_heads_maps, all_layers_maps, attention_mass_mask, attention_rollout, chefer_relevance,
    fuse_heads, gradient_rollout, layer_head_grid, patch_map, query_attention,
)
from .config import ViTConfig
from .embedding_stats import patch_embedding_pca, pos_embed_similarity
from .head_stats import (
    ArtifactTokens, artifact_tokens, attention_entropy, mean_attention_distance, prefix_attention, token_norms,
)
from .loading import load_model, resolve_device
from .preprocess import ImageError, Preprocessor, decode_image
from .trace import Trace
from .vit import ViT

__all__ = [
    "ViT", "ViTConfig", "Trace", "load_model", "resolve_device", "Preprocessor", "decode_image", "ImageError",
    "FUSIONS", "fuse_heads", "attention_rollout", "gradient_rollout", "chefer_relevance", "query_attention",
    "patch_map", "all_heads_maps", "all_layers_maps", "layer_head_grid", "attention_mass_mask",
    "attention_entropy", "mean_attention_distance", "prefix_attention", "token_norms", "artifact_tokens",
    "ArtifactTokens", "patch_embedding_pca", "pos_embed_similarity",
]
