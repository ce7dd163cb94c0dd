"""Walkthrough step 3, attention written out for one query and one head, with the real numbers:

- :func:`attention_scores_figure` — the scores q·k/√d and their softmax row;
- :func:`value_mixing_figure` — the attention output as the weighted sum Σ pⱼ vⱼ.

Tokens are named by :class:`viz.TokenLayout` (prefix tokens by name, patches by patch index).
The numbers a test (or a curious reader) wants are in ``fig.data`` and ``layout.meta``.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import check_count, float_array
from .specs import MapStyle, TokenLayout, as_style, as_tokens
from .text import format_sig
from .theme import Theme, resolve_theme

__all__ = ["attention_scores_figure", "value_mixing_figure"]

AUTO_ALL_KEYS = 64  # up to this many keys the scores figure shows every key in token order
DEFAULT_TOP_KEYS = 20  # beyond it, the top keys by weight (readable on a projector)


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


def _kind_colors(th: Theme, idx, p: int) -> list[str]:
    """Prefix tokens (CLS, DIST, registers) in the second colour, patch tokens in the bar colour."""
    return [th.second_color if j < p else th.bar_color for j in idx]


def _row_px(th: Theme) -> float:
    """Height of one labelled category row (bars, heatmap rows) that keeps labels apart."""
    return th.tick_size * 1.9


def _pct_short(v: float) -> str:
    return f"{100 * v:.1f}%" if v >= 0.001 else "<0.1%"


def _who(query, tk: TokenLayout, T: int) -> str | None:
    return None if query is None else tk.name(tk.check_token(query, T))


# =============================================================================================
# the scores and the softmax of one query
# =============================================================================================
def attention_scores_figure(scores, probs, *, query: int | None = None, tokens: TokenLayout | None = None,
                            top: int | None = None, title: str | None = None, theme=None) -> go.Figure:
    """One query, one head: the scores ``q·k_j/√d`` per key token and the softmax row, aligned.

    ``scores [T]`` (e.g. ``keys[l, h] @ queries[l, h, q] / sqrt(d)``), ``probs [T]`` the
    softmax of that row (``attentions[l, h, q]``; must sum to 1); ``query`` the query's token
    index and ``tokens`` where the tokens are (names: :meth:`viz.TokenLayout.label`). Which
    keys: with ``top=None`` and ``T <= 64`` every key in token order (two stacked panels,
    prefix tokens first, a line after them); otherwise the ``top`` keys (default 20) with the
    largest weights, sorted, as two side-by-side horizontal bar panels with the names readable —
    the title states "top N of T keys" and the weight they hold.

    Trace 0: Bar of the scores, trace 1: Bar of the weights, both over the same keys
    (category names in the same order; ``customdata`` = token indices). Prefix tokens get the
    theme's second colour. ``layout.meta``: ``{"keys", "mode" ("tokens" | "top"), "shown_weight"}``.
    """
    th = resolve_theme(theme)
    s = float_array(scores, 1, "scores", "[T] (q·k/√d of one query with every key, one head)")
    T = s.shape[0]
    pr = _probability_row(probs, "probs", "[T] (the softmax row attentions[l, h, query])")
    if pr.shape[0] != T:
        raise ValueError(f"probs has {pr.shape[0]} entries but scores has T={T}; expected the same keys in both. "
                         f"Fix: scores = keys[l, h] @ q / sqrt(d) and probs = attentions[l, h, query], "
                         f"same layer and head.")
    tk = as_tokens(tokens).with_count(T, "scores")
    names, p = tk.names(T), tk.p
    q = _who(query, tk, T) or "the query"
    if top is None and T <= AUTO_ALL_KEYS:
        idx = np.arange(T)
        mode = "tokens"
    else:
        n = DEFAULT_TOP_KEYS if top is None else check_count(top)
        idx = np.argsort(-pr, kind="stable")[: min(n, T)]
        mode = "top"
    shown = float(pr[idx].sum())
    cats = [names[j] for j in idx]
    colors = _kind_colors(th, idx, p)
    has_prefix = bool(p) and bool((idx < p).any())
    keys = ([("prefix token" + ("s" if p > 1 else ""), th.second_color), ("patch tokens", th.bar_color)]
            if has_prefix else [])
    if mode == "tokens":
        traces, lay = _scores_by_token(th, s, pr, idx, cats, colors, tk)
        default = f"How {q} attends: q·k/√d → softmax over all {T} keys"
    else:
        traces, lay = _scores_top(th, s, pr, idx, cats, colors)
        default = f"How {q} attends: q·k/√d → softmax; top {len(idx)} of {T} keys ({_figure.pct(shown)} of the weight)"
    width, height, margin = lay.pop("width"), lay.pop("height"), lay.pop("margin")
    if keys:  # the bars' two colours named in a legend (key entries after the data traces)
        height, margin = _figure.legend_room(th, [k for k, _ in keys], width, height, margin)
        traces += [_figure.legend_key(name, color, th) for name, color in keys]
        lay.update(showlegend=True, legend=th.legend(itemclick=False, itemdoubleclick=False))
    fig = go.Figure(traces)
    fig.layout = th.layout(title or default, width, height, margin=margin,
                           meta={"keys": idx.tolist(), "mode": mode, "shown_weight": shown}, **lay)
    return fig


def _scores_by_token(th, s, pr, idx, cats, colors, tk: TokenLayout) -> tuple[list, dict]:
    """Every key in token order: scores on top, weights below, one shared category x axis."""
    T, p = len(idx), tk.p
    width, height, margin = _figure.figure_size(th, 0.78, 720, colorbar=False, max_plot_height=900)
    plot_w = width - margin["l"] - margin["r"]
    # ticks: prefix names, then evenly spaced patch numbers (p0, p10 …), none overlapping
    tv, tt = _figure.index_ticks(T - p, plot_w, th.tick_size, positions=range(p, T),
                           labels=[tk.tick(j) for j in range(p, T)])
    fixed = [(j, tk.tick(j)) for j in range(p)]
    pos, text = _figure.merge_ticks(fixed, list(zip(tv, tt)), plot_w / T, th.tick_size)
    xa = th.axis("key token (prefix first, then patches p0 … row by row)" if p else "key token (patches p0 … "
                 "row by row)", type="category", range=[-0.5, T - 0.5], tickmode="array",
                 tickvals=[cats[i] for i in pos], ticktext=text, anchor="y")
    lo, hi = min(0.0, float(s.min())), max(0.0, float(s.max()))
    pad = 0.08 * (hi - lo or 1.0)
    ya2 = th.axis("score q·k/√d", chart=True, domain=[0.54, 1.0], anchor="x",
                  range=[lo - (pad if lo < 0 else 0), hi + pad])
    top = float(pr.max()) * 1.12 or 1.0
    ya = th.axis("softmax weight", chart=True, domain=[0.0, 0.46], anchor="x", range=[0.0, top],
                 **_figure.percent_ticks(top))
    bars = [
        go.Bar(x=cats, y=s[idx], name="scores", yaxis="y2", marker={"color": colors}, customdata=idx,
               showlegend=False, hovertemplate="key %{x}<br>q·k/√d = %{y:.4f}<extra></extra>"),
        go.Bar(x=cats, y=pr[idx], name="softmax weights", marker={"color": colors}, customdata=idx,
               showlegend=False, hovertemplate="key %{x}<br>weight %{y:.3~g}<extra></extra>"),
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
    name_px = max(_figure.legend_text_width(c, th.tick_size) for c in cats) + 8
    width, _, margin = _figure.figure_size(th, 0.5, 680, colorbar=False, extra_left=max(0, name_px - 60))
    row = _row_px(th)
    plot_h = min(n * row, th.px(900))
    height = round(margin["t"] + plot_h + margin["b"])
    plot_h_real = height - margin["t"] - margin["b"]
    pos, text = _figure.merge_ticks([], [(i, cats[i]) for i in range(n)], plot_h_real / n, th.tick_size, along="height")
    ya = th.axis("", type="category", range=[n - 0.5, -0.5], tickmode="array",
                 tickvals=[cats[i] for i in pos], ticktext=text, ticks="", anchor="x")
    lo, hi = min(0.0, float(s[idx].min())), max(0.0, float(s[idx].max()))
    span = hi - lo or 1.0
    xa = th.axis("score q·k/√d", chart=True, domain=[0.0, 0.44], anchor="y",
                 range=[lo - (0.3 * span if lo < 0 else 0), hi + 0.3 * span])
    top = float(pr[idx].max()) * 1.4 or 1.0
    xa2 = th.axis("softmax weight", chart=True, domain=[0.56, 1.0], anchor="y", range=[0.0, top],
                  **_figure.percent_ticks(top, 3))
    text_font = th.font(th.font_size)
    bars = [
        go.Bar(x=s[idx], y=cats, orientation="h", name="scores", marker={"color": colors}, customdata=idx,
               text=[f"{v:.2f}" for v in s[idx]], textposition="outside", textfont=text_font, cliponaxis=False,
               showlegend=False, hovertemplate="key %{y}<br>q·k/√d = %{x:.4f}<extra></extra>"),
        go.Bar(x=pr[idx], y=cats, orientation="h", name="softmax weights", xaxis="x2", marker={"color": colors},
               customdata=idx, text=[_pct_short(v) for v in pr[idx]], textposition="outside", textfont=text_font,
               cliponaxis=False, showlegend=False, hovertemplate="key %{y}<br>weight %{x:.3~g}<extra></extra>"),
    ]
    shapes = [dict(type="line", xref="x", yref="paper", x0=0, x1=0, y0=0, y1=1,
                   line={"color": th.axis_color, "width": 1}, layer="above", name="zero score")]
    return bars, dict(width=width, height=height, margin=margin, xaxis=xa, xaxis2=xa2, yaxis=ya, shapes=shapes,
                      bargap=0.25)


# =============================================================================================
# the output as a weighted sum of value vectors
# =============================================================================================
def value_mixing_figure(probs, values, output=None, *, query: int | None = None, tokens: TokenLayout | None = None,
                        top: int = 8, style: MapStyle | None = None, title: str | None = None,
                        theme=None) -> go.Figure:
    """How one head's output for one query is ``Σ_j p_j v_j``: the top value vectors and the sum.

    ``probs [T]`` the query's softmax row, ``values [T, d]`` the head's value vectors,
    ``output [d]`` the head's output for that query (checked against ``probs @ values``;
    None computes it); ``query`` the query's token index, ``tokens`` where the tokens are.
    Left: the weights ``p_j`` of the ``top`` keys with the largest weight (bars, sorted);
    middle: their value vectors ``v_j`` (heatmap rows); below: the output row ``Σ_j p_j v_j``
    over ALL T keys. Values and output share one diverging colour scale centred on 0
    (``style.colormap``, default the theme's diverging one; ``zmax = style.zmax`` or ``max|x|``).

    Traces: 0 Bar of the weights (``y`` = names), 1 Heatmap ``z = values[keys]``,
    2 Heatmap ``z = [probs @ values]``. ``layout.meta``: ``{"keys", "output", "shown_weight"}``.
    """
    th = resolve_theme(theme)
    st = as_style(style)
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
    tk = as_tokens(tokens).with_count(T, "probs")
    names, p = tk.names(T), tk.p
    n = min(check_count(top), T)
    idx = np.argsort(-pr, kind="stable")[:n]
    cats = [names[j] for j in idx]
    shown = float(pr[idx].sum())
    rows_v = V[idx]
    top_abs = float(max(np.abs(rows_v).max(), np.abs(mix).max())) if st.zmax is None else float(st.zmax)
    if not top_abs > 0:
        top_abs = 1.0

    # geometry: a weight-bar column, the value heatmap, and one output row below (same columns)
    name_px = max(_figure.legend_text_width(c, th.tick_size) for c in cats + ["output"]) + 8
    row = _row_px(th)
    plot_w = th.px(640)
    bar_w = th.px(150)
    gap_w = th.px(24)
    heat_px = plot_w - bar_w - gap_w
    # captions fit the heatmap's width with room to spare: the app may draw the figure narrower
    caption = (f"output = Σⱼ pⱼ vⱼ over all {T} keys" if n < T else "output = Σⱼ pⱼ vⱼ")
    caption, cap_lines = _figure.fit_caption(th, f"↓ {caption}<br>(values {format_sig(mix.min())} … "
                                       f"{format_sig(mix.max())})", 0.75 * heat_px)
    head, head_lines = _figure.fit_caption(th, f"value vectors vⱼ of the top {n} keys", 0.75 * heat_px)
    line_px = th.font_size * 1.3
    rows_h = n * row
    gap_h = row * 1.5 + line_px * cap_lines  # room for the output caption
    out_h = row * 1.3
    plot_h = rows_h + gap_h + out_h
    margin = dict(th.margin)
    margin["l"] += round(max(0, name_px - 60))
    margin["r"] += round(_figure.COLORBAR_ROOM * th.scale)
    margin["t"] += round(line_px * (head_lines - 1))
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
        cliponaxis=False, hovertemplate="key %{y}<br>weight p = %{x:.3~g}<extra></extra>",
    )
    heat = go.Heatmap(
        z=rows_v, x0=0, dx=1, y=cats, name="value vectors", xaxis="x2", coloraxis="coloraxis", zsmooth=False,
        hovertemplate="value vector of %{y}<br>dim %{x}: %{z:.4f}<extra></extra>",
    )
    out_heat = go.Heatmap(
        z=mix[None, :], x0=0, dx=1, y=["output"], name="output", xaxis="x3", yaxis="y2", coloraxis="coloraxis",
        zsmooth=False, hovertemplate="output = Σ p v<br>dim %{x}: %{z:.4f}<extra></extra>",
    )
    xv, xt = _figure.index_ticks(d, heat_px, th.tick_size)
    ya = th.axis("", type="category", range=[n - 0.5, -0.5], domain=[y_rows, 1.0], ticks="", anchor="x")
    half = _nice_half(float(pr[idx].max()))
    xa = th.axis("weight pⱼ", chart=True, domain=[0.0, x_split], anchor="y",
                 range=[0.0, float(pr[idx].max()) * 1.6 or 1.0], tickmode="array",
                 tickvals=[0.0, half], ticktext=["0%", _figure.pct(half)])
    xa2 = th.axis("", domain=[x_heat, 1.0], anchor="y", range=[-0.5, d - 0.5], showticklabels=False, ticks="",
                  showline=False)
    xa3 = th.axis(f"value dimension (d = {d})", domain=[x_heat, 1.0], anchor="y2", range=[-0.5, d - 0.5],
                  tickmode="array", tickvals=xv, ticktext=xt)
    ya2 = th.axis("", type="category", domain=[0.0, y_out], anchor="x3", range=[0.5, -0.5], ticks="",
                  tickmode="array", tickvals=["output"], ticktext=["output"])
    annotations = [
        dict(text=head, x=x_heat, y=1.0, xref="paper", yref="paper", xanchor="left", yanchor="bottom", yshift=4,
             showarrow=False, font=th.font(), align="left"),
        dict(text=caption, x=x_heat, y=y_out, xref="paper", yref="paper", xanchor="left", yanchor="bottom",
             yshift=6, showarrow=False, font=th.font(), align="left"),
    ]
    q = _who(query, tk, T)
    who = f"for {q}" if q else "of one query"
    default = (f"Attention output {who} = Σⱼ pⱼ vⱼ: top {n} of {T} value vectors ({_figure.pct(shown)} of the weight)"
               if n < T else f"Attention output {who} = Σⱼ pⱼ vⱼ over all {T} value vectors")
    fig = go.Figure([weights, heat, out_heat])
    fig.layout = th.layout(
        title or default, width, height, margin=margin, xaxis=xa, xaxis2=xa2, xaxis3=xa3, yaxis=ya, yaxis2=ya2,
        coloraxis={"colorscale": th.cmap(st.colormap, "diverging"), "cmin": -top_abs, "cmax": top_abs,
                   "colorbar": _figure.colorbar(th, "value", -top_abs, top_abs, np.concatenate([rows_v.ravel(), mix]))},
        annotations=annotations, bargap=0.25,
        meta={"keys": idx.tolist(), "output": mix.tolist(), "shown_weight": shown},
    )
    return fig


def _nice_half(v: float) -> float:
    """A round tick value at or below ``v`` (for a narrow axis with one labelled tick)."""
    if v <= 0:
        return 0.0
    mag = 10 ** math.floor(math.log10(v))
    for m in (5, 2, 1):
        if m * mag <= v:
            return m * mag
    return mag
