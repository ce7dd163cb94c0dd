"""One transparent Vision Transformer whose forward pass reads like the equations.

    z0  = [x_cls; x_dist?; x_reg…; x_p¹E; …; x_pᴺE] + E_pos      (CLIP: then LN_pre)
    z'l = z(l-1) + γ1 · MSA(LN(z(l-1)))
    zl  = z'l + γ2 · MLP(LN(z'l))
    y   = head(LN(zL)[cls])

Attention is written out (q kᵀ/√d, softmax, ·v) and *returned* on the trace path — no
hooks, so a fused kernel can never make it disappear (jacobgil/vit-explain #23). The plain
`forward` uses PyTorch's fused scaled-dot-product attention and is tested equal to it.
Symbols: B batch, T tokens, N patches, D width, H heads, d head width, P patch, L layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ViTConfig
from .trace import Trace


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping P×P patches, row-major, each flattened (C, P, P).

    (B, C, H, W) -> (B, N, C·P·P) with N = (H/P)·(W/P). Pixels beyond the last whole patch
    are dropped, exactly as a stride-P convolution drops them.
    """
    B, C, H, W = x.shape
    P = patch_size
    h, w = H // P, W // P
    x = x[:, :, : h * P, : w * P]
    x = x.reshape(B, C, h, P, w, P)  # (B, C, h, P, w, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, h, w, C, P, P)
    return x.reshape(B, h * w, C * P * P)  # (B, N, C·P·P)


class PatchEmbed(nn.Module):
    """x_p E: flatten each patch and project it with one Linear layer (the paper's E).

    A stride-P Conv2d with kernel P is the same map; `tests/model/test_vit.py` proves it.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.proj = nn.Linear(cfg.in_chans * cfg.patch_size**2, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = patchify(x, self.patch_size)  # (B, N, C·P·P)
        return self.proj(patches), patches  # (B, N, D), (B, N, C·P·P)


@dataclass
class AttentionParts:
    """What the explicit attention computed, per head."""

    attn: torch.Tensor  # (B, H, T, T) A = softmax(q kᵀ/√d), rows sum to 1
    q: torch.Tensor  # (B, H, T, d)
    k: torch.Tensor  # (B, H, T, d)
    v: torch.Tensor  # (B, H, T, d)


class Attention(nn.Module):
    """Multi-head self-attention: A = softmax(q kᵀ/√d), out = concat_h(A v) W_O.

    `forward` is the fast path (PyTorch's fused kernel, A never materialised);
    `forward_explicit` writes the same math out and returns A, q, k and v.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.scale = cfg.head_dim**-0.5
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim, bias=cfg.qkv_bias)  # [W_Q; W_K; W_V]
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)  # W_O

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v per head from the normed stream: (B, T, D) -> 3 × (B, H, T, d)."""
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim)  # (B, T, 3, H, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, d)
        return q, k, v

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        """concat_h(·) W_O: (B, H, T, d) -> (B, T, D)."""
        B, H, T, d = out.shape
        return self.proj(out.transpose(1, 2).reshape(B, T, H * d))  # (B, T, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(x)  # each (B, H, T, d)
        return self.merge(F.scaled_dot_product_attention(q, k, v))  # fused kernel, same math; (B, T, D)

    def forward_explicit(self, x: torch.Tensor,
                         attn_out: torch.Tensor | None = None) -> tuple[torch.Tensor, AttentionParts]:
        """attn_out: where to write A when no gradient is needed (the trace's own buffer, so the
        attention is stored once instead of allocated and then copied)."""
        q, k, v = self.heads(x)  # each (B, H, T, d)
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, T, T)
        if attn_out is not None and not torch.is_grad_enabled():
            attn = torch.softmax(scores, dim=-1, out=attn_out)  # (B, H, T, T)
        else:
            attn = scores.softmax(dim=-1)  # (B, H, T, T)
        return self.merge(attn @ v), AttentionParts(attn, q, k, v)  # (B, T, D)


def activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if name == "quick_gelu":
        return QuickGELU()
    return nn.ReLU()


class QuickGELU(nn.Module):
    """x·σ(1.702x), the GELU approximation used by CLIP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    """The feed-forward network: Linear D→4D, activation, Linear 4D→D, on every token alone."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.mlp_dim)
        self.act = activation(cfg.act)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.embed_dim)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden units act(x W1 + b1): (…, D) -> (…, mlp_dim)."""
        return self.act(self.fc1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.hidden(x))


