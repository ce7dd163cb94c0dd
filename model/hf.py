"""transformers checkpoints → this project's ViT, by state-dict key mapping.

Families: ViTModel / ViTForImageClassification, DeiT (incl. ...WithTeacher: distillation
token, logits = mean of the two heads), Dinov2Model / Dinov2ForImageClassification and
Dinov2WithRegistersModel (LayerScale, registers, bicubic position resizing), and CLIP's
image tower (CLIPModel, CLIPVisionModel, CLIPVisionModelWithProjection: a LayerNorm before
the blocks, quick_gelu, a patch convolution without bias; the visual projection and the
logit scale travel beside the backbone as `model.clip`, see model/clip.py). Checkpoints
on the hub use the long names (`encoder.layer.0.attention.attention.query`); transformers
5 renames some in memory (`layers.0.attention.q_proj`), so both spellings are accepted.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .checkpoint import read_weights_dir
from .config import ViTConfig
from .native import load_strict
from .preprocess import Preprocessor
from .vit import ViT, conv_patch_weight

CLIP_TYPES = ("clip", "clip_vision_model")
SUPPORTED_TYPES = ("vit", "deit", "dinov2", "dinov2_with_registers") + CLIP_TYPES
BASE_PREFIXES = ("vit.", "deit.", "dinov2.", "dinov2_with_registers.", "model.", "vision_model.")
# transformers' CLIPVisionConfig defaults, for config files that spell out only what differs
CLIP_VISION_DEFAULTS = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "image_size": 224, "patch_size": 32, "num_channels": 3, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}

# For each of our per-block names, the HF spellings (legacy first, then transformers-5 names).
BLOCK_KEYS = {
    "norm1": ("layernorm_before", "norm1", "layer_norm1"),  # the last: CLIP's spelling
    "norm2": ("layernorm_after", "norm2", "layer_norm2"),
    "q": ("attention.attention.query", "attention.q_proj", "self_attn.q_proj"),
    "k": ("attention.attention.key", "attention.k_proj", "self_attn.k_proj"),
    "v": ("attention.attention.value", "attention.v_proj", "self_attn.v_proj"),
    "proj": ("attention.output.dense", "attention.o_proj", "self_attn.out_proj"),
    "fc1": ("intermediate.dense", "mlp.fc1"),
    "fc2": ("output.dense", "mlp.fc2"),
    "ls1": ("layer_scale1.lambda1",),
    "ls2": ("layer_scale2.lambda1",),
}
# Unused by a forward pass on whole images; for CLIP also the text tower, the projections and
# the logit scale (read by model/clip.py, not part of the image backbone).
IGNORED = re.compile(r"^(embeddings\.mask_token|pooler\..*|embeddings\.position_ids)$")
CLIP_IGNORED = re.compile(r"^(text_model\..*|text_projection\.weight|visual_projection\.weight|logit_scale)$")

# CLIP's own image normalisation (its processors' image_mean/std), for a directory without one
CLIP_NORMALISATION = {"image_mean": (0.48145466, 0.4578275, 0.40821073), "image_std": (0.26862954, 0.26130258, 0.27577711)}


def clip_vision_config(raw: dict) -> dict:
    """A CLIP config (CLIPModel's nested vision_config, or a CLIPVisionConfig) as one flat
    vision config with transformers' defaults filled in."""
    vision = (raw.get("vision_config") or raw.get("vision_config_dict")) if raw.get("model_type") == "clip" else raw
    return {**CLIP_VISION_DEFAULTS, **(vision or {}), "model_type": raw["model_type"],
            "architectures": raw.get("architectures"), "_name_or_path": raw.get("_name_or_path")}


def hf_config(raw: dict, state: dict[str, torch.Tensor]) -> ViTConfig:
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise ValueError(
            f"model_type {model_type!r} is not a supported ViT family; supported: {', '.join(SUPPORTED_TYPES)}"
        )
    clip = model_type in CLIP_TYPES
    if clip:
        raw = clip_vision_config(raw)
        if "classifier.weight" in state:
            raise ValueError("CLIPForImageClassification (a linear head on the mean patch token) is not supported; "
                             "load a CLIPModel and give it text prompts as classes")
    arch = (raw.get("architectures") or [""])[0]
    D = int(raw["hidden_size"])
    dinov2 = model_type.startswith("dinov2")
    if dinov2 and raw.get("use_swiglu_ffn"):
        raise ValueError("DINOv2 checkpoints with a SwiGLU MLP (ViT-g) are not supported yet; use ViT-S/B/L")
    mlp_dim = int(D * raw.get("mlp_ratio", 4)) if dinov2 else int(raw["intermediate_size"])
    image = raw.get("image_size", 224)
    image = (image, image) if isinstance(image, int) else tuple(image)
    patch = raw.get("patch_size", 16)
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    distilled = model_type == "deit"  # HF DeiT always embeds a distillation token
    regs = int(raw.get("num_register_tokens", 0)) if model_type == "dinov2_with_registers" else 0
    labels = raw.get("id2label") or {}
    classes = [labels[k] for k in sorted(labels, key=int)] if labels else None
    if "classifier.weight" in state:
        num_classes = state["classifier.weight"].shape[0]
        head_type = "cls_patch_mean" if state["classifier.weight"].shape[1] == 2 * D else "cls"
    elif "cls_classifier.weight" in state:
        num_classes, head_type = state["cls_classifier.weight"].shape[0], "cls_dist_mean"
    else:
        num_classes, head_type, classes = 0, "none", None
    if classes is not None and len(classes) != num_classes:
        classes = None
    act = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
           "quick_gelu": "quick_gelu", "relu": "relu"}.get(raw.get("hidden_act", "gelu"))
    if act is None:
        raise ValueError(f"hidden_act {raw.get('hidden_act')!r} is not supported; expected gelu, gelu_new, quick_gelu or relu")
    return ViTConfig(
        image_size=image, patch_size=int(patch), in_chans=int(raw.get("num_channels", 3)),
        embed_dim=D, depth=int(raw["num_hidden_layers"]), num_heads=int(raw["num_attention_heads"]),
        mlp_dim=mlp_dim, qkv_bias=bool(raw.get("qkv_bias", True)), act=act,
        norm_eps=float(raw.get("layer_norm_eps", 1e-12)), layer_scale=dinov2, pre_norm=clip,
        class_token=True, distill_token=distilled, num_register_tokens=regs,
        pos_embed_prefix=2 if distilled else 1,
        pos_interp_antialias=model_type == "dinov2_with_registers",
        num_classes=num_classes, head_type=head_type, class_names=classes,
        name=raw.get("_name_or_path") or arch or model_type, family="hf-clip" if clip else f"hf-{model_type}",
    )


