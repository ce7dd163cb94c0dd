"""Embedding figures: positional-embedding similarity tiles and the patch-embedding PCA image."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array
from .maps import tile_maps
from .theme import resolve_theme


def pos_similarity_figure(similarity, *, colormap: str | None = None, title: str | None = None,
                          theme=None) -> go.Figure:
    """Cosine similarity of position embeddings as an (h, w) grid of (h, w) tiles (ViT paper, Fig. 7).

    ``similarity [h, w, h, w]``: entry ``[r, c, r2, c2]`` = cos(E_pos(r, c), E_pos(r2, c2)),
    in [-1, 1]. ``fig.data[0].z`` is ``tile_maps(similarity, gap=1)``: tile (r, c) is the
    map of reference patch (r, c). Diverging colours with ``zmin = -1, zmax = 1``.
    """
    th = resolve_theme(theme)
    s = float_array(similarity, 4, "similarity", "[h, w, h, w] cosine similarities of position embeddings")
    h, w, h2, w2 = s.shape
    if (h, w) != (h2, w2):
        raise ValueError(f"similarity has shape {s.shape}; expected [h, w, h, w] with the same grid twice.")
    if s.min() < -1 - 1e-5 or s.max() > 1 + 1e-5:
        raise ValueError(f"similarity has values in [{s.min():.3g}, {s.max():.3g}]; expected cosines in [-1, 1]. "
                         f"Fix: normalise the embeddings to unit length before the dot products.")
    big = tile_maps(s, gap=1)
    ny, nx = big.shape
    idx_r = np.full(ny, -1)
    in_r = np.full(ny, -1)
    for r in range(h):
        idx_r[r * (h + 1): r * (h + 1) + h] = r
        in_r[r * (h + 1): r * (h + 1) + h] = np.arange(h)
    idx_c = np.full(nx, -1)
    in_c = np.full(nx, -1)
    for c in range(w):
        idx_c[c * (w + 1): c * (w + 1) + w] = c
        in_c[c * (w + 1): c * (w + 1) + w] = np.arange(w)
    custom = np.empty((ny, nx, 6), dtype=np.int32)
    custom[..., 0] = idx_r[:, None]
    custom[..., 1] = idx_c[None, :]
    custom[..., 2] = in_r[:, None]
    custom[..., 3] = in_c[None, :]
    custom[..., 4] = custom[..., 0] * w + custom[..., 1]  # patch indices (row-major), -1 … in the gaps
    custom[..., 5] = custom[..., 2] * w + custom[..., 3]
    width, height, margin = _figure.figure_size(th, ny / nx, 600, colorbar=True, max_plot_height=700)
    plot_w = width - margin["l"] - margin["r"]
    plot_h = height - margin["t"] - margin["b"]
    xv, xt = _figure.index_ticks(w, plot_w, th.tick_size, positions=[c * (w + 1) + (w - 1) / 2 for c in range(w)],
                           min_gap_chars=2)
    yv, yt = _figure.index_ticks(h, plot_h, th.tick_size, positions=[r * (h + 1) + (h - 1) / 2 for r in range(h)],
                           min_gap_chars=1)
    xa, ya = _figure.image_axes(th, (-0.5, nx - 0.5), (ny - 0.5, -0.5), "reference patch column",
                          "reference patch row", tickmode="array")
    xa.update(tickvals=xv, ticktext=xt)
    ya.update(tickvals=yv, ticktext=yt)
    fig = go.Figure(go.Heatmap(
        z=big, x0=0, dx=1, y0=0, dy=1, name="position similarity", colorscale=th.cmap(colormap, "diverging"),
        zmin=-1.0, zmax=1.0, zsmooth=False, customdata=custom, hoverongaps=False,
        colorbar=_figure.colorbar(th, "cosine similarity", -1.0, 1.0),
        hovertemplate=("reference patch %{customdata[4]} (row %{customdata[0]}, col %{customdata[1]})<br>vs patch "
                       "%{customdata[5]} (row %{customdata[2]}, col %{customdata[3]})<br>cosine %{z:.3f}"
                       "<extra></extra>"),
    ))
    fig.layout = th.layout(title or "Position-embedding similarity", width, height, margin=margin,
                           xaxis=xa, yaxis=ya)
    return fig


def pca_image_figure(rgb, *, title: str | None = None, theme=None) -> go.Figure:
    """The first three principal components of the patch embeddings shown as RGB, ``rgb [h, w, 3]`` in [0, 1].

    ``fig.data[0]`` is an Image with ``z = round(rgb * 255)`` (uint8), one pixel per patch.
    """
    th = resolve_theme(theme)
    v = float_array(rgb, 3, "rgb", "[h, w, 3] floats in [0, 1] (PCA components scaled to 0..1)")
    h, w, ch = v.shape
    if ch != 3:
        raise ValueError(f"rgb has shape {v.shape}; expected [h, w, 3] (three principal components).")
    if v.min() < -1e-6 or v.max() > 1 + 1e-6:
        raise ValueError(f"rgb has values in [{v.min():.3g}, {v.max():.3g}]; expected [0, 1]. "
                         f"Fix: min-max scale each component, (x - x.min(0)) / (x.max(0) - x.min(0)).")
    img = np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)
    width, height, margin = _figure.figure_size(th, h / w, 520, colorbar=False)
    xa, ya = _figure.image_axes(th, (-0.5, w - 0.5), (h - 0.5, -0.5), "patch column", "patch row")
    names = [[f"patch {r * w + c} (row {r}, col {c})" for c in range(w)] for r in range(h)]
    fig = go.Figure(go.Image(
        z=img, name="PCA", hovertext=names, hovertemplate="%{hovertext}<br>RGB %{z}<extra></extra>",
    ))
    fig.layout = th.layout(title or "Patch embeddings: first 3 principal components as RGB",
                           width, height, margin=margin, xaxis=xa, yaxis=ya)
    return fig
