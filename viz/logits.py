"""Logits: top-k class probabilities and the cross-entropy loss for a chosen label."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array
from model.numerics import log_softmax, softmax  # the one softmax (torch-free)

from .text import format_number, format_sig
from .theme import resolve_theme

MAX_NAME = 32
LOG_LOSS_SPAN = 100  # a loss curve spanning more than this factor is drawn on a log axis


def _inputs(logits, class_names):
    y = float_array(logits, 1, "logits", "[K] (one image's class scores)")
    K = y.shape[0]
    if class_names is None:
        names = [f"class {i}" for i in range(K)]
    else:
        names = [str(n) for n in class_names]
        if len(names) != K:
            raise ValueError(f"class_names has {len(names)} names but logits has K={K} classes; "
                             f"expected one name per logit (model.labels).")
    return y, names


def _bar_labels(names, idx):
    """Short, unique category labels for the bars (full names stay in the hover)."""
    out = []
    for i in idx:
        n = names[i]
        out.append(n if len(n) <= MAX_NAME else n[: MAX_NAME - 1] + "…")
    if len(set(out)) != len(out):
        out = [f"{s} [{i}]" for s, i in zip(out, idx)]
    return out


def _check_k(k, K):
    k = int(k)
    if k < 1:
        raise ValueError(f"k={k}; expected at least 1 class to show.")
    return min(k, K)


def topk_figure(logits, class_names=None, *, k: int = 5, title: str | None = None, theme=None) -> go.Figure:
    """Top-``k`` classes by softmax probability as horizontal bars labelled with percentages.

    Trace 0 is a horizontal Bar: ``x`` the probabilities (descending, top class at the
    top), ``y`` the class names, ``customdata`` the class indices. ``layout.meta`` holds
    ``{"probs": all K probabilities, "indices": top-k indices}``.
    """
    th = resolve_theme(theme)
    y, names = _inputs(logits, class_names)
    probs = softmax(y)
    k = _check_k(k, y.shape[0])
    idx = np.argsort(-probs, kind="stable")[:k]
    labels = _bar_labels(names, idx)
    longest = max(len(s) for s in labels)
    width, height, margin = _figure.figure_size(th, 0.12 * k + 0.2, 520, colorbar=False,
                                          extra_left=max(0, _figure.text_width("x" * longest, th.tick_size) - 50),
                                          max_plot_height=900)
    top = float(probs[idx[0]])
    xmax = min(1.0, top) * 1.22 + 1e-9
    xa = th.axis("probability", chart=True, range=[0, xmax], **_figure.percent_ticks(min(xmax, 1.0)))
    ya = th.axis("", type="category", range=[k - 0.5, -0.5], ticks="")
    fig = go.Figure(go.Bar(
        x=probs[idx], y=labels, orientation="h", name="probability", customdata=idx,
        marker={"color": th.bar_color}, text=[f"{100 * p:.1f}%" for p in probs[idx]], textposition="outside",
        textfont=th.font(th.font_size), cliponaxis=False, hovertext=[names[i] for i in idx],
        hovertemplate="%{hovertext} (class %{customdata})<br>p = %{x:.4f}<extra></extra>",
    ))
    fig.layout = th.layout(title or f"Top-{k} predictions", width, height, margin=margin,
                           xaxis=xa, yaxis=ya, bargap=0.25,
                           meta={"probs": probs.tolist(), "indices": idx.tolist()})
    return fig


def loss_figure(logits, class_names=None, label: int | str = 0, *, k: int = 8, title: str | None = None,
                theme=None) -> go.Figure:
    """Cross-entropy loss for ``label``: bars of p per class (top-``k`` plus the label's class),
    the label highlighted, and ``loss = -log p(label)`` in the title and an annotation.

    The loss is computed stably as ``logsumexp(y) - y[label]`` (nats). ``layout.meta`` holds
    ``{"loss", "p_label", "label", "probs"}``.
    """
    th = resolve_theme(theme)
    y, names = _inputs(logits, class_names)
    K = y.shape[0]
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in names:
            raise ValueError(f"label {label!r} is not a class name; expected one of the {K} class_names or an index.")
        c = names.index(label)
    else:
        c = int(label)
        if not 0 <= c < K:
            raise ValueError(f"label index {c} is out of range; expected 0..{K - 1}.")
    logp = log_softmax(y)
    probs = np.exp(logp)
    loss = float(-logp[c])
    k = _check_k(k, K)
    idx = list(np.argsort(-probs, kind="stable")[:k])
    if c not in idx:
        idx = idx[:-1] + [c] if k > 1 else [c]
    idx = np.array(sorted(idx, key=lambda i: -probs[i]))
    labels = _bar_labels(names, idx)
    longest = max(len(s) for s in labels)
    colors = [th.accent_color if i == c else "#b8c4d6" for i in idx]
    width, height, margin = _figure.figure_size(th, 0.1 * len(idx) + 0.25, 520, colorbar=False,
                                          extra_left=max(0, _figure.text_width("x" * longest, th.tick_size) - 50),
                                          max_plot_height=900)
    formula = f"loss = −log p({labels[list(idx).index(c)]}) = −log {format_sig(probs[c], 4)} = {loss:.4f} nats"
    formula, lines = _figure.fit_caption(th, formula, 0.95 * (width - margin["l"] - margin["r"]))
    margin["t"] += round(th.font_size * (0.5 + 1.3 * lines))  # room for the formula under the title
    height += round(th.font_size * 1.3 * (lines - 1))
    top = float(probs[idx].max())
    xmax = min(1.0, top) * 1.22 + 1e-9
    xa = th.axis("probability p(class | image)", chart=True, range=[0, xmax], **_figure.percent_ticks(min(xmax, 1.0)))
    ya = th.axis("", type="category", range=[len(idx) - 0.5, -0.5], ticks="")
    fig = go.Figure(go.Bar(
        x=probs[idx], y=labels, orientation="h", name="probability", customdata=idx,
        marker={"color": colors}, text=[f"{100 * p:.1f}%" for p in probs[idx]], textposition="outside",
        textfont=th.font(th.font_size), cliponaxis=False, hovertext=[names[i] for i in idx],
        hovertemplate="%{hovertext} (class %{customdata})<br>p = %{x:.4f}<extra></extra>",
    ))
    fig.layout = th.layout(
        title or f"Cross-entropy loss for label “{labels[list(idx).index(c)]}”: {loss:.3f}",
        width, height, margin=margin, xaxis=xa, yaxis=ya, bargap=0.25,
        annotations=[dict(text=formula, xref="paper", yref="paper", x=0.5, y=1.0, xanchor="center",
                          yanchor="bottom", yshift=6, showarrow=False, font=th.font(th.font_size, th.accent_color))],
        meta={"loss": loss, "p_label": float(probs[c]), "label": c, "probs": probs.tolist()},
    )
    return fig


def training_curve_figure(curve: dict, *, title: str | None = None, theme=None) -> go.Figure:
    """How a model's loss fell while it trained: train and test cross-entropy per epoch.

    ``curve`` has equal-length lists ``epoch``, ``train_loss``, ``test_loss`` and optionally
    ``test_acc`` (as written by ``model.train_fashion``). Traces: 0 train loss, 1 test loss
    (lines with markers, ``x = epoch``), named in a legend above the plot with their last
    value; the test entry also gives the last test accuracy when known.

    A taught head's fit (``model.teach``) uses the same figure: ``test_loss`` may then be
    absent (nothing held back), ``x_title`` names the x axis ("Adam step") and ``names`` the two
    lines (e.g. ("training", "held-out")); long curves are drawn as lines without markers.
    """
    th = resolve_theme(theme)
    try:
        epochs = float_array(curve["epoch"], 1, "curve['epoch']", "one entry per epoch")
        train = float_array(curve["train_loss"], 1, "curve['train_loss']", "one loss per epoch")
        test = (float_array(curve["test_loss"], 1, "curve['test_loss']", "one loss per epoch")
                if curve.get("test_loss") is not None or "x_title" not in curve else None)
    except KeyError as err:
        raise ValueError(f"training curve lacks {err.args[0]!r}; expected epoch, train_loss and test_loss lists.")
    n_test = len(epochs) if test is None else len(test)
    if not len(epochs) == len(train) == n_test or len(epochs) == 0:
        raise ValueError(f"training curve lists differ in length ({len(epochs)} epochs, {len(train)} train "
                         f"losses, {n_test} test losses); expected one value per epoch.")
    acc = curve.get("test_acc")
    x_title = curve.get("x_title", "epoch")
    width, height, margin = _figure.figure_size(th, 0.55, 640, colorbar=False)
    top = float(max(train.max(), test.max() if test is not None else 0.0))
    pad = 0.5 if len(epochs) <= 40 else 0.0
    xa = th.axis(x_title, chart=True, range=[float(epochs[0]) - pad, float(epochs[-1]) + pad])
    ya = th.axis("cross-entropy (nats)", chart=True, range=[0, top * 1.08])
    both = np.concatenate([train, test if test is not None else train])
    floor = float(both[both > 0].min()) if (both > 0).any() else top
    if top > LOG_LOSS_SPAN * floor:  # a fit that drives the loss near 0 (a taught head): on a linear axis
        #                              a drop in the first steps and a flat line at 0; decades show the fall
        lo, hi = math.log10(floor) - 0.2, math.log10(top) + 0.1  # log10 units; a little room at both ends
        decades = range(math.ceil(lo), math.floor(hi) + 1)
        ya = th.axis("cross-entropy (nats, log scale)", chart=True, type="log", range=[lo, hi], tickmode="array",
                     tickvals=[10.0 ** k for k in decades],
                     ticktext=[format_number(10.0 ** k, 10.0 ** k) for k in decades])
    colors = (th.bar_color, th.accent_color)
    mode = "lines+markers" if len(epochs) <= 40 else "lines"
    traces = []
    series = (("train", train), ("test", test))
    names = curve.get("names") or ("train", "test")
    for i, ((kind, values), name) in enumerate(zip(series, names)):
        if values is None:
            continue
        label = f"{name} loss (last {values[-1]:.3f}"
        if kind == "test" and acc:
            label += f", {100 * float(acc[-1]):.1f}% correct"
        traces.append(go.Scatter(
            x=epochs, y=values, mode=mode, name=label + ")",
            line={"color": colors[i], "width": 2.5 * th.scale},
            marker={"size": th.marker_size * 0.6, "color": colors[i]},
            hovertemplate=f"{x_title} %{{x}}<br>{name} loss %{{y:.4f}}<extra></extra>",
        ))
    height, margin = _figure.legend_room(th, [t.name for t in traces], width, height, margin)
    return go.Figure(traces, layout=th.layout(title or "Loss during training", width, height, margin=margin,
                                              xaxis=xa, yaxis=ya, showlegend=True, legend=th.legend()))
