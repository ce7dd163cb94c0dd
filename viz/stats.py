"""Head statistics: mean attention distance vs depth, entropy and prefix attention per
layer x head, and token norms per layer with artifact (high-norm) tokens highlighted."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array
from .specs import TokenLayout, as_tokens
from .theme import resolve_theme


def attention_distance_figure(distances, *, image_size: float | None = None, title: str | None = None,
                              theme=None) -> go.Figure:
    """Mean attention distance (px) of every head against layer depth (ViT paper, Fig. 7).

    ``distances [L, H]`` from ``model.mean_attention_distance``. Trace 0 is a Scatter with
    one dot per head: ``x = layer`` (0-based), ``y = distances[layer, head]``, head index in
    ``customdata``. With ``image_size`` (px) the y axis ends at the image width, the
    largest possible distance order of magnitude.
    """
    th = resolve_theme(theme)
    d = float_array(distances, 2, "distances", "[L, H] (layers x heads), in pixels")
    L, H = d.shape
    layers = np.repeat(np.arange(L), H)
    heads = np.tile(np.arange(H), L)
    top = float(image_size) if image_size else float(d.max()) * 1.1 or 1.0
    width, height, margin = _figure.figure_size(th, 0.62, 620, colorbar=False)
    xa = th.axis("layer (network depth)", chart=True, range=[-0.6, L - 0.4], tickmode="array",
                 tickvals=list(range(L)), ticktext=[str(i) for i in range(L)], dtick=1)
    if L > 16:
        xa.update(tickvals=list(range(0, L, 2)), ticktext=[str(i) for i in range(0, L, 2)])
    ya = th.axis("mean attention distance (px)", chart=True, range=[0, max(top, float(d.max()) * 1.05)])
    fig = go.Figure(go.Scatter(
        x=layers, y=d.ravel(), mode="markers", name="heads", customdata=heads,
        marker={"size": th.marker_size, "color": th.bar_color, "opacity": 0.85,
                "line": {"width": 1, "color": "white"}},
        hovertemplate="layer %{x}, head %{customdata}<br>distance %{y:.1f} px<extra></extra>",
    ))
    fig.layout = th.layout(title or "Mean attention distance per head", width, height, margin=margin,
                           xaxis=xa, yaxis=ya)
    return fig


def _layer_head_heatmap(values, th, *, name, bar, zmin, zmax, colormap, role, title, fmt, unit):
    L, H = values.shape
    width, height, margin = _figure.figure_size(th, min(1.6, L / H), 560, colorbar=True)
    plot_w = width - margin["l"] - margin["r"]
    plot_h = height - margin["t"] - margin["b"]
    xv, xt = _figure.index_ticks(H, plot_w, th.tick_size, min_gap_chars=1)
    yv, yt = _figure.index_ticks(L, plot_h * 2.2, th.tick_size, min_gap_chars=1)
    xa = th.axis("head", range=[-0.5, H - 0.5], tickmode="array", tickvals=xv, ticktext=xt)
    ya = th.axis("layer", range=[L - 0.5, -0.5], tickmode="array", tickvals=yv, ticktext=yt)
    cell_w, cell_h = plot_w / H, plot_h / L
    show_text = cell_w >= _figure.text_width("0.00", th.small_size) + 4 and cell_h >= th.small_size * 1.3
    # no text colour: plotly picks black or white per cell for contrast
    extra = ({"texttemplate": "%{z:" + fmt + "}", "textfont": {"family": th.font_family, "size": th.small_size}}
             if show_text else {})
    fig = go.Figure(go.Heatmap(
        z=values, x0=0, dx=1, y0=0, dy=1, name=name, colorscale=th.cmap(colormap, role), zmin=zmin, zmax=zmax,
        zsmooth=False, colorbar=_figure.colorbar(th, bar, zmin, zmax), xgap=1, ygap=1,
        hovertemplate="layer %{y}, head %{x}<br>" + name + " %{z:" + fmt + "}" + unit + "<extra></extra>",
        **extra,
    ))
    fig.layout = th.layout(title, width, height, margin=margin, xaxis=xa, yaxis=ya)
    return fig


def attention_entropy_figure(entropy, *, num_keys: int | None = None, colormap: str | None = None,
                             title: str | None = None, theme=None) -> go.Figure:
    """Attention entropy per layer x head (nats), ``entropy [L, H]``; ``z`` is the input.

    Colour range 0 .. ``ln(num_keys)`` (uniform attention over ``num_keys`` tokens, the
    maximum) when ``num_keys`` is given, else 0 .. max.
    """
    th = resolve_theme(theme)
    e = float_array(entropy, 2, "entropy", "[L, H] (layers x heads), in nats")
    hi = math.log(num_keys) if num_keys else float(e.max()) or 1.0
    return _layer_head_heatmap(e, th, name="entropy", bar="entropy (nats)", zmin=0.0, zmax=hi,
                               colormap=colormap, role="sequential", fmt=".2f", unit=" nats",
                               title=title or "Attention entropy per head (high = diffuse, low = focused)")


def prefix_attention_figure(prefix_attn, *, colormap: str | None = None, title: str | None = None,
                            theme=None) -> go.Figure:
    """Share of attention that goes to prefix tokens (CLS/DIST/registers), ``[L, H]`` in 0..1."""
    th = resolve_theme(theme)
    v = float_array(prefix_attn, 2, "prefix_attn", "[L, H] (layers x heads), fractions in [0, 1]")
    if v.min() < -1e-6 or v.max() > 1 + 1e-6:
        raise ValueError(f"prefix_attn has values in [{v.min():.3g}, {v.max():.3g}]; expected fractions in [0, 1] "
                         f"(mean over queries of the attention summed over prefix keys).")
    return _layer_head_heatmap(v, th, name="prefix share", bar="attention to prefix tokens (fraction)",
                               zmin=0.0, zmax=1.0, colormap=colormap, role="sequential", fmt=".2f", unit="",
                               title=title or "Attention paid to prefix tokens per head")


def token_norms_figure(norms, *, tokens: TokenLayout | None = None, artifact_tokens=None, row_labels=None,
                       log_scale: bool = False, colormap: str | None = None, title: str | None = None,
                       theme=None) -> go.Figure:
    """L2 norm of every token in every layer, ``norms [rows, T]`` (e.g. rows = hidden states
    0..L, where row 0 is the embeddings), as a heatmap layers x tokens.

    ``z`` is ``norms`` (or ``log10(norms)`` with ``log_scale``); the axes are categories, ``x``
    the token names (``CLS``, ``patch 24 (row 3, col 3)``), ``y`` the row labels (``"0"`` …).
    Prefix tokens are separated
    by a line at ``tokens.num_prefix_tokens - 0.5``; each index in ``artifact_tokens`` (token
    indices) gets an outlined column and a tick label (high-norm "artifact" tokens, Darcet et
    al. 2024). Ticks and hover name tokens by :class:`viz.TokenLayout` (``CLS``, ``p24``).
    """
    th = resolve_theme(theme)
    v = float_array(norms, 2, "norms", "[layers, T] (one row per layer, one column per token)")
    R, T = v.shape
    tk = as_tokens(tokens).with_count(T, "norms")
    names_p, p = tk.prefix_names, tk.p
    arts = sorted({int(t) for t in (artifact_tokens or [])})
    bad = [t for t in arts if not 0 <= t < T]
    if bad:
        raise ValueError(f"artifact_tokens {bad} out of range; expected token indices 0..{T - 1}.")
    labels = [str(i) for i in range(R)] if row_labels is None else [str(s) for s in row_labels]
    if len(labels) != R:
        raise ValueError(f"row_labels has {len(labels)} entries; expected one per row of norms ({R}).")
    if len(set(labels)) != R:
        raise ValueError(f"row_labels {labels} repeat a label; expected one distinct label per row of norms.")
    if v.min() < 0:
        raise ValueError("norms has negative values; expected L2 norms (>= 0), e.g. np.linalg.norm(h, axis=-1).")
    if log_scale:
        # A token whose norm is exactly 0 (a register of a fresh checkpoint starts at zero) has
        # no logarithm: its cells are left blank instead of failing the whole figure.
        positive = v > 0
        z = np.where(positive, np.log10(np.where(positive, v, 1.0)), np.nan)
        bar = "log₁₀ ‖token‖₂" + ("" if positive.all() else " (0: blank)")
    else:
        z, bar = v, "token norm ‖x‖₂"
    width, height, margin = _figure.figure_size(th, 0.6, 660, colorbar=True)
    plot_w = width - margin["l"] - margin["r"]
    plot_h = height - margin["t"] - margin["b"]
    # ticks: prefix names, artifacts, then evenly spaced patch numbers (p0, p20 …) — none overlapping
    tv, tt = _figure.index_ticks(T - p, plot_w, th.tick_size, positions=range(p, T),
                           labels=[tk.tick(t) for t in range(p, T)], min_gap_chars=4)
    fixed = [(0, names_p[0])] if p else []
    fixed += [(t, tk.tick(t)) for t in arts]
    fixed += [(i, names_p[i]) for i in range(1, p)]
    tick_pos, tick_text = _figure.merge_ticks(fixed, list(zip(tv, tt)), plot_w / T, th.tick_size)
    ticks = list(zip(tick_pos, tick_text))
    yv, yt = _figure.index_ticks(R, plot_h * 2.2, th.tick_size, labels=labels, min_gap_chars=1)
    what = ("token: prefix, then patches p0 …" if p else "patch") + (" (artifact tokens outlined)" if arts else "")
    # category axes, one category per token and per row, named for the hover: a name per cell
    # (customdata) was 118 of the figure's 160 KB for DINOv2-S, sent with every Heads page (issue 15)
    names = [tk.name(t) for t in range(T)]
    xa = th.axis(what, type="category", range=[-0.5, T - 0.5], tickmode="array",
                 tickvals=[names[t] for t, _ in ticks], ticktext=[s for _, s in ticks])
    ya = th.axis("layer (0 = embeddings)" if row_labels is None else "layer", type="category",
                 range=[R - 0.5, -0.5], tickmode="array", tickvals=[labels[i] for i in yv], ticktext=yt)
    shapes = []
    if p:
        shapes.append(dict(type="line", xref="x", yref="y", x0=p - 0.5, x1=p - 0.5, y0=-0.5, y1=R - 0.5,
                           line={"color": "white", "width": th.outline_width}, layer="above",
                           name="prefix|patch separator"))
    for t in arts:
        shapes.append(dict(type="rect", xref="x", yref="y", x0=t - 0.5, x1=t + 0.5, y0=-0.5, y1=R - 0.5,
                           line={"color": th.accent_color, "width": th.outline_width}, layer="above",
                           name=f"artifact token {tk.label(t)}"))
    finite = z[np.isfinite(z)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    heatmap = dict(
        type="heatmap", z=z, x=names, y=labels, name="token norms", colorscale=th.cmap(colormap, "sequential"),
        zmin=lo, zmax=hi if hi > lo else lo + 1.0, zsmooth=False, hoverongaps=False,
        colorbar=_figure.colorbar(th, bar, lo, hi if hi > lo else lo + 1.0),
        hovertemplate="layer %{y}, %{x}<br>" + bar + " %{z:.3f}<extra></extra>",
    )
    # plain dicts of checked arrays (tests validate it once)
    return _figure.unchecked_figure([heatmap], th.layout(
        title or (f"Token norms per layer ({len(arts)} artifact tokens)" if arts else "Token norms per layer"),
        width, height, margin=margin, xaxis=xa, yaxis=ya, shapes=shapes,
        meta={"artifact_tokens": arts},
    ))
