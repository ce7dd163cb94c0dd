"""Walkthrough step 4, what the blocks write into the residual stream, for one image:

- :func:`residual_stream_figure` — what each block's attention and MLP add to one token;
- :func:`mlp_activation_figure` — the hidden MLP units of one token (histogram);
- :func:`token_norms_lines_figure` — token norms per layer as lines (median, spread, outliers).

Like every builder in :mod:`viz`: numpy arrays in, a ``plotly.graph_objects.Figure`` out,
``title=None, theme=None``, and ``ValueError`` s that name the bad value and the fix.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import check_count, float_array
from .specs import TokenLayout, as_tokens
from .theme import resolve_theme

__all__ = ["residual_stream_figure", "mlp_activation_figure", "token_norms_lines_figure"]


# =============================================================================================
# the residual stream of one token
# =============================================================================================
def residual_stream_figure(attn_norms, mlp_norms, stream_norms, *, token_name: str, title: str | None = None,
                           theme=None) -> go.Figure:
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
    th = resolve_theme(theme)
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
        b = int(bad[0])
        raise ValueError(f"the stream norm changes by {step[b]:.4g} across block {b} but that block adds at most "
                         f"‖attn‖ + ‖mlp‖ = {slack[b]:.4g}; the inputs do not belong together. "
                         f"Fix: stream_norms[k] "
                         f"= ‖hidden_states[k, token]‖ with k = 0 the embeddings, and block l's norms at index l.")
    width, height, margin = _figure.figure_size(th, 0.72, 760, colorbar=False, max_plot_height=720)
    plot_w = width - margin["l"] - margin["r"]
    tv, tt = _figure.index_ticks(L, plot_w, th.tick_size, min_gap_chars=2)
    xr = [-0.75, L - 0.25]
    xa = th.axis("block (layer)", range=xr, tickmode="array", tickvals=tv, ticktext=tt, anchor="y")
    top_bar = float(max(a.max(), m.max())) or 1.0
    ya = th.axis("‖update‖₂", chart=True, domain=[0.0, 0.5], anchor="x", range=[0.0, top_bar * 1.12])
    ya2 = th.axis("‖stream‖₂", chart=True, domain=[0.6, 1.0], anchor="x",
                  range=[0.0, float(z.max()) * 1.12 or 1.0])
    xk = np.arange(L + 1) - 0.5
    where = ["after the embeddings"] + [f"after block {b}" for b in range(L)]
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
    height, margin = _figure.legend_room(th, [t.name for t in traces], width, height, margin)
    fig = go.Figure(traces)
    fig.layout = th.layout(
        title or f"What each block adds to the residual stream of {token_name}", width, height, margin=margin,
        xaxis=xa, yaxis=ya, yaxis2=ya2, showlegend=True, legend=th.legend(), barmode="overlay", bargap=0.2,
        meta={"attn": a.tolist(), "mlp": m.tolist(), "stream": z.tolist()},
    )
    return fig


# =============================================================================================
# hidden MLP activations of one token
# =============================================================================================
def mlp_activation_figure(activations, *, token: int | None = None, token_name: str | None = None,
                          bins: int = 40, title: str | None = None, theme=None) -> go.Figure:
    """Histogram of one token's hidden MLP activations (after the nonlinearity, ``[mlp_dim]``).

    ``activations`` is ``[mlp_dim]``, or ``[T, mlp_dim]`` with ``token`` picking the row.
    Trace 0 is a Bar of the counts per bin (``x`` = bin centres, ``layout.meta["edges"]`` the
    edges passed to ``np.histogram``: about ``bins`` equal bins, with 0 on an edge so that no bin
    mixes active and inactive units); the title states how many units are active (``> 0``).
    """
    th = resolve_theme(theme)
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
    nb = check_count(bins, "bins")
    lo, hi = float(x.min()), float(x.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, nb + 1)
    if lo < 0 < hi:  # put 0 on a bin edge, so no bin mixes active and inactive units
        step = (hi - lo) / nb
        edges = np.arange(math.floor(lo / step), math.ceil(hi / step) + 1) * step
    counts, edges = np.histogram(x, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    M = x.shape[0]
    active = int((x > 0).sum())
    width, height, margin = _figure.figure_size(th, 0.55, 700, colorbar=False)
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
    height, margin = _figure.legend_room(th, [k for k, _ in keys], width, height, margin)
    who = token_name or (f"token {token}" if token is not None else "one token")
    fig = go.Figure([bars] + [_figure.legend_key(name, color, th) for name, color in keys])
    fig.layout = th.layout(
        title or f"MLP hidden units of {who}: {active} of {M} active ({_figure.pct(active / M)})", width, height,
        margin=margin, xaxis=xa, yaxis=ya, shapes=shapes, bargap=0, showlegend=True,
        legend=th.legend(itemclick=False, itemdoubleclick=False),
        meta={"edges": edges.tolist(), "active": active, "units": M},
    )
    return fig


# =============================================================================================
# token norms per layer as lines
# =============================================================================================
def token_norms_lines_figure(norms, *, tokens: TokenLayout | None = None, artifact_tokens=None,
                             title: str | None = None, theme=None) -> go.Figure:
    """Token norms per layer as lines: the patch tokens' median with its spread, every prefix
    token on its own line, artifact (high-norm) tokens highlighted — a readable alternative to
    :func:`viz.token_norms_figure`.

    ``norms [L+1, T]`` (row 0 the embeddings, row k the stream after block k-1). The patch
    statistics use the patch tokens that are not in ``artifact_tokens`` (all patches if every
    one is listed). Traces in order: 0 band 5–95th percentile, 1 band 25–75th (both
    ``fill="toself"``: upper edge left to right, then lower edge back), 2 the median line,
    3 a thin line of the largest of those patch norms (so an unlisted outlier still shows),
    then one line per prefix token (named by ``tokens.prefix_names``), then one per artifact token
    (named ``"artifact p24 (r3,c3)"`` by :meth:`viz.TokenLayout.label`, accent colour). Every
    trace is named in the legend above the plot; ``tokens.grid`` may be None (then "artifact p24").
    ``layout.meta``: ``{"median", "q05", "q25", "q75", "q95", "artifact_tokens"}``.
    """
    th = resolve_theme(theme)
    if np.ndim(norms) != 2:
        raise ValueError(f"norms has shape {np.shape(norms)}; expected [L+1, T] (one row per layer, one column per "
                         f"token). Fix: np.linalg.norm(hidden_states, axis=-1) of one image gives [L+1, T].")
    v = float_array(norms, 2, "norms", "[L+1, T] (token norms, row 0 the embeddings, one column per token)")
    R, T = v.shape
    tk = as_tokens(tokens)
    names_p, p = tk.prefix_names, tk.p
    if p >= T:
        raise ValueError(f"num_prefix_tokens={p} but norms has only T={T} tokens; expected prefix tokens and at "
                         f"least one patch token. Fix: pass norms [L+1, T] (tokens as columns), not transposed.")
    tk = tk.with_count(T, "norms")
    arts = sorted({int(t) for t in (artifact_tokens or [])})
    bad = [t for t in arts if not 0 <= t < T]
    if bad:
        raise ValueError(f"artifact_tokens {bad} out of range; expected token indices 0..{T - 1}.")
    patch_cols = [j for j in range(p, T) if j not in set(arts)] or list(range(p, T))
    P_ = v[:, patch_cols]
    q05, q25, med, q75, q95 = np.percentile(P_, [5, 25, 50, 75, 95], axis=1)
    layers = np.arange(R)
    width, height, margin = _figure.figure_size(th, 0.6, 720, colorbar=False)
    top_patch = P_.max(axis=1)
    prefix_lines = [j for j in range(p) if j not in arts]
    plot_w = width - margin["l"] - margin["r"]
    ymax = float(v.max()) * 1.08 or 1.0
    tv, tt = _figure.index_ticks(R, plot_w, th.tick_size, min_gap_chars=2)
    xa = th.axis("layer (0 = embeddings)", chart=True, range=[-0.15, R - 0.85], tickmode="array", tickvals=tv,
                 ticktext=tt)
    ya = th.axis("token norm ‖x‖₂", chart=True, range=[0.0, ymax])

    def band(lo, hi, name, alpha, rank):
        return go.Scatter(x=np.concatenate([layers, layers[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                          mode="lines", fill="toself", name=name, hoverinfo="skip", legendrank=rank,
                          line={"color": "rgba(0,0,0,0)", "width": 0},
                          fillcolor=_figure.rgba(th.bar_color, alpha))

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
                   line={"color": _figure.rgba(th.bar_color, 0.7), "width": max(1.5, lw / 2)},
                   hovertemplate="layer %{x}: largest patch norm %{y:.3f}<extra></extra>"),
    ]
    for i, j in enumerate(prefix_lines):
        c = th.palette[i % len(th.palette)]
        traces.append(go.Scatter(x=layers, y=v[:, j], mode="lines+markers", name=names_p[j], legendrank=5 + i,
                                 line={"color": c, "width": lw}, marker={"size": th.marker_size * 0.7, "color": c},
                                 hovertemplate=f"{names_p[j]}, " + "layer %{x}: norm %{y:.3f}<extra></extra>"))
    for i, t in enumerate(arts):
        traces.append(go.Scatter(x=layers, y=v[:, t], mode="lines+markers", name=f"artifact {tk.label(t)}",
                                 legendrank=5 + len(prefix_lines) + i,
                                 line={"color": th.accent_color, "width": lw * 0.7},
                                 marker={"size": th.marker_size * 0.6, "color": th.accent_color, "symbol": "diamond"},
                                 hovertemplate=f"artifact {tk.name(t)}, " + "layer %{x}: norm %{y:.3f}<extra></extra>"))
    height, margin = _figure.legend_room(th, [t.name for t in traces], width, height, margin)
    n_art = len(arts)
    fig = go.Figure(traces)
    fig.layout = th.layout(
        title or ("Token norms per layer" + (f" ({n_art} artifact token{'s' if n_art != 1 else ''})" if n_art else "")),
        width, height, margin=margin, xaxis=xa, yaxis=ya, showlegend=True, legend=th.legend(),
        meta={"median": med.tolist(), "q05": q05.tolist(), "q25": q25.tolist(), "q75": q75.tolist(),
              "q95": q95.tolist(), "artifact_tokens": arts},
    )
    return fig