class LayerScale(nn.Module):
    """γ ⊙ x with a learned per-channel γ (Touvron et al. 2021, CaiT; used by DINOv2)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class BlockOutput(NamedTuple):
    """What one block did on the explicit path (shapes for B images, T tokens, width D)."""

    x: torch.Tensor  # (B, T, D) z_l, the stream after the block
    attn: torch.Tensor  # (B, H, T, T) A = softmax(q kᵀ/√d) of every head
    q: torch.Tensor  # (B, H, T, d)
    k: torch.Tensor  # (B, H, T, d)
    v: torch.Tensor  # (B, H, T, d)
    attn_update: torch.Tensor  # (B, T, D) γ1·MSA(LN(z_{l-1})), what attention added
    mlp_update: torch.Tensor  # (B, T, D) γ2·MLP(LN(z'_l)), what the MLP added


class Block(nn.Module):
    """A pre-norm transformer block: two residual lines."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ls1 = LayerScale(cfg.embed_dim) if cfg.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = MLP(cfg)
        self.ls2 = LayerScale(cfg.embed_dim) if cfg.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fast path (fused attention), nothing captured: (B, T, D) -> (B, T, D)."""
        x = x + self.ls1(self.attn(self.norm1(x)))  # z'l = z(l-1) + γ1·MSA(LN(z(l-1)))
        x = x + self.ls2(self.mlp(self.norm2(x)))  # zl = z'l + γ2·MLP(LN(z'l))
        return x

    def forward_explicit(self, x: torch.Tensor, attn_out: torch.Tensor | None = None) -> BlockOutput:
        """The same two lines with attention written out; returns A, q, k, v and both updates."""
        a, parts = self.attn.forward_explicit(self.norm1(x), attn_out)  # (B, T, D)
        attn_update = self.ls1(a)  # (B, T, D)
        x = x + attn_update  # z'l = z(l-1) + γ1·MSA(LN(z(l-1)))
        mlp_update = self.ls2(self.mlp(self.norm2(x)))  # (B, T, D)
        x = x + mlp_update  # zl = z'l + γ2·MLP(LN(z'l))
        return BlockOutput(x, parts.attn, parts.q, parts.k, parts.v, attn_update, mlp_update)


class Embedded(NamedTuple):
    """The embedding step's output and its parts."""

    z: torch.Tensor  # (B, T, D) z0 = [prefix tokens; x_p E] + E_pos, then LN_pre when cfg.pre_norm
    patch_embeddings: torch.Tensor  # (B, N, D) x_p E, before positions
    patches: torch.Tensor  # (B, N, C·P·P) the flattened pixel patches
    pos_embed: torch.Tensor  # (T, D) E_pos as added (resized to this grid)
    grid: tuple[int, int]  # (h, w)


@dataclass
class TraceBuffers:
    """CPU tensors the trace fills layer by layer (shapes as in `Trace`)."""

    attentions: torch.Tensor  # (B, L, H, T, T)
    queries: torch.Tensor  # (B, L, H, T, d)
    keys: torch.Tensor
    values: torch.Tensor
    hidden_states: torch.Tensor  # (B, L+1, T, D)
    attn_residuals: torch.Tensor  # (B, L, T, D)
    mlp_residuals: torch.Tensor

    @classmethod
    def allocate(cls, B, L, H, T, D, d, dtype) -> "TraceBuffers":
        def new(*shape):
            return torch.empty(shape, dtype=dtype)

        return cls(new(B, L, H, T, T), new(B, L, H, T, d), new(B, L, H, T, d), new(B, L, H, T, d),
                   new(B, L + 1, T, D), new(B, L, T, D), new(B, L, T, D))

    def store(self, l: int, out: BlockOutput) -> None:
        """Copy block l's results into the buffers (onto the CPU)."""
        with torch.no_grad():
            if out.attn.data_ptr() != self.attentions[:, l].data_ptr():  # not written in place
                self.attentions[:, l].copy_(out.attn)
            self.queries[:, l].copy_(out.q)
            self.keys[:, l].copy_(out.k)
            self.values[:, l].copy_(out.v)
            self.hidden_states[:, l + 1].copy_(out.x)
            self.attn_residuals[:, l].copy_(out.attn_update)
            self.mlp_residuals[:, l].copy_(out.mlp_update)


