"""The ViT itself: the patch step, the fused path, the trace, and attention gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model import ViT, ViTConfig
from model.vit import patchify


def test_patchify_then_linear_equals_strided_conv():
    """lucidrains' teaching form (reshape + Linear) is the JAX reference's strided Conv2d."""
    torch.manual_seed(0)
    D, C, P = 10, 3, 4
    conv = torch.nn.Conv2d(C, D, kernel_size=P, stride=P)
    x = torch.randn(2, C, 12, 20)
    expected = conv(x).flatten(2).transpose(1, 2)  # (B, N, D) row-major over the grid
    linear = conv.weight.reshape(D, -1)
    got = patchify(x, P) @ linear.T + conv.bias
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # the dropped remainder (as a stride-P conv drops it)
    x_odd = torch.randn(1, C, 13, 22)
    torch.testing.assert_close(patchify(x_odd, P) @ linear.T + conv.bias,
                               conv(x_odd).flatten(2).transpose(1, 2), atol=1e-5, rtol=0)


def test_patch_order_is_row_major():
    x = torch.arange(2 * 3).float().repeat_interleave(4).reshape(2, 12).repeat_interleave(4, 0)  # (8, 12)
    patches = patchify(x[None, None], 4)  # (1, 6, 16): patch k holds value k everywhere
    assert patches.shape == (1, 6, 16)
    assert patches[0, :, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_trace_shapes_and_contract(tiny_vit):
    x = torch.randn(3, 3, 24, 36)
    t = tiny_vit.trace(x)
    B, L, H, D, p = 3, 3, 3, 24, 3
    N = (24 // 6) * (36 // 6)
    T = p + N
    assert t.grid == (4, 6) and t.num_prefix_tokens == p and t.patch_size == 6
    assert t.attentions.shape == (B, L, H, T, T)
    assert t.hidden_states.shape == (B, L + 1, T, D)
    assert t.patch_embeddings.shape == (B, N, D)
    assert t.pos_embed.shape == (T, D)
    assert t.queries.shape == t.keys.shape == t.values.shape == (B, L, H, T, D // H)
    assert t.logits.shape == (B, 4)
    assert t.pixel_values.shape == (B, 3, 24, 36)
    assert not t.attentions.requires_grad and t.attentions.device.type == "cpu"
    torch.testing.assert_close(t.attentions.sum(-1), torch.ones(B, L, H, T), atol=1e-5, rtol=0)
    assert (t.attentions >= 0).all()


def test_trace_internals_are_consistent(tiny_vit):
    """Every captured piece recombines into the next one exactly as the equations say."""
    t = tiny_vit.trace(torch.randn(2, 3, 24, 24))
    p = t.num_prefix_tokens
    # z0 = [prefix; x_p E] + E_pos
    torch.testing.assert_close(t.hidden_states[:, 0, p:], t.patch_embeddings + t.pos_embed[p:], atol=1e-6, rtol=0)
    # A = softmax(q kᵀ/√d)
    d = t.queries.shape[-1]
    torch.testing.assert_close(t.attentions, (t.queries @ t.keys.transpose(-2, -1) / d**0.5).softmax(-1),
                               atol=1e-6, rtol=0)
    # the residual stream: z_l = z_{l-1} + attn part + mlp part
    torch.testing.assert_close(t.hidden_states[:, 1:], t.hidden_states[:, :-1] + t.attn_residuals + t.mlp_residuals,
                               atol=1e-5, rtol=0)


def test_fused_forward_equals_explicit_trace(tiny_vit):
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        logits, loss = tiny_vit(x, labels=torch.tensor([1, 2]))
    t = tiny_vit.trace(x)
    torch.testing.assert_close(logits, t.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(loss, F.cross_entropy(t.logits, torch.tensor([1, 2])), atol=1e-5, rtol=0)


def forward_with_attention(model: ViT, x: torch.Tensor, layer: int, attn: torch.Tensor) -> torch.Tensor:
    """An independent forward that takes layer `layer`'s attention A as an input (for autograd)."""
    z = model.embed(x)[0]
    for i, blk in enumerate(model.blocks):
        h = blk.norm1(z)
        B, T, D = h.shape
        q, k, v = blk.attn.qkv(h).reshape(B, T, 3, blk.attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        a = attn if i == layer else (q @ k.transpose(-2, -1) * blk.attn.scale).softmax(-1)
        z = z + blk.ls1(blk.attn.proj((a @ v).transpose(1, 2).reshape(B, T, D)))
        z = z + blk.ls2(blk.mlp(blk.norm2(z)))
    return model.forward_head(model.norm(z))


def test_attention_gradients_match_autograd_layer_by_layer(tiny_vit):
    x = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(5))
    classes = [3, 1]
    t = tiny_vit.trace(x, grad_class=classes)
    assert t.attention_grads.shape == t.attentions.shape
    for name in ("attentions", "hidden_states", "queries", "attn_residuals", "attention_grads", "logits", "pos_embed"):
        assert not getattr(t, name).requires_grad, name  # a trace is plain data, with or without gradients
    assert t.grad_classes.tolist() == classes
    for layer in range(tiny_vit.cfg.depth):
        a = t.attentions[:, layer].clone().requires_grad_(True)
        logits = forward_with_attention(tiny_vit, x, layer, a)
        (g,) = torch.autograd.grad(logits[[0, 1], classes].sum(), a)
        torch.testing.assert_close(t.attention_grads[:, layer], g, atol=1e-6, rtol=1e-4)
    # the shared model is left untouched: no parameter gradients accumulate
    assert all(p.grad is None for p in tiny_vit.parameters())
    # vit-explain #6: pairing gradients in reverse layer order gives other numbers
    assert not torch.allclose(t.attention_grads, t.attention_grads.flip(1), atol=1e-6)


