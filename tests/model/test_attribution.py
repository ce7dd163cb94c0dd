"""Attribution math against a plain-loop reference written here, plus invariants and the
known bugs of jacobgil/vit-explain (#16 row normalisation, #6 gradient/layer pairing).

The reference works on Python lists with explicit loops, sharing no code with
model/attribution.py, and follows DESIGN.md "Attribution: exact definitions" literally.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from model.attribution import (
    all_heads_maps,
    all_layers_maps,
    attention_mass_mask,
    attention_rollout,
    chefer_relevance,
    fuse_heads,
    gradient_rollout,
    layer_head_grid,
    patch_map,
    query_attention,
)

# ----------------------------------------------------------------------------- helpers


def random_attentions(seed: int, L: int = 3, H: int = 2, T: int = 6) -> np.ndarray:
    """Softmax attentions [L, H, T, T] with sharp, non-symmetric rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(L, H, T, T))
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def random_gradients(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed + 1000).normal(size=shape)


# ----------------------------------------------------------------------------- reference


def ref_fuse(a_l, how):
    H, T = len(a_l), len(a_l[0])
    out = [[0.0] * T for _ in range(T)]
    for i in range(T):
        for j in range(T):
            vals = [a_l[h][i][j] for h in range(H)]
            out[i][j] = {"mean": sum(vals) / H, "max": max(vals), "min": min(vals)}[how]
    return out


def ref_positive_cam(a_l, g_l):
    H, T = len(a_l), len(a_l[0])
    out = [[0.0] * T for _ in range(T)]
    for i in range(T):
        for j in range(T):
            out[i][j] = sum(max(g_l[h][i][j] * a_l[h][i][j], 0.0) for h in range(H)) / H
    return out


def ref_discard(f, ratio, p):
    """Zero the floor(ratio·N²) smallest patch-block entries; ties by row-major position."""
    T = len(f)
    N = T - p
    k = math.floor(ratio * N * N)
    entries = []
    for i in range(p, T):
        for j in range(p, T):
            entries.append((f[i][j], (i - p) * N + (j - p), i, j))
    entries.sort(key=lambda e: (e[0], e[1]))
    out = [row[:] for row in f]
    for _, _, i, j in entries[:k]:
        out[i][j] = 0.0
    return out


def ref_matmul(a, b):
    n, m, q = len(a), len(b), len(b[0])
    return [[sum(a[i][k] * b[k][j] for k in range(m)) for j in range(q)] for i in range(n)]


def ref_identity(T):
    return [[1.0 if i == j else 0.0 for j in range(T)] for i in range(T)]


def ref_rollout_from(fused_layers, T, p, ratio, alpha):
    r = ref_identity(T)
    for f in fused_layers:
        f = ref_discard(f, ratio, p)
        a_hat = [[alpha * f[i][j] + (1 - alpha) * (i == j) for j in range(T)] for i in range(T)]
        for i in range(T):
            s = sum(a_hat[i])
            if s == 0:
                a_hat[i] = [1.0 if j == i else 0.0 for j in range(T)]
            else:
                a_hat[i] = [v / s for v in a_hat[i]]
        r = ref_matmul(a_hat, r)
    return np.array(r)


def ref_rollout(A, how="mean", ratio=0.0, alpha=0.5, start=0, p=1):
    A = A.tolist()
    T = len(A[0][0])
    return ref_rollout_from([ref_fuse(A[l], how) for l in range(start, len(A))], T, p, ratio, alpha)


def ref_grad_rollout(A, G, ratio=0.0, alpha=0.5, start=0, p=1):
    A, G = A.tolist(), G.tolist()
    T = len(A[0][0])
    fused = [ref_positive_cam(A[l], G[l]) for l in range(start, len(A))]
    return ref_rollout_from(fused, T, p, ratio, alpha)


def ref_chefer(A, G, start=0):
    A, G = A.tolist(), G.tolist()
    T = len(A[0][0])
    r = ref_identity(T)
    for l in range(start, len(A)):
        cam_r = ref_matmul(ref_positive_cam(A[l], G[l]), r)
        r = [[r[i][j] + cam_r[i][j] for j in range(T)] for i in range(T)]
    return np.array(r)


# ----------------------------------------------------------------------------- fusion


