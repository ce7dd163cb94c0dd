"""Patch-embedding PCA and positional-embedding similarity against independent references."""
from __future__ import annotations

import math

import numpy as np
import pytest

from model.embedding_stats import patch_embedding_pca, pos_embed_similarity

# ----------------------------------------------------------------------------- PCA


def ref_pca(x, k):
    """PCA by eigen-decomposition of the covariance (not an SVD), with the same display rules."""
    xc = x - x.mean(axis=0)
    cov = xc.T @ xc
    vals, vecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(vals)[::-1][:k]
    vals, vecs = vals[order], vecs[:, order]
    for c in range(k):  # largest-magnitude loading positive
        if vecs[np.argmax(np.abs(vecs[:, c])), c] < 0:
            vecs[:, c] = -vecs[:, c]
    scores = xc @ vecs
    image = np.empty_like(scores)
    for c in range(k):
        lo, hi = scores[:, c].min(), scores[:, c].max()
        image[:, c] = (scores[:, c] - lo) / (hi - lo)
    return image, vals / np.trace(cov)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pca_matches_covariance_eigendecomposition(k):
    rng = np.random.default_rng(0)
    # Distinct variances per direction so the components are well separated.
    x = rng.normal(size=(20, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2]) @ np.linalg.qr(
        rng.normal(size=(6, 6))
    )[0]
    image, ratio = patch_embedding_pca(x, (4, 5), n_components=k)
    ref_image, ref_ratio = ref_pca(x, k)
    assert image.shape == (4, 5, k)
    np.testing.assert_allclose(image.reshape(20, k), ref_image, atol=1e-9)
    np.testing.assert_allclose(ratio, ref_ratio, rtol=1e-9)
    assert image.min() == 0.0 and image.max() == 1.0


def test_pca_planted_two_regions():
    # Left half of a 4×4 grid is one embedding, right half another, plus faint noise:
    # the first component splits the halves and explains nearly all the variance.
    rng = np.random.default_rng(1)
    D = 12
    left, right = rng.normal(size=D), rng.normal(size=D)
    grid = (4, 4)
    x = np.array([left if c < 2 else right for r in range(4) for c in range(4)])
    x = x + 1e-3 * rng.normal(size=x.shape)
    image, ratio = patch_embedding_pca(x, grid)
    first = image[..., 0]
    assert ratio[0] > 0.999 and ratio.sum() <= 1.0 + 1e-12
    assert np.ptp(first[:, :2]) < 0.01 and np.ptp(first[:, 2:]) < 0.01
    assert abs(first[:, :2].mean() - first[:, 2:].mean()) > 0.98


def test_pca_sign_is_deterministic():
    x = np.random.default_rng(2).normal(size=(9, 5))
    a, ra = patch_embedding_pca(x, (3, 3))
    # -X has the same principal axes; the sign rule fixes them to the same orientation, so
    # the scores negate and the colours invert exactly.
    b, rb = patch_embedding_pca(-x, (3, 3))
    np.testing.assert_allclose(b, 1.0 - a, atol=1e-12)
    np.testing.assert_allclose(ra, rb)
    # Reordering the patches reorders the colours and nothing else.
    perm = np.random.default_rng(3).permutation(9)
    d, _ = patch_embedding_pca(x[perm], (3, 3))
    np.testing.assert_allclose(d.reshape(9, 3), a.reshape(9, 3)[perm], atol=1e-12)
    c, _ = patch_embedding_pca(x + 7.0, (3, 3))  # centring removes any offset
    np.testing.assert_allclose(a, c, atol=1e-9)


def test_pca_drops_prefix_rows_and_handles_constant_component():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2 + 4, 3))
    x[:2] = 1e6  # prefix rows would dominate if not dropped
    a, _ = patch_embedding_pca(x, (2, 2), num_prefix_tokens=2)
    b, _ = patch_embedding_pca(x[2:], (2, 2))
    np.testing.assert_allclose(a, b)
    # Rank-1 data: components 2 and 3 carry no variance → shown as 0.5, ratio ≈ 0.
    line = np.outer(np.arange(4.0), [1.0, 2.0, 3.0])
    img, ratio = patch_embedding_pca(line, (2, 2))
    np.testing.assert_allclose(img[..., 1:], 0.5)
    np.testing.assert_allclose(ratio, [1.0, 0.0, 0.0], atol=1e-12)