def test_attention_gradient_finite_difference(tiny_vit):
    """Directional derivative of the class logit along a random perturbation of A_1, in float64."""
    model = tiny_vit.double()
    x = torch.randn(1, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    pixels = x.to(torch.float64)
    t = model.trace(pixels, grad_class=2)
    direction = torch.randn(t.attentions[:, 1].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    eps = 1e-6
    a = t.attentions[:, 1]
    plus = forward_with_attention(model, pixels, 1, a + eps * direction)[0, 2]
    minus = forward_with_attention(model, pixels, 1, a - eps * direction)[0, 2]
    numeric = ((plus - minus) / (2 * eps)).item()
    analytic = (t.attention_grads[:, 1] * direction).sum().item()
    assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(analytic))


def test_top_class_and_bad_class(tiny_vit):
    x = torch.randn(2, 3, 24, 24)
    t = tiny_vit.trace(x, grad_class="top")
    assert t.grad_classes.tolist() == t.logits.argmax(-1).tolist()
    with pytest.raises(ValueError, match="out of range"):
        tiny_vit.trace(x, grad_class=9)
    with pytest.raises(ValueError, match="one per image"):
        tiny_vit.trace(x, grad_class=[0, 1, 2])


def test_headless_model_refuses_gradients_and_loss():
    model = ViT(ViTConfig(image_size=(16, 16), patch_size=8, embed_dim=8, depth=1, num_heads=2, mlp_dim=16)).eval()
    t = model.trace(torch.randn(1, 3, 16, 16))
    assert t.logits is None
    with pytest.raises(ValueError, match="no classification head"):
        model.trace(torch.randn(1, 3, 16, 16), grad_class=0)
    with pytest.raises(ValueError, match="no classification head"):
        model(torch.randn(1, 3, 16, 16), labels=torch.tensor([0]))


def test_position_embeddings_resize_only_off_grid(tiny_vit):
    native = tiny_vit.position_embeddings((4, 4))
    p = tiny_vit.num_prefix_tokens
    torch.testing.assert_close(native[:1], tiny_vit.pos_embed[0, :1])
    torch.testing.assert_close(native[p:], tiny_vit.pos_embed[0, 1:])
    resized = tiny_vit.position_embeddings((3, 7))
    assert resized.shape == (p + 21, tiny_vit.cfg.embed_dim)
    # a constant table stays constant under bicubic resizing (a sanity check of the reshape order)
    with torch.no_grad():
        tiny_vit.pos_embed[0, 1:] = torch.arange(tiny_vit.cfg.embed_dim).float()
    torch.testing.assert_close(tiny_vit.position_embeddings((3, 7))[p:],
                               torch.arange(tiny_vit.cfg.embed_dim).float().expand(21, -1), atol=1e-4, rtol=0)


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        ViTConfig(embed_dim=10, num_heads=3)
    with pytest.raises(ValueError, match="act="):
        ViTConfig(act="swish")
    with pytest.raises(ValueError, match="unknown ViTConfig fields"):
        ViTConfig.from_dict({"embed_dim": 8, "heads": 2})
    model = ViT(ViTConfig(image_size=(16, 16), patch_size=8, embed_dim=8, depth=1, num_heads=2, mlp_dim=16))
    with pytest.raises(ValueError, match="smaller than one 8×8 patch"):
        model.trace(torch.randn(1, 3, 4, 16))
    with pytest.raises(ValueError, match="expected \\(B, 3, H, W\\)"):
        model.trace(torch.randn(1, 1, 16, 16))
