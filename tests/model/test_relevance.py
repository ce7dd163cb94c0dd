"""model.relevance: LeGrad, AttnLRP and Grad-CAM against plain-loop references, and AttnLRP
against lxt's explicit implementation of the paper's rules (the authors' own library)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from model.relevance import MODEL_METHODS, model_relevance
from model.vit import patchify


@pytest.fixture()
def vit64(tiny_vit):
    """The tiny classifier (LayerScale, 2 registers) in float64, so references compare tightly."""
    return tiny_vit.double()


def _pixels(vit, seed=3):
    H, W = vit.cfg.image_size
    return torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _stream(vit, x, upto):
    """z_l for l = upto (the input of block `upto`), without gradients."""
    with torch.no_grad():
        z = vit.embed(x).z
        for block in vit.blocks[:upto]:
            z = block(z)
    return z


# ----------------------------------------------------------------------------- LeGrad

def _legrad_reference(vit, x, c):
    """E^l[j] = mean over heads h and query rows i of max(0, ∂s^l_c/∂A_l[h, i, j]), each A_l a fresh leaf."""
    out = []
    for l, block in enumerate(vit.blocks):
        z = _stream(vit, x, l)
        q, k, v = block.attn.heads(block.norm1(z))
        a = ((q @ k.transpose(-2, -1)) * block.attn.scale).softmax(-1).detach().requires_grad_(True)
        y = z + block.ls1(block.attn.merge(a @ v.detach()))
        y = y + block.ls2(block.mlp(block.norm2(y)))
        s = vit.forward_head(vit.norm(y))[0, c]
        (g,) = torch.autograd.grad(s, a)
        H, T = g.shape[1], g.shape[-1]
        e = np.zeros(T)
        for j in range(T):
            e[j] = sum(max(0.0, float(g[0, h, i, j])) for h in range(H) for i in range(T)) / (H * T)
        out.append(e)
    return np.stack(out)


def test_legrad_equals_the_plain_loop(vit64):
    x = _pixels(vit64)
    found = model_relevance(vit64, x, "legrad", label=2)
    assert found.class_index == 2 and found.values.shape == (vit64.cfg.depth, vit64.num_prefix_tokens + 16)
    np.testing.assert_allclose(found.values, _legrad_reference(vit64, x, 2), rtol=1e-10, atol=1e-14)


def test_legrad_top_class_is_the_models(vit64):
    x = _pixels(vit64, seed=5)
    with torch.no_grad():
        top = int(vit64(x)[0].argmax())
    assert model_relevance(vit64, x, "legrad").class_index == top


# ----------------------------------------------------------------------------- Grad-CAM

def test_gradcam_equals_the_plain_loop(vit64):
    x = _pixels(vit64)
    c, p = 1, vit64.num_prefix_tokens
    last = vit64.blocks[-1]
    z = _stream(vit64, x, len(vit64.blocks) - 1)
    feats = last.norm1(z).detach().requires_grad_(True)  # the tokens the last attention reads
    y = z + last.ls1(last.attn(feats))
    y = y + last.ls2(last.mlp(last.norm2(y)))
    (g,) = torch.autograd.grad(vit64.forward_head(vit64.norm(y))[0, c], feats)
    feats = feats.detach()
    T, D = feats.shape[1:]
    alpha = [sum(float(g[0, t, k]) for t in range(p, T)) / (T - p) for k in range(D)]  # Eq. 1
    ref = [max(0.0, sum(alpha[k] * float(feats[0, t, k]) for k in range(D))) for t in range(T)]  # Eq. 2
    found = model_relevance(vit64, x, "gradcam", label=c)
    np.testing.assert_allclose(found.values, ref, rtol=1e-10, atol=1e-13)
    assert (found.values >= 0).all() and found.values.shape == (T,)


# ----------------------------------------------------------------------------- AttnLRP

def _lxt_explicit(monkeypatch):
    """lxt's explicit rule functions, imported without lxt/__init__.py (which imports torchvision
    and transformers model patches that this test does not need)."""
    spec = importlib.util.find_spec("lxt")
    if spec is None:
        pytest.skip("lxt is not installed (requirements-dev.txt)")
    root = Path(spec.origin).parent
    for name, path in (("lxt", root), ("lxt.explicit", root / "explicit")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        monkeypatch.setitem(sys.modules, name, package)
    for name in ("lxt.explicit.functional", "lxt.explicit.rules"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module("lxt.explicit.functional"), importlib.import_module("lxt.explicit.rules")


def _lxt_attnlrp(vit, x, c, lf, rules, eps=1e-12):
    """AttnLRP of our ViT written with lxt's explicit rules: every op whose relevance rule matters
    is an lxt function (ε-rule linear and sums, Prop. 3.1 softmax, Prop. 3.3 matmul, Prop. 3.4
    LayerNorm, identity rule for GELU and constant scalings). Returns the input's relevance."""
    x = x.detach().clone().requires_grad_(True)
    lin = lambda m, t: lf.linear_epsilon(t, m.weight, m.bias, eps)  # noqa: E731
    ln = lambda m, t: lf.layer_norm_grad_fn.apply(t, m.weight, m.bias, m.eps, eps)  # noqa: E731
    grid = vit.grid_for(*x.shape[-2:])
    patches = lin(vit.patch_embed.proj, patchify(x, vit.cfg.patch_size))
    tokens = torch.cat(vit.prefix_tokens(1) + [patches], dim=1)
    z = lf.add2(tokens, vit.position_embeddings(grid).expand_as(tokens), False, eps)
    H, d = vit.cfg.num_heads, vit.cfg.head_dim
    for block in vit.blocks:
        T, D = z.shape[1:]
        qkv = lin(block.attn.qkv, ln(block.norm1, z)).reshape(1, T, 3, H, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = rules.identity(lambda t: t * block.attn.scale, q)
        a = lf.softmax(lf.matmul(q, k.transpose(-2, -1), False, eps), -1)
        out = lf.matmul(a, v, False, eps).transpose(1, 2).reshape(1, T, D)
        update = rules.identity(block.ls1, lin(block.attn.proj, out))
        z = lf.add2(z, update, False, eps)
        h = rules.identity(block.mlp.act, lin(block.mlp.fc1, ln(block.norm2, z)))
        z = lf.add2(z, rules.identity(block.ls2, lin(block.mlp.fc2, h)), False, eps)
    logits = lin(vit.head, ln(vit.norm, z)[:, 0])
    start = torch.zeros_like(logits)
    start[0, c] = logits[0, c].detach()  # relevance starts as y_c
    logits.backward(start)
    return x.grad[0]


def test_attnlrp_equals_lxt_explicit_rules(vit64, monkeypatch):
    lf, rules = _lxt_explicit(monkeypatch)
    x = _pixels(vit64)
    c, p = 3, vit64.num_prefix_tokens
    ref = _lxt_attnlrp(vit64, x, c, lf, rules)  # (3, H, W) relevance of every input value
    ref_patches = patchify(ref[None], vit64.cfg.patch_size)[0].sum(-1).numpy()
    found = model_relevance(vit64, x, "attnlrp", label=c)
    np.testing.assert_allclose(found.values[p:], ref_patches, rtol=1e-7, atol=1e-9 * np.abs(ref_patches).max())
    with torch.no_grad():
        assert found.logit == pytest.approx(float(vit64(x)[0][0, c]), rel=1e-12)


def test_attnlrp_is_not_the_plain_gradient(vit64):
    """The rules change the backward pass: the relevance differs from gradient × input."""
    x = _pixels(vit64).requires_grad_(True)
    (g,) = torch.autograd.grad(vit64(x)[0][0, 0], x)
    plain = patchify((x * g).detach(), vit64.cfg.patch_size)[0].sum(-1).numpy()
    found = model_relevance(vit64, x.detach(), "attnlrp", label=0).values[vit64.num_prefix_tokens:]
    assert not np.allclose(found, plain, rtol=1e-3)


# ----------------------------------------------------------------------------- the entry point

def test_bad_requests_say_what_to_do(vit64):
    from model import ViT, ViTConfig

    with pytest.raises(ValueError, match="not computed from the model"):
        model_relevance(vit64, _pixels(vit64), "rollout")
    with pytest.raises(ValueError, match="out of range"):
        model_relevance(vit64, _pixels(vit64), "gradcam", label=99)
    headless = ViT(ViTConfig(image_size=(12, 12), patch_size=6, embed_dim=12, depth=1, num_heads=2, mlp_dim=24,
                             num_classes=0))
    with pytest.raises(ValueError, match="no classification head"):
        model_relevance(headless, torch.zeros(1, 3, 12, 12), "legrad")
    with pytest.raises(ValueError, match="one image at a time"):
        model_relevance(vit64, torch.zeros(2, 3, 24, 24, dtype=torch.float64), "gradcam")


@pytest.mark.parametrize("method", MODEL_METHODS)
def test_the_model_is_left_untouched(tiny_vit, method):
    before = {k: v.clone() for k, v in tiny_vit.state_dict().items()}
    model_relevance(tiny_vit, torch.randn(1, 3, 24, 24), method)
    assert all(p.grad is None for p in tiny_vit.parameters())
    for k, v in tiny_vit.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
