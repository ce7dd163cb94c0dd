"""Patchlight's model layer: one transparent ViT, its trace, loaders, preprocessing, attribution.

The names below are exported lazily (PEP 562): `from model import load_model` imports
`model.loading` (and torch) only then, so torch-free parts — `model.tokens`,
`model.attribution`, `model.explain`'s maps, `model.env`, `model.naming` — load without torch.
"""
from __future__ import annotations

import importlib

# exported name -> the submodule that defines it
_EXPORTS = {
    "ViT": "vit",
    "ViTConfig": "config",
    "Trace": "trace",
    "load_model": "loading",
    "resolve_device": "loading",
    "Preprocessor": "preprocess",
    "decode_image": "preprocess",
    "ImageError": "preprocess",
    **{name: "attribution" for name in (
        "FUSIONS", "fuse_heads", "attention_rollout", "gradient_rollout", "chefer_relevance", "query_attention",
        "patch_map", "all_heads_maps", "all_layers_maps", "layer_head_grid", "attention_mass_mask",
    )},
    **{name: "head_stats" for name in (
        "attention_entropy", "mean_attention_distance", "prefix_attention", "token_norms", "artifact_tokens",
        "ArtifactTokens",
    )},
    "patch_embedding_pca": "embedding_stats",
    "pos_embed_similarity": "embedding_stats",
    "explanation_maps": "explain",
    "attention_flow": "attention_flow",
    "model_relevance": "relevance",
    "deletion_insertion": "faithfulness",
    "randomisation_check": "sanity",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
