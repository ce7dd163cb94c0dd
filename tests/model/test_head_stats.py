"""Head statistics against plain-loop references and hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from model.head_stats import (
    ArtifactTokens,
    artifact_tokens,
    attention_entropy,
    mean_attention_distance,
    patch_distances,
    prefix_attention,
    token_norms,
)


def random_attentions(seed, L=2, H=3, T=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(L, H, T, T))
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- entropy


def ref_entropy(a):
    L, H, T, _ = a.shape
    out = np.zeros((L, H))
    for l in range(L):
        for h in range(H):
            total = 0.0
            for i in range(T):
                total += -sum(v * math.log(v) for v in a[l, h, i] if v > 0)
            out[l, h] = total / T
    return out


def test_entropy_uniform_is_log_T_and_one_hot_is_zero():
    T = 9
    uniform = np.full((2, 3, T, T), 1.0 / T)
    np.testing.assert_allclose(attention_entropy(uniform), math.log(T), rtol=1e-12)
    one_hot = np.zeros((2, 3, T, T))
    one_hot[..., 0] = 1.0  # 0·ln 0 must count as 0, not NaN
    np.testing.assert_array_equal(attention_entropy(one_hot), np.zeros((2, 3)))


def test_entropy_matches_loops_with_zeros():
    a = random_attentions(0)
    a[0, 1, :, :3] = 0.0
    a /= a.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(attention_entropy(a), ref_entropy(a), rtol=1e-12)
    # float32 input: same value to float32 precision
    np.testing.assert_allclose(attention_entropy(a.astype(np.float32)), ref_entropy(a), rtol=1e-5)


def test_entropy_mixes_heads_per_query_mean():
    # Head 0: query 0 uniform over 4, others one-hot → mean entropy ln(4)/4.
    a = np.zeros((1, 1, 4, 4))
    a[0, 0, 0] = 0.25
    a[0, 0, 1:, 0] = 1.0
    np.testing.assert_allclose(attention_entropy(a), [[math.log(4) / 4]])


# ----------------------------------------------------------------------------- distance


def ref_distance(a, grid, P, p):
    L, H, T, _ = a.shape
    h, w = grid
    out = np.zeros((L, H))
    for l in range(L):
        for hd in range(H):
            acc = 0.0
            for i in range(p, T):
                ri, ci = divmod(i - p, w)
                mass = sum(a[l, hd, i, j] for j in range(p, T))
                s = 0.0
                for j in range(p, T):
                    rj, cj = divmod(j - p, w)
                    yi, xi = (ri + 0.5) * P, (ci + 0.5) * P
                    yj, xj = (rj + 0.5) * P, (cj + 0.5) * P
                    s += a[l, hd, i, j] / mass * math.sqrt((yi - yj) ** 2 + (xi - xj) ** 2)
                acc += s
            out[l, hd] = acc / (T - p)
    return out


@pytest.mark.parametrize("p", [0, 1])
def test_distance_uniform_2x2_grid_by_hand(p):
    # From any patch of a 2×2 grid with P = 16: distances 0, 16, 16, 16√2 → mean 8 + 4√2.
    T = p + 4
    a = np.full((1, 2, T, T), 1.0 / T)  # uniform including the CLS column: dropped, renormalised
    np.testing.assert_allclose(mean_attention_distance(a, (2, 2), 16, p), 8 + 4 * math.sqrt(2))


def test_distance_self_attention_is_zero_and_neighbour_is_one_patch():
    T = 1 + 6
    a = np.zeros((2, 1, T, T))
    a[0, 0, np.arange(T), np.arange(T)] = 1.0  # every token attends to itself
    a[1, 0, 0, 0] = 1.0
    for i in range(6):  # on a 2×3 grid, patch i looks at its horizontal neighbour
        r, c = divmod(i, 3)
        a[1, 0, 1 + i, 1 + r * 3 + (c + 1 if c < 2 else c - 1)] = 1.0
    got = mean_attention_distance(a, (2, 3), 14, 1)
    np.testing.assert_allclose(got, [[0.0], [14.0]])


def test_distance_matches_loops_on_non_square_grid():
    p, grid = 2, (2, 3)
    a = random_attentions(1, L=2, H=2, T=p + 6)
    np.testing.assert_allclose(
        mean_attention_distance(a, grid, 16, p), ref_distance(a, grid, 16, p), rtol=1e-12
    )


def test_distance_rectangular_patches_and_distance_matrix():
    d = patch_distances((2, 2), (10, 20))
    np.testing.assert_allclose(d[0], [0, 20, 10, math.hypot(10, 20)])
    np.testing.assert_allclose(d, d.T)


def test_distance_query_with_no_patch_mass_is_left_out():
    T = 1 + 4
    a = np.zeros((1, 1, T, T))
    a[0, 0, :, 0] = 1.0  # every patch query looks at CLS only
    a[0, 0, 1, :] = 0.0
    a[0, 0, 1, 2] = 1.0  # except patch 0, which looks at patch 1 (one patch right, P = 16)
    np.testing.assert_allclose(mean_attention_distance(a, (2, 2), 16, 1), [[16.0]])
    a[0, 0, 1, :] = 0.0
    a[0, 0, 1, 0] = 1.0
    assert np.isnan(mean_attention_distance(a, (2, 2), 16, 1)).all()


# ----------------------------------------------------------------------------- prefix mass


def test_prefix_attention_matches_loops():
    p = 2
    a = random_attentions(2, L=2, H=3, T=p + 4)
    got = prefix_attention(a, p)
    for l in range(2):
        for h in range(3):
            expected = sum(sum(a[l, h, i, :p]) for i in range(p, p + 4)) / 4
            assert got[l, h] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(prefix_attention(a, 0), np.zeros((2, 3)))


# ----------------------------------------------------------------------------- norms / artifacts


def test_token_norms_match_loops():
    x = np.random.default_rng(3).normal(size=(3, 5, 4))
    got = token_norms(x)
    for l in range(3):
        for t in range(5):
            assert got[l, t] == pytest.approx(math.sqrt(sum(v * v for v in x[l, t])))


def _planted_stream(p=1, grid=(6, 5), planted=((1, 2), (4, 0), (5, 4)), seed=4):
    """[L+1, T, D] with patch norms ≈ 1 and three patches at norm 10 in the last layer."""
    rng = np.random.default_rng(seed)
    h, w = grid
    T, D = p + h * w, 8
    x = rng.normal(size=(3, T, D))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    x *= rng.uniform(0.9, 1.1, size=(3, T, 1))
    for r, c in planted:
        x[-1, p + r * w + c] *= 10.0
    x[-1, :p] *= 50.0  # huge prefix norms must not count: prefix tokens are never candidates
    return x


def test_artifact_tokens_find_planted_high_norm_patches():
    p, grid = 2, (6, 5)
    planted = ((1, 2), (4, 0), (5, 4))
    x = _planted_stream(p, grid, planted)
    found = artifact_tokens(x, p, layer=-1, grid=grid)
    assert isinstance(found, ArtifactTokens)
    assert found.layer == 2
    assert [tuple(rc) for rc in found.positions] == list(planted)
    np.testing.assert_array_equal(found.patch_indices, [r * 5 + c for r, c in planted])
    np.testing.assert_array_equal(found.token_indices, found.patch_indices + p)
    np.testing.assert_allclose(found.norms, np.linalg.norm(x[-1, found.token_indices], axis=-1))
    assert found.norm_map.shape == grid
    norms = found.norm_map.ravel()
    mad = np.median(np.abs(norms - np.median(norms)))
    assert found.threshold == pytest.approx(np.median(norms) + 3.5 * 1.4826 * mad)
    assert (found.norms > found.threshold).all()
    # Layer 0 has no planted tokens.
    assert artifact_tokens(x, p, layer=0, grid=grid).token_indices.size == 0


def test_artifact_tokens_square_grid_inferred_and_equal_norms_give_none():
    x = np.ones((2, 1 + 16, 4))
    found = artifact_tokens(x, 1)
    assert found.patch_indices.size == 0 and found.positions.shape == (0, 2)
    x[1, 1 + 5] *= 3.0  # MAD is 0 here: the mean-deviation fallback still flags it
    found = artifact_tokens(x, 1)
    assert [tuple(rc) for rc in found.positions] == [(1, 1)]


# ----------------------------------------------------------------------------- validation


A = random_attentions(5, L=2, H=2, T=5)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: attention_entropy(A[None]), "drop the batch axis"),
        (lambda: attention_entropy(-A), "pre-softmax"),
        (lambda: mean_attention_distance(A, (2, 3), 16), "grid (2, 3) has 6 patches"),
        (lambda: mean_attention_distance(A, (2, 2), 0), "patch_size must be a positive"),
        (lambda: mean_attention_distance(A, (2, 2), 16, 7), "num_prefix_tokens must be in [0, 4]"),
        (lambda: prefix_attention(A, 5), "num_prefix_tokens"),
        (lambda: token_norms(np.ones((2, 3))), "[L+1, T, D]"),
        (lambda: artifact_tokens(np.ones((2, 1 + 6, 3)), 1), "pass grid=trace.grid"),
        (lambda: artifact_tokens(np.ones((2, 5, 3)), 1, layer=2), "layer=2 is out of range"),
        (lambda: artifact_tokens(np.ones((2, 5, 3)), 1, z_thresh=0), "z_thresh must be a positive"),
    ],
)
def test_errors_name_value_and_fix(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)