@pytest.mark.parametrize("how", ["mean", "max", "min"])
def test_fuse_heads_matches_loops(how):
    a = random_attentions(0, L=1, H=3, T=5)[0]
    np.testing.assert_allclose(fuse_heads(a, how), np.array(ref_fuse(a.tolist(), how)), atol=1e-15)


# ----------------------------------------------------------------------------- rollout


@pytest.mark.parametrize(
    "how, ratio, alpha, start, p",
    [
        ("mean", 0.0, 0.5, 0, 1),
        ("mean", 0.9, 0.5, 0, 1),
        ("max", 0.5, 0.5, 1, 1),
        ("min", 0.3, 0.7, 0, 2),
        ("mean", 0.9, 1.0, 0, 0),
        ("max", 0.75, 1.0, 2, 3),
        ("min", 0.0, 0.0, 0, 1),
        ("mean", 0.6, 0.25, 1, 0),
    ],
)
def test_rollout_matches_reference(how, ratio, alpha, start, p):
    a = random_attentions(1, L=3, H=2, T=7)
    got = attention_rollout(a, how, ratio, alpha, start, p)
    np.testing.assert_allclose(got, ref_rollout(a, how, ratio, alpha, start, p), atol=1e-12)


@pytest.mark.parametrize(
    "how, ratio, alpha, start, p",
    [("mean", 0.0, 0.5, 0, 1), ("mean", 0.9, 0.5, 0, 1), ("max", 0.5, 0.5, 1, 1), ("min", 0.3, 0.7, 0, 2),
     ("mean", 0.9, 1.0, 0, 0), ("max", 0.75, 1.0, 2, 3), ("mean", 0.6, 0.25, 3, 0)],
)
def test_one_row_of_rollout_is_that_row_of_the_whole(how, ratio, alpha, start, p):
    """query=q computes e_q·Â_{L-1}⋯Â_start as vector-matrix products, last layer first: the
    same numbers as row q of the whole R, for every row, every setting."""
    a = random_attentions(11, L=4, H=3, T=9)
    whole = attention_rollout(a, how, ratio, alpha, start, p)
    for q in range(9):
        row = attention_rollout(a, how, ratio, alpha, start, p, query=q)
        assert row.shape == (9,) and row.dtype == np.float64
        np.testing.assert_allclose(row, whole[q], rtol=1e-12, atol=1e-15)


def test_one_row_of_rollout_refuses_a_token_outside_the_sequence():
    a = random_attentions(12, L=2, H=2, T=5)
    with pytest.raises(ValueError, match="query"):
        attention_rollout(a, query=5)
    with pytest.raises(ValueError, match="query"):
        gradient_rollout(a, random_gradients(12, a.shape), query=-1)


@pytest.mark.parametrize("how", ["mean", "max", "min"])
@pytest.mark.parametrize("ratio, alpha", [(0.0, 0.5), (0.9, 0.5), (0.9, 1.0), (0.99, 1.0)])
def test_rollout_rows_sum_to_one(how, ratio, alpha):
    a = random_attentions(2, L=4, H=3, T=10)
    r = attention_rollout(a, how, ratio, alpha, num_prefix_tokens=2)
    np.testing.assert_allclose(r.sum(axis=-1), 1.0, atol=1e-12)
    assert (r >= 0).all()


@pytest.mark.parametrize("ratio, alpha", [(0.0, 0.5), (0.5, 0.5), (0.0, 1.0), (0.8, 1.0)])
def test_identity_attention_gives_identity_rollout(ratio, alpha):
    a = np.broadcast_to(np.eye(6), (3, 2, 6, 6)).copy()
    np.testing.assert_allclose(attention_rollout(a, "mean", ratio, alpha), np.eye(6), atol=1e-15)


