"""model.sanity: the cascading model-randomisation check (Adebayo et al. 2018)."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from model import Preprocessor, ViT, ViTConfig, randomisation_check
from model.explain import CLASS_METHODS, METHODS, explain
from model.sanity import cascade, ranks, reinitialise, spearman


@pytest.fixture()
def classifier(tiny_vit):
    tiny_vit.preprocessor = Preprocessor(resize_to=(24, 24))
    return tiny_vit


@pytest.fixture()
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8))


def test_spearman_equals_pandas():
    """pandas' average ranks and Pearson correlation as the reference (its own spearman needs scipy)."""
    rng = np.random.default_rng(0)
    for a, b in [(rng.random(49), rng.random(49)), (rng.integers(0, 4, 30), rng.integers(0, 3, 30))]:  # with ties
        np.testing.assert_array_equal(ranks(a), pd.Series(a).rank(method="average").to_numpy())
        expected = pd.Series(a).rank().corr(pd.Series(b).rank())
        assert spearman(a, b) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])
    assert spearman(np.arange(5), np.arange(5)) == pytest.approx(1.0)
    assert np.isnan(spearman(np.ones(5), np.arange(5)))


def test_cascade_reaches_every_parameter(classifier):
    model = copy.deepcopy(classifier)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = [name for name, _ in cascade(model)]
    assert names == ["head", "block 2", "block 1", "block 0", "embeddings"]
    generator = torch.Generator().manual_seed(0)
    for _, parts in cascade(model):
        reinitialise(parts, generator)
    unchanged = [k for k, v in model.state_dict().items() if torch.equal(v, before[k]) and v.abs().sum() > 0
                 and not (v == 1).all()]  # parameters re-initialised to 1 (LayerNorm, LayerScale) may equal
    assert unchanged == []


def test_check_follows_the_cascade_and_leaves_the_model_alone(classifier, image):
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    result = randomisation_check(classifier, image, seed=3)
    assert all(torch.equal(v, before[k]) for k, v in classifier.state_dict().items())
    assert result.steps == ("trained", "head", "block 2", "block 1", "block 0", "embeddings")
    assert result.methods == METHODS
    c = result.class_index
    assert c == int(classifier(classifier.to_pixels([image]))[0].argmax())
    for m in METHODS:  # step 0: the trained model's maps; step j: the maps of an independently randomised copy
        np.testing.assert_allclose(result.maps[m][0], explain(classifier, image, m, label=c).map, atol=1e-6)
        assert result.rank_correlation[m][0] == pytest.approx(1.0)
    model, generator = copy.deepcopy(classifier), torch.Generator().manual_seed(3)
    for j, (_, parts) in enumerate(cascade(model), start=1):
        reinitialise(parts, generator)
        for m in METHODS:
            expected = explain(model, image, m, label=c).map
            np.testing.assert_allclose(result.maps[m][j], expected, atol=1e-6)
            assert result.rank_correlation[m][j] == pytest.approx(spearman(result.maps[m][0], expected), abs=1e-6)


def test_the_head_moves_class_maps_but_not_attention(classifier, image):
    result = randomisation_check(classifier, image)
    head = result.steps.index("head")
    for m in ("attention", "rollout"):  # the head is not in their maps: the same map, correlation 1
        np.testing.assert_array_equal(result.maps[m][head], result.maps[m][0])
    for m in CLASS_METHODS:  # gradients flow from the (now random) head
        assert not np.allclose(result.maps[m][head], result.maps[m][0])


def test_headless_models_check_the_other_methods(image):
    torch.manual_seed(0)
    vit = ViT(ViTConfig(image_size=(24, 24), patch_size=6, embed_dim=12, depth=2, num_heads=2, mlp_dim=12)).eval()
    vit.preprocessor = Preprocessor(resize_to=(24, 24))
    result = randomisation_check(vit, image)
    assert result.steps == ("trained", "block 1", "block 0", "embeddings") and result.class_index is None
    assert set(result.methods) == set(METHODS) - set(CLASS_METHODS)
    with pytest.raises(ValueError, match="method 'magic' is unknown"):
        randomisation_check(vit, image, methods=["magic"])
