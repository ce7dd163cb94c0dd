"""Per-view arrays: what each page shows, computed from one image's trace (numpy in, numpy out).

Nothing here runs the model except ``mlp_hidden``, which re-evaluates one block's first MLP
layer for one token. Symbols: L layers, H heads, T tokens (p prefix + N patches), D width,
d head width, K classes, (h, w) patch grid.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from model.attribution import (
    all_heads_maps, all_layers_maps, attention_rollout, chefer_relevance, gradient_rollout, layer_head_grid,
    patch_map, query_attention,
)
from model.head_stats import artifact_tokens, attention_entropy, mean_attention_distance, prefix_attention, token_norms

from .traces import TraceData

# ----------------------------------------------------------------------------- per-view arrays

def centre_patch(td: TraceData) -> int:
    """The index (among the N patches) of the patch at the centre of the grid."""
    h, w = td.grid
    return (h // 2) * w + w // 2


def query_options(td: TraceData) -> list[int]:
    return list(range(td.T))


def attention_map(td: TraceData, layer: int, head, query: int) -> np.ndarray:
    """`[h, w]`: what token `query` attends to at (`layer`, `head`); head may be a fusion name."""
    return patch_map(query_attention(td.attentions, layer, head, query), td.grid, td.num_prefix_tokens)


def heads_maps(td: TraceData, layer: int, query: int) -> np.ndarray:
    return all_heads_maps(td.attentions, layer, query, td.grid, td.num_prefix_tokens)


def layers_maps(td: TraceData, head, query: int) -> np.ndarray:
    return all_layers_maps(td.attentions, head, query, td.grid, td.num_prefix_tokens)


def grid_maps(td: TraceData, query: int) -> np.ndarray:
    return layer_head_grid(td.attentions, query, td.grid, td.num_prefix_tokens)


def mass_mask(td: TraceData, layer: int, head: int, query: int, threshold: float = 0.6) -> tuple:
    """(map, mask): the attention map and the smallest set of patches holding `threshold` of it (DINO)."""
    from model.attribution import attention_mass_mask

    m = attention_map(td, layer, head, query)
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


def prefix_share(td: TraceData, layer: int, head: int, query: int) -> float:
    """The attention mass token `query` puts on the prefix tokens (not shown on the patch map)."""
    return float(td.attentions[layer, head, query, : td.num_prefix_tokens].sum())


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def qkv_step(td: TraceData, layer: int, head: int, query: int, top: int = 8) -> dict:
    """Attention of one token written out with the real numbers of this image.

    scores_j = q·k_j/√d; a = softmax(scores) (equal to the trace's attention row);
    out = Σ_j a_j v_j. Returns the vectors, the rows, the top keys and the check.
    """
    q = td.queries[layer, head, query].astype(np.float64)  # (d,)
    k = td.keys[layer, head].astype(np.float64)  # (T, d)
    v = td.values[layer, head].astype(np.float64)  # (T, d)
    d = q.shape[0]
    dots = k @ q  # (T,)
    scores = dots / math.sqrt(d)
    weights = softmax(scores)
    out = weights @ v  # (d,)
    traced = td.attentions[layer, head, query].astype(np.float64)
    order = np.argsort(-weights, kind="stable")[: int(top)]
    rows = [
        {"key token": td.token_name(j), "q·k": float(dots[j]), "q·k/√d": float(scores[j]),
         "softmax weight": float(weights[j])}
        for j in order
    ]
    return {
        "d": d, "sqrt_d": math.sqrt(d), "q": q, "dots": dots, "scores": scores, "weights": weights, "out": out,
        "top": rows, "max_diff": float(np.abs(weights - traced).max()), "weight_sum": float(weights.sum()),
        "prefix_share": float(weights[: td.num_prefix_tokens].sum()),
    }


def projection_check(td: TraceData, weight: np.ndarray, bias: np.ndarray | None, patch: int) -> dict:
    """x_p·E + b recomputed for one patch and compared with the traced patch embedding."""
    x = td.patches[patch].astype(np.float64)  # (C·P·P,)
    y = x @ np.asarray(weight, dtype=np.float64).T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    traced = td.patch_embeddings[patch].astype(np.float64)
    return {"x": x, "y": y, "traced": traced, "max_diff": float(np.abs(y - traced).max())}


def patch_pixels(td: TraceData, patch: int) -> np.ndarray:
    """The P×P×3 uint8 pixels of patch `patch` (row-major, without prefix tokens) as the model sees them."""
    P = td.patch_size
    r, c = divmod(int(patch), td.grid[1])
    return td.image[r * P:(r + 1) * P, c * P:(c + 1) * P]


def token_names(td: TraceData) -> list[str]:
    return [td.token_name(t) for t in range(td.T)]


def short_token_names(td: TraceData) -> list[str]:
    """Compact unique names for axis labels: ``CLS``, ``REG0``, then ``137 (r8,c8)``."""
    p, w = td.num_prefix_tokens, td.grid[1]
    return list(td.prefix_names) + [f"{t} (r{(t - p) // w},c{(t - p) % w})" for t in range(p, td.T)]


def residual_norms(td: TraceData, token: int) -> dict[str, np.ndarray]:
    """‖attention update‖ [L], ‖MLP update‖ [L] and ‖stream‖ [L+1] of one token."""
    return {
        "attn": np.linalg.norm(td.attn_residuals[:, token].astype(np.float64), axis=-1),
        "mlp": np.linalg.norm(td.mlp_residuals[:, token].astype(np.float64), axis=-1),
        "stream": np.linalg.norm(td.hidden_states[:, token].astype(np.float64), axis=-1),
    }


def mlp_hidden(model, td: TraceData, layer: int, token: int) -> np.ndarray:
    """The hidden MLP units of one token in one block, GELU(LN(z')W₁ + b₁) → [mlp_dim].

    The trace keeps the block's input and both updates, so z' = z + attention update is exact;
    only this one block's first MLP layer is evaluated again, for one token (microseconds),
    not the model.
    """
    z_mid = td.hidden_states[layer, token] + td.attn_residuals[layer, token]  # z'_l, (D,)
    block = model.blocks[layer]
    with torch.inference_mode():
        x = torch.as_tensor(np.ascontiguousarray(z_mid), dtype=block.mlp.fc1.weight.dtype,
                            device=block.mlp.fc1.weight.device)
        hidden = block.mlp.act(block.mlp.fc1(block.norm2(x)))
    return hidden.float().cpu().numpy()


def position_sum(td: TraceData, token: int) -> dict:
    """z0 = x_p E + E_pos for one token: the norms of both parts and of the sum."""
    p = td.num_prefix_tokens
    z0 = td.hidden_states[0, token].astype(np.float64)
    pos = td.pos_embed[token].astype(np.float64)
    content = z0 - pos if token < p else td.patch_embeddings[token - p].astype(np.float64)
    return {"content_norm": float(np.linalg.norm(content)), "pos_norm": float(np.linalg.norm(pos)),
            "sum_norm": float(np.linalg.norm(z0)), "max_diff": float(np.abs(content + pos - z0).max()),
            "cosine": float(content @ pos / max(np.linalg.norm(content) * np.linalg.norm(pos), 1e-12))}


def residual_table(td: TraceData, token: int) -> list[dict]:
    """Per layer, for one token: the stream's norm before, the attention and MLP updates, after."""
    rows = []
    for layer in range(td.L):
        before = td.hidden_states[layer, token].astype(np.float64)
        a = td.attn_residuals[layer, token].astype(np.float64)
        m = td.mlp_residuals[layer, token].astype(np.float64)
        rows.append({
            "layer": layer,
            "‖z before‖": float(np.linalg.norm(before)),
            "‖attention update‖": float(np.linalg.norm(a)),
            "‖MLP update‖": float(np.linalg.norm(m)),
            "‖z after‖": float(np.linalg.norm(td.hidden_states[layer + 1, token])),
            "check": float(np.abs(before + a + m - td.hidden_states[layer + 1, token]).max()),
        })
    return rows


def top_classes(td: TraceData, k: int = 5) -> list[dict]:
    if td.logits is None:
        return []
    p = softmax(td.logits)
    names = td.class_names()
    order = np.argsort(-p, kind="stable")[:k]
    return [{"class": names[i], "index": int(i), "logit": float(td.logits[i]), "probability": float(p[i])}
            for i in order]


def loss_for(td: TraceData, label: int) -> dict:
    """Cross-entropy −log p(label) for the chosen label (nats), computed stably."""
    if td.logits is None:
        raise ValueError("this model has no classification head, so there is no loss")
    z = td.logits.astype(np.float64)
    logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
    label = int(label)
    if not 0 <= label < td.K:
        raise ValueError(f"label {label} is out of range; this model has classes 0…{td.K - 1}")
    return {"label": label, "p": float(np.exp(logp[label])), "loss": float(-logp[label]),
            "all_losses": (-logp).tolist(), "top": int(np.argmax(z)), "uniform": math.log(td.K)}


def loss_table(td: TraceData) -> list[dict]:
    """The loss the model would get for each possible label, most probable first."""
    info = loss_for(td, 0)
    p = softmax(td.logits)
    names = td.class_names()
    return [{"label": names[i], "p": float(p[i]), "loss −log p": float(info["all_losses"][i])}
            for i in np.argsort(-p, kind="stable")]


def explanation_maps(td: TraceData, gradients: np.ndarray | None, *, fusion: str = "mean",
                     discard_ratio: float = 0.0, residual_alpha: float = 0.5, start_layer: int = 0,
                     query: int = 0) -> dict[str, np.ndarray]:
    """``{"rollout": [h, w], "gradient rollout": …, "Chefer et al.": …}`` for one image.

    Rollout is read at row `query` (any token); the class-specific maps at the CLS row, as
    their definitions say. Without gradients (no class head) only the rollout is returned.
    """
    p, grid = td.num_prefix_tokens, td.grid
    start = min(int(start_layer), td.L - 1)
    maps = {"rollout": patch_map(attention_rollout(td.attentions, fusion, discard_ratio, residual_alpha,
                                                   start, p)[query], grid, p)}
    if gradients is not None:
        maps["gradient rollout"] = patch_map(
            gradient_rollout(td.attentions, gradients, discard_ratio, residual_alpha, start, p)[0], grid, p)
        maps["Chefer et al."] = patch_map(chefer_relevance(td.attentions, gradients, start)[0], grid, p)
    return maps


def head_statistics(td: TraceData) -> dict:
    """Per layer × head: mean attention distance (px), entropy (nats), prefix share; token
    norms per layer; the high-norm artifact tokens of the last layer."""
    p = td.num_prefix_tokens
    arts = artifact_tokens(td.hidden_states, p, layer=-1, grid=td.grid)
    return {
        "distance": mean_attention_distance(td.attentions, td.grid, td.patch_size, p),
        "entropy": attention_entropy(td.attentions),
        "prefix": prefix_attention(td.attentions, p) if p else np.zeros((td.L, td.H)),
        "norms": token_norms(td.hidden_states),
        "artifacts": [int(t) for t in arts.token_indices],
        "artifact_rows": [{"token": td.token_name(int(t)), "norm": float(n)}
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