def test_one_hot_chain_composes_the_path():
    # Layer l sends token i to token π_l(i) in every head. With α = 1, Â_l is the
    # permutation matrix P_l and R = P_{L-1}⋯P_0, so the top token i reads from token
    # π_0(π_1(…π_{L-1}(i))).
    T, L = 6, 3
    rng = np.random.default_rng(3)
    perms = [rng.permutation(T) for _ in range(L)]
    a = np.zeros((L, 2, T, T))
    for l, perm in enumerate(perms):
        a[l, :, np.arange(T), perm] = 1.0
    r = attention_rollout(a, residual_alpha=1.0)
    expected = np.zeros((T, T))
    for i in range(T):
        j = i
        for l in reversed(range(L)):
            j = perms[l][j]
        expected[i, j] = 1.0
    np.testing.assert_array_equal(r, expected)
    # start_layer=1 drops the first hop.
    r1 = attention_rollout(a, residual_alpha=1.0, start_layer=1)
    for i in range(T):
        assert r1[i, perms[1][perms[2][i]]] == 1.0


def _prefix_smallest_layer(T=13, p=1, seed=4):
    """One layer whose prefix entries are far smaller than any patch entry and whose patch
    diagonal is the largest entry of its row, so no row is ever discarded entirely."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(1.0, 2.0, size=(T, T))
    f[:p, :] = rng.uniform(1e-6, 2e-6, size=(p, T))
    f[:, :p] = rng.uniform(1e-6, 2e-6, size=(T, p))
    f[np.arange(p, T), np.arange(p, T)] = 10.0
    return f[None, None]  # [L=1, H=1, T, T]


@pytest.mark.parametrize("p", [1, 3])
def test_prefix_rows_and_columns_are_never_discarded(p):
    a = _prefix_smallest_layer(p=p)
    f = a[0, 0]
    r = attention_rollout(a, discard_ratio=0.9, residual_alpha=1.0, num_prefix_tokens=p)
    # The prefix entries are the smallest of the whole matrix, yet all survive, in proportion.
    assert (r[:p, :] > 0).all() and (r[:, :p] > 0).all()
    np.testing.assert_allclose(r[:p], f[:p] / f[:p].sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9, 0.9375])
def test_discard_count_is_exactly_floor(ratio):
    p, T = 1, 13  # N = 12, N² = 144: 0.9·144 = 129.6 → 129 (round would give 130)
    a = _prefix_smallest_layer(T=T, p=p)
    r = attention_rollout(a, discard_ratio=ratio, residual_alpha=1.0, num_prefix_tokens=p)
    assert int((r[p:, p:] == 0).sum()) == math.floor(ratio * (T - p) ** 2)
    assert int((r == 0).sum()) == math.floor(ratio * (T - p) ** 2)


def test_discard_ties_are_deterministic_and_exact():
    # Every patch entry equal: the count must still be exact, taken in row-major order.
    T, p = 5, 1
    a = np.full((1, 1, T, T), 0.2)
    r = attention_rollout(a, discard_ratio=0.5, residual_alpha=1.0, num_prefix_tokens=p)
    zeros = r[p:, p:] == 0
    assert zeros.sum() == 8  # floor(0.5·16)
    assert zeros.ravel()[:8].all() and not zeros.ravel()[8:].any()
    np.testing.assert_allclose(r, ref_rollout(a, "mean", 0.5, 1.0, 0, p), atol=1e-15)


def test_all_zero_row_after_discard_stays_identity():
    # α = 1 and a patch row whose every patch entry is discarded, with no prefix mass:
    # the row would be all zero; it becomes the identity row and R stays row-stochastic.
    T, p = 4, 1
    f = np.full((T, T), 0.5)
    f[2, :] = 0.0
    r = attention_rollout(f[None, None], discard_ratio=0.2, residual_alpha=1.0, num_prefix_tokens=p)
    np.testing.assert_array_equal(r[2], np.eye(T)[2])
    np.testing.assert_allclose(r.sum(axis=-1), 1.0)


def test_start_layer_skips_layers():
    a = random_attentions(5, L=4, H=2, T=6)
    for s in range(4):
        np.testing.assert_allclose(
            attention_rollout(a, discard_ratio=0.5, start_layer=s),
            attention_rollout(a[s:], discard_ratio=0.5, start_layer=0),
            atol=1e-15,
        )
    assert not np.allclose(attention_rollout(a, start_layer=0), attention_rollout(a, start_layer=2))


def test_rollout_does_not_modify_input():
    a = random_attentions(6)
    before = a.copy()
    attention_rollout(a, discard_ratio=0.9, residual_alpha=1.0)
    np.testing.assert_array_equal(a, before)


def test_rollout_accepts_float32_and_returns_float64():
    a = random_attentions(7).astype(np.float32)
    r = attention_rollout(a, discard_ratio=0.5)
    assert r.dtype == np.float64
    np.testing.assert_allclose(r, ref_rollout(a.astype(np.float64), "mean", 0.5), atol=1e-12)


def test_vit_explain_16_rows_normalised_with_keepdims():
    # vit-explain #16: `a = a / a.sum(dim=-1)` (no keepdim) divides column j by row j's sum.
    # Max fusion makes rows not sum to 1, and the matrix is not symmetric, so the wrong
    # broadcast is visibly wrong; ours sums to 1 row by row.
    a = random_attentions(8, L=1, H=3, T=6)
    f = a[0].max(axis=0)
    assert not np.allclose(f, f.T)
    r = attention_rollout(a, head_fusion="max", residual_alpha=1.0, num_prefix_tokens=1)
    np.testing.assert_allclose(r.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(r, f / f.sum(axis=-1, keepdims=True), atol=1e-12)
    wrong = f / f.sum(axis=-1)  # the buggy broadcast
    assert not np.allclose(wrong.sum(axis=-1), 1.0)
    assert not np.allclose(r, wrong)


# ----------------------------------------------------------------------------- gradient rollout


@pytest.mark.parametrize(
    "ratio, alpha, start, p",
    [(0.0, 0.5, 0, 1), (0.9, 0.5, 0, 1), (0.5, 1.0, 1, 2), (0.0, 1.0, 0, 0), (0.7, 0.3, 2, 1)],
)
def test_gradient_rollout_matches_reference(ratio, alpha, start, p):
    a = random_attentions(9, L=3, H=2, T=7)
    g = random_gradients(9, a.shape)
    got = gradient_rollout(a, g, ratio, alpha, start, p)
    np.testing.assert_allclose(got, ref_grad_rollout(a, g, ratio, alpha, start, p), atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("ratio, alpha, start, p", [(0.0, 0.5, 0, 1), (0.9, 0.5, 0, 1), (0.5, 1.0, 1, 2)])
def test_one_row_of_gradient_rollout_is_that_row_of_the_whole(ratio, alpha, start, p):
    a = random_attentions(13, L=3, H=2, T=7)
    g = random_gradients(13, a.shape)
    whole = gradient_rollout(a, g, ratio, alpha, start, p)
    for q in (0, 3, 6):
        np.testing.assert_allclose(gradient_rollout(a, g, ratio, alpha, start, p, query=q), whole[q],
                                   rtol=1e-12, atol=1e-15)


def test_gradient_rollout_all_zero_row_stays_identity():
    a = random_attentions(10, L=1, H=2, T=5)
    g = np.abs(random_gradients(10, a.shape))
    g[0, :, 3, :] = -1.0  # token 3: no positive G ⊙ A anywhere → an all-zero row of F
    r = gradient_rollout(a, g, residual_alpha=1.0)
    np.testing.assert_array_equal(r[3], np.eye(5)[3])
    np.testing.assert_allclose(r.sum(axis=-1), 1.0, atol=1e-12)


def test_gradient_rollout_zero_gradients_is_identity():
    a = random_attentions(11)
    np.testing.assert_array_equal(gradient_rollout(a, np.zeros_like(a), residual_alpha=1.0), np.eye(6))


def test_vit_explain_6_gradients_paired_with_same_layer():
    # vit-explain #6: gradients collected by backward hooks arrive last layer first, and
    # zip(attentions, gradients) paired layer l with layer L-1-l's gradient. Distinct
    # per-layer gradients make the pairing matter.
    a = random_attentions(12, L=3, H=2, T=6)
    g = random_gradients(12, a.shape)
    g[0] *= 5.0
    ours = gradient_rollout(a, g)
    np.testing.assert_allclose(ours, ref_grad_rollout(a, g), atol=1e-12)
    reversed_pairing = ref_grad_rollout(a, g[::-1].copy())
    assert not np.allclose(ours, reversed_pairing, atol=1e-6)
    # The same holds for Chefer's relevance.
    np.testing.assert_allclose(chefer_relevance(a, g), ref_chefer(a, g), atol=1e-12)
    assert not np.allclose(chefer_relevance(a, g), ref_chefer(a, g[::-1].copy()), atol=1e-6)


def test_positive_part_is_taken_per_head_before_the_mean():
    """Chefer's Ā = mean_h((G ⊙ A)⁺), not vit-explain's (mean_h(G ⊙ A))⁺: one head's negative
    weight must not cancel another head's positive one."""
    T = 3
    a = np.full((1, 2, T, T), 1.0 / T)
    g = np.zeros_like(a)
    g[0, 0, 0, 1], g[0, 1, 0, 1] = 3.0, -3.0  # G ⊙ A = +1 in head 0, −1 in head 1 at (0, 1)
    ours = gradient_rollout(a, g, residual_alpha=1.0, num_prefix_tokens=1)
    assert ours[0, 1] == pytest.approx(1.0)  # F[0] = (0, 0.5, 0) → normalised row (0, 1, 0)
    mean_then_clamp = np.maximum((g * a).mean(axis=1), 0)[0]
    assert mean_then_clamp[0, 1] == 0  # vit-explain's fusion would see nothing there
    assert chefer_relevance(a, g)[0, 1] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- Chefer


