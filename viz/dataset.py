"""Data-set figures (issue 14): per-head statistics over many images with their spread, how often
each patch position is a high-norm artifact token, and the AttentionViz-style joint embedding of
one head's queries and keys."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array
from .theme import resolve_theme

QK_COLOUR_BY = ("kind", "row", "col")


def head_spread_figure(values, *, quantity: str, unit: str = "", top: float | None = None,
                       title: str | None = None, theme=None) -> go.Figure:
    """A per-head statistic over M images, ``values [M, L, H]`` (NaN: missing), against layer depth.

    Trace 0 has one dot per head at ``x = layer + offset`` (heads side by side within ±0.3 of the
    layer), ``y`` = the mean over the images and error bars of ± one standard deviation
    (``error_y.array``); ``customdata`` = [layer, head, mean, std, 10th, 90th percentile, images].
    Trace 1 is the mean over the heads of each layer (a line). The y axis starts at 0 and ends at
    ``top`` when given (e.g. the image width for distances, ln T for entropies).
    """
    th = resolve_theme(theme)
    v = float_array(values, 3, "values", "[M, L, H] (images x layers x heads)", allow_nan=True)
    M, L, H = v.shape
    with np.errstate(invalid="ignore"), _quiet():
        mean = np.nanmean(v, axis=0)
        std = np.nanstd(v, axis=0)
        lo, hi = np.nanpercentile(v, 10, axis=0), np.nanpercentile(v, 90, axis=0)
    count = np.isfinite(v).sum(axis=0)
    layers, heads = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    offsets = (heads - (H - 1) / 2) * (0.6 / max(H - 1, 1)) if H > 1 else np.zeros_like(heads, float)
    custom = np.stack([layers, heads, mean, std, lo, hi, count], axis=-1).reshape(-1, 7)
    fmt = ".3g"
    dots = go.Scatter(
        x=(layers + offsets).ravel(), y=mean.ravel(), mode="markers", name="heads (mean ± std)",
        error_y={"type": "data", "array": np.nan_to_num(std).ravel(), "visible": True, "thickness": th.line_width * 1.5,
                 "width": 0, "color": _figure.rgba(th.bar_color, 0.45)},
        customdata=custom,
        marker={"size": th.marker_size * 0.8, "color": th.bar_color, "line": {"width": 1, "color": "white"}},
        hovertemplate=("layer %{customdata[0]}, head %{customdata[1]}<br>" + quantity + " %{customdata[2]:" + fmt
                       + "}" + unit + " ± %{customdata[3]:" + fmt + "}<br>10–90%: %{customdata[4]:" + fmt
                       + "} – %{customdata[5]:" + fmt + "}" + unit + " over %{customdata[6]} images<extra></extra>"),
    )
    with _quiet():
        layer_mean = np.nanmean(mean, axis=1)
    line = go.Scatter(x=np.arange(L), y=layer_mean, mode="lines", name="mean of the layer's heads",
                      line={"color": th.muted_color, "width": th.line_width * 3}, hoverinfo="skip")
    width, height, margin = _figure.figure_size(th, 0.62, 620, colorbar=False)
    finite = v[np.isfinite(v)]
    data_top = float((mean + np.nan_to_num(std)).max()) if finite.size else 1.0
    ceiling = max(float(top) if top else 0.0, data_top * 1.05) or 1.0
    xa = th.axis("layer (network depth)", chart=True, range=[-0.6, L - 0.4], tickmode="array",
                 tickvals=list(range(0, L, 2 if L > 16 else 1)), ticktext=[str(i) for i in range(0, L, 2 if L > 16 else 1)])
    ya = th.axis(f"{quantity}{f' ({unit.strip()})' if unit.strip() else ''}", chart=True, range=[0, ceiling])
    names = [line.name, dots.name]
    # drawn beside its text (app_pages.shared.figure_and_text): at a 1280-px screen, ~500 px wide
    height, margin = _figure.legend_room(th, names, width, height, margin, th.px(_figure.FIGURE_COLUMN_PX))
    fig = go.Figure([dots, line])
    fig.layout = th.layout(title or f"{quantity.capitalize()} per head over {M} images", width, height,
                           margin=margin, xaxis=xa, yaxis=ya, showlegend=True, legend=th.legend())
    return fig


@contextlib.contextmanager
def _quiet():
    """numpy's "Mean of empty slice" warnings for heads without a value are expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def artifact_frequency_figure(share, *, images: int, colormap: str | None = None, title: str | None = None,
                              theme=None) -> go.Figure:
    """How often each patch position is flagged as a high-norm artifact token: ``share [h, w]`` in
    [0, 1] (the fraction of the ``images`` images that flag it); ``z`` is ``share``."""
    th = resolve_theme(theme)
    s = float_array(share, 2, "share", "[h, w] fractions of images in [0, 1]")
    if s.min() < -1e-9 or s.max() > 1 + 1e-9:
        raise ValueError(f"share has values in [{s.min():.3g}, {s.max():.3g}]; expected fractions of images in [0, 1]")
    h, w = s.shape
    width, height, margin = _figure.figure_size(th, h / w, 440, colorbar=True)
    xa, ya = _figure.image_axes(th, (-0.5, w - 0.5), (h - 0.5, -0.5), "patch column", "patch row")
    rows, cols = np.divmod(np.arange(h * w).reshape(h, w), w)
    custom = np.stack([rows * w + cols, rows, cols, np.rint(s * images)], axis=-1)
    top = max(float(s.max()), 1e-9)
    fig = go.Figure(go.Heatmap(
        z=_figure.wire(s), x0=0, dx=1, y0=0, dy=1, name="artifact share", zmin=0.0, zmax=top, zsmooth=False,
        colorscale=th.cmap(colormap, "sequential"), customdata=custom,
        colorbar=_figure.colorbar(th, "share of images", 0.0, top),
        hovertemplate=("patch %{customdata[0]} (row %{customdata[1]}, col %{customdata[2]})<br>flagged in "
                       "%{customdata[3]:.0f} of " + str(images) + " images (%{z:.1%})<extra></extra>"),
    ))
    fig.layout = th.layout(title or f"Where artifact tokens appear ({images} images)", width, height,
                           margin=margin, xaxis=xa, yaxis=ya)
    return fig


