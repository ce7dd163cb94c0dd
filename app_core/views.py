"""Per-view arrays: what each page shows, computed from one image's trace (numpy in, numpy out).

Nothing here runs the model except ``mlp_hidden``, which re-evaluates one block's first MLP
layer for one token. Symbols: L layers, H heads, T tokens (p prefix + N patches), D width,
d head width, K classes, (h, w) patch grid.
"""
from __future__ import annotations

import math

import numpy as np

from model import explain as model_explain
from model.attention_flow import flow_available, flow_limit_message
from model.attribution import (
    all_heads_maps, all_layers_maps, layer_head_grid,
    patch_map, query_attention,
)
from model.numerics import log_softmax, softmax
from model.head_stats import artifact_tokens, attention_entropy, mean_attention_distance, prefix_attention, token_norms

from model.trace import Trace

# ----------------------------------------------------------------------------- per-view arrays

def centre_patch(trace: Trace) -> int:
    """The index (among the N patches) of the patch at the centre of the grid."""
    h, w = trace.grid
    return (h // 2) * w + w // 2


def query_options(trace: Trace) -> list[int]:
    return list(range(trace.T))


def attention_map(trace: Trace, layer: int, head, query: int) -> np.ndarray:
    """`[h, w]`: what token `query` attends to at (`layer`, `head`); head may be a fusion name."""
    return patch_map(query_attention(trace.attentions[0], layer, head, query), trace.grid, trace.num_prefix_tokens)


def heads_maps(trace: Trace, layer: int, query: int) -> np.ndarray:
    return all_heads_maps(trace.attentions[0], layer, query, trace.grid, trace.num_prefix_tokens)


def layers_maps(trace: Trace, head, query: int) -> np.ndarray:
    return all_layers_maps(trace.attentions[0], head, query, trace.grid, trace.num_prefix_tokens)


def grid_maps(trace: Trace, query: int) -> np.ndarray:
    return layer_head_grid(trace.attentions[0], query, trace.grid, trace.num_prefix_tokens)


def mass_mask(trace: Trace, layer: int, head: int, query: int, threshold: float = 0.6) -> tuple:
    """(map, mask): the attention map and the smallest set of patches holding `threshold` of it (DINO)."""
    from model.attribution import attention_mass_mask

    m = attention_map(trace, layer, head, query)
    return m, attention_mass_mask(m, threshold)


def color_top(maps: np.ndarray, percentile: float = 99.5) -> float:
    """The top of a shared colour scale: a high percentile, not the maximum.

    Small multiples share one scale so that they compare; a single sharp head (DINOv2's CLS in
    layer 0 puts 0.6 on one patch) would otherwise leave every other tile black. The few
    brightest patches saturate instead.
    """
    values = np.asarray(maps, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    top = float(np.percentile(values, percentile))
    return top if top > 0 else float(values.max()) or 1.0


def prefix_share(trace: Trace, layer: int, head: int, query: int) -> float:
    """The attention mass token `query` puts on the prefix tokens (not shown on the patch map)."""
    return float(trace.attentions[0][layer, head, query, : trace.num_prefix_tokens].sum())


def qkv_step(trace: Trace, layer: int, head: int, query: int, top: int = 8) -> dict:
    """Attention of one token written out with the real numbers of this image.

    scores_j = q·k_j/√d; a = softmax(scores) (equal to the trace's attention row);
    out = Σ_j a_j v_j. Returns the vectors, the rows, the top keys and the check.
    """
    q = trace.queries[0][layer, head, query].astype(np.float64)  # (d,)
    k = trace.keys[0][layer, head].astype(np.float64)  # (T, d)
    v = trace.values[0][layer, head].astype(np.float64)  # (T, d)
    d = q.shape[0]
    dots = k @ q  # (T,)
    scores = dots / math.sqrt(d)
    weights = softmax(scores)
    out = weights @ v  # (d,)
    traced = trace.attentions[0][layer, head, query].astype(np.float64)
    order = np.argsort(-weights, kind="stable")[: int(top)]
    rows = [
        {"key token": trace.token_name(j), "q·k": float(dots[j]), "q·k/√d": float(scores[j]),
         "softmax weight": float(weights[j])}
        for j in order
    ]
    return {
        "d": d, "sqrt_d": math.sqrt(d), "q": q, "dots": dots, "scores": scores, "weights": weights, "out": out,
        "top": rows, "max_diff": float(np.abs(weights - traced).max()), "weight_sum": float(weights.sum()),
        "prefix_share": float(weights[: trace.num_prefix_tokens].sum()),
    }


def projection_check(trace: Trace, weight: np.ndarray, bias: np.ndarray | None, patch: int) -> dict:
    """x_p·E + b recomputed for one patch and compared with the traced patch embedding."""
    x = trace.patches[0][patch].astype(np.float64)  # (C·P·P,)
    y = x @ np.asarray(weight, dtype=np.float64).T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    traced = trace.patch_embeddings[0][patch].astype(np.float64)
    return {"x": x, "y": y, "traced": traced, "max_diff": float(np.abs(y - traced).max())}


def patch_pixels(trace: Trace, patch: int) -> np.ndarray:
    """The P×P×3 uint8 pixels of patch `patch` (row-major, without prefix tokens) as the model sees them."""
    P = trace.patch_size
    r, c = divmod(int(patch), trace.grid[1])
    return trace.image(0)[r * P:(r + 1) * P, c * P:(c + 1) * P]


def token_names(trace: Trace) -> list[str]:
    return [trace.token_name(t) for t in range(trace.T)]


def short_token_names(trace: Trace) -> list[str]:
    """Compact unique names for axis labels: ``CLS``, ``REG0``, then ``137 (r8,c8)``."""
    p, w = trace.num_prefix_tokens, trace.grid[1]
    return list(trace.prefix_names) + [f"{t} (r{(t - p) // w},c{(t - p) % w})" for t in range(p, trace.T)]


def residual_norms(trace: Trace, token: int) -> dict[str, np.ndarray]:
    """‖attention update‖ [L], ‖MLP update‖ [L] and ‖stream‖ [L+1] of one token."""
    return {
        "attn": np.linalg.norm(trace.attn_residuals[0][:, token].astype(np.float64), axis=-1),
        "mlp": np.linalg.norm(trace.mlp_residuals[0][:, token].astype(np.float64), axis=-1),
        "stream": np.linalg.norm(trace.hidden_states[0][:, token].astype(np.float64), axis=-1),
    }


def mlp_hidden(model, trace: Trace, layer: int, token: int) -> np.ndarray:
    """The hidden MLP units of one token in one block, GELU(LN(z')W₁ + b₁) → [mlp_dim].

    The trace keeps the block's input and both updates, so z' = z + attention update is exact;
    only this one block's first MLP layer is evaluated again, for one token (microseconds).
    """
    z_mid = trace.hidden_states[0][layer, token] + trace.attn_residuals[0][layer, token]  # z'_l, (D,)
    return model.mlp_hidden(layer, z_mid)


def position_sum(trace: Trace, token: int) -> dict:
    """z0 = x_p E + E_pos for one token: the norms of both parts and of the sum.

    For a model with a LayerNorm before the blocks (CLIP, cfg.pre_norm) z0 is after that norm,
    so sum_norm is ‖LN_pre(x_p E + E_pos)‖ and max_diff is not a check there."""
    p = trace.num_prefix_tokens
    z0 = trace.hidden_states[0][0, token].astype(np.float64)
    pos = trace.pos_embed[token].astype(np.float64)
    content = z0 - pos if token < p else trace.patch_embeddings[0][token - p].astype(np.float64)
    return {"content_norm": float(np.linalg.norm(content)), "pos_norm": float(np.linalg.norm(pos)),
            "sum_norm": float(np.linalg.norm(z0)), "max_diff": float(np.abs(content + pos - z0).max()),
            "cosine": float(content @ pos / max(np.linalg.norm(content) * np.linalg.norm(pos), 1e-12))}


def residual_table(trace: Trace, token: int) -> list[dict]:
    """Per layer, for one token: the stream's norm before, the attention and MLP updates, after."""
    rows = []
    for layer in range(trace.L):
        before = trace.hidden_states[0][layer, token].astype(np.float64)
        a = trace.attn_residuals[0][layer, token].astype(np.float64)
        m = trace.mlp_residuals[0][layer, token].astype(np.float64)
        rows.append({
            "layer": layer,
            "‖z before‖": float(np.linalg.norm(before)),
            "‖attention update‖": float(np.linalg.norm(a)),
            "‖MLP update‖": float(np.linalg.norm(m)),
            "‖z after‖": float(np.linalg.norm(trace.hidden_states[0][layer + 1, token])),
            "check": float(np.abs(before + a + m - trace.hidden_states[0][layer + 1, token]).max()),
        })
    return rows


def top_classes(trace: Trace, k: int = 5) -> list[dict]:
    if not trace.has_head:
        return []
    p = softmax(trace.logits[0])
    names = trace.class_names()
    order = np.argsort(-p, kind="stable")[:k]
    return [{"class": names[i], "index": int(i), "logit": float(trace.logits[0][i]), "probability": float(p[i])}
            for i in order]


def loss_for(trace: Trace, label: int) -> dict:
    """Cross-entropy −log p(label) for the chosen label (nats), computed stably."""
    if not trace.has_head:
        raise ValueError("this model has no classification head, so there is no loss")
    z = trace.logits[0].astype(np.float64)
    logp = log_softmax(z)
    label = int(label)
    if not 0 <= label < trace.K:
        raise ValueError(f"label {label} is out of range; this model has classes 0…{trace.K - 1}")
    return {"label": label, "p": float(np.exp(logp[label])), "loss": float(-logp[label]),
            "all_losses": (-logp).tolist(), "top": int(np.argmax(z)), "uniform": math.log(trace.K)}


def loss_table(trace: Trace) -> list[dict]:
    """The loss the model would get for each possible label, most probable first."""
    info = loss_for(trace, 0)
    p = softmax(trace.logits[0])
    names = trace.class_names()
    return [{"label": names[i], "p": float(p[i]), "loss −log p": float(info["all_losses"][i])}
            for i in np.argsort(-p, kind="stable")]


def explanation_methods(trace: Trace, extra_method: str = "none") -> tuple[tuple[str, ...], str | None]:
    """(the method ids the explanation view shows, why `extra_method` is left out or None).

    Rollout always; the gradient maps when the model has a class head; `extra_method` (one of
    model.explain.EXTRA_METHODS, or "none") when this model and image allow it: the class
    methods need a head, attention flow a small enough attention graph."""
    methods = model_explain.default_methods(trace.has_head)
    if extra_method in ("none", None) or extra_method in methods:
        return methods, None
    title = model_explain.METHOD_TITLES[extra_method]
    if extra_method in model_explain.CLASS_METHODS and not trace.has_head:
        return methods, f"{title} explains a class logit, and this model has no classification head."
    if extra_method == "attention-flow" and not flow_available(trace.L, trace.T):
        return methods, f"Attention flow is not offered here: {flow_limit_message(trace.L, trace.T)}."
    return (*methods, extra_method), None


def explanation_maps(trace: Trace, gradients: np.ndarray | None, *, methods=None, relevance=None,
                     fusion: str = "mean", discard_ratio: float = 0.0, residual_alpha: float = 0.5,
                     start_layer: int = 0, query: int = 0) -> dict[str, np.ndarray]:
    """``{"rollout": [h, w], "gradient rollout": …, "Chefer et al.": …}`` for one image, by the
    one explanation entry point (model.explain), named for the page (METHOD_TITLES). methods:
    ids (None: rollout, and the gradient maps when there are gradients); relevance: the
    model-side values of the MODEL_METHODS among them (model.relevance.model_relevance)."""
    maps = model_explain.explanation_maps(
        trace.attentions[0], gradients, num_prefix_tokens=trace.num_prefix_tokens, grid=trace.grid, methods=methods,
        fusion=fusion, discard_ratio=discard_ratio, residual_alpha=residual_alpha, start_layer=start_layer,
        query=query, relevance=relevance)
    return {model_explain.METHOD_TITLES[method]: m for method, m in maps.items()}


def head_statistics(trace: Trace) -> dict:
    """Per layer × head: mean attention distance (px), entropy (nats), prefix share; token
    norms per layer; the high-norm artifact tokens of the last layer."""
    p = trace.num_prefix_tokens
    arts = artifact_tokens(trace.hidden_states[0], p, layer=-1, grid=trace.grid)
    return {
        "distance": mean_attention_distance(trace.attentions[0], trace.grid, trace.patch_size, p),
        "entropy": attention_entropy(trace.attentions[0]),
        "prefix": prefix_attention(trace.attentions[0], p) if p else np.zeros((trace.L, trace.H)),
        "norms": token_norms(trace.hidden_states[0]),
        "artifacts": [int(t) for t in arts.token_indices],
        "artifact_rows": [{"token": trace.token_name(int(t)), "norm": float(n)}
                          for t, n in zip(arts.token_indices, arts.norms)],
        "artifact_threshold": float(arts.threshold),
    }


def distance_summary(distance: np.ndarray) -> str:
    """What this model's mean attention distances [L, H] (px) show, in words: the spread of the
    first and last layers and whether the layer means rise, fall or stay with depth."""
    d = np.asarray(distance, dtype=np.float64)
    L = d.shape[0]
    means = d.mean(axis=1)
    first, last = d[0], d[-1]
    text = (f"In layer 0 the heads look {first.min():.0f}–{first.max():.0f} px away (mean {means[0]:.0f} px); "
            f"in layer {L - 1}, {last.min():.0f}–{last.max():.0f} px (mean {means[-1]:.0f} px).")
    if L < 3:
        return text
    rho = float(np.corrcoef(np.arange(L), np.argsort(np.argsort(means)))[0, 1])  # Spearman: ranks of the means
    change = (means[-1] - means[0]) / max(float(means.mean()), 1e-9)
    if abs(change) < 0.1:  # a steady but tiny drift is no trend worth a sentence
        rho = 0.0
    if rho > 0.5:
        trend = "On this image, later layers look further on the whole"
    elif rho < -0.5:
        trend = "On this image, later layers look *closer* on the whole"
    else:
        trend = "On this image, the layers' mean distance shows no steady trend with depth"
    return f"{text} {trend} (rank correlation of layer and mean distance ρ = {rho:+.2f})."


def extreme_heads(values: np.ndarray) -> tuple[tuple[int, int, float], tuple[int, int, float]]:
    """((layer, head, value) of the smallest, same of the largest) entry of an [L, H] array."""
    v = np.asarray(values, dtype=np.float64)
    lo = np.unravel_index(int(np.argmin(v)), v.shape)
    hi = np.unravel_index(int(np.argmax(v)), v.shape)
    return (int(lo[0]), int(lo[1]), float(v[lo])), (int(hi[0]), int(hi[1]), float(v[hi]))


def content_patches(trace: Trace, pad_value: int | None) -> np.ndarray:
    """[N] bool: the patches that hold some of the photo, False for patches made only of the
    padding a letterboxing preprocessor added (every pixel equal to `pad_value`)."""
    image = trace.image(0).astype(np.int16)
    N = trace.N
    if pad_value is None:
        return np.ones(N, dtype=bool)
    P = trace.patch_size
    h, w = trace.grid
    blocks = image[: h * P, : w * P].reshape(h, P, w, P, 3).transpose(0, 2, 1, 3, 4).reshape(N, -1)
    return ~(np.abs(blocks - int(pad_value)) <= 1).all(axis=1)  # ±1: de-normalising rounds