@pytest.mark.parametrize("start", [0, 1, 2])
def test_chefer_matches_reference(start):
    a = random_attentions(13, L=3, H=3, T=6)
    g = random_gradients(13, a.shape)
    np.testing.assert_allclose(chefer_relevance(a, g, start), ref_chefer(a, g, start), atol=1e-12)


def test_chefer_zero_or_negative_gradients_give_identity():
    a = random_attentions(14)
    np.testing.assert_array_equal(chefer_relevance(a, np.zeros_like(a)), np.eye(6))
    np.testing.assert_array_equal(chefer_relevance(a, -np.ones_like(a)), np.eye(6))


def test_chefer_one_layer_is_identity_plus_cam():
    a = random_attentions(15, L=1, H=2, T=5)
    g = random_gradients(15, a.shape)
    cam = np.maximum(g[0] * a[0], 0).mean(axis=0)
    np.testing.assert_allclose(chefer_relevance(a, g), np.eye(5) + cam, atol=1e-15)


# ----------------------------------------------------------------------------- raw maps


def test_query_attention_rows():
    a = random_attentions(16, L=3, H=3, T=5)
    for layer in range(3):
        for q in range(5):
            for h in range(3):
                np.testing.assert_array_equal(query_attention(a, layer, h, q), a[layer, h, q])
            for how in ("mean", "max", "min"):
                fused = np.array(ref_fuse(a[layer].tolist(), how))[q]
                np.testing.assert_allclose(query_attention(a, layer, how, q), fused, atol=1e-15)
    np.testing.assert_array_equal(query_attention(a, -1, -1, 0), a[2, 2, 0])


