"""Attention flow (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", §3):
exact maximum flow through the layered attention graph, for one image.

The graph has a node (l, i) for every token i at every layer boundary l = start…L. Layer l
adds an edge (l+1, i) → (l, j) with capacity Â_l[i, j], where Â_l is the residual-augmented
attention that rollout also uses, rownorm(α·fuse(A_l) + (1−α)·I) (α = 0.5 in the paper).
The flow of query token q to input token j is the value of a maximum flow from (L, q) to
(start, j); one max-flow problem per input token. Where rollout multiplies the matrices
(every path's product of weights, summed), flow is limited by the narrowest cut between the
two nodes.

Cost: the graph has L·T² edges and a map needs T−p max-flow problems on it, so it grows like
L·T³ or worse; it is offered only while `flow_edges(L, T) <= FLOW_EDGE_LIMIT` (README
"Measured" gives the times behind the limit). The solver is networkx's shortest-augmenting-path (a
maintained implementation, already a dependency of torch), on float64 capacities.
"""
from __future__ import annotations

import numpy as np

from .attribution import _as_attentions, _check_fusion, _check_int, _check_prefix, _check_probabilities, \
    _check_residual_alpha, _check_start, _fuse, _normalise_rows

FLOW_EDGE_LIMIT = 10_000  # L·T² edges: fashion-vit (4·50²); README "Measured" gives the time per map


def flow_edges(L: int, T: int) -> int:
    """Edges of the attention graph of L layers over T tokens."""
    return int(L) * int(T) ** 2


def flow_available(L: int, T: int) -> bool:
    return flow_edges(L, T) <= FLOW_EDGE_LIMIT


def flow_limit_message(L: int, T: int) -> str:
    return (f"attention flow solves {T} max-flow problems on a graph of L·T² = {flow_edges(L, T):,} edges here; "
            f"it is offered up to {FLOW_EDGE_LIMIT:,} edges (fashion-vit has 4·50² = 10,000), so use rollout "
            "for this model")


def residual_attention(attentions, head_fusion: str = "mean", residual_alpha: float = 0.5) -> np.ndarray:
    """Â_l = rownorm(α·fuse(A_l) + (1−α)·I) for every layer → [L, T, T] float64 (rows sum to 1)."""
    a = _as_attentions(attentions)
    _check_probabilities(a)
    how = _check_fusion(head_fusion)
    alpha = _check_residual_alpha(residual_alpha)
    eye = np.eye(a.shape[-1])
    return np.stack([_normalise_rows(alpha * _fuse(a[l], how) + (1.0 - alpha) * eye) for l in range(a.shape[0])])


def flow_graph(capacities: np.ndarray, start_layer: int = 0):
    """The layered networkx DiGraph: node (l, i); edge (l+1, i) → (l, j), capacity Â_l[i, j] > 0."""
    import networkx as nx

    L, T, _ = capacities.shape
    g = nx.DiGraph()
    for l in range(start_layer, L):
        rows, cols = np.nonzero(capacities[l] > 0)
        g.add_edges_from(((l + 1, int(i)), (l, int(j)), {"capacity": float(capacities[l, i, j])})
                         for i, j in zip(rows, cols))
    return g


def attention_flow(attentions, query: int = 0, head_fusion: str = "mean", residual_alpha: float = 0.5,
                   start_layer: int = 0, num_prefix_tokens: int = 1, enforce_limit: bool = True) -> np.ndarray:
    """Max-flow value from (L, query) to every input token (start, j) → [T] float64.

    Prefix entries are computed too (the map drops them with `patch_map`). Every value lies
    in [0, 1]: the source sends at most the capacity of its out-edges, which sum to 1.
    """
    import networkx as nx
    from networkx.algorithms.flow import build_residual_network, shortest_augmenting_path

    a = _as_attentions(attentions)
    L, _, T, _ = a.shape
    start = _check_start(start_layer, L)
    _check_prefix(num_prefix_tokens, T)
    query = _check_int(query, "query", 0, T - 1, f"it is a token index; 0 is CLS, T={T}")
    if enforce_limit and not flow_available(L - start, T):
        raise ValueError(flow_limit_message(L - start, T))
    caps = residual_attention(a, head_fusion, residual_alpha)
    g = flow_graph(caps, start)
    residual = build_residual_network(g, "capacity")  # built once, reused by every solve
    source = (L, query)
    out = np.zeros(T)
    for j in range(T):
        sink = (start, j)
        if sink not in g or source not in g:
            continue
        out[j] = nx.maximum_flow_value(g, source, sink, capacity="capacity", flow_func=shortest_augmenting_path,
                                       residual=residual)
    return out
