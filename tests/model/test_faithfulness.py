"""model.faithfulness: deletion/insertion against a plain-loop reference of the protocol, and its invariants."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model import ViT, ViTConfig, deletion_insertion
from model.faithfulness import baseline_input, evaluate_maps, patch_order, seeded_orders, step_counts


def reference_curves(vit, x, relevance, c, base, steps=None):
    """The protocol written plainly: one forward per k, patches copied one by one in a loop."""
    _, _, H, W = x.shape
    P = vit.cfg.patch_size
    h, w = H // P, W // P
    N = h * w
    flat = [float(v) for v in np.ravel(relevance)]
    order = sorted(range(N), key=lambda i: (-flat[i], i))  # highest first, ties by patch index
    steps = list(range(N + 1)) if steps is None else steps
    deletion, insertion = [], []
    for k in steps:
        deleted, inserted = x.clone(), base.clone()
        for i in order[:k]:
            r, col = divmod(i, w)
            rows, cols = slice(r * P, (r + 1) * P), slice(col * P, (col + 1) * P)
            deleted[:, :, rows, cols] = base[:, :, rows, cols]
            inserted[:, :, rows, cols] = x[:, :, rows, cols]
        with torch.no_grad():
            deletion.append(float(torch.softmax(vit(deleted)[0][0].double(), -1)[c]))
            insertion.append(float(torch.softmax(vit(inserted)[0][0].double(), -1)[c]))
    fractions = [k / N for k in steps]

    def auc(ys):
        return sum((fractions[i + 1] - fractions[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(ys) - 1))

    return np.array(deletion), np.array(insertion), auc(deletion), auc(insertion)


@pytest.fixture()
def image():
    return torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(3))


def test_matches_the_plain_loop_reference(tiny_vit, image):
    relevance = np.random.default_rng(1).random((4, 4))
    result = deletion_insertion(tiny_vit, image, relevance, random_orders=0)
    c = int(tiny_vit(image)[0].argmax())
    d, i, d_auc, i_auc = reference_curves(tiny_vit, image, relevance, c, torch.zeros_like(image))
    assert result.class_index == c and result.random is None
    np.testing.assert_allclose(result.map.deletion, d, atol=1e-6)
    np.testing.assert_allclose(result.map.insertion, i, atol=1e-6)
    assert result.map.deletion_auc == pytest.approx(d_auc, abs=1e-6)
    assert result.map.insertion_auc == pytest.approx(i_auc, abs=1e-6)
    np.testing.assert_array_equal(result.map.fractions, np.arange(17) / 16)


def test_curves_start_and_end_at_the_clean_probability(tiny_vit, image):
    result = deletion_insertion(tiny_vit, image, np.random.default_rng(2).random(16), label=2, random_orders=2)
    with torch.no_grad():
        p_clean = float(torch.softmax(tiny_vit(image)[0][0].double(), -1)[2])
    assert result.class_index == 2 and result.clean_probability == pytest.approx(p_clean, abs=1e-7)
    for curves in (result.map, result.random):
        assert curves.deletion[0] == pytest.approx(p_clean, abs=1e-6)  # nothing deleted yet
        assert curves.insertion[-1] == pytest.approx(p_clean, abs=1e-6)  # everything restored
        assert curves.deletion[-1] == pytest.approx(curves.insertion[0], abs=1e-6)  # both: the all-baseline input


def test_ties_go_by_patch_index(tiny_vit, image):
    np.testing.assert_array_equal(patch_order(np.zeros((4, 4))), np.arange(16))
    np.testing.assert_array_equal(patch_order([1.0, 3.0, 3.0, 0.0, 3.0]), [1, 2, 4, 0, 3])
    flat = deletion_insertion(tiny_vit, image, np.ones((4, 4)), random_orders=0)
    c = flat.class_index
    d, i, _, _ = reference_curves(tiny_vit, image, np.ones(16), c, torch.zeros_like(image))
    np.testing.assert_allclose(flat.map.deletion, d, atol=1e-6)  # the loop takes patches 0, 1, 2, … in turn
    np.testing.assert_allclose(flat.map.insertion, i, atol=1e-6)


def test_random_reference_is_the_mean_of_seeded_orders(tiny_vit, image):
    result = deletion_insertion(tiny_vit, image, np.zeros(16), label=1, random_orders=3)
    orders = seeded_orders(16, 3)
    np.testing.assert_array_equal(orders[2], np.random.default_rng(2).permutation(16))
    curves = []
    for order in orders:
        relevance = np.empty(16)
        relevance[order] = np.arange(16, 0, -1)  # a map whose order is exactly this permutation
        curves.append(reference_curves(tiny_vit, image, relevance, 1, torch.zeros_like(image)))
    np.testing.assert_allclose(result.random.deletion, np.mean([c[0] for c in curves], axis=0), atol=1e-6)
    np.testing.assert_allclose(result.random.insertion, np.mean([c[1] for c in curves], axis=0), atol=1e-6)
    assert result.random.deletion_auc == pytest.approx(np.mean([c[2] for c in curves]), abs=1e-6)
    assert result.random.insertion_auc == pytest.approx(np.mean([c[3] for c in curves]), abs=1e-6)
    assert deletion_insertion(tiny_vit, image, np.zeros(16)).random is not None  # 10 orders by default


def test_more_than_256_patches_take_256_equal_steps():
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=(36, 36), patch_size=2, embed_dim=16, depth=1, num_heads=2, mlp_dim=16, num_classes=3)
    vit = ViT(cfg).eval()
    np.testing.assert_array_equal(step_counts(256), np.arange(257))
    steps = step_counts(324)  # 18×18 patches
    assert len(steps) == 257 and steps[0] == 0 and steps[-1] == 324
    np.testing.assert_array_equal(steps, [(i * 324) // 256 for i in range(257)])
    assert (np.diff(steps) >= 1).all()
    x = torch.randn(1, 3, 36, 36, generator=torch.Generator().manual_seed(0))
    relevance = np.random.default_rng(0).random((18, 18))
    result = deletion_insertion(vit, x, relevance, label=0, random_orders=0)
    d, i, d_auc, i_auc = reference_curves(vit, x, relevance, 0, torch.zeros_like(x), steps=list(steps))
    np.testing.assert_array_equal(result.map.steps, steps)
    np.testing.assert_allclose(result.map.deletion, d, atol=1e-6)
    np.testing.assert_allclose(result.map.insertion, i, atol=1e-6)
    assert result.map.deletion_auc == pytest.approx(d_auc, abs=1e-6)
    assert result.map.insertion_auc == pytest.approx(i_auc, abs=1e-6)


def plain_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of (C, H, W), written out: a 1-D kernel along x, then along y, reflected borders."""
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    out = np.empty_like(img, dtype=np.float64)
    C, H, W = img.shape
    padded = np.pad(img, ((0, 0), (0, 0), (radius, radius)), mode="reflect")
    tmp = np.zeros((C, H, W))
    for col in range(W):
        tmp[:, :, col] = (padded[:, :, col:col + 2 * radius + 1] * kernel).sum(-1)
    padded = np.pad(tmp, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    for row in range(H):
        out[:, row, :] = (padded[:, row:row + 2 * radius + 1, :] * kernel[None, :, None]).sum(1)
    return out


def test_blur_baseline(tiny_vit, image):
    blurred = baseline_input(image, "blur", 6)
    np.testing.assert_allclose(blurred[0].numpy(), plain_blur(image[0].numpy().astype(np.float64), 6.0), atol=1e-5)
    assert torch.equal(baseline_input(image, "mean", 6), torch.zeros_like(image))
    relevance = np.random.default_rng(5).random((4, 4))
    result = deletion_insertion(tiny_vit, image, relevance, label=3, baseline="blur", random_orders=0)
    d, i, d_auc, i_auc = reference_curves(tiny_vit, image, relevance, 3, blurred)
    np.testing.assert_allclose(result.map.deletion, d, atol=1e-6)
    np.testing.assert_allclose(result.map.insertion, i, atol=1e-6)
    assert result.baseline == "blur" and result.map.insertion_auc == pytest.approx(i_auc, abs=1e-6)


def test_several_maps_share_one_pass(tiny_vit, image):
    rng = np.random.default_rng(7)
    maps = {"a": rng.random((4, 4)), "b": rng.random((4, 4))}
    together, rand, c, _ = evaluate_maps(tiny_vit, image, maps, random_orders_count=1)
    for name, m in maps.items():
        alone = deletion_insertion(tiny_vit, image, m, label=c, random_orders=0).map
        np.testing.assert_allclose(together[name].deletion, alone.deletion, atol=1e-7)
        assert together[name].insertion_auc == pytest.approx(alone.insertion_auc, abs=1e-9)


def test_class_by_name_and_json(tiny_vit, image):
    tiny_vit.cfg.class_names = ["cat", "dog", "bird", "fish"]
    result = deletion_insertion(tiny_vit, image, np.arange(16.0), label="Bird", random_orders=1)
    assert result.class_index == 2 and result.label == "bird"
    data = result.to_json()
    assert set(data) == {"label", "class_index", "deletion_auc", "insertion_auc", "random_deletion_auc",
                         "random_insertion_auc"}


def test_bad_input_says_what_to_do(tiny_vit, image):
    with pytest.raises(ValueError, match="has 9 values but this input has 4×4 = 16 patches"):
        deletion_insertion(tiny_vit, image, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="baseline 'noise' is unknown; choose one of mean, blur"):
        deletion_insertion(tiny_vit, image, np.zeros(16), baseline="noise")
    with pytest.raises(ValueError, match="NaN"):
        deletion_insertion(tiny_vit, image, np.full(16, np.nan))
    with pytest.raises(ValueError, match="expected one preprocessed image"):
        deletion_insertion(tiny_vit, torch.zeros(2, 3, 24, 24), np.zeros(16))
    headless = ViT(ViTConfig(image_size=(24, 24), patch_size=6, embed_dim=12, depth=1, num_heads=2, mlp_dim=12))
    with pytest.raises(ValueError, match="no classification head, so there is no class probability"):
        deletion_insertion(headless, image, np.zeros(16))