def strip_base_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in BASE_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


def map_hf_state(state: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """HF names → our names. Keys left over afterwards are reported, never silently dropped."""
    src = dict(strip_base_prefix(state))
    # transformers 5 spells blocks `layers.i.`; the hub's files spell them `encoder.layer.i.`
    # (CLIP spells them `encoder.layers.i.`)
    src = {re.sub(r"^(encoder\.)?layers\.(\d+)\.", r"encoder.layer.\2.", k): v for k, v in src.items()}
    out: dict[str, torch.Tensor] = {}

    def take(key: str) -> torch.Tensor:
        return src.pop(key)

    emb = "embeddings."
    if cfg.family == "hf-clip":
        out.update(map_clip_embeddings(take))
    else:
        out["cls_token"] = take(emb + "cls_token")
        if cfg.distill_token:
            out["dist_token"] = take(emb + "distillation_token")
        if cfg.num_register_tokens:
            out["reg_token"] = take(emb + "register_tokens")
        out["pos_embed"] = take(emb + "position_embeddings")
        out["patch_embed.proj.weight"] = conv_patch_weight(take(emb + "patch_embeddings.projection.weight"))
        out["patch_embed.proj.bias"] = take(emb + "patch_embeddings.projection.bias")
    for i in range(cfg.depth):
        def block(name: str, param: str | None) -> torch.Tensor:
            base = f"encoder.layer.{i}."
            for spelling in BLOCK_KEYS[name]:
                key = base + spelling + (f".{param}" if param else "")
                if key in src:
                    return src.pop(key)
            raise KeyError(f"{base}{BLOCK_KEYS[name][0]}{'.' + param if param else ''}")

        b = f"blocks.{i}."
        for ours, theirs in (("norm1", "norm1"), ("norm2", "norm2"), ("attn.proj", "proj"),
                             ("mlp.fc1", "fc1"), ("mlp.fc2", "fc2")):
            out[b + ours + ".weight"] = block(theirs, "weight")
            out[b + ours + ".bias"] = block(theirs, "bias")
        # W_Q, W_K, W_V stacked into one qkv projection: rows [q; k; v]
        out[b + "attn.qkv.weight"] = torch.cat([block(n, "weight") for n in "qkv"], dim=0)
        if cfg.qkv_bias:
            out[b + "attn.qkv.bias"] = torch.cat([block(n, "bias") for n in "qkv"], dim=0)
        if cfg.layer_scale:
            out[b + "ls1.gamma"] = block("ls1", None)
            out[b + "ls2.gamma"] = block("ls2", None)
    # CLIP's post_layernorm normalises only the pooled CLS; here it is the final norm of every
    # token, LN(zL), which gives the same CLS (the clip head reads only LN(zL)[cls]).
    final = "post_layernorm" if cfg.family == "hf-clip" else "layernorm"
    out["norm.weight"] = take(f"{final}.weight")
    out["norm.bias"] = take(f"{final}.bias")
    if cfg.head_type == "cls_dist_mean":
        for p in ("weight", "bias"):
            out[f"head.{p}"] = take(f"cls_classifier.{p}")
            out[f"head_dist.{p}"] = take(f"distillation_classifier.{p}")
    elif cfg.has_head:
        for p in ("weight", "bias"):
            out[f"head.{p}"] = take(f"classifier.{p}")
    clip = cfg.family == "hf-clip"
    leftover = sorted(k for k in src if not IGNORED.match(k) and not (clip and CLIP_IGNORED.match(k)))
    if leftover:
        raise ValueError(
            f"unexpected keys in the checkpoint that this ViT does not use: {leftover[:8]}"
            f"{' …' if len(leftover) > 8 else ''}; is it a supported ViT family?"
        )
    return out


def map_clip_embeddings(take) -> dict[str, torch.Tensor]:
    """CLIP's embeddings → ours: class_embedding (D,) is the CLS token, the position table is an
    nn.Embedding (T, D), the patch convolution has no bias (ours gets a zero one), and
    pre_layrnorm is the LayerNorm before the blocks (`norm_pre`)."""
    emb = "embeddings."
    weight = conv_patch_weight(take(emb + "patch_embedding.weight"))  # (D, C·P·P)
    return {
        "cls_token": take(emb + "class_embedding").reshape(1, 1, -1),
        "pos_embed": take(emb + "position_embedding.weight")[None],
        "patch_embed.proj.weight": weight,
        "patch_embed.proj.bias": weight.new_zeros(weight.shape[0]),
        "norm_pre.weight": take("pre_layrnorm.weight"),
        "norm_pre.bias": take("pre_layrnorm.bias"),
    }


def load_hf_dir(directory: str | Path) -> ViT:
    """Load a transformers ViT-family directory (config.json + safetensors/bin) into our ViT."""
    directory = Path(directory)
    raw = json.loads((directory / "config.json").read_text())
    state = read_weights_dir(directory)
    stripped = strip_base_prefix(state)
    cfg = hf_config(raw, stripped)
    if not raw.get("_name_or_path"):
        cfg.name = directory.name
    try:
        mapped = map_hf_state(state, cfg)
    except KeyError as err:
        raise ValueError(
            f"{directory}: the checkpoint lacks {err.args[0]!r}, which a {raw.get('model_type')} model needs; "
            "the weights file is incomplete or belongs to another architecture"
        ) from None
    model = ViT(cfg)
    load_strict(model, mapped, str(directory))
    pre = directory / "preprocessor_config.json"
    model.preprocessor = (
        Preprocessor.from_file(pre, cfg.image_size) if pre.is_file()
        else Preprocessor(resize_to=cfg.image_size, resample=3, **(CLIP_NORMALISATION if cfg.family == "hf-clip" else {}))
    )
    model.source = str(directory)
    if cfg.family == "hf-clip":
        from .clip import clip_parts

        model.clip = clip_parts(state, directory)
    return model.eval()
