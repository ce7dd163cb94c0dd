"""model.attention_flow: exact max-flow (networkx) against a plain Edmonds-Karp written here,
the one-layer case in closed form, and the cost limit."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from model.attention_flow import FLOW_EDGE_LIMIT, attention_flow, flow_available, residual_attention


def _attentions(L, H, T, seed=0, sharp=4.0):
    a = np.random.default_rng(seed).random((L, H, T, T)) ** sharp
    return a / a.sum(-1, keepdims=True)


def _edmonds_karp(cap: np.ndarray, s: int, t: int) -> float:
    """Maximum flow on a dense capacity matrix: shortest augmenting paths by BFS (plain loops)."""
    n = cap.shape[0]
    flow = np.zeros_like(cap)
    total = 0.0
    while True:
        parent = [-1] * n
        parent[s] = s
        queue = deque([s])
        while queue and parent[t] < 0:
            u = queue.popleft()
            for v in range(n):
                if parent[v] < 0 and cap[u, v] - flow[u, v] > 1e-15:
                    parent[v] = u
                    queue.append(v)
        if parent[t] < 0:
            return total
        push, v = np.inf, t
        while v != s:
            push, v = min(push, cap[parent[v], v] - flow[parent[v], v]), parent[v]
        v = t
        while v != s:
            flow[parent[v], v] += push
            flow[v, parent[v]] -= push
            v = parent[v]
        total += push


def _reference(attentions, query, alpha=0.5, start=0):
    caps = residual_attention(attentions, "mean", alpha)
    L, T, _ = caps.shape
    node = lambda l, i: l * T + i  # noqa: E731
    dense = np.zeros(((L + 1) * T, (L + 1) * T))
    for l in range(start, L):
        for i in range(T):
            for j in range(T):
                dense[node(l + 1, i), node(l, j)] = caps[l, i, j]
    return np.array([_edmonds_karp(dense, node(L, query), node(start, j)) for j in range(T)])


@pytest.mark.parametrize("query, start", [(0, 0), (3, 0), (2, 1)])
def test_flow_equals_a_plain_edmonds_karp(query, start):
    a = _attentions(3, 2, 6, seed=query)
    found = attention_flow(a, query=query, start_layer=start)
    np.testing.assert_allclose(found, _reference(a, query, start=start), rtol=0, atol=1e-12)
    assert (found >= 0).all() and (found <= 1 + 1e-12).all()


def test_one_layer_flow_is_the_residual_attention():
    """With one layer the only path from (1, q) to (0, j) is the edge itself: flow = Â[q, j]."""
    a = _attentions(1, 3, 7, seed=4)
    caps = residual_attention(a, "mean", 0.3)
    np.testing.assert_allclose(attention_flow(a, query=2, residual_alpha=0.3), caps[0, 2], rtol=0, atol=1e-14)


def test_flow_is_not_rollout():
    """Flow is limited by cuts, rollout sums paths: on sharp attention they differ."""
    from model.attribution import attention_rollout

    a = _attentions(3, 2, 8, seed=1, sharp=8.0)
    assert not np.allclose(attention_flow(a), attention_rollout(a)[0], atol=1e-3)


def test_cost_limit_is_enforced_with_a_clear_message():
    assert flow_available(4, 50) and not flow_available(12, 257)
    big = _attentions(1, 1, int(np.sqrt(FLOW_EDGE_LIMIT)) + 2)
    with pytest.raises(ValueError, match="offered up to 10,000 edges"):
        attention_flow(big)
