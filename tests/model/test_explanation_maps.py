"""model.explain.explanation_maps: the one entry point of the CLI, the app and the bench."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.attribution import attention_rollout, chefer_relevance, gradient_rollout, patch_map, query_attention
from model.explain import CLASS_METHODS, METHOD_TITLES, METHODS, default_methods, explain, explanation_maps


@pytest.fixture()
def one_image(tiny_vit):
    t = tiny_vit.trace(torch.randn(1, 3, 24, 30, generator=torch.Generator().manual_seed(2)), grad_class=1).numpy()
    return t.attentions[0], t.attention_grads[0], t.num_prefix_tokens, t.grid


def test_maps_equal_the_attribution_functions(one_image):
    A, G, p, grid = one_image
    kw = dict(fusion="max", discard_ratio=0.5, residual_alpha=0.7, start_layer=1)
    maps = explanation_maps(A, G, num_prefix_tokens=p, grid=grid, methods=METHODS, query=4, layer=1, head=2, **kw)
    assert list(maps) == list(METHODS)
    np.testing.assert_array_equal(maps["attention"], patch_map(query_attention(A, 1, 2, 4), grid, p))
    np.testing.assert_array_equal(maps["rollout"], patch_map(attention_rollout(A, "max", 0.5, 0.7, 1, p)[4], grid, p))
    np.testing.assert_array_equal(maps["gradient-rollout"],
                                  patch_map(gradient_rollout(A, G, 0.5, 0.7, 1, p)[0], grid, p))  # the CLS row
    np.testing.assert_array_equal(maps["chefer"], patch_map(chefer_relevance(A, G, 1)[0], grid, p))
    assert all(m.shape == grid for m in maps.values())


def test_default_methods_follow_the_gradients(one_image):
    A, G, p, grid = one_image
    assert list(explanation_maps(A, G, num_prefix_tokens=p, grid=grid)) == ["rollout", *CLASS_METHODS]
    assert list(explanation_maps(A, None, num_prefix_tokens=p, grid=grid)) == ["rollout"]
    assert default_methods(False) == ("rollout",)
    assert set(METHOD_TITLES) == set(METHODS)


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


def test_explain_uses_the_same_maps(tiny_vit):
    from PIL import Image

    tiny_vit.preprocessor = __import__("model").Preprocessor(resize_to=(24, 24))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8))
    for method in METHODS:
        result = explain(tiny_vit, img, method, label=2 if method in CLASS_METHODS else None)
        t = tiny_vit.trace([img], grad_class=2 if method in CLASS_METHODS else None).numpy()
        G = t.attention_grads[0] if t.attention_grads is not None else None
        (ref,) = explanation_maps(t.attentions[0], G, num_prefix_tokens=t.num_prefix_tokens, grid=t.grid,
                                  methods=[method]).values()
        np.testing.assert_allclose(result.map, ref, atol=1e-7)
