"""model.explain.explanation_maps: the one entry point of the CLI, the app and the bench."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.attribution import attention_rollout, chefer_relevance, gradient_rollout, patch_map, query_attention
from model.attention_flow import attention_flow
from model.explain import (CLASS_METHODS, GRADIENT_METHODS, METHOD_DESCRIPTIONS, METHOD_TITLES, METHODS, MODEL_METHODS,
                           default_methods, explain, explanation_maps, legrad_map)
from model.relevance import model_relevance


PIXELS = torch.randn(1, 3, 24, 30, generator=torch.Generator().manual_seed(2))


@pytest.fixture()
def one_image(tiny_vit):
    t = tiny_vit.trace(PIXELS, grad_class=1).numpy()
    return t.attentions[0], t.attention_grads[0], t.num_prefix_tokens, t.grid


def test_maps_equal_the_attribution_functions(one_image, tiny_vit):
    A, G, p, grid = one_image
    kw = dict(fusion="max", discard_ratio=0.5, residual_alpha=0.7, start_layer=1)
    relevance = {m: model_relevance(tiny_vit, PIXELS, m, 1).values for m in MODEL_METHODS}
    maps = explanation_maps(A, G, num_prefix_tokens=p, grid=grid, methods=METHODS, query=4, layer=1, head=2,
                            relevance=relevance, **kw)
    assert list(maps) == list(METHODS)
    np.testing.assert_array_equal(maps["attention"], patch_map(query_attention(A, 1, 2, 4), grid, p))
    # the query's row alone (equal to that row of the whole R to 1e-12: tests/model/test_attribution.py)
    np.testing.assert_array_equal(maps["rollout"],
                                  patch_map(attention_rollout(A, "max", 0.5, 0.7, 1, p, query=4), grid, p))
    np.testing.assert_array_equal(maps["attention-flow"], patch_map(attention_flow(A, 4, "max", 0.7, 1, p), grid, p))
    for method in ("attnlrp", "gradcam"):
        np.testing.assert_array_equal(maps[method], patch_map(relevance[method], grid, p))
    legrad = patch_map(relevance["legrad"][1:].sum(0), grid, p)
    np.testing.assert_allclose(maps["legrad"], (legrad - legrad.min()) / (legrad.max() - legrad.min()), atol=1e-15)
    assert maps["legrad"].min() == 0 and maps["legrad"].max() == 1
    np.testing.assert_array_equal(maps["gradient-rollout"],
                                  patch_map(gradient_rollout(A, G, 0.5, 0.7, 1, p, query=0), grid, p))  # the CLS row
    np.testing.assert_array_equal(maps["chefer"], patch_map(chefer_relevance(A, G, 1)[0], grid, p))
    assert all(m.shape == grid for m in maps.values())


def test_default_methods_follow_the_gradients(one_image):
    A, G, p, grid = one_image
    assert list(explanation_maps(A, G, num_prefix_tokens=p, grid=grid)) == ["rollout", *GRADIENT_METHODS]
    assert list(explanation_maps(A, None, num_prefix_tokens=p, grid=grid)) == ["rollout"]
    assert default_methods(False) == ("rollout",)
    assert set(METHOD_TITLES) == set(METHODS) == set(METHOD_DESCRIPTIONS)
    assert set(CLASS_METHODS) == set(GRADIENT_METHODS) | set(MODEL_METHODS)
    from model import relevance

    assert relevance.MODEL_METHODS == MODEL_METHODS  # explain.py names them without importing torch


def test_legrad_map_of_a_constant_is_zero():
    np.testing.assert_array_equal(legrad_map(np.ones((2, 5)), 0, (2, 2), 1), np.zeros((2, 2)))


def test_start_layer_is_clamped_as_the_app_did(one_image):
    A, G, p, grid = one_image
    L = A.shape[0]
    a = explanation_maps(A, G, num_prefix_tokens=p, grid=grid, start_layer=L + 5)
    b = explanation_maps(A, G, num_prefix_tokens=p, grid=grid, start_layer=L - 1)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_bad_requests_say_what_to_do(one_image):
    A, _, p, grid = one_image
    with pytest.raises(ValueError, match="method 'magic' is unknown"):
        explanation_maps(A, None, num_prefix_tokens=p, grid=grid, methods=["magic"])
    with pytest.raises(ValueError, match="need the attention gradients"):
        explanation_maps(A, None, num_prefix_tokens=p, grid=grid, methods=["chefer"])
    with pytest.raises(ValueError, match="need the model: pass relevance"):
        explanation_maps(A, None, num_prefix_tokens=p, grid=grid, methods=["attnlrp"])


def test_explain_uses_the_same_maps(tiny_vit):
    from PIL import Image

    tiny_vit.preprocessor = __import__("model").Preprocessor(resize_to=(24, 24))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8))
    for method in METHODS:
        result = explain(tiny_vit, img, method, label=2 if method in CLASS_METHODS else None)
        t = tiny_vit.trace([img], grad_class=2 if method in GRADIENT_METHODS else None).numpy()
        G = t.attention_grads[0] if t.attention_grads is not None else None
        relevance = {method: model_relevance(tiny_vit, [img], method, 2).values} if method in MODEL_METHODS else None
        (ref,) = explanation_maps(t.attentions[0], G, num_prefix_tokens=t.num_prefix_tokens, grid=t.grid,
                                  methods=[method], relevance=relevance).values()
        np.testing.assert_allclose(result.map, ref, atol=1e-7)
        assert result.label_index == (2 if method in CLASS_METHODS else result.label_index)


def test_explain_says_when_a_model_has_no_head(tiny_vit):
    from model import ViT, ViTConfig

    headless = ViT(ViTConfig(image_size=(12, 12), patch_size=6, embed_dim=12, depth=1, num_heads=2, mlp_dim=24,
                             num_classes=0))
    for method in CLASS_METHODS:
        with pytest.raises(ValueError, match="has no classification head; use --method rollout"):
            explain(headless, torch.zeros(1, 3, 12, 12), method)