def artifact_count_figure(counts, *, title: str | None = None, theme=None) -> go.Figure:
    """How many patches each image flags: a bar per count (0, 1, 2 …), ``y`` = number of images
    (``np.bincount(counts)``)."""
    th = resolve_theme(theme)
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0 or c.dtype.kind not in "iu" or c.min() < 0:
        raise ValueError(f"counts must be a non-empty 1-D array of whole numbers ≥ 0 (flagged patches per image), "
                         f"got shape {c.shape} dtype {c.dtype}")
    n = np.bincount(c)
    width, height, margin = _figure.figure_size(th, 0.5, 520, colorbar=False)
    xa = th.axis("artifact tokens in the image", chart=False, tickmode="array", tickvals=list(range(len(n))),
                 range=[-0.6, len(n) - 0.4])
    ya = th.axis("images", chart=True, rangemode="tozero")
    fig = go.Figure(go.Bar(x=np.arange(len(n)), y=n, name="images", marker={"color": th.accent_color},
                           hovertemplate="%{y} images flag %{x} patches<extra></extra>"))
    fig.layout = th.layout(title or f"Artifact tokens per image ({c.size} images, mean {c.mean():.2f})",
                           width, height, margin=margin, xaxis=xa, yaxis=ya, bargap=0.15)
    return fig


