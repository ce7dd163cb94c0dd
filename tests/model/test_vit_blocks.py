"""The block's two paths and the on-demand MLP hidden units (issue 9)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.vit import BlockOutput


def test_block_fast_path_equals_explicit_path(tiny_vit):
    z = tiny_vit.embed(torch.randn(2, 3, 24, 24)).z  # (B, T, D)
    with torch.no_grad():
        for block in tiny_vit.blocks:
            out = block.forward_explicit(z)
            assert isinstance(out, BlockOutput)
            torch.testing.assert_close(block(z), out.x, atol=1e-5, rtol=0)
            torch.testing.assert_close(out.x, z + out.attn_update + out.mlp_update, atol=1e-6, rtol=0)
            d = out.q.shape[-1]
            torch.testing.assert_close(out.attn, (out.q @ out.k.transpose(-2, -1) / d**0.5).softmax(-1),
                                       atol=1e-6, rtol=0)
            z = out.x


def test_mlp_hidden_equals_the_hidden_units_of_a_real_forward_pass(tiny_vit):
    """ViT.mlp_hidden(l, z'_l) from the trace equals what block l's MLP computed inside the pass."""
    x = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    seen = {}  # a hook here only *checks* the method; the model itself never uses hooks
    handles = [block.mlp.act.register_forward_hook(lambda m, i, o, l=l: seen.__setitem__(l, o.detach().clone()))
               for l, block in enumerate(tiny_vit.blocks)]
    try:
        t = tiny_vit.trace(x)
    finally:
        for h in handles:
            h.remove()
    for layer in range(tiny_vit.cfg.depth):
        z_mid = (t.hidden_states[:, layer] + t.attn_residuals[:, layer]).numpy()  # z'_l, (B, T, D)
        one = tiny_vit.mlp_hidden(layer, z_mid[1, 5])  # one token, numpy in
        assert isinstance(one, np.ndarray) and one.dtype == np.float32 and one.shape == (tiny_vit.cfg.mlp_dim,)
        np.testing.assert_allclose(one, seen[layer][1, 5].numpy(), atol=1e-5, rtol=0)
        every = tiny_vit.mlp_hidden(layer, torch.as_tensor(z_mid))  # every token, a tensor in
        np.testing.assert_allclose(every, seen[layer].numpy(), atol=1e-5, rtol=0)


def test_mlp_hidden_names_bad_input(tiny_vit):
    with pytest.raises(ValueError, match="out of range"):
        tiny_vit.mlp_hidden(3, np.zeros(24))
    with pytest.raises(ValueError, match=r"expected \(…, 24\)"):
        tiny_vit.mlp_hidden(0, np.zeros(23))
