"""Our ViT equals transformers' eager implementation, family by family, within 1e-4 on small models
(every family, native and other input sizes); realistic sizes: test_parity_vit_s.py."""
from __future__ import annotations

import pytest
import torch

from model import load_model

from parity import assert_parity, reference_outputs



@pytest.mark.parametrize(
    "kind, has_logits, prefix",
    [("vit", True, 1), ("vit-base", False, 1), ("deit", True, 2), ("dinov2", False, 1),
     ("dinov2-cls", True, 1), ("dinov2-reg", False, 5)],
)
def test_native_size_matches_transformers(hf_models, kind, has_logits, prefix):
    directory, ref = hf_models[kind]
    model = load_model(str(directory), device="cpu")
    assert model.num_prefix_tokens == prefix
    H, W = model.cfg.image_size
    pixels = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    trace = model.trace(pixels)
    assert_parity(trace, reference_outputs(ref, pixels), has_logits)
    # the fast fused path gives the same logits / features as the explicit trace path
    with torch.no_grad():
        if has_logits:
            torch.testing.assert_close(model(pixels)[0], trace.logits, atol=1e-5, rtol=0)
        else:
            torch.testing.assert_close(model.forward_features(pixels), trace.last_hidden_state, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["dinov2", "dinov2-reg"])
@pytest.mark.parametrize("size", [(21, 35), (42, 28)])
def test_dinov2_other_non_square_size_matches_transformers(hf_models, kind, size):
    """Position embeddings resized bicubically (antialiased for the registers model), as transformers does."""
    directory, ref = hf_models[kind]
    model = load_model(str(directory), device="cpu")
    pixels = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2))
    trace = model.trace(pixels)
    assert trace.grid == (size[0] // 7, size[1] // 7)
    assert trace.attentions.shape[-1] == model.num_prefix_tokens + trace.grid[0] * trace.grid[1]
    assert_parity(trace, reference_outputs(ref, pixels), has_logits=False)


def test_vit_interpolated_positions_match_transformers(hf_models):
    directory, ref = hf_models["vit"]
    model = load_model(str(directory), device="cpu")
    pixels = torch.randn(1, 3, 48, 40, generator=torch.Generator().manual_seed(3))
    trace = model.trace(pixels)
    with torch.no_grad():
        out = ref(pixel_values=pixels, output_attentions=True, output_hidden_states=True, interpolate_pos_encoding=True)
    assert_parity(trace, out, has_logits=True)


def test_deit_prefix_is_cls_then_distillation(hf_models):
    directory, ref = hf_models["deit"]
    model = load_model(str(directory), device="cpu")
    assert model.cfg.prefix_names() == ["CLS", "DIST"]
    sd = ref.state_dict()
    torch.testing.assert_close(model.cls_token, sd["deit.embeddings.cls_token"])
    torch.testing.assert_close(model.dist_token, sd["deit.embeddings.distillation_token"])
    # both prefix tokens carry a position embedding; patches start at index 2
    trace = model.trace(torch.zeros(1, 3, 32, 32))
    torch.testing.assert_close(trace.pos_embed, sd["deit.embeddings.position_embeddings"][0])
    assert trace.token_names()[:3] == ["CLS", "DIST", "patch 0 (row 0, col 0)"]


def test_registers_get_no_position_embedding(hf_models):
    directory, _ = hf_models["dinov2-reg"]
    model = load_model(str(directory), device="cpu")
    trace = model.trace(torch.zeros(1, 3, 28, 28))
    assert model.cfg.prefix_names() == ["CLS", "REG0", "REG1", "REG2", "REG3"]
    assert trace.pos_embed.shape == (5 + 16, model.cfg.embed_dim)
    assert torch.count_nonzero(trace.pos_embed[1:5]) == 0
    assert torch.count_nonzero(trace.pos_embed[0]) > 0