def qk_embedding_figure(xy, is_key, *, image, token, row, col, names=None, colour_by: str = "kind",
                        explained=None, title: str | None = None, theme=None) -> go.Figure:
    """Queries and keys of one head in one 2-D picture (AttentionViz, Yeh et al. 2023): one point
    per token and role. ``xy [n, 2]``, ``is_key [n]``; ``image``, ``token``, ``row``, ``col`` [n]
    (row/col -1 for prefix tokens); ``names`` the image names (indexed by ``image``).

    Traces: 0 patch queries, 1 patch keys, 2 prefix tokens (queries and keys). Each point's
    ``customdata`` is [its index in ``xy``, image, token, row, col] — a click reads index 0.
    ``colour_by``: "kind" (queries blue, keys orange), "row" or "col" (the patch position on a
    sequential scale; queries are circles, keys diamonds, in every mode).
    """
    th = resolve_theme(theme)
    pts = float_array(xy, 2, "xy", "[n, 2] point positions")
    n = len(pts)
    if pts.shape[1] != 2:
        raise ValueError(f"xy has shape {pts.shape}; expected [n, 2]")
    if colour_by not in QK_COLOUR_BY:
        raise ValueError(f"colour_by={colour_by!r}; expected one of {', '.join(QK_COLOUR_BY)}")
    key = np.asarray(is_key, dtype=bool)
    cols = [np.asarray(a, dtype=np.int64) for a in (image, token, row, col)]
    if key.shape != (n,) or any(a.shape != (n,) for a in cols):
        raise ValueError(f"is_key, image, token, row and col must each have one entry per point ({n})")
    img, tok, r, c = cols
    custom = np.stack([np.arange(n), img, tok, r, c], axis=-1).astype(np.int32)
    pts = _figure.wire(pts)  # float32 positions: 30,000 points are ~0.5 MB less to send than float64
    label = np.asarray(names, dtype=object)[img] if names is not None else img.astype(str)
    patch = r >= 0
    size = th.marker_size * (0.5 if n > 5000 else 0.7)
    scale = th.cmap(None, "sequential")
    top = max(int((r if colour_by == "row" else c).max()), 1)
    traces = []
    for name, one, mask, symbol, colour in (("queries", "query", patch & ~key, "circle", th.bar_color),
                                            ("keys", "key", patch & key, "diamond", th.second_color)):
        marker = {"size": size, "symbol": symbol, "opacity": 0.75, "line": {"width": 0}}
        if colour_by == "kind":
            marker["color"] = colour
        else:
            marker.update(color=(r if colour_by == "row" else c)[mask], colorscale=scale, cmin=0, cmax=top,
                          showscale=name == "queries",
                          colorbar=_figure.colorbar(th, f"patch {'row' if colour_by == 'row' else 'column'}", 0, top))
        traces.append(go.Scattergl(
            x=pts[mask, 0], y=pts[mask, 1], mode="markers", name=name, marker=marker, customdata=custom[mask],
            text=label[mask],
            hovertemplate=(f"{one} of patch " + "%{customdata[2]} (row %{customdata[3]}, col %{customdata[4]})"
                           "<br>%{text}<br>click to open it in the Explorer<extra></extra>")))
    pre = ~patch
    traces.append(go.Scattergl(
        x=pts[pre, 0], y=pts[pre, 1], mode="markers", name="prefix tokens (CLS …)", customdata=custom[pre],
        text=label[pre],
        marker={"size": size * 1.6, "symbol": np.where(key[pre], "diamond", "circle").tolist(),
                "color": th.font_color, "line": {"width": 1, "color": "white"}},
        hovertemplate="prefix token %{customdata[2]}<br>%{text}<br>click to open it in the Explorer<extra></extra>"))
    ex = np.asarray(explained if explained is not None else [np.nan, np.nan], dtype=float)
    axis = [f"PC {i + 1}" + (f" ({ex[i]:.0%} of the variance)" if np.isfinite(ex[i]) else "") for i in range(2)]
    width, height, margin = _figure.figure_size(th, 0.8, 640, colorbar=colour_by != "kind")
    xa = th.axis(axis[0], chart=True, showticklabels=False)
    ya = th.axis(axis[1], chart=True, showticklabels=False, scaleanchor="x", scaleratio=1)
    names_shown = [t.name for t in traces]
    height, margin = _figure.legend_room(th, names_shown, width, height, margin, th.px(_figure.FIGURE_COLUMN_PX))
    fig = go.Figure(traces)
    fig.layout = th.layout(title or "Queries and keys of one head", width, height, margin=margin, xaxis=xa,
                           yaxis=ya, showlegend=True, legend=th.legend(), hovermode="closest",
                           clickmode="event+select", dragmode="zoom")
    return fig
