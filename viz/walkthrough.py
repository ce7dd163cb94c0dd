"""Walkthrough figures: one step of the ViT at a time, with the real numbers of one image.

- :func:`patch_flatten_figure` — one patch → its P·P·3 pixel numbers → its D-dim embedding;
- :func:`attention_scores_figure` — one query's scores q·k/√d and their softmax row;
- :func:`value_mixing_figure` — the attention output as the weighted sum Σ pⱼ vⱼ;
- :func:`residual_stream_figure` — what each block's attention and MLP add to one token;
- :func:`mlp_activation_figure` — the hidden MLP units of one token (histogram);
- :func:`mass_mask_figure` — the DINO attention-mass mask over the image;
- :func:`token_norms_lines_figure` — token norms per layer as lines (median, spread, outliers).

Like every builder in :mod:`viz`: numpy arrays in, a ``plotly.graph_objects.Figure`` out,
``title=None, theme=None, classroom=False``, and ``ValueError`` s that name the bad value and
the fix. The numbers a test (or a curious reader) wants are in ``fig.data`` and ``layout.meta``.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from . import _figure as F
from ._checks import check_prefix, float_array, image_array, patch_size_for
from .theme import Theme, resolve_theme

__all__ = [
    "attention_scores_figure", "value_mixing_figure", "residual_stream_figure", "mlp_activation_figure",
    "mass_mask_figure", "token_norms_lines_figure", "patch_flatten_figure", "flatten_patch",
]

AUTO_ALL_KEYS = 64  # up to this many keys the scores figure shows every key in token order
DEFAULT_TOP_KEYS = 20  # beyond it, the top keys by weight (readable on a projector)
FLATTEN_ORDERS = ("chw", "hwc")


# =============================================================================================
# shared pieces
# =============================================================================================
def _names(token_names, T: int, what: str) -> list[str]:
    if token_names is None:
        return [f"token {j}" for j in range(T)]
    names = [str(n) for n in token_names]
    if len(names) != T:
        raise ValueError(f"token_names has {len(names)} names but {what} has T={T} tokens; expected one name "
                         f"per token (prefix tokens first, then patches row-major).")
    if len(set(names)) != T:
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise ValueError(f"token_names has repeated names {dup}; expected unique names, e.g. "
                         f"'CLS', '17 (r1,c2)' (viz._checks.token_names builds them).")
    return names


def _prefix_count(num_prefix_tokens: int, T: int) -> int:
    p = len(check_prefix(num_prefix_tokens))
    if p > T:
        raise ValueError(f"num_prefix_tokens={p} but there are only T={T} tokens; expected 0..{T}.")
    return p


def _probability_row(probs, name: str, what: str) -> np.ndarray:
    pr = float_array(probs, 1, name, what)
    if pr.min() < -1e-6 or pr.max() > 1 + 1e-6:
        raise ValueError(f"{name} has values in [{pr.min():.3g}, {pr.max():.3g}]; expected softmax weights in "
                         f"[0, 1]. Fix: pass attentions[l, h, query] (after softmax), not the raw scores.")
    total = float(pr.sum())
    if abs(total - 1.0) > 1e-3:
        raise ValueError(f"{name} sums to {total:.4g}; expected one softmax row summing to 1. "
                         f"Fix: pass one query's row, attentions[l, h, query], over all T keys.")
    return pr


def _check_top(top, what: str = "top") -> int:
    if isinstance(top, (bool, np.bool_)) or not isinstance(top, (int, np.integer)) or int(top) < 1:
        raise ValueError(f"{what}={top!r}; expected a whole number of tokens to show, at least 1 (e.g. 8).")
    return int(top)


def _kind_colors(th: Theme, idx, p: int) -> list[str]:
    """Prefix tokens (CLS, DIST, registers) in the second colour, patch tokens in the bar colour."""
    return [th.second_color if j < p else th.bar_color for j in idx]


def _pct(x: float) -> str:
    """A percentage as people write it: 60%, 62.5%, 0.3%."""
    v = 100.0 * float(x)
    if abs(v - round(v)) < 1e-9 or v >= 10:
        return f"{v:.0f}%"
    return f"{v:.1f}%"


def _row_px(th: Theme) -> float:
    """Height of one labelled category row (bars, heatmap rows) that keeps labels apart."""
    return th.tick_size * 1.9


# =============================================================================================
# 1. attention scores and softmax of one query
# =============================================================================================
def attention_scores_figure(scores, probs, token_names, *, query_name: str, num_prefix_tokens: int = 1,
                            top: int | None = None, title: str | None = None, theme=None,
                            classroom: bool = False) -> go.Figure:
    """One query, one head: the scores ``q·k_j/√d`` per key token and the softmax row, aligned.

    ``scores [T]`` (e.g. ``keys[l, h] @ queries[l, h, q] / sqrt(d)``), ``probs [T]`` the
    softmax of that row (``attentions[l, h, q]``; must sum to 1), ``token_names`` one name per
    token. Which keys: with ``top=None`` and ``T <= 64`` every key in token order (two
    stacked panels, prefix tokens first, a line after them); otherwise the ``top`` keys
    (default 20) with the largest weights, sorted, as two side-by-side horizontal bar panels
    with the names readable — the title states "top N of T keys" and the weight they hold.

    Trace 0: Bar of the scores, trace 1: Bar of the weights, both over the same keys
    (category names in the same order; ``customdata`` = token indices). Prefix tokens
    (index ``< num_prefix_tokens``) get the theme's second colour. ``layout.meta``:
    ``{"keys", "mode" ("tokens" | "top"), "shown_weight"}``.
    """
    th = resolve_theme(theme, classroom)
    s = float_array(scores, 1, "scores", "[T] (q·k/√d of one query with every key, one head)")
    T = s.shape[0]
    pr = _probability_row(probs, "probs", "[T] (the softmax row attentions[l, h, query])")
    if pr.shape[0] != T:
        raise ValueError(f"probs has {pr.shape[0]} entries but scores has T={T}; expected the same keys in both. "
                         f"Fix: scores = keys[l, h] @ q / sqrt(d) and probs = attentions[l, h, query], "
                         f"same layer and head.")
    names = _names(token_names, T, "scores")
    p = _prefix_count(num_prefix_tokens, T)
    q = str(query_name)
    if top is None and T <= AUTO_ALL_KEYS:
        idx = np.arange(T)
        mode = "tokens"
    else:
        n = DEFAULT_TOP_KEYS if top is None else _check_top(top)
        idx = np.argsort(-pr, kind="stable")[: min(n, T)]
        mode = "top"
    shown = float(pr[idx].sum())
    cats = [names[j] for j in idx]
    colors = _kind_colors(th, idx, p)
    has_prefix = bool(p) and bool((idx < p).any())
    keys = ([("prefix token" + ("s" if p > 1 else ""), th.second_color), ("patch tokens", th.bar_color)]
            if has_prefix else [])
    if mode == "tokens":
        traces, lay = _scores_by_token(th, s, pr, idx, cats, colors, p)
        default = f"How {q} attends: q·k/√d → softmax over all {T} keys"
    else:
        traces, lay = _scores_top(th, s, pr, idx, cats, colors)
        rest = T - len(idx)
        default = (f"How {q} attends: q·k/√d → softmax, top {len(idx)} of {T} keys by weight "
                   f"({_pct(shown)} of the weight" + (f"; {rest} others share the rest)" if rest else ")"))
    width, height, margin = lay.pop("width"), lay.pop("height"), lay.pop("margin")
    if keys:  # the bars' two colours named in a legend (key entries after the data traces)
        height, margin = F.legend_room(th, [k for k, _ in keys], width, height, margin)
        traces += [F.legend_key(name, color, th) for name, color in keys]
        lay.update(showlegend=True, legend=th.legend(itemclick=False, itemdoubleclick=False))
    fig = go.Figure(traces)
    fig.layout = th.layout(title or default, width, height, margin=margin,
                           meta={"keys": idx.tolist(), "mode": mode, "shown_weight": shown}, **lay)
    return fig


def _scores_by_token(th, s, pr, idx, cats, colors, p) -> tuple[list, dict]:
    """Every key in token order: scores on top, weights below, one shared category x axis."""
    T = len(idx)
    width, height, margin = F.figure_size(th, 0.78, 820, colorbar=False, max_plot_height=900)
    plot_w = width - margin["l"] - margin["r"]
    # ticks: prefix names, then evenly spaced token indices, none overlapping
    labels = [cats[j] if j < p else str(j) for j in range(T)]
    tv, tt = F.index_ticks(T - p, plot_w, th.tick_size, start=p, positions=range(p, T), labels=labels[p:])
    fixed = [(j, labels[j]) for j in range(p)]
    pos, text = F.merge_ticks(fixed, list(zip(tv, tt)), plot_w / T, th.tick_size)
    xa = th.axis("key token (index; prefix tokens first)", type="category", range=[-0.5, T - 0.5],
                 tickmode="array", tickvals=[cats[i] for i in pos], ticktext=text, anchor="y")
    lo, hi = min(0.0, float(s.min())), max(0.0, float(s.max()))
    pad = 0.08 * (hi - lo or 1.0)
    ya2 = th.axis("score q·k/√d", chart=True, domain=[0.54, 1.0], anchor="x",
                  range=[lo - (pad if lo < 0 else 0), hi + pad])
    ya = th.axis("softmax weight", chart=True, domain=[0.0, 0.46], anchor="x",
                 range=[0.0, float(pr.max()) * 1.12 or 1.0], tickformat=".0%")
    bars = [
        go.Bar(x=cats, y=s[idx], name="scores", yaxis="y2", marker={"color": colors}, customdata=idx,
               showlegend=False, hovertemplate="key %{x}<br>q·k/√d = %{y:.4f}<extra></extra>"),
        go.Bar(x=cats, y=pr[idx], name="softmax weights", marker={"color": colors}, customdata=idx,
               showlegend=False, hovertemplate="key %{x}<br>weight %{y:.4f}<extra></extra>"),
    ]
    shapes = [dict(type="line", xref="paper", yref="y2", x0=0, x1=1, y0=0, y1=0,
                   line={"color": th.axis_color, "width": 1}, layer="above", name="zero score")]
    if p:
        shapes.append(dict(type="line", xref="x", yref="paper", x0=p - 0.5, x1=p - 0.5, y0=0, y1=1,
                           line={"color": th.axis_color, "width": th.line_width * 1.5}, layer="above",
                           name="prefix|patch separator"))
    return bars, dict(width=width, height=height, margin=margin, xaxis=xa, yaxis=ya, yaxis2=ya2, shapes=shapes,
                      bargap=0.15 if T > 20 else 0.3)


def _scores_top(th, s, pr, idx, cats, colors) -> tuple[list, dict]:
    """The top keys as rows (names readable), scores left, weights right, one category y axis."""
    n = len(idx)
    longest = max(len(c) for c in cats)
    name_px = F.text_width("x" * longest, th.tick_size)
    width, _, margin = F.figure_size(th, 0.5, 820, colorbar=False, extra_left=max(0, name_px - 50))
    row = _row_px(th)
    plot_h = min(n * row, th.px(900))
    height = round(margin["t"] + plot_h + margin["b"])
    plot_h_real = height - margin["t"] - margin["b"]
    pos, text = F.merge_ticks([], [(i, cats[i]) for i in range(n)], plot_h_real / n, th.tick_size, along="height")
    ya = th.axis("", type="category", range=[n - 0.5, -0.5], tickmode="array",
                 tickvals=[cats[i] for i in pos], ticktext=text, ticks="", anchor="x")
    lo, hi = min(0.0, float(s[idx].min())), max(0.0, float(s[idx].max()))
    span = hi - lo or 1.0
    xa = th.axis("score q·k/√d", chart=True, domain=[0.0, 0.44], anchor="y",
                 range=[lo - (0.3 * span if lo < 0 else 0), hi + 0.3 * span])
    xa2 = th.axis("softmax weight", chart=True, domain=[0.56, 1.0], anchor="y",
                  range=[0.0, float(pr[idx].max()) * 1.4 or 1.0], tickformat=".0%")
    text_font = th.font(th.font_size)
    bars = [
        go.Bar(x=s[idx], y=cats, orientation="h", name="scores", marker={"color": colors}, customdata=idx,
               text=[f"{v:.2f}" for v in s[idx]], textposition="outside", textfont=text_font, cliponaxis=False,
               showlegend=False, hovertemplate="key %{y}<br>q·k/√d = %{x:.4f}<extra></extra>"),
        go.Bar(x=pr[idx], y=cats, orientation="h", name="softmax weights", xaxis="x2", marker={"color": colors},
               customdata=idx, text=[_pct_short(v) for v in pr[idx]], textposition="outside", textfont=text_font,
               cliponaxis=False, showlegend=False, hovertemplate="key %{y}<br>weight %{x:.4f}<extra></extra>"),
    ]
    shapes = [dict(type="line", xref="x", yref="paper", x0=0, x1=0, y0=0, y1=1,
                   line={"color": th.axis_color, "width": 1}, layer="above", name="zero score")]
    return bars, dict(width=width, height=height, margin=margin, xaxis=xa, xaxis2=xa2, yaxis=ya, shapes=shapes,
                      bargap=0.25)


def _pct_short(v: float) -> str:
    return f"{100 * v:.1f}%" if v >= 0.001 else "<0.1%"


# =============================================================================================
# 2. the output as a weighted sum of value vectors
# =============================================================================================
def value_mixing_figure(probs, values, output=None, token_names=None, *, top: int = 8,
                        query_name: str | None = None, num_prefix_tokens: int = 1, zmax: float | None = None,
                        colormap: str | None = None, title: str | None = None, theme=None,
                        classroom: bool = False) -> go.Figure:
    """How one head's output for one query is ``Σ_j p_j v_j``: the top value vectors and the sum.

    ``probs [T]`` the query's softmax row, ``values [T, d]`` the head's value vectors,
    ``output [d]`` the head's output for that query (checked against ``probs @ values``;
    None computes it). Left: the weights ``p_j`` of the ``top`` keys with the largest weight
    (bars, sorted); middle: their value vectors ``v_j`` (heatmap rows); below: the output
    row ``Σ_j p_j v_j`` over ALL T keys. Values and output share one diverging colour scale
    centred on 0 (``zmax = max|x|`` unless given).

    Traces: 0 Bar of the weights (``y`` = names), 1 Heatmap ``z = values[keys]``,
    2 Heatmap ``z = [probs @ values]``. ``layout.meta``: ``{"keys", "output", "shown_weight"}``.
    """
    th = resolve_theme(theme, classroom)
    pr = _probability_row(probs, "probs", "[T] (the softmax row attentions[l, h, query])")
    T = pr.shape[0]
    V = float_array(values, 2, "values", "[T, d] (one head's value vectors, values[l, h])")
    if V.shape[0] != T:
        raise ValueError(f"values has shape {V.shape} but probs has T={T} keys; expected values [T, d] of the same "
                         f"layer and head. Fix: pass values[l, h] (not values[l] with all heads).")
    d = V.shape[1]
    mix = pr @ V  # (d,) the attention output of this head for this query
    if output is not None:
        out = float_array(output, 1, "output", "[d] (the head's output for this query)")
        if out.shape[0] != d:
            raise ValueError(f"output has {out.shape[0]} entries but values has d={d}; expected [d]. "
                             f"Fix: pass this head's slice of the output, before the projection W_O.")
        tol = 1e-3 * max(1.0, float(np.abs(V).max()))
        diff = float(np.abs(out - mix).max())
        if diff > tol:
            raise ValueError(f"output differs from Σ_j probs[j]·values[j] by up to {diff:.3g}; expected them equal. "
                             f"Fix: pass probs, values and output of the same layer, head and query "
                             f"(output = attentions[l, h, q] @ values[l, h]).")
    names = _names(token_names, T, "probs")
    p = _prefix_count(num_prefix_tokens, T)
    n = min(_check_top(top), T)
    idx = np.argsort(-pr, kind="stable")[:n]
    cats = [names[j] for j in idx]
    shown = float(pr[idx].sum())
    rows_v = V[idx]
    top_abs = float(max(np.abs(rows_v).max(), np.abs(mix).max())) if zmax is None else float(zmax)
    if not top_abs > 0:
        top_abs = 1.0

    # geometry: a weight-bar column, the value heatmap, and one output row below (same columns)
    longest = max(len(c) for c in cats + ["output"])
    name_px = F.text_width("x" * longest, th.tick_size)
    row = _row_px(th)
    plot_w = th.px(760)
    bar_w = th.px(150)
    gap_w = th.px(24)
    rows_h = n * row
    gap_h = row * 1.5 + th.font_size * 1.2  # room for the output caption
    out_h = row * 1.3
    plot_h = rows_h + gap_h + out_h
    margin = dict(th.margin)
    margin["l"] += round(max(0, name_px - 50))
    margin["r"] += round(F.COLORBAR_ROOM * th.scale)
    width = round(margin["l"] + plot_w + margin["r"])
    height = round(margin["t"] + plot_h + margin["b"])
    x_split = bar_w / plot_w
    x_heat = (bar_w + gap_w) / plot_w
    y_rows = (out_h + gap_h) / plot_h
    y_out = out_h / plot_h

    cols = _kind_colors(th, idx, p)
    weights = go.Bar(
        x=pr[idx], y=cats, orientation="h", name="weights", marker={"color": cols}, customdata=idx,
        text=[_pct_short(v) for v in pr[idx]], textposition="outside", textfont=th.font(th.font_size),
        cliponaxis=False, hovertemplate="key %{y}<br>weight p = %{x:.4f}<extra></extra>",
    )
    heat = go.Heatmap(
        z=rows_v, x0=0, dx=1, y=cats, name="value vectors", xaxis="x2", coloraxis="coloraxis", zsmooth=False,
        hovertemplate="value vector of %{y}<br>dim %{x}: %{z:.4f}<extra></extra>",
    )
    out_heat = go.Heatmap(
        z=mix[None, :], x0=0, dx=1, y=["output"], name="output", xaxis="x3", yaxis="y2", coloraxis="coloraxis",
        zsmooth=False, hovertemplate="output = Σ p v<br>dim %{x}: %{z:.4f}<extra></extra>",
    )
    xv, xt = F.index_ticks(d, plot_w * (1 - x_heat), th.tick_size)
    ya = th.axis("", type="category", range=[n - 0.5, -0.5], domain=[y_rows, 1.0], ticks="", anchor="x")
    xa = th.axis("weight pⱼ", chart=True, domain=[0.0, x_split], anchor="y",
                 range=[0.0, float(pr[idx].max()) * 1.6 or 1.0], tickmode="array",
                 tickvals=[0.0, _nice_half(float(pr[idx].max()))],
                 ticktext=["0%", _pct(_nice_half(float(pr[idx].max())))])
    xa2 = th.axis("", domain=[x_heat, 1.0], anchor="y", range=[-0.5, d - 0.5], showticklabels=False, ticks="",
                  showline=False)
    xa3 = th.axis(f"value dimension (d = {d})", domain=[x_heat, 1.0], anchor="y2", range=[-0.5, d - 0.5],
                  tickmode="array", tickvals=xv, ticktext=xt)
    ya2 = th.axis("", type="category", domain=[0.0, y_out], anchor="x3", range=[0.5, -0.5], ticks="",
                  tickmode="array", tickvals=["output"], ticktext=["output"])
    caption = (f"output = Σⱼ pⱼ vⱼ over all {T} keys" if n < T else "output = Σⱼ pⱼ vⱼ")
    caption += f"  (values {_num(mix.min())} … {_num(mix.max())})"
    annotations = [
        dict(text=f"value vectors vⱼ of the top {n} keys", x=x_heat, y=1.0, xref="paper", yref="paper",
             xanchor="left", yanchor="bottom", yshift=4, showarrow=False, font=th.font()),
        dict(text="↓ " + caption, x=x_heat, y=y_out, xref="paper", yref="paper", xanchor="left",
             yanchor="bottom", yshift=6, showarrow=False, font=th.font()),
    ]
    who = f"for {query_name}" if query_name else "of one query"
    default = (f"Attention output {who} = Σⱼ pⱼ vⱼ: top {n} of {T} value vectors ({_pct(shown)} of the weight)"
               if n < T else f"Attention output {who} = Σⱼ pⱼ vⱼ over all {T} value vectors")
    fig = go.Figure([weights, heat, out_heat])
    fig.layout = th.layout(
        title or default, width, height, margin=margin, xaxis=xa, xaxis2=xa2, xaxis3=xa3, yaxis=ya, yaxis2=ya2,
        coloraxis={"colorscale": th.cmap(colormap, "diverging"), "cmin": -top_abs, "cmax": top_abs,
                   "colorbar": th.colorbar("value")},
        annotations=annotations, bargap=0.25,
        meta={"keys": idx.tolist(), "output": mix.tolist(), "shown_weight": shown},
    )
    return fig


def _num(v: float) -> str:
    return f"{v:.3g}".replace("-", "−")


def _nice_half(v: float) -> float:
    """A round tick value at or below ``v`` (for a narrow axis with one labelled tick)."""
    if v <= 0:
        return 0.0
    mag = 10 ** math.floor(math.log10(v))
    for m in (5, 2, 1):
        if m * mag <= v:
            return m * mag
    return mag


# =============================================================================================
# 4. the residual stream of one token
# =============================================================================================
def residual_stream_figure(attn_norms, mlp_norms, stream_norms, *, token_name: str, title: str | None = None,
                           theme=None, classroom: bool = False) -> go.Figure:
    """For one token, how much each block's attention and MLP add to the residual stream.

    ``attn_norms [L]`` = ``‖attn_residuals[l, token]‖``, ``mlp_norms [L]`` =
    ``‖mlp_residuals[l, token]‖``, ``stream_norms [L+1]`` = ``‖hidden_states[k, token]‖``
    (k = 0: after the embeddings; k = l+1: after block l). Bottom panel: two bars per block
    ``l`` (attention at ``x = l - 0.2``, MLP at ``x = l + 0.2``); top panel: the stream's norm
    as a line at the block boundaries ``x = k - 0.5``, so each block sits between the stream
    it reads and the stream it writes. As ``z_{l+1} = z_l + a_l + m_l``, the norms must satisfy
    ``|‖z_{l+1}‖ - ‖z_l‖| <= ‖a_l‖ + ‖m_l‖``; inputs that break it are rejected (usually
    hidden states shifted by one layer).

    Traces: 0 Scatter (stream), 1 Bar (attention), 2 Bar (MLP). ``layout.meta``:
    ``{"attn", "mlp", "stream"}``.
    """
    th = resolve_theme(theme, classroom)
    a = float_array(attn_norms, 1, "attn_norms", "[L] (‖attn_residuals[l, token]‖ per block)")
    m = float_array(mlp_norms, 1, "mlp_norms", "[L] (‖mlp_residuals[l, token]‖ per block)")
    z = float_array(stream_norms, 1, "stream_norms", "[L+1] (‖hidden_states[k, token]‖, k = 0..L)")
    L = a.shape[0]
    if m.shape[0] != L:
        raise ValueError(f"mlp_norms has {m.shape[0]} entries but attn_norms has L={L}; expected one per block.")
    if z.shape[0] != L + 1:
        raise ValueError(f"stream_norms has {z.shape[0]} entries; expected L+1 = {L + 1} (the stream after the "
                         f"embeddings and after each of the {L} blocks). Fix: pass the norms of all hidden_states.")
    for name, v in (("attn_norms", a), ("mlp_norms", m), ("stream_norms", z)):
        if v.min() < 0:
            raise ValueError(f"{name} has a negative entry ({v.min():.3g}); expected L2 norms >= 0. "
                             f"Fix: np.linalg.norm(x, axis=-1).")
    step = np.abs(np.diff(z))
    slack = a + m
    bad = np.nonzero(step > slack + 1e-3 * (z[:-1] + slack) + 1e-6)[0]
    if bad.size:
        l = int(bad[0])
        raise ValueError(f"the stream norm changes by {step[l]:.4g} across block {l} but that block adds at most "
                         f"‖attn‖ + ‖mlp‖ = {slack[l]:.4g}; the inputs do not belong together. "
                         f"Fix: stream_norms[k] "
                         f"= ‖hidden_states[k, token]‖ with k = 0 the embeddings, and block l's norms at index l.")
    width, height, margin = F.figure_size(th, 0.72, 760, colorbar=False, max_plot_height=720)
    plot_w = width - margin["l"] - margin["r"]
    tv, tt = F.index_ticks(L, plot_w, th.tick_size, min_gap_chars=2)
    xr = [-0.75, L - 0.25]
    xa = th.axis("block (layer)", range=xr, tickmode="array", tickvals=tv, ticktext=tt, anchor="y")
    top_bar = float(max(a.max(), m.max())) or 1.0
    ya = th.axis("‖update‖₂", chart=True, domain=[0.0, 0.5], anchor="x", range=[0.0, top_bar * 1.12])
    ya2 = th.axis("‖stream‖₂", chart=True, domain=[0.6, 1.0], anchor="x",
                  range=[0.0, float(z.max()) * 1.12 or 1.0])
    xk = np.arange(L + 1) - 0.5
    where = ["after the embeddings"] + [f"after block {l}" for l in range(L)]
    stream = go.Scatter(
        x=xk, y=z, mode="lines+markers", name="‖stream z‖", yaxis="y2", hovertext=where,
        line={"color": th.font_color, "width": max(3.0, th.line_width * 2.5)},
        marker={"size": th.marker_size, "color": th.font_color},
        hovertemplate="‖z‖ %{hovertext}: %{y:.3f}<extra></extra>",
    )
    bw = 0.38
    blocks = np.arange(L)
    attn = go.Bar(x=blocks - 0.2, y=a, width=bw, name="‖attention update‖", marker={"color": th.bar_color},
                  customdata=blocks,
                  hovertemplate="block %{customdata}: ‖attention update‖ %{y:.3f}<extra></extra>")
    mlp = go.Bar(x=blocks + 0.2, y=m, width=bw, name="‖MLP update‖", marker={"color": th.second_color},
                 customdata=blocks, hovertemplate="block %{customdata}: ‖MLP update‖ %{y:.3f}<extra></extra>")
    traces = [stream, attn, mlp]
    height, margin = F.legend_room(th, [t.name for t in traces], width, height, margin)
    fig = go.Figure(traces)
    fig.layout = th.layout(
        title or f"What each block adds to the residual stream of {token_name}", width, height, margin=margin,
        xaxis=xa, yaxis=ya, yaxis2=ya2, showlegend=True, legend=th.legend(), barmode="overlay", bargap=0.2,
        meta={"attn": a.tolist(), "mlp": m.tolist(), "stream": z.tolist()},
    )
    return fig


# =============================================================================================
# 5. hidden MLP activations of one token
# =============================================================================================
def mlp_activation_figure(activations, *, token: int | None = None, token_name: str | None = None,
                          bins: int = 40, title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """Histogram of one token's hidden MLP activations (after the nonlinearity, ``[mlp_dim]``).

    ``activations`` is ``[mlp_dim]``, or ``[T, mlp_dim]`` with ``token`` picking the row.
    Trace 0 is a Bar of the counts per bin (``x`` = bin centres, ``layout.meta["edges"]`` the
    edges passed to ``np.histogram``: about ``bins`` equal bins, with 0 on an edge so that no bin
    mixes active and inactive units); the title states how many units are active (``> 0``).
    """
    th = resolve_theme(theme, classroom)
    arr = activations
    if np.ndim(arr) == 2:
        T = np.shape(arr)[0]
        if token is None:
            raise ValueError(f"activations has shape {np.shape(arr)} ([T, mlp_dim]); pass token= to pick one "
                             f"token's row (0 = CLS).")
        if not 0 <= int(token) < T:
            raise ValueError(f"token={token} is out of range; expected 0..{T - 1}.")
        arr = np.asarray(arr)[int(token)]
    x = float_array(arr, 1, "activations", "[mlp_dim] (one token's hidden MLP units) or [T, mlp_dim] with token=")
    nb = _check_top(bins, "bins")
    lo, hi = float(x.min()), float(x.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, nb + 1)
    if lo < 0 < hi:  # put 0 on a bin edge, so no bin mixes active and inactive units
        step = (hi - lo) / nb
        edges = np.arange(math.floor(lo / step), math.ceil(hi / step) + 1) * step
    counts, edges = np.histogram(x, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    M = x.shape[0]
    active = int((x > 0).sum())
    width, height, margin = F.figure_size(th, 0.55, 700, colorbar=False)
    lo, hi = float(edges[0]), float(edges[-1])
    pad = 0.03 * (hi - lo or 1.0)
    xa = th.axis("activation value", chart=True, range=[lo - pad, hi + pad])
    ya = th.axis("number of units", chart=True, range=[0, float(counts.max()) * 1.1 or 1.0])
    colors = [th.second_color if c > 0 else th.muted_color for c in centres]
    bars = go.Bar(x=centres, y=counts, width=float(edges[1] - edges[0]) * 0.92, name="units",
                  marker={"color": colors}, customdata=np.stack([edges[:-1], edges[1:]], axis=-1), showlegend=False,
                  hovertemplate="%{customdata[0]:.3f} … %{customdata[1]:.3f}: %{y} units<extra></extra>")
    shapes = []
    if lo < 0 < hi:
        shapes.append(dict(type="line", xref="x", yref="paper", x0=0, x1=0, y0=0, y1=1,
                           line={"color": th.axis_color, "width": th.line_width * 1.5}, layer="above", name="zero"))
    keys = [("active (> 0)", th.second_color), ("inactive (≤ 0)", th.muted_color)]  # the bars' two colours
    height, margin = F.legend_room(th, [k for k, _ in keys], width, height, margin)
    who = token_name or (f"token {token}" if token is not None else "one token")
    fig = go.Figure([bars] + [F.legend_key(name, color, th) for name, color in keys])
    fig.layout = th.layout(
        title or f"MLP hidden units of {who}: {active} of {M} active ({_pct(active / M)})", width, height,
        margin=margin, xaxis=xa, yaxis=ya, shapes=shapes, bargap=0, showlegend=True,
        legend=th.legend(itemclick=False, itemdoubleclick=False),
        meta={"edges": edges.tolist(), "active": active, "units": M},
    )
    return fig


# =============================================================================================
# 6. the DINO attention-mass mask
# =============================================================================================
def mass_mask_figure(image, attn_map, mask, *, patch_size: int | None = None, threshold: float = 0.6,
                     dim: float = 0.3, title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """The image with the patches of the attention-mass mask shown and the rest dimmed.

    ``attn_map [h, w]`` the attention over patches, ``mask [h, w]`` bool: the smallest set
    of patches holding at least ``threshold`` of the map's mass (``model.attention_mass_mask``,
    DINO, Caron et al. 2021). Trace 0 is an Image: kept pixels unchanged, the others
    multiplied by ``dim`` (rounded); traces 1–2 outline the kept region (a dark halo under a
    bright line, segments separated by None); trace 3 carries hover per patch. The title
    states the threshold and the kept patches, e.g. "60% of attention in 23 of 256 patches".
    ``layout.meta``: ``{"kept", "patches", "kept_mass", "threshold"}``.
    """
    th = resolve_theme(theme, classroom)
    img = image_array(image)
    m = float_array(attn_map, 2, "attn_map", "[h, w] over the patch grid")
    mk = np.asarray(mask)
    if mk.shape != m.shape:
        raise ValueError(f"mask has shape {mk.shape} but attn_map has {m.shape}; expected the same [h, w] grid. "
                         f"Fix: mask = model.attention_mass_mask(attn_map, threshold).")
    if mk.dtype != np.bool_:
        if not np.isin(mk, (0, 1)).all():
            raise ValueError(f"mask has dtype {mk.dtype} with values other than 0/1; expected a bool [h, w] mask.")
        mk = mk.astype(bool)
    thr = float(threshold)
    if not 0.0 < thr <= 1.0:
        raise ValueError(f"threshold={threshold!r}; expected the kept fraction of attention in (0, 1], DINO uses 0.6.")
    dm = float(dim)
    if not 0.0 <= dm <= 1.0:
        raise ValueError(f"dim={dim!r}; expected the brightness of dropped patches in [0, 1] (0 = black).")
    if m.min() < 0:
        raise ValueError(f"attn_map has a negative value ({m.min():.3g}); expected attention >= 0.")
    h, w = m.shape
    P = patch_size_for(img, (h, w), patch_size)
    total = float(m.sum())
    kept_mass = float(m[mk].sum()) / total if total > 0 else 0.0
    if total > 0 and kept_mass < thr - 1e-6:
        raise ValueError(f"mask keeps {_pct(kept_mass)} of the attention but threshold={thr:g}; expected at least "
                         f"the threshold. Fix: mask = model.attention_mass_mask(attn_map, {thr:g}).")
    keep_px = np.repeat(np.repeat(mk, P, axis=0), P, axis=1)
    shown = np.where(keep_px[..., None], img, np.rint(img.astype(np.float64) * dm)).astype(np.uint8)
    k, N = int(mk.sum()), h * w
    H, W = img.shape[:2]
    width, height, margin = F.figure_size(th, H / W, 540, colorbar=False)
    xa, ya = F.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), "x (px)", "y (px)")
    xs, ys = _mask_outline(mk, P)
    lw = th.outline_width
    halo = go.Scatter(x=xs, y=ys, mode="lines", name="outline halo", hoverinfo="skip",
                      line={"color": "rgba(0,0,0,0.85)", "width": lw + 2.5})
    line = go.Scatter(x=xs, y=ys, mode="lines", name="kept patches", hoverinfo="skip",
                      line={"color": th.highlight_color, "width": lw})
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    hover = go.Scatter(
        x=(cols * P + (P - 1) / 2).ravel(), y=(rows * P + (P - 1) / 2).ravel(), mode="markers", name="patches",
        marker={"size": 12, "opacity": 0, "color": "black"}, showlegend=False,
        customdata=np.stack([rows.ravel(), cols.ravel(), m.ravel()], axis=-1),
        text=np.where(mk.ravel(), "kept", "dimmed"),
        hovertemplate="patch (row %{customdata[0]}, col %{customdata[1]})<br>attention %{customdata[2]:.4f}"
                      "<br>%{text}<extra></extra>",
    )
    fig = go.Figure([go.Image(z=shown, name="masked image", hoverinfo="skip"), halo, line, hover])
    fig.layout = th.layout(
        title or f"{_pct(thr)} of attention in {k} of {N} patches ({_pct(k / N)} of the image)",
        width, height, margin=margin, xaxis=xa, yaxis=ya,
        meta={"kept": k, "patches": N, "kept_mass": kept_mass, "threshold": thr},
    )
    return fig


def _mask_outline(mask: np.ndarray, P: int) -> tuple[list, list]:
    """Boundary of the True cells as merged straight segments, in pixel coordinates, runs
    separated by None (one Scatter draws them all)."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), dtype=bool)
    pad[1:-1, 1:-1] = mask
    xs: list = []
    ys: list = []

    def runs(flags):
        start = None
        for i, f in enumerate(list(flags) + [False]):
            if f and start is None:
                start = i
            elif not f and start is not None:
                yield start, i
                start = None

    # horizontal edges on line r (between rows r-1 and r): cells differ across it
    for r in range(h + 1):
        edge = pad[r, 1:-1] != pad[r + 1, 1:-1]
        for c0, c1 in runs(edge):
            xs += [c0 * P - 0.5, c1 * P - 0.5, None]
            ys += [r * P - 0.5, r * P - 0.5, None]
    for c in range(w + 1):
        edge = pad[1:-1, c] != pad[1:-1, c + 1]
        for r0, r1 in runs(edge):
            xs += [c * P - 0.5, c * P - 0.5, None]
            ys += [r0 * P - 0.5, r1 * P - 0.5, None]
    return xs, ys