# ----------------------------------------------------------------------------- positions


def ref_similarity(e):
    n = len(e)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            dot = sum(a * b for a, b in zip(e[i], e[j]))
            ni = math.sqrt(sum(a * a for a in e[i]))
            nj = math.sqrt(sum(b * b for b in e[j]))
            out[i, j] = dot / (ni * nj)
    return out


def test_pos_similarity_matches_loops_diagonal_one_symmetric():
    rng = np.random.default_rng(4)
    grid, p = (2, 3), 1
    pos = rng.normal(size=(p + 6, 5))
    sim = pos_embed_similarity(pos, grid, p)
    assert sim.shape == (2, 3, 2, 3)
    flat = sim.reshape(6, 6)
    np.testing.assert_allclose(flat, ref_similarity(pos[p:]), atol=1e-12)
    np.testing.assert_allclose(np.diag(flat), 1.0)
    np.testing.assert_allclose(flat, flat.T)
    # tile (r, c) holds position (r, c)'s similarity with every (r', c')
    np.testing.assert_allclose(sim[1, 2], flat[5].reshape(2, 3))


def test_pos_similarity_accepts_N_rows_and_missing_register_rows():
    rng = np.random.default_rng(5)
    patches = rng.normal(size=(4, 3))
    expected = pos_embed_similarity(patches, (2, 2), 0)
    # [T, D] with CLS + 4 registers (registers have zero rows, as the trace writes them)
    full = np.vstack([rng.normal(size=(1, 3)), np.zeros((4, 3)), patches])
    np.testing.assert_allclose(pos_embed_similarity(full, (2, 2), 5), expected)
    # [N + 1, D]: only CLS carries a position embedding
    np.testing.assert_allclose(pos_embed_similarity(full[[0, 5, 6, 7, 8]], (2, 2), 5), expected)
    np.testing.assert_allclose(pos_embed_similarity(patches, (2, 2), 5), expected)


def test_pos_similarity_grid_structure_of_2d_sinusoids():
    # 2-D sin-cos position embeddings: neighbours are more alike than far positions.
    h = w = 4
    freqs = 1.0 / (10.0 ** (np.arange(4) / 4))
    rows, cols = np.divmod(np.arange(h * w), w)
    pos = np.concatenate(
        [np.sin(rows[:, None] * freqs), np.cos(rows[:, None] * freqs),
         np.sin(cols[:, None] * freqs), np.cos(cols[:, None] * freqs)], axis=1
    )
    sim = pos_embed_similarity(pos, (h, w), 0)
    assert sim[1, 1, 1, 2] > sim[1, 1, 1, 3] and sim[1, 1, 2, 1] > sim[1, 1, 3, 1]


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: patch_embedding_pca(np.ones((1, 4, 3)), (2, 2)), "drop the batch axis"),
        (lambda: patch_embedding_pca(np.ones((4, 3)), (2, 3)), "grid (2, 3) has 6 patches"),
        (lambda: patch_embedding_pca(np.ones((4, 3)), (2, 2), n_components=4), "n_components must be in [1, 3]"),
        (lambda: patch_embedding_pca(np.full((4, 3), np.nan), (2, 2)), "NaN"),
        (lambda: pos_embed_similarity(np.ones((7, 3)), (2, 2), 1), "expected between N and N+p rows"),
        (lambda: pos_embed_similarity(np.ones((3, 3)), (2, 2), 1), "pos_embed has 3 rows"),
        (lambda: pos_embed_similarity(np.ones((4, 3)), (2, 2), -1), "num_prefix_tokens must be"),
    ],
)
def test_errors_name_value_and_fix(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)