def test_patch_map_drops_prefix_and_is_row_major():
    v = np.arange(2 + 6, dtype=float)
    m = patch_map(v, (2, 3), num_prefix_tokens=2)
    for r in range(2):
        for c in range(3):
            assert m[r, c] == 2 + r * 3 + c
    assert patch_map(np.stack([v, -v]), (2, 3), 2).shape == (2, 2, 3)


def test_maps_agree_with_query_attention():
    L, H, p, grid = 3, 4, 2, (2, 3)
    a = random_attentions(17, L=L, H=H, T=p + 6)
    q = 4
    g = layer_head_grid(a, q, grid, p)
    assert g.shape == (L, H, 2, 3) and g.dtype == np.float64
    for l in range(L):
        np.testing.assert_array_equal(all_heads_maps(a, l, q, grid, p), g[l])
        for h in range(H):
            np.testing.assert_array_equal(g[l, h], patch_map(query_attention(a, l, h, q), grid, p))
    for h in range(H):
        np.testing.assert_array_equal(all_layers_maps(a, h, q, grid, p), g[:, h])
    for how in ("mean", "max", "min"):
        got = all_layers_maps(a, how, q, grid, p)
        for l in range(L):
            np.testing.assert_allclose(got[l], patch_map(query_attention(a, l, how, q), grid, p))
    g[:] = -1  # a copy, never a view into the caller's array
    assert (a >= 0).all()


# ----------------------------------------------------------------------------- DINO mask