# =============================================================================================
# 7. token norms per layer as lines
# =============================================================================================
def token_norms_lines_figure(norms, *, num_prefix_tokens: int = 1, prefix_names=None, artifact_tokens=None,
                             title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """Token norms per layer as lines: the patch tokens' median with its spread, every prefix
    token on its own line, artifact (high-norm) tokens highlighted — a readable alternative to
    :func:`viz.token_norms_figure`.

    ``norms [L+1, T]`` (row 0 the embeddings, row k the stream after block k-1). The patch
    statistics use the patch tokens that are not in ``artifact_tokens`` (all patches if every
    one is listed). Traces in order: 0 band 5–95th percentile, 1 band 25–75th (both
    ``fill="toself"``: upper edge left to right, then lower edge back), 2 the median line,
    3 a thin line of the largest of those patch norms (so an unlisted outlier still shows),
    then one line per prefix token (named by ``prefix_names``), then one per artifact token
    (named ``"token t (artifact)"``, accent colour). Every trace is named in the legend above the plot.
    ``layout.meta``: ``{"median", "q05", "q25", "q75", "q95", "artifact_tokens"}``.
    """
    th = resolve_theme(theme, classroom)
    if np.ndim(norms) != 2:
        raise ValueError(f"norms has shape {np.shape(norms)}; expected [L+1, T] (one row per layer, one column per "
                         f"token). Fix: np.linalg.norm(hidden_states, axis=-1) of one image gives [L+1, T].")
    v = float_array(norms, 2, "norms", "[L+1, T] (token norms, row 0 the embeddings, one column per token)")
    R, T = v.shape
    names_p = check_prefix(num_prefix_tokens, prefix_names)
    p = len(names_p)
    if p >= T:
        raise ValueError(f"num_prefix_tokens={p} but norms has only T={T} tokens; expected prefix tokens and at "
                         f"least one patch token. Fix: pass norms [L+1, T] (tokens as columns), not transposed.")
    arts = sorted({int(t) for t in (artifact_tokens or [])})
    bad = [t for t in arts if not 0 <= t < T]
    if bad:
        raise ValueError(f"artifact_tokens {bad} out of range; expected token indices 0..{T - 1}.")
    patch_cols = [j for j in range(p, T) if j not in set(arts)] or list(range(p, T))
    P_ = v[:, patch_cols]
    q05, q25, med, q75, q95 = np.percentile(P_, [5, 25, 50, 75, 95], axis=1)
    layers = np.arange(R)
    width, height, margin = F.figure_size(th, 0.6, 720, colorbar=False)
    top_patch = P_.max(axis=1)
    prefix_lines = [j for j in range(p) if j not in arts]
    plot_w = width - margin["l"] - margin["r"]
    ymax = float(v.max()) * 1.08 or 1.0
    tv, tt = F.index_ticks(R, plot_w, th.tick_size, min_gap_chars=2)
    xa = th.axis("layer (0 = embeddings)", chart=True, range=[-0.15, R - 0.85], tickmode="array", tickvals=tv,
                 ticktext=tt)
    ya = th.axis("token norm ‖x‖₂", chart=True, range=[0.0, ymax])

    def band(lo, hi, name, alpha, rank):
        return go.Scatter(x=np.concatenate([layers, layers[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                          mode="lines", fill="toself", name=name, hoverinfo="skip", legendrank=rank,
                          line={"color": "rgba(0,0,0,0)", "width": 0},
                          fillcolor=_alpha(th.bar_color, alpha))

    lw = max(3.0, th.line_width * 2.5)
    # drawn bands first (underneath); listed in the legend median, middle 50%, 90%, max
    traces = [
        band(q05, q95, "patch 5–95%", 0.18, 3),
        band(q25, q75, "patch 25–75%", 0.38, 2),
        go.Scatter(x=layers, y=med, mode="lines+markers", name="patch median", legendrank=1,
                   line={"color": th.bar_color, "width": lw}, marker={"size": th.marker_size * 0.7,
                                                                     "color": th.bar_color},
                   customdata=np.stack([q25, q75], axis=-1),
                   hovertemplate="layer %{x}: median patch norm %{y:.3f}<br>middle 50%: %{customdata[0]:.3f} … "
                                 "%{customdata[1]:.3f}<extra></extra>"),
        go.Scatter(x=layers, y=top_patch, mode="lines", name="patch max", legendrank=4,
                   line={"color": _alpha(th.bar_color, 0.7), "width": max(1.5, lw / 2)},
                   hovertemplate="layer %{x}: largest patch norm %{y:.3f}<extra></extra>"),
    ]
    for i, j in enumerate(prefix_lines):
        c = th.palette[i % len(th.palette)]
        traces.append(go.Scatter(x=layers, y=v[:, j], mode="lines+markers", name=names_p[j], legendrank=5 + i,
                                 line={"color": c, "width": lw}, marker={"size": th.marker_size * 0.7, "color": c},
                                 hovertemplate=f"{names_p[j]}, " + "layer %{x}: norm %{y:.3f}<extra></extra>"))
    for i, t in enumerate(arts):
        name = names_p[t] if t < p else f"token {t}"
        traces.append(go.Scatter(x=layers, y=v[:, t], mode="lines+markers", name=f"{name} (artifact)",
                                 legendrank=5 + len(prefix_lines) + i,
                                 line={"color": th.accent_color, "width": lw * 0.7},
                                 marker={"size": th.marker_size * 0.6, "color": th.accent_color, "symbol": "diamond"},
                                 hovertemplate=f"artifact {name}, " + "layer %{x}: norm %{y:.3f}<extra></extra>"))
    height, margin = F.legend_room(th, [t.name for t in traces], width, height, margin)
    n_art = len(arts)
    fig = go.Figure(traces)
    fig.layout = th.layout(
        title or ("Token norms per layer" + (f" ({n_art} artifact token{'s' if n_art != 1 else ''})" if n_art else "")),
        width, height, margin=margin, xaxis=xa, yaxis=ya, showlegend=True, legend=th.legend(),
        meta={"median": med.tolist(), "q05": q05.tolist(), "q25": q25.tolist(), "q75": q75.tolist(),
              "q95": q95.tolist(), "artifact_tokens": arts},
    )
    return fig


def _alpha(color: str, a: float) -> str:
    from .colormaps import parse_color

    r, g, b, _ = parse_color(color)
    return f"rgba({r},{g},{b},{a:g})"


# =============================================================================================
# 8. one patch -> its pixel vector -> its embedding
# =============================================================================================
def flatten_patch(patch_pixels, order: str = "chw") -> np.ndarray:
    """A ``[P, P, 3]`` patch as its ``P·P·3`` numbers.

    ``"chw"`` (default): all red values row by row, then green, then blue — the order of
    ``Trace.patches`` and of the patch-embedding weight (a ``Conv2d`` kernel ``[D, 3, P, P]``
    flattened), so ``flatten_patch(x) @ E.T + b`` is the embedding. ``"hwc"``: pixel by pixel,
    r, g, b each — the order of :func:`viz.maps.flatten_patches` (``(p1 p2 c)`` in einops).
    """
    x = _patch_pixels(patch_pixels)
    if order == "chw":
        return x.transpose(2, 0, 1).reshape(-1)
    if order == "hwc":
        return x.reshape(-1)
    raise ValueError(f"order={order!r}; expected one of {FLATTEN_ORDERS} ('chw' matches the model's weights).")


def _patch_pixels(patch_pixels) -> np.ndarray:
    x = image_array(patch_pixels, "patch_pixels")
    if x.shape[0] != x.shape[1]:
        raise ValueError(f"patch_pixels has shape {x.shape}; expected one square patch [P, P, 3]. Fix: "
                         f"image[r*P:(r+1)*P, c*P:(c+1)*P].")
    return x


def patch_flatten_figure(patch_pixels, embedding, *, patch_index: int, order: str = "chw",
                         colormap: str | None = None, title: str | None = None, theme=None,
                         classroom: bool = False) -> go.Figure:
    """Step 1 of a ViT for one patch: its ``P×P`` pixels → the ``P·P·3`` numbers → its ``D`` embedding.

    Three aligned panels, top to bottom: the patch (trace 0, Image ``z = patch_pixels``), the
    flattened vector (trace 1, Heatmap ``z = [flatten_patch(patch_pixels, order)]``, grey
    0..255, channel blocks marked for ``order="chw"``) and the embedding ``x·E + b`` (trace 2,
    Heatmap ``z = [embedding]``, diverging colours centred on 0). ``patch_index`` is the
    patch's index (row-major, without prefix tokens). ``layout.meta``: ``{"order",
    "patch_index", "pixels", "dims"}``.
    """
    th = resolve_theme(theme, classroom)
    x = _patch_pixels(patch_pixels)
    e = float_array(embedding, 1, "embedding", "[D] (the patch's embedding x·E + b, patch_embeddings[i])")
    if isinstance(patch_index, (bool, np.bool_)) or int(patch_index) < 0:
        raise ValueError(f"patch_index={patch_index!r}; expected the patch's index 0..N-1 (row-major).")
    i = int(patch_index)
    flat = flatten_patch(x, order)
    P = x.shape[0]
    K, D = flat.shape[0], e.shape[0]
    top = float(np.abs(e).max()) or 1.0

    # geometry (px): patch image, caption, strip, caption, strip, tick labels + axis title
    plot_w = th.px(760)
    side = th.px(150)
    cap = th.font_size * 2.0
    strip = th.px(44)
    ticks_h = th.tick_size * 1.6 + 6
    plot_h = side + cap + strip + ticks_h + cap + strip
    margin = dict(th.margin)
    margin["l"] = round(24 * th.scale)
    margin["r"] = round(24 * th.scale)
    width = round(margin["l"] + plot_w + margin["r"])
    height = round(margin["t"] + plot_h + margin["b"])

    def dom(top_px, h_px):
        return [1.0 - (top_px + h_px) / plot_h, 1.0 - top_px / plot_h]

    y_img = dom(0, side)
    y_flat = dom(side + cap, strip)
    y_emb = dom(side + cap + strip + ticks_h + cap, strip)
    x_img = [0.0, side / plot_w]
    xa, ya = F.image_axes(th, (-0.5, P - 0.5), (P - 0.5, -0.5), anchor="x", show_ticks=False)
    xa.update(domain=x_img, showline=False, anchor="y")
    ya.update(domain=y_img, showline=False, anchor="x")
    ya.pop("scaleanchor")  # the domain is already square in pixels
    etv, ett = F.index_ticks(D, plot_w, th.tick_size)
    if order == "chw":  # ticks where each colour channel starts, and the last element
        ftv, ftt = F.merge_ticks([(c * P * P, str(c * P * P)) for c in range(3)] + [(K - 1, str(K - 1))], [],
                                 plot_w / K, th.tick_size)
    else:
        ftv, ftt = F.index_ticks(K, plot_w, th.tick_size)
    xa2 = th.axis("", domain=[0, 1], anchor="y2", range=[-0.5, K - 0.5], tickmode="array", tickvals=ftv,
                  ticktext=ftt)
    ya2 = th.axis("", domain=y_flat, anchor="x2", range=[0.5, -0.5], showticklabels=False, ticks="")
    xa3 = th.axis("element index", domain=[0, 1], anchor="y3", range=[-0.5, D - 0.5], tickmode="array",
                  tickvals=etv, ticktext=ett)
    ya3 = th.axis("", domain=y_emb, anchor="x3", range=[0.5, -0.5], showticklabels=False, ticks="")
    img = go.Image(z=x, name="patch", xaxis="x", yaxis="y",
                   hovertemplate="pixel (row %{y}, col %{x})<br>RGB %{z}<extra></extra>")
    flat_heat = go.Heatmap(z=flat[None, :], x0=0, dx=1, y0=0, dy=1, name="pixel values", xaxis="x2", yaxis="y2",
                           colorscale=th.cmap("gray", "sequential"), zmin=0, zmax=255, showscale=False,
                           zsmooth=False, hovertemplate="element %{x}: %{z}<extra></extra>")
    emb_heat = go.Heatmap(z=e[None, :], x0=0, dx=1, y0=0, dy=1, name="embedding", xaxis="x3", yaxis="y3",
                          colorscale=th.cmap(colormap, "diverging"), zmin=-top, zmax=top, showscale=False,
                          zsmooth=False, hovertemplate="dim %{x}: %{z:.4f}<extra></extra>")
    what = ("red row by row, then green, then blue" if order == "chw" else "pixel by pixel: r, g, b, r, g, b, …")

    def fit(text, short):  # captions are one line: drop the explanation when it would not fit
        return text if F.text_width(text, th.font_size) <= plot_w else short

    x_txt = x_img[1] + th.px(16) / plot_w
    ann = [
        dict(text=f"patch {i}: {P}×{P} pixels × 3 colours", x=x_txt, y=y_img[1], xref="paper", yref="paper",
             xanchor="left", yanchor="top", showarrow=False, font=th.font(th.title_size * 0.85)),
        dict(text=f"= {P}·{P}·3 = {K} numbers, each 0…255<br>(shown black 0 … white 255)", x=x_txt,
             y=(y_img[0] + y_img[1]) / 2,
             xref="paper", yref="paper", xanchor="left", yanchor="middle", showarrow=False, font=th.font()),
        dict(text=fit(f"↓ flatten: x = {K} numbers ({what})", f"↓ flatten: x = {K} numbers"), x=0, y=y_flat[1],
             xref="paper",
             yref="paper", xanchor="left", yanchor="bottom", yshift=4, showarrow=False, font=th.font()),
        dict(text=fit(f"↓ x·E + b: the patch embedding, D = {D} numbers (blue < 0 < red)",
                      f"↓ x·E + b: the embedding, D = {D} numbers"), x=0,
             y=y_emb[1], xref="paper", yref="paper", xanchor="left", yanchor="bottom", yshift=4, showarrow=False,
             font=th.font()),
    ]
    shapes = []
    if order == "chw":
        for c, (name, col) in enumerate((("R", "#d62728"), ("G", "#2ca02c"), ("B", "#1f77b4"))):
            shapes.append(dict(type="rect", xref="x2", yref="paper", x0=c * P * P - 0.5, x1=(c + 1) * P * P - 0.5,
                               y0=y_flat[0], y1=y_flat[1], line={"color": col, "width": th.line_width * 3},
                               layer="above", name=f"{name} channel"))
    fig = go.Figure([img, flat_heat, emb_heat])
    fig.layout = th.layout(
        title or f"Patch {i} → {K} pixel numbers → a {D}-dim embedding", width, height, margin=margin,
        xaxis=xa, yaxis=ya, xaxis2=xa2, yaxis2=ya2, xaxis3=xa3, yaxis3=ya3, annotations=ann, shapes=shapes,
        meta={"order": order, "patch_index": i, "pixels": K, "dims": D},
    )
    return fig
