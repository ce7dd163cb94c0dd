"""Patches: the image cut into a grid of tokens, the tile mosaic, the flattened patch
matrix ``[N, P*P*3]`` and the patch-embedding matrix ``[N, D]``."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from . import _figure as F
from ._checks import check_prefix, float_array, image_array
from .maps import flatten_patches, patch_grid
from .theme import resolve_theme

LABEL_MODES = ("auto", "all", "sparse", "none")


def _patch_labels(theme, h, w, p, centres_x, centres_y, cell_px, labels):
    """Token-index annotations at patch centres; sparse when they would not fit."""
    if labels not in LABEL_MODES:
        raise ValueError(f"labels={labels!r}; expected one of {LABEL_MODES}.")
    if labels == "none":
        return [], 0
    longest = str(p + h * w - 1)
    stride = F.label_stride(max(h, w), cell_px, longest, theme.small_size)
    if labels == "all":
        stride = 1
    elif labels == "sparse":
        stride = max(stride, 2)
    ann = []
    for r in range(0, h, stride):
        for c in range(0, w, stride):
            ann.append(dict(
                x=centres_x[c], y=centres_y[r], xref="x", yref="y", text=str(p + r * w + c),
                showarrow=False, font=theme.font(theme.small_size, theme.label_color),
                bgcolor=theme.label_bg, borderpad=1, xanchor="center", yanchor="middle",
            ))
    return ann, stride


def _patch_hover(h, w, p, centres_x, centres_y):
    cx, cy = np.meshgrid(centres_x, centres_y)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    custom = np.stack([p + rows * w + cols, rows, cols], axis=-1).reshape(-1, 3)
    return F.hover_points(
        cx.ravel(), cy.ravel(), custom,
        "token %{customdata[0]}<br>patch row %{customdata[1]}, col %{customdata[2]}<extra></extra>",
        name="patch tokens",
    )


def patch_grid_figure(image, patch_size: int, *, num_prefix_tokens: int = 1, labels: str = "auto",
                      title: str | None = None, theme=None, classroom: bool = False) -> go.Figure:
    """The model input with its patch grid and each patch's token index.

    Token index of patch (r, c) is ``num_prefix_tokens + r*w + c``. ``labels``: ``"auto"``
    labels every patch when the numbers fit and every k-th row/column otherwise (hover shows
    every patch's token, row and column), ``"all"``, ``"sparse"`` or ``"none"``.
    Traces: ``[Image, Scatter (hover)]``; grid lines are layout shapes.
    """
    th = resolve_theme(theme, classroom)
    img = image_array(image)
    h, w, P = patch_grid(img, patch_size)
    p = len(check_prefix(num_prefix_tokens))
    H, W = img.shape[:2]
    width, height, margin = F.figure_size(th, H / W, 560, colorbar=False)
    plot_w = width - margin["l"] - margin["r"]
    centres_x = np.arange(w) * P + (P - 1) / 2
    centres_y = np.arange(h) * P + (P - 1) / 2
    ann, stride = _patch_labels(th, h, w, p, centres_x, centres_y, plot_w / w, labels)
    xa, ya = F.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), "x (px)", "y (px)")
    fig = go.Figure([
        go.Image(z=img, name="image", hoverinfo="skip"),
        _patch_hover(h, w, p, centres_x, centres_y),
    ])
    if stride > 1:
        xa["title"]["text"] = f"x (px) · one label per {stride}×{stride} patches, hover shows all"
    fig.layout = th.layout(
        title or f"{h}×{w} = {h * w} patches of {P}×{P} px → tokens {p}…{p + h * w - 1}",
        width, height, margin=margin, xaxis=xa, yaxis=ya,
        shapes=F.grid_lines(th, h, w, P), annotations=ann,
    )
    return fig


def mosaic_image(image, patch_size: int, gap: int, fill=(255, 255, 255)) -> np.ndarray:
    """The patches as tiles separated by ``gap`` px of ``fill`` colour: uint8 ``[h*P+(h-1)g, w*P+(w-1)g, 3]``."""
    img = image_array(image)
    h, w, P = patch_grid(img, patch_size)
    g = int(gap)
    if g < 0:
        raise ValueError(f"gap={gap!r}; expected >= 0 pixels.")
    out = np.empty((h * (P + g) - g, w * (P + g) - g, 3), dtype=np.uint8)
    out[:] = np.asarray(fill, dtype=np.uint8)
    for r in range(h):
        for c in range(w):
            out[r * (P + g): r * (P + g) + P, c * (P + g): c * (P + g) + P] = img[r * P:(r + 1) * P, c * P:(c + 1) * P]
    return out


def patch_mosaic_figure(image, patch_size: int, *, gap: int | None = None, num_prefix_tokens: int = 1,
                        labels: str = "auto", title: str | None = None, theme=None,
                        classroom: bool = False) -> go.Figure:
    """The patches as separate tiles (a ``gap`` px white gutter, default ``max(2, P//5)``).

    Trace 0 is the mosaic ``Image`` (see :func:`mosaic_image`); labels as in :func:`patch_grid_figure`.
    """
    th = resolve_theme(theme, classroom)
    img = image_array(image)
    h, w, P = patch_grid(img, patch_size)
    p = len(check_prefix(num_prefix_tokens))
    g = max(2, P // 5) if gap is None else int(gap)
    mosaic = mosaic_image(img, P, g)
    Hm, Wm = mosaic.shape[:2]
    width, height, margin = F.figure_size(th, Hm / Wm, 560, colorbar=False)
    height -= margin["b"] - round(20 * th.scale)  # no axes: no room needed below
    margin["b"] = round(20 * th.scale)
    plot_w = width - margin["l"] - margin["r"]
    centres_x = np.arange(w) * (P + g) + (P - 1) / 2
    centres_y = np.arange(h) * (P + g) + (P - 1) / 2
    ann, stride = _patch_labels(th, h, w, p, centres_x, centres_y, plot_w * P / Wm, labels)
    xa, ya = F.image_axes(th, (-0.5, Wm - 0.5), (Hm - 0.5, -0.5), show_ticks=False)
    xa.update(showline=False)
    ya.update(showline=False)
    fig = go.Figure([
        go.Image(z=mosaic, name="mosaic", hoverinfo="skip"),
        _patch_hover(h, w, p, centres_x, centres_y),
    ])
    fig.layout = th.layout(
        title or f"The image as a sequence of {h * w} patches ({P}×{P} px each)",
        width, height, margin=margin, xaxis=xa, yaxis=ya, annotations=ann,
    )
    return fig


def _matrix_ticks(th, n, plot_px, start=0):
    vals, text = F.index_ticks(n, plot_px, th.tick_size, start=start)
    return {"tickmode": "array", "tickvals": vals, "ticktext": text}


def patch_matrix_figure(image, patch_size: int, *, colormap: str | None = "gray", title: str | None = None,
                        theme=None, classroom: bool = False) -> go.Figure:
    """The flattened patches ``[N, P*P*3]`` (one row per patch) as a heatmap of pixel values.

    ``fig.data[0].z`` equals :func:`viz.maps.flatten_patches` (row-major patches, each
    flattened as (row, col, channel)); colour range fixed to 0..255.
    """
    th = resolve_theme(theme, classroom)
    img = image_array(image)
    h, w, P = patch_grid(img, patch_size)
    X = flatten_patches(img, P)
    N, K = X.shape
    width, height, margin = F.figure_size(th, 0.62, 620, colorbar=True)
    plot_h = height - margin["t"] - margin["b"]
    xa = th.axis("pixel value index (row, col, channel within the patch)", range=[-0.5, K - 0.5])
    ya = th.axis("patch index", range=[N - 0.5, -0.5], **_matrix_ticks(th, N, plot_h))
    fig = go.Figure(go.Heatmap(
        z=X, name="flattened patches", colorscale=th.cmap(colormap, "sequential"), zmin=0, zmax=255,
        colorbar=th.colorbar("pixel value (0–255)"),
        hovertemplate="patch %{y}<br>element %{x}<br>value %{z}<extra></extra>",
    ))
    fig.layout = th.layout(
        title or f"Flattened patches: {N} × {K} (= {P}·{P}·3)", width, height, margin=margin,
        xaxis=xa, yaxis=ya,
    )
    return fig


def patch_embedding_figure(embeddings, *, num_prefix_tokens: int = 0, zmax: float | None = None,
                           colormap: str | None = None, title: str | None = None, theme=None,
                           classroom: bool = False) -> go.Figure:
    """A ``[N, D]`` embedding matrix (patch embeddings, or tokens when ``num_prefix_tokens`` > 0).

    Diverging colours centred on 0: ``zmin = -zmax``, ``zmax = max|x|`` unless given (pass a
    smaller ``zmax`` to saturate outliers). ``fig.data[0].z`` equals the input.
    """
    th = resolve_theme(theme, classroom)
    E = float_array(embeddings, 2, "embeddings", "[N, D] (one row per patch token)")
    N, D = E.shape
    p = len(check_prefix(num_prefix_tokens))
    top = float(np.max(np.abs(E))) if zmax is None else float(zmax)
    if not top > 0:
        top = 1.0
    width, height, margin = F.figure_size(th, 0.62, 620, colorbar=True)
    plot_h = height - margin["t"] - margin["b"]
    label = "token index" if p else "patch index"
    xa = th.axis("embedding dim", range=[-0.5, D - 0.5])
    ya = th.axis(label, range=[N - 0.5, -0.5], **_matrix_ticks(th, N, plot_h))
    shapes = []
    if p:
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=p - 0.5, y1=p - 0.5,
                           line={"color": "black", "width": th.outline_width}, layer="above"))
    fig = go.Figure(go.Heatmap(
        z=E, name="embeddings", colorscale=th.cmap(colormap, "diverging"), zmin=-top, zmax=top,
        colorbar=th.colorbar("embedding value"),
        hovertemplate=label + " %{y}<br>dim %{x}<br>value %{z:.4f}<extra></extra>",
    ))
    fig.layout = th.layout(
        title or f"Patch embeddings x·E: {N} tokens × {D} dims", width, height, margin=margin,
        xaxis=xa, yaxis=ya, shapes=shapes,
    )
    return fig
