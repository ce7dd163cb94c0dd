"""Class explanations that need the model itself, not only its attention and ∂y_c/∂A_l.

One entry point, `model_relevance(vit, pixels, method, label)`, runs what a method needs and
returns token values `[T]` (or `[L, T]`) of one image; `model.explain.explanation_maps` turns
them into maps like every other method. Symbols: L layers, H heads, T tokens (p prefix, then
the N patches row-major), D width, c the explained class, y_c its logit.

- ``legrad`` — LeGrad (Bousselham et al., ICCV 2025), as the authors' code computes it
  (WalBouss/LeGrad, ``legrad/wrapper.py``): for every layer l, the layer's own logits
  s^l = head(LN(z_l)) (the model's final norm and head applied to block l's output),
  the gradient ∂s^l_c/∂A_l of the class score w.r.t. *that* layer's attention only, its
  positive part, averaged over heads and over all query rows → E^l `[T]` (one per key
  token). Returned per layer `[L, T]`; the map is min-max(Σ_{l ≥ start} E^l) over the patches.
- ``attnlrp`` — AttnLRP (Achtibat et al., ICML 2024): an LRP backward pass with the paper's
  rules, run as a modified gradient × input (their "efficient" formulation, as lxt does):
  ε-rule with ε→0 for every linear map and for the residual sums (Eq. 8, i.e. the plain
  gradient), the softmax rule of Proposition 3.1 (gradient × input of the softmax, which is
  the plain gradient), the uniform rule for the bilinear products q·kᵀ and A·v (Eq. 7 /
  Proposition 3.3: each factor gets half, so the gradient is halved at q, k, A and v),
  and the identity rule (Eq. 9) for the elementwise activation and for LayerNorm's division
  by its standard deviation (Proposition 3.4: the std is held constant). Relevance starts as
  y_c at the logit; a patch's value is the relevance of its pixels, Σ pixels ⊙ ∂̃y_c/∂pixels
  over its P×P×3 values; a prefix token's is Σ_D token ⊙ ∂̃y_c/∂z0. Signed. Tested against
  lxt's explicit rule implementation (tests/model/test_relevance.py).
- ``gradcam`` — Grad-CAM (Selvaraju et al., ICCV 2017, Eqs. 1–2) on the tokens the last
  block reads, LN1(z_{L-1}) (the normed input of its attention; the last block's *output*
  patch tokens never reach a CLS head, so their gradient is zero): α_k = mean over patch
  tokens of ∂y_c/∂F_{t,k}, map_t = ReLU(Σ_k α_k F_{t,k}).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .vit import ViT, patchify

MODEL_METHODS = ("legrad", "attnlrp", "gradcam")


@dataclass(frozen=True)
class ModelRelevance:
    """What `model_relevance` computed for one image."""

    method: str
    class_index: int  # the class c explained
    values: np.ndarray  # float64 [T] (attnlrp, gradcam) or [L, T] (legrad: E^l per layer)
    logit: float  # y_c (AttnLRP's relevance starts as this value)


def model_relevance(vit: ViT, pixels, method: str, label: int | None = None) -> ModelRelevance:
    """Token relevance of one image for `method` (one of `MODEL_METHODS`) and class `label`
    (an index; None = the top class). `pixels`: a (1, 3, H, W) preprocessed tensor, or
    anything `ViT.to_pixels` takes for one image. The model is never modified (gradients
    come from `torch.autograd.grad`; no parameter's ``.grad`` is touched)."""
    if method not in MODEL_METHODS:
        raise ValueError(f"method {method!r} is not computed from the model; choose one of {', '.join(MODEL_METHODS)}")
    if vit.head is None:
        raise ValueError(f"{method} explains a class logit, but model {vit.source!r} has no classification head; "
                         "use rollout, attention or attention-flow")
    x = vit.to_pixels(pixels)
    if x.shape[0] != 1:
        raise ValueError(f"model_relevance explains one image at a time, got a batch of {x.shape[0]}")
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone()
        run = {"legrad": _legrad, "attnlrp": _attnlrp, "gradcam": _gradcam}[method]
        values, c, logit = run(vit, x, label)
    return ModelRelevance(method, c, values.detach().to(torch.float64).cpu().numpy(), float(logit.detach()))


def _class_of(vit: ViT, logits: torch.Tensor, label) -> int:
    K = logits.shape[-1]
    if label is None:
        return int(logits[0].argmax())
    c = int(label)
    if not 0 <= c < K:
        raise ValueError(f"class index {c} is out of range; this model has classes 0…{K - 1}")
    return c


# ----------------------------------------------------------------------------- LeGrad

def _legrad(vit: ViT, x: torch.Tensor, label):
    z = vit.embed(x).z  # z0 (1, T, D)
    attns, scores = [], []
    for block in vit.blocks:
        out = block.forward_explicit(z)
        attns.append(out.attn)  # A_l (1, H, T, T)
        scores.append(vit.forward_head(vit.norm(out.x)))  # s^l = head(LN(z_l)), (1, K)
        z = out.x
    c = _class_of(vit, scores[-1], label)
    per_layer = []
    for l, (a, s) in enumerate(zip(attns, scores)):
        # ∂s^l_c/∂A_l: the layer's own score w.r.t. its own attention (later layers play no part)
        (g,) = torch.autograd.grad(s[0, c], a, retain_graph=l < len(attns) - 1)
        per_layer.append(g[0].clamp(min=0).mean(dim=0).mean(dim=0))  # ReLU, mean over heads, then query rows → (T,)
    return torch.stack(per_layer), c, scores[-1][0, c]  # (L, T)


# ----------------------------------------------------------------------------- Grad-CAM

def _gradcam(vit: ViT, x: torch.Tensor, label):
    z = vit.embed(x).z  # (1, T, D)
    for block in vit.blocks[:-1]:
        z = block(z)
    last = vit.blocks[-1]
    feats = last.norm1(z)  # F = LN1(z_{L-1}), what the last attention reads: (1, T, D)
    a, _ = last.attn.forward_explicit(feats)
    z = z + last.ls1(a)
    z = z + last.ls2(last.mlp(last.norm2(z)))
    logits = vit.forward_head(vit.norm(z))  # (1, K)
    c = _class_of(vit, logits, label)
    (g,) = torch.autograd.grad(logits[0, c], feats)  # (1, T, D)
    p = vit.num_prefix_tokens
    alpha = g[0, p:].mean(dim=0)  # Grad-CAM Eq. 1: gradients averaged over the N patch positions, (D,)
    cam = torch.relu(feats[0] @ alpha)  # Eq. 2: ReLU(Σ_k α_k F_k), (T,)
    return cam, c, logits[0, c]


# ----------------------------------------------------------------------------- AttnLRP

def _half(t: torch.Tensor) -> torch.Tensor:
    """t itself, with half its gradient: the uniform rule for one factor of a product."""
    return 0.5 * t + 0.5 * t.detach()


def _layer_norm_identity(norm: torch.nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm with its std held constant (AttnLRP Prop. 3.4 / identity rule, Eq. 9)."""
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps).detach() * norm.weight + norm.bias


def _gate(act: str, x: torch.Tensor) -> torch.Tensor:
    """act(x) / x for the elementwise activations here, all of the form x·gate(x)."""
    if act == "gelu":
        return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if act == "gelu_tanh":
        return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    if act == "quick_gelu":
        return torch.sigmoid(1.702 * x)
    return (x > 0).to(x.dtype)  # relu


def _lrp_block(block, act: str, z: torch.Tensor) -> torch.Tensor:
    attn = block.attn
    q, k, v = attn.heads(_layer_norm_identity(block.norm1, z))  # each (1, H, T, d)
    scores = (_half(q) @ _half(k).transpose(-2, -1)) * attn.scale  # uniform rule on q·kᵀ
    a = scores.softmax(dim=-1)  # Prop. 3.1 is gradient × input of the softmax: the plain gradient
    z = z + block.ls1(attn.merge(_half(a) @ _half(v)))  # uniform rule on A·v; residual sum: ε-rule
    h = block.mlp.fc1(_layer_norm_identity(block.norm2, z))
    h = h * _gate(act, h).detach()  # identity rule on the activation
    return z + block.ls2(block.mlp.fc2(h))


def _lrp_forward(vit: ViT, x: torch.Tensor):
    """z0 (1, T, D) and the logits (1, K) of the pass whose gradient carries AttnLRP's rules."""
    grid = vit.grid_for(*x.shape[-2:])
    patch = vit.patch_embed.proj(patchify(x, vit.cfg.patch_size))  # (1, N, D): a linear map, ε-rule
    z0 = torch.cat(vit.prefix_tokens(1) + [patch], dim=1) + vit.position_embeddings(grid)  # (1, T, D)
    z = z0
    for block in vit.blocks:
        z = _lrp_block(block, vit.cfg.act, z)
    return z0, vit.forward_head(_layer_norm_identity(vit.norm, z))


def _attnlrp(vit: ViT, x: torch.Tensor, label):
    x = x.requires_grad_(True)
    z0, logits = _lrp_forward(vit, x)
    c = _class_of(vit, logits, label)
    gx, gz = torch.autograd.grad(logits[0, c], (x, z0))  # modified gradients: relevance = input ⊙ gradient
    p = vit.num_prefix_tokens
    pixel_relevance = patchify(x * gx, vit.cfg.patch_size)[0].sum(dim=-1)  # Σ over each patch's C·P·P values: (N,)
    prefix = torch.cat([t[0] for t in vit.prefix_tokens(1)], dim=0) if p else z0.new_zeros(0, z0.shape[-1])
    prefix_relevance = (prefix * gz[0, :p]).sum(dim=-1)  # (p,) the prefix tokens' own share
    return torch.cat([prefix_relevance, pixel_relevance]).detach(), c, logits[0, c]


__all__ = ["MODEL_METHODS", "ModelRelevance", "model_relevance"]
