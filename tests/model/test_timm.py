"""timm-layout state dicts load into the same ViT and give transformers' numbers."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from model import load_model
from parity import assert_parity, reference_outputs


def to_timm_layout(hf_state: dict, depth: int, base: str, fold_cls_pos: bool = False) -> dict:
    """Rename a transformers ViT state dict to timm's names (written independently of model/hf.py)."""
    s = {k[len(base):] if k.startswith(base) else k: v for k, v in hf_state.items()}
    out = {
        "cls_token": s["embeddings.cls_token"].clone(),
        "pos_embed": s["embeddings.position_embeddings"],
        "patch_embed.proj.weight": s["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": s["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": s["layernorm.weight"],
        "norm.bias": s["layernorm.bias"],
    }
    if "embeddings.distillation_token" in s:
        out["dist_token"] = s["embeddings.distillation_token"]
    if "embeddings.register_tokens" in s:
        out["reg_token"] = s["embeddings.register_tokens"]
    if fold_cls_pos:  # timm's no_embed_class: CLS's position folded into the token itself
        out["cls_token"] = out["cls_token"] + out["pos_embed"][:, :1]
        out["pos_embed"] = out["pos_embed"][:, 1:]
    for i in range(depth):
        e, b = f"encoder.layer.{i}.", f"blocks.{i}."
        dinov2 = e + "norm1.weight" in s
        n1, n2 = ("norm1", "norm2") if dinov2 else ("layernorm_before", "layernorm_after")
        fc1, fc2 = ("mlp.fc1", "mlp.fc2") if dinov2 else ("intermediate.dense", "output.dense")
        for p in ("weight", "bias"):
            out[b + f"norm1.{p}"] = s[e + f"{n1}.{p}"]
            out[b + f"norm2.{p}"] = s[e + f"{n2}.{p}"]
            out[b + f"attn.qkv.{p}"] = torch.cat([s[e + f"attention.attention.{n}.{p}"] for n in ("query", "key", "value")])
            out[b + f"attn.proj.{p}"] = s[e + f"attention.output.dense.{p}"]
            out[b + f"mlp.fc1.{p}"] = s[e + f"{fc1}.{p}"]
            out[b + f"mlp.fc2.{p}"] = s[e + f"{fc2}.{p}"]
        if dinov2:
            out[b + "ls1.gamma"] = s[e + "layer_scale1.lambda1"]
            out[b + "ls2.gamma"] = s[e + "layer_scale2.lambda1"]
    if "classifier.weight" in s:
        out["head.weight"], out["head.bias"] = s["classifier.weight"], s["classifier.bias"]
    if "cls_classifier.weight" in s:
        out["head.weight"], out["head.bias"] = s["cls_classifier.weight"], s["cls_classifier.bias"]
        out["head_dist.weight"], out["head_dist.bias"] = s["distillation_classifier.weight"], s["distillation_classifier.bias"]
    return {k: v.contiguous() for k, v in out.items()}


def saved_hf_state(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


@pytest.mark.parametrize(
    "kind, base, fold, has_logits",
    [("vit", "vit.", False, True), ("deit", "deit.", False, True), ("dinov2-reg", "", True, False)],
)
def test_timm_state_dict_matches_transformers(hf_models, tmp_path, kind, base, fold, has_logits):
    directory, ref = hf_models[kind]
    depth = ref.config.num_hidden_layers
    state = to_timm_layout(saved_hf_state(directory), depth, base, fold_cls_pos=fold)
    weights = tmp_path / "vit_test.safetensors"
    save_file(state, str(weights))
    size = ref.config.image_size
    (tmp_path / "vit_test.json").write_text(json.dumps({
        "architecture": "vit_test_patch", "model_args": {"num_heads": ref.config.num_attention_heads,
                                                     "norm_eps": ref.config.layer_norm_eps},
        "pretrained_cfg": {"input_size": [3, size, size], "interpolation": "bicubic", "crop_pct": 0.875,
                           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    }))
    model = load_model(str(weights), device="cpu")
    assert model.cfg.family == "timm"
    assert model.cfg.head_type == ("cls_dist_mean" if kind == "deit" else "cls" if has_logits else "none")
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(4))
    assert_parity(model.trace(pixels), reference_outputs(ref, pixels), has_logits)
    pre = model.preprocessor
    assert pre.crop_size == (size, size) and pre.shortest_edge == int(size / 0.875)


def test_timm_heads_from_architecture_name(hf_models, tmp_path):
    directory, _ = hf_models["vit"]
    state = to_timm_layout(saved_hf_state(directory), 3, "vit.")
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "vit_small_patch8_32"}))
    assert load_model(str(tmp_path), device="cpu").cfg.num_heads == 6  # "small" → 6 heads
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "vit_mystery_patch8"}))
    with pytest.raises(ValueError, match="number of heads"):
        load_model(str(tmp_path), device="cpu")