class ViT(nn.Module):
    """The Vision Transformer. Names follow timm: patch_embed, cls_token, pos_embed, blocks, norm, head."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        gh, gw = cfg.native_grid
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if cfg.class_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, D)) if cfg.distill_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, D)) if cfg.num_register_tokens else None
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.pos_embed_prefix + gh * gw, D))
        self.norm_pre = nn.LayerNorm(D, eps=cfg.norm_eps) if cfg.pre_norm else None  # CLIP's pre_layrnorm
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(D, eps=cfg.norm_eps)
        head_in = {"cls_patch_mean": 2 * D, "clip": cfg.projection_dim}.get(cfg.head_type, D)
        self.head = nn.Linear(head_in, cfg.num_classes, bias=cfg.head_type != "clip") if cfg.has_head else None
        self.head_proj = nn.Linear(D, cfg.projection_dim, bias=False) if cfg.has_head and cfg.head_type == "clip" else None
        self.head_dist = nn.Linear(D, cfg.num_classes) if cfg.has_head and cfg.head_type == "cls_dist_mean" else None
        self.preprocessor = None  # set by the loaders: a model.preprocess.Preprocessor
        self.source = cfg.name
        self.init_weights()

    # ---- set-up -------------------------------------------------------------------------
    def init_weights(self, std: float = 0.02) -> None:
        for p in (self.cls_token, self.dist_token, self.reg_token, self.pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def num_prefix_tokens(self) -> int:
        return self.cfg.num_prefix_tokens

    @property
    def device(self) -> torch.device:
        return self.pos_embed.device

    # ---- embeddings ---------------------------------------------------------------------
    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        P = self.cfg.patch_size
        if height < P or width < P:
            raise ValueError(
                f"input of {height}×{width} px is smaller than one {P}×{P} patch; "
                f"give images of at least {P} px per side"
            )
        return height // P, width // P

    def position_embeddings(self, grid: tuple[int, int]) -> torch.Tensor:
        """E_pos for every token of a (h, w) grid: (T, D), zero rows for prefix tokens without one.

        At the native grid the stored table is used as is; otherwise the patch part is resized
        bicubically (align_corners=False), as DINO/DINOv2 and transformers do, so the model
        runs on other — also non-square — input sizes.
        """
        cfg = self.cfg
        D = cfg.embed_dim
        npe = cfg.pos_embed_prefix
        prefix_pe = self.pos_embed[0, :npe]  # (npe, D)
        patch_pe = self.pos_embed[0, npe:]  # (h0·w0, D)
        if tuple(grid) != cfg.native_grid:
            h0, w0 = cfg.native_grid
            table = patch_pe.reshape(1, h0, w0, D).permute(0, 3, 1, 2)  # (1, D, h0, w0)
            table = F.interpolate(
                table.float(), size=tuple(grid), mode="bicubic", align_corners=False,
                antialias=cfg.pos_interp_antialias,
            ).to(patch_pe.dtype)
            patch_pe = table.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], D)  # (N, D)
        no_pe = patch_pe.new_zeros(cfg.num_prefix_tokens - npe, D)  # e.g. registers
        return torch.cat([prefix_pe, no_pe, patch_pe], dim=0)  # (T, D)

    def prefix_tokens(self, batch: int) -> list[torch.Tensor]:
        tokens = [t for t in (self.cls_token, self.dist_token, self.reg_token) if t is not None]
        return [t.expand(batch, -1, -1) for t in tokens]

    def embed(self, pixels: torch.Tensor) -> Embedded:
        """z0 = [prefix tokens; x_p E] + E_pos, with its parts (see `Embedded`).

        With cfg.pre_norm (CLIP) z0 = LN_pre([prefix tokens; x_p E] + E_pos): the stream the first
        block reads, which is what transformers reports as hidden_states[0] for CLIP, so the
        trace's hidden_states keep transformers' convention.
        """
        B, _, Hpx, Wpx = pixels.shape
        grid = self.grid_for(Hpx, Wpx)
        patch_emb, patches = self.patch_embed(pixels)  # (B, N, D), (B, N, C·P·P)
        pos = self.position_embeddings(grid)  # (T, D)
        z = torch.cat(self.prefix_tokens(B) + [patch_emb], dim=1) + pos  # (B, T, D)
        if self.norm_pre is not None:
            z = self.norm_pre(z)  # (B, T, D)
        return Embedded(z, patch_emb, patches, pos, grid)  # z0 (B, T, D)

    # ---- head ---------------------------------------------------------------------------
    def forward_head(self, z_normed: torch.Tensor) -> torch.Tensor | None:
        """Logits from LN(zL): (B, T, D) -> (B, K), or None without a head."""
        if self.head is None:
            return None
        cls = z_normed[:, 0]
        if self.cfg.head_type == "cls_dist_mean":  # DeiT: average the CLS and distillation heads
            return (self.head(cls) + self.head_dist(z_normed[:, 1])) / 2
        if self.cfg.head_type == "cls_patch_mean":  # Dinov2ForImageClassification
            patch_mean = z_normed[:, self.num_prefix_tokens :].mean(dim=1)
            return self.head(torch.cat([cls, patch_mean], dim=-1))
        if self.cfg.head_type == "clip":  # scaled cosine with the prompts' text embeddings (rows of W)
            return self.head(F.normalize(self.head_proj(cls), dim=-1))
        return self.head(cls)

    # ---- one block's MLP, on demand -------------------------------------------------------
    def mlp_hidden(self, layer: int, z_mid) -> np.ndarray:
        """The hidden MLP units of block `layer`: act(LN(z'_l) W1 + b1), float32 numpy (…, mlp_dim).

        z_mid is the mid-block stream z'_l = z_(l-1) + γ1·MSA(LN(z_(l-1))) of one token (D,) or
        of many (…, D), as numpy or a tensor; from a trace it is exact:
        `hidden_states[b, layer, t] + attn_residuals[b, layer, t]`. Only this block's LayerNorm
        and first MLP layer run (microseconds), not the model, so the trace need not store the
        (T, mlp_dim) hidden units of every layer.
        """
        L, D = self.cfg.depth, self.cfg.embed_dim
        if not -L <= int(layer) < L:
            raise ValueError(f"layer {layer} is out of range; this model has layers 0…{L - 1}")
        block = self.blocks[int(layer)]
        weight = block.mlp.fc1.weight
        z = z_mid if isinstance(z_mid, torch.Tensor) else torch.tensor(np.asarray(z_mid))  # a copy: inputs may be read-only
        if z.shape[-1:] != (D,):
            raise ValueError(f"z_mid has shape {tuple(z.shape)}; expected (…, {D}): the stream of one or more tokens")
        with torch.inference_mode():
            hidden = block.mlp.hidden(block.norm2(z.to(weight.device, weight.dtype)))  # (…, mlp_dim)
        return hidden.float().cpu().numpy()

    # ---- passes -------------------------------------------------------------------------
    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """LN(zL) with the fused attention kernel and nothing captured: (B, T, D)."""
        z = self.embed(pixels).z  # (B, T, D)
        for block in self.blocks:
            z = block(z)  # (B, T, D)
        return self.norm(z)  # (B, T, D)

    def forward(self, pixels: torch.Tensor, labels: torch.Tensor | None = None):
        """(logits, loss): the fast path. loss = CE(logits, labels) when labels are given."""
        logits = self.forward_head(self.forward_features(pixels))
        loss = None
        if labels is not None:
            if logits is None:
                raise ValueError(f"model {self.source!r} has no classification head, so it has no loss")
            loss = F.cross_entropy(logits, labels)
        return logits, loss

    def to_pixels(self, images) -> torch.Tensor:
        """A list of PIL images (preprocessed here) or a (B, 3, H, W) tensor, on the model's device."""
        if isinstance(images, torch.Tensor):
            if images.ndim == 3:
                images = images[None]
            if images.ndim != 4 or images.shape[1] != self.cfg.in_chans:
                raise ValueError(
                    f"pixel tensor has shape {tuple(images.shape)}; expected (B, {self.cfg.in_chans}, H, W), "
                    "already preprocessed"
                )
            return images.to(self.device, self.pos_embed.dtype)
        if not isinstance(images, (list, tuple)):
            images = [images]
        if self.preprocessor is None:
            raise ValueError("this model has no preprocessor; pass a preprocessed (B, 3, H, W) tensor")
        return self.preprocessor(images).to(self.device)

    def trace(self, images, grad_class=None) -> Trace:
        """Run the explicit pass and return every intermediate (see `Trace`), on the CPU.

        grad_class: None (no gradients), "top" (each image's top class), an int, or one int
        per image: also returns ∂y_c/∂A_l for every layer l, each paired with its own layer.
        """
        pixels = self.to_pixels(images)  # (B, C, H, W)
        want_grad = grad_class is not None
        if want_grad and self.head is None:
            raise ValueError(
                f"model {self.source!r} has no classification head, so there is no class logit to "
                "differentiate; class-specific maps need a classifier"
            )
        with torch.set_grad_enabled(want_grad), torch.inference_mode(not want_grad):
            emb = self.embed(pixels)  # z0 (B, T, D) and its parts
            buf, z, kept = self._trace_blocks(emb.z, keep_graph=want_grad)  # buffers (B, L, …), zL (B, T, D)
            z_normed = self.norm(z)  # (B, T, D)
            logits = self.forward_head(z_normed)  # (B, K) or None
            classes = self._grad_classes(logits, grad_class) if want_grad else None  # (B,)
            grads = self._attention_grads(logits, classes, kept) if want_grad else None  # (B, L, H, T, T)
        return self._to_trace(pixels, emb, buf, z_normed, logits, classes, grads)

    def _trace_blocks(self, z: torch.Tensor, keep_graph: bool):
        """The explicit blocks on z0 (B, T, D): (buffers filled, zL (B, T, D), each layer's A if keep_graph).

        Results go straight into preallocated CPU buffers, layer by layer, so each layer's
        temporaries are freed at once and nothing is copied twice (stacking per-layer lists at
        the end cost about as much as the attention itself). Without gradients on the CPU the
        softmax writes A into its buffer directly.
        """
        B, T, D = z.shape
        cfg = self.cfg
        buf = TraceBuffers.allocate(B, cfg.depth, cfg.num_heads, T, D, cfg.head_dim, z.dtype)
        with torch.no_grad():
            buf.hidden_states[:, 0].copy_(z)  # z0
        in_place = not keep_graph and z.device.type == "cpu"
        kept = []  # with gradients: each layer's A (B, H, T, T), still in the graph
        for l, block in enumerate(self.blocks):
            out = block.forward_explicit(z, attn_out=buf.attentions[:, l] if in_place else None)
            buf.store(l, out)
            if keep_graph:
                kept.append(out.attn)
            z = out.x  # (B, T, D)
        return buf, z, kept

    def _attention_grads(self, logits: torch.Tensor, classes: torch.Tensor, attentions: list) -> torch.Tensor:
        """∂y_c/∂A_l for every layer l, on the CPU: (B, L, H, T, T).

        Samples are independent, so one gradient of the summed chosen logits gives every image
        its own; layer l's gradient comes from layer l's tensor (vit-explain #6). autograd.grad
        (not .backward) leaves the parameters' .grad untouched: the app shares one model
        between sessions and must never mutate it.
        """
        grads = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), attentions)  # L × (B, H, T, T)
        out = torch.empty((grads[0].shape[0], len(grads), *grads[0].shape[1:]), dtype=grads[0].dtype)
        for l, g in enumerate(grads):
            out[:, l].copy_(g)  # (B, H, T, T)
        return out

    def _to_trace(self, pixels, emb: Embedded, buf: TraceBuffers, z_normed, logits, classes, grads) -> Trace:
        """Everything as a `Trace` of detached CPU tensors."""

        def cpu(x):
            return None if x is None else x.detach().cpu()

        cfg, pre = self.cfg, self.preprocessor
        return Trace(
            attentions=buf.attentions,
            queries=buf.queries,
            keys=buf.keys,
            values=buf.values,
            hidden_states=buf.hidden_states,
            attn_residuals=buf.attn_residuals,
            mlp_residuals=buf.mlp_residuals,
            last_hidden_state=cpu(z_normed),
            patches=cpu(emb.patches),
            patch_embeddings=cpu(emb.patch_embeddings),
            pos_embed=cpu(emb.pos_embed),
            logits=cpu(logits),
            pixel_values=cpu(pixels),
            grid=tuple(emb.grid),
            patch_size=cfg.patch_size,
            num_prefix_tokens=self.num_prefix_tokens,
            prefix_names=cfg.prefix_names(),
            labels=cfg.class_names,
            image_mean=tuple(pre.image_mean) if pre is not None else (0.0, 0.0, 0.0),
            image_std=tuple(pre.image_std) if pre is not None else (1.0, 1.0, 1.0),
            attention_grads=grads,
            grad_classes=cpu(classes),
        )

    def _grad_classes(self, logits: torch.Tensor, grad_class) -> torch.Tensor:
        B, K = logits.shape
        if isinstance(grad_class, str):
            if grad_class != "top":
                raise ValueError(f"grad_class={grad_class!r}; expected 'top', a class index or one per image")
            return logits.argmax(dim=-1)
        classes = torch.as_tensor(grad_class, dtype=torch.long, device=logits.device).reshape(-1)
        if classes.numel() == 1:
            classes = classes.expand(B)
        if classes.numel() != B:
            raise ValueError(f"{classes.numel()} classes given for {B} images; give one, or one per image")
        bad = [int(c) for c in classes if not 0 <= int(c) < K]
        if bad:
            raise ValueError(f"class index {bad[0]} is out of range; this model has classes 0…{K - 1}")
        return classes.clone()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def conv_patch_weight(weight: torch.Tensor) -> torch.Tensor:
    """A Conv2d patch kernel (D, C, P, P) as the equivalent Linear weight (D, C·P·P)."""
    return weight.reshape(weight.shape[0], -1)
