"""The one configuration that describes every ViT family Patchlight loads.

Families differ only by flags: which prefix tokens exist (CLS, distillation, registers),
which of them carry a position embedding, LayerScale, the LayerNorm epsilon, the MLP
activation, how position embeddings are resized, and how the head reads the tokens.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from . import tokens

ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu", "relu")
HEAD_TYPES = ("cls", "cls_dist_mean", "cls_patch_mean", "clip", "none")


@dataclass
class ViTConfig:
    """Hyper-parameters of one ViT. Symbols: P patch size, D width, L layers, H heads."""

    image_size: tuple[int, int] = (224, 224)  # native (height, width) the position grid was trained for
    patch_size: int = 16  # P
    in_chans: int = 3
    embed_dim: int = 768  # D
    depth: int = 12  # L
    num_heads: int = 12  # H
    mlp_dim: int = 3072
    qkv_bias: bool = True
    act: str = "gelu"
    norm_eps: float = 1e-6
    layer_scale: bool = False  # DINOv2: z + γ·f(LN(z)) with a learned per-channel γ
    # CLIP: one more LayerNorm on the embedded tokens before the first block (timm's norm_pre,
    # transformers' pre_layrnorm): z0 = LN_pre([prefix; x_p E] + E_pos)
    pre_norm: bool = False
    class_token: bool = True
    distill_token: bool = False  # DeiT: a second prefix token trained against a teacher
    num_register_tokens: int = 0  # Darcet et al. 2023, "Vision Transformers Need Registers"
    # How many leading prefix tokens receive a position embedding: ViT 1 (CLS), DeiT-distilled 2,
    # DINOv2-with-registers 1 (registers get none), timm's no_embed_class 0.
    pos_embed_prefix: int = 1
    pos_interp_antialias: bool = False  # HF Dinov2WithRegisters resizes with antialias=True
    # When the input grid equals the native grid the stored embeddings are used as they are;
    # otherwise they are resized bicubically (align_corners=False), as DINO/DINOv2 do.
    num_classes: int = 0  # K; 0 means no classification head
    # cls | cls_dist_mean (DeiT) | cls_patch_mean (Dinov2ForImageClassification) | none |
    # clip: y = W · normalise(P · LN(zL)[cls]), P the visual projection (projection_dim × D)
    head_type: str = "cls"
    projection_dim: int = 0  # E, the width of a clip head's projection (0 for other heads)
    class_names: list[str] | None = None
    name: str = "vit"
    family: str = ""  # where the weights came from: hf-vit, hf-deit, hf-dinov2, timm, builtin …

    def __post_init__(self) -> None:
        self.image_size = tuple(int(s) for s in self.image_size)  # type: ignore[assignment]
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; "
                "choose a head count that divides the width"
            )
        if self.act not in ACTIVATIONS:
            raise ValueError(f"act={self.act!r} is not supported; expected one of {ACTIVATIONS}")
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"head_type={self.head_type!r} is not supported; expected one of {HEAD_TYPES}")
        if self.pos_embed_prefix > self.num_prefix_tokens:
            raise ValueError(
                f"pos_embed_prefix={self.pos_embed_prefix} exceeds the {self.num_prefix_tokens} prefix tokens"
            )
        if self.head_type == "clip" and self.num_classes and self.projection_dim <= 0:
            raise ValueError("head_type='clip' needs projection_dim > 0, the width of the visual projection")
        if self.head_type == "cls_dist_mean" and not self.distill_token:
            raise ValueError("head_type='cls_dist_mean' needs distill_token=True")
        if self.class_names is not None and self.num_classes and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{len(self.class_names)} class names given for num_classes={self.num_classes}; "
                "give one name per class"
            )

    @property
    def head_dim(self) -> int:  # d
        return self.embed_dim // self.num_heads

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.class_token) + int(self.distill_token) + self.num_register_tokens

    @property
    def native_grid(self) -> tuple[int, int]:
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def has_head(self) -> bool:
        return self.num_classes > 0 and self.head_type != "none"

    def architecture(self) -> dict:
        """The shape facts a model card, the CLI and the app show: P, D, L, H, d, MLP, activation."""
        return {
            "patch_size": self.patch_size, "embed_dim": self.embed_dim, "depth": self.depth,
            "num_heads": self.num_heads, "head_dim": self.head_dim, "mlp_dim": self.mlp_dim,
            "activation": self.act, "layer_scale": self.layer_scale,
        }

    def prefix_names(self) -> list[str]:
        """CLS, DIST, REG0… as present (the one vocabulary, `model.tokens.prefix_names`)."""
        return tokens.prefix_names(self.class_token, self.distill_token, self.num_register_tokens)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "ViTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ViTConfig fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**d)