def test_mass_mask_hand_example():
    m = np.array([[5.0, 1.0], [3.0, 1.0]])  # unnormalised: total 10
    np.testing.assert_array_equal(attention_mass_mask(m, 0.6), [[True, False], [True, False]])
    np.testing.assert_array_equal(attention_mass_mask(m, 0.5), [[True, False], [False, False]])
    np.testing.assert_array_equal(attention_mass_mask(m, 0.81), [[True, True], [True, False]])
    np.testing.assert_array_equal(attention_mass_mask(m, 1.0), np.ones((2, 2), bool))


def test_mass_mask_ties_in_row_major_order_and_zeros_never_kept():
    np.testing.assert_array_equal(attention_mass_mask(np.ones((2, 2)), 0.5), [[True, True], [False, False]])
    m = np.array([[0.0, 2.0], [2.0, 0.0]])
    np.testing.assert_array_equal(attention_mass_mask(m, 1.0), [[False, True], [True, False]])
    assert not attention_mass_mask(np.zeros((3, 3))).any()


@pytest.mark.parametrize("threshold", [0.1, 0.6, 0.9, 1.0])
def test_mass_mask_is_the_smallest_sufficient_set(threshold):
    m = np.random.default_rng(18).gamma(0.5, size=(6, 7))
    mask = attention_mass_mask(m, threshold)
    share = m / m.sum()
    kept = share[mask]
    assert kept.sum() >= threshold - 1e-12
    assert kept.sum() - kept.min() < threshold
    assert kept.min() >= share[~mask].max(initial=0.0)


# ----------------------------------------------------------------------------- validation


A = random_attentions(19, L=2, H=2, T=5)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: attention_rollout(A[0]), "4 dims"),
        (lambda: attention_rollout(A[None]), "drop the batch axis"),
        (lambda: attention_rollout(A[..., :4]), "square"),
        (lambda: attention_rollout(A, head_fusion="median"), "'median'"),
        (lambda: attention_rollout(A, discard_ratio=1.0), "discard_ratio must be in [0, 1)"),
        (lambda: attention_rollout(A, discard_ratio=-0.1), "got -0.1"),
        (lambda: attention_rollout(A, residual_alpha=1.5), "residual_alpha must be in [0, 1]"),
        (lambda: attention_rollout(A, start_layer=2), "start_layer must be in [0, 1], got 2"),
        (lambda: attention_rollout(A, start_layer=-1), "start_layer"),
        (lambda: attention_rollout(A, start_layer=1.0), "must be an integer"),
        (lambda: attention_rollout(A, num_prefix_tokens=5), "num_prefix_tokens must be in [0, 4], got 5"),
        (lambda: attention_rollout(A, num_prefix_tokens=-1), "num_prefix_tokens"),
        (lambda: attention_rollout(np.log(A)), "pre-softmax"),
        (lambda: attention_rollout(A * np.nan), "NaN"),
        (lambda: gradient_rollout(A, A[:, :1]), "gradients must have the shape of attentions"),
        (lambda: gradient_rollout(A, A, discard_ratio=2), "discard_ratio"),
        (lambda: chefer_relevance(A, A[1:]), "(2, 2, 5, 5)"),
        (lambda: chefer_relevance(A, A, start_layer=3), "start_layer"),
        (lambda: query_attention(A, 2, 0, 0), "layer=2 is out of range"),
        (lambda: query_attention(A, 0, 5, 0), "head=5"),
        (lambda: query_attention(A, 0, "avg", 0), "head fusion must be one of"),
        (lambda: query_attention(A, 0, 0, 5), "query must be in [0, 4]"),
        (lambda: patch_map(np.ones(5), (2, 3), 1), "grid (2, 3) has 6 patches"),
        (lambda: patch_map(np.ones(5), 4, 1), "grid must be a pair"),
        (lambda: layer_head_grid(A, 0, (2, 2), 0), "pass trace.grid"),
        (lambda: attention_mass_mask(np.ones((2, 2)), 0.0), "threshold must be in (0, 1]"),
        (lambda: attention_mass_mask(np.ones((2, 2)), 1.5), "got 1.5"),
        (lambda: attention_mass_mask(-np.ones((2, 2))), "must be >= 0"),
        (lambda: fuse_heads(A, "mean"), "[H, T, T]"),
    ],
)
def test_errors_name_value_and_fix(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)
