"""Patches: the image cut into a grid of patches, the tile mosaic, one patch flattened to its
numbers and its embedding (walkthrough step 1), the flattened patch matrix ``[N, P*P*3]`` and
the (patch or token) embedding matrix.

Patches are numbered 0 … N-1 row-major by their patch index (:class:`viz.TokenLayout`): patch
(r, c) of a w-wide grid is patch ``r*w + c`` whatever the prefix tokens before it.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array, image_array
from .maps import flatten_patches, patch_grid
from .specs import TokenLayout, as_tokens
from .theme import resolve_theme

LABEL_MODES = ("auto", "all", "sparse", "none")
FLATTEN_ORDERS = ("chw", "hwc")


def _patch_labels(theme, h, w, centres_x, centres_y, cell_px, labels):
    """Patch-index annotations at patch centres; sparse when they would not fit."""
    if labels not in LABEL_MODES:
        raise ValueError(f"labels={labels!r}; expected one of {LABEL_MODES}.")
    if labels == "none":
        return [], 0
    longest = str(h * w - 1)
    stride = _figure.label_stride(max(h, w), cell_px, longest, theme.small_size)
    if labels == "all":
        stride = 1
    elif labels == "sparse":
        stride = max(stride, 2)
    ann = []
    for r in range(0, h, stride):
        for c in range(0, w, stride):
            ann.append(dict(
                x=centres_x[c], y=centres_y[r], xref="x", yref="y", text=str(r * w + c),
                showarrow=False, font=theme.font(theme.small_size, theme.label_color),
                bgcolor=theme.label_bg, borderpad=1, xanchor="center", yanchor="middle",
            ))
    return ann, stride


def _patch_hover(h, w, centres_x, centres_y, cell_px):
    cx, cy = np.meshgrid(centres_x, centres_y)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    custom = np.stack([rows * w + cols, rows, cols], axis=-1).reshape(-1, 3)
    return dict(type="scatter", x=cx.ravel(), y=cy.ravel(), mode="markers", name="patch tokens",
                marker={"size": max(6.0, cell_px), "symbol": "square", "opacity": 0, "color": "black"},
                customdata=custom, showlegend=False,
                hovertemplate="patch %{customdata[0]} (row %{customdata[1]}, col %{customdata[2]})<extra></extra>")


def _sequence_note(tokens: TokenLayout | None) -> str:
    """Where the patches sit in the token sequence, for a title: after CLS (and registers)."""
    if tokens is None or not tokens.p:
        return ""
    names = tokens.prefix_names
    return f", after {names[0]}" if len(names) == 1 else f", after {', '.join(names[:-1])} and {names[-1]}"


def patch_grid_figure(image, patch_size: int, *, tokens: TokenLayout | None = None, labels: str = "auto",
                      title: str | None = None, theme=None) -> go.Figure:
    """The model input with its patch grid and each patch's number (its patch index).

    Patch (r, c) is patch ``r*w + c``. ``labels``: ``"auto"`` labels every patch when the
    numbers fit and every k-th row/column otherwise (hover names every patch with its row
    and column), ``"all"``, ``"sparse"`` or ``"none"``. ``tokens`` (optional) names the prefix
    tokens the patches follow in the sequence, for the title.
    Traces: ``[Image, Scatter (hover)]``; grid lines are layout shapes.
    """
    th = resolve_theme(theme)
    img = image_array(image)
    h, w, P = patch_grid(img, patch_size)
    H, W = img.shape[:2]
    width, height, margin = _figure.figure_size(th, H / W, 560, colorbar=False)
    plot_w = width - margin["l"] - margin["r"]
    centres_x = np.arange(w) * P + (P - 1) / 2
    centres_y = np.arange(h) * P + (P - 1) / 2
    ann, stride = _patch_labels(th, h, w, centres_x, centres_y, plot_w / w, labels)
    xa, ya = _figure.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), "x (px)", "y (px)")
    if stride > 1:
        xa["title"]["text"] = f"x (px) · one label per {stride}×{stride} patches, hover shows all"
    # up to 256 labels and 30 grid lines: plain dicts, unvalidated (validation was ~90% of the
    # figure's 22 ms, paid on every new photo); tests validate it once
    return _figure.unchecked_figure([_figure.photo_spec(img), _patch_hover(h, w, centres_x, centres_y, plot_w / w)],
                                    th.layout(title or (f"{h}×{w} = {h * w} patches of {P}×{P} px: patch 0 … "
                                                        f"{h * w - 1}, row by row" + _sequence_note(tokens)),
                                              width, height, margin=margin, xaxis=xa, yaxis=ya,
                                              shapes=_figure.grid_lines(th, h, w, P), annotations=ann))


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


def patch_mosaic_figure(image, patch_size: int, *, gap: int | None = None, labels: str = "auto",
                        title: str | None = None, theme=None) -> go.Figure:
    """The patches as separate tiles (a ``gap`` px white gutter, default ``max(2, P//5)``).

    Trace 0 is the mosaic ``Image`` (see :func:`mosaic_image`); labels as in :func:`patch_grid_figure`.
    """
    th = resolve_theme(theme)
    img = image_array(image)
    h, w, P = patch_grid(img, patch_size)
    g = max(2, P // 5) if gap is None else int(gap)
    mosaic = mosaic_image(img, P, g)
    Hm, Wm = mosaic.shape[:2]
    width, height, margin = _figure.figure_size(th, Hm / Wm, 560, colorbar=False)
    height -= margin["b"] - round(20 * th.scale)  # no axes: no room needed below
    margin["b"] = round(20 * th.scale)
    plot_w = width - margin["l"] - margin["r"]
    centres_x = np.arange(w) * (P + g) + (P - 1) / 2
    centres_y = np.arange(h) * (P + g) + (P - 1) / 2
    ann, stride = _patch_labels(th, h, w, centres_x, centres_y, plot_w * P / Wm, labels)
    xa, ya = _figure.image_axes(th, (-0.5, Wm - 0.5), (Hm - 0.5, -0.5), show_ticks=False)
    xa.update(showline=False)
    ya.update(showline=False)
    return _figure.unchecked_figure(
        [_figure.photo_spec(mosaic, name="mosaic"), _patch_hover(h, w, centres_x, centres_y, plot_w * P / Wm)],
        th.layout(title or f"The image as a sequence of {h * w} patches ({P}×{P} px each)",
                  width, height, margin=margin, xaxis=xa, yaxis=ya, annotations=ann))


def _matrix_ticks(th, n, plot_px, start=0):
    vals, text = _figure.index_ticks(n, plot_px, th.tick_size, start=start)
    return {"tickmode": "array", "tickvals": vals, "ticktext": text}


def patch_matrix_figure(image, patch_size: int, *, colormap: str | None = "gray", title: str | None = None,
                        theme=None) -> go.Figure:
    """The flattened patches ``[N, P*P*3]`` (one row per patch) as a heatmap of pixel values.

    ``fig.data[0].z`` equals :func:`viz.maps.flatten_patches` (row-major patches, each
    flattened as (row, col, channel)); colour range fixed to 0..255.
    """
    th = resolve_theme(theme)
    img = image_array(image)
    h, w, P = patch_grid(img, patch_size)
    X = flatten_patches(img, P)
    N, K = X.shape
    width, height, margin = _figure.figure_size(th, 0.62, 620, colorbar=True)
    plot_h = height - margin["t"] - margin["b"]
    xa = th.axis("pixel value index (row, col, channel within the patch)", range=[-0.5, K - 0.5])
    ya = th.axis("patch index", range=[N - 0.5, -0.5], **_matrix_ticks(th, N, plot_h))
    fig = go.Figure(go.Heatmap(
        z=X, name="flattened patches", colorscale=th.cmap(colormap, "sequential"), zmin=0, zmax=255,
        colorbar=_figure.colorbar(th, "pixel value (0–255)", 0, 255),
        hovertemplate="patch %{y}<br>element %{x}<br>value %{z}<extra></extra>",
    ))
    fig.layout = th.layout(
        title or f"Flattened patches: {N} × {K} (= {P}·{P}·3)", width, height, margin=margin,
        xaxis=xa, yaxis=ya,
    )
    return fig


def patch_embedding_figure(embeddings, *, tokens: TokenLayout | None = None, zmax: float | None = None,
                           colormap: str | None = None, title: str | None = None, theme=None) -> go.Figure:
    """An embedding matrix, one row per patch (``[N, D]``, ``tokens`` None or without prefix
    tokens) or per token (``[T, D]`` with ``tokens.num_prefix_tokens > 0``: prefix rows first,
    a line under them).

    Rows are named by :meth:`viz.TokenLayout.label` (``CLS``, ``p24 (r3,c3)``), the y axis
    is categorical with sparse ticks (``CLS``, ``p0``, ``p50`` …). Diverging colours centred on 0:
    ``zmin = -zmax``, ``zmax = max|x|`` unless given (pass a smaller ``zmax`` to saturate
    outliers). ``fig.data[0].z`` equals the input.
    """
    th = resolve_theme(theme)
    E = float_array(embeddings, 2, "embeddings", "[N, D] (one row per patch or token)")
    N, D = E.shape
    tk = as_tokens(tokens) if tokens is not None else TokenLayout(0)
    tk = tk.with_count(N, "embeddings")
    p = tk.p
    names = tk.names(N)
    top = float(np.max(np.abs(E))) if zmax is None else float(zmax)
    if not top > 0:
        top = 1.0
    width, height, margin = _figure.figure_size(th, 0.62, 620, colorbar=True)
    plot_h = height - margin["t"] - margin["b"]
    label = "token (prefix first, then patches)" if p else "patch (row by row)"
    tv, tt = _figure.index_ticks(N - p, plot_h, th.tick_size, positions=range(p, N),
                                 labels=[tk.tick(t) for t in range(p, N)])
    pos, text = _figure.merge_ticks([(t, tk.tick(t)) for t in range(p)], list(zip(tv, tt)), plot_h / N, th.tick_size,
                              along="height")
    xa = th.axis("embedding dim", range=[-0.5, D - 0.5])
    ya = th.axis(label, type="category", range=[N - 0.5, -0.5], tickmode="array", tickvals=[names[i] for i in pos],
                 ticktext=text)
    shapes = []
    if p:
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=p - 0.5, y1=p - 0.5,
                           line={"color": "black", "width": th.outline_width}, layer="above"))
    fig = go.Figure(go.Heatmap(
        z=E, y=names, name="embeddings", colorscale=th.cmap(colormap, "diverging"), zmin=-top, zmax=top,
        colorbar=_figure.colorbar(th, "embedding value", -top, top, E),
        hovertemplate="%{y}<br>dim %{x}<br>value %{z:.4f}<extra></extra>",
    ))
    fig.layout = th.layout(
        title or f"Patch embeddings x·E: {N} {'tokens' if p else 'patches'} × {D} dims", width, height,
        margin=margin, xaxis=xa, yaxis=ya, shapes=shapes,
    )
    return fig


# =============================================================================================
# one patch -> its pixel vector -> its embedding
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


def patch_flatten_figure(patch_pixels, embedding, *, patch_index: int, tokens: TokenLayout | None = None,
                         order: str = "chw", colormap: str | None = None, title: str | None = None,
                         theme=None) -> go.Figure:
    """Step 1 of a ViT for one patch: its ``P×P`` pixels → the ``P·P·3`` numbers → its ``D`` embedding.

    Three aligned panels, top to bottom: the patch (trace 0, Image ``z = patch_pixels``), the
    flattened vector (trace 1, Heatmap ``z = [flatten_patch(patch_pixels, order)]``, grey
    0..255, channel blocks marked for ``order="chw"``) and the embedding ``x·E + b`` (trace 2,
    Heatmap ``z = [embedding]``, diverging colours centred on 0). ``patch_index`` is the
    patch's index (row-major, without prefix tokens); with ``tokens`` (its grid) the patch is
    named with its row and column. ``layout.meta``: ``{"order", "patch_index", "pixels", "dims"}``.
    """
    th = resolve_theme(theme)
    x = _patch_pixels(patch_pixels)
    e = float_array(embedding, 1, "embedding", "[D] (the patch's embedding x·E + b, patch_embeddings[i])")
    if isinstance(patch_index, (bool, np.bool_)) or int(patch_index) < 0:
        raise ValueError(f"patch_index={patch_index!r}; expected the patch's index 0..N-1 (row-major).")
    i = int(patch_index)
    tk = as_tokens(tokens)
    if tk.N is not None and i >= tk.N:
        raise ValueError(f"patch_index={i} is out of range; expected 0..{tk.N - 1} "
                         f"({tk.grid[0]}x{tk.grid[1]} patches).")
    who = tk.patch_name(i)
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
    xa, ya = _figure.image_axes(th, (-0.5, P - 0.5), (P - 0.5, -0.5), anchor="x", show_ticks=False)
    xa.update(domain=x_img, showline=False, anchor="y")
    ya.update(domain=y_img, showline=False, anchor="x")
    ya.pop("scaleanchor")  # the domain is already square in pixels
    etv, ett = _figure.index_ticks(D, plot_w, th.tick_size)
    if order == "chw":  # ticks where each colour channel starts, and the last element
        ftv, ftt = _figure.merge_ticks([(c * P * P, str(c * P * P)) for c in range(3)] + [(K - 1, str(K - 1))], [],
                                 plot_w / K, th.tick_size)
    else:
        ftv, ftt = _figure.index_ticks(K, plot_w, th.tick_size)
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
        return text if _figure.legend_text_width(text, th.font_size) <= 0.85 * plot_w else short

    x_txt = x_img[1] + th.px(16) / plot_w
    text_room = 0.85 * plot_w * (1 - x_txt)
    head, _ = _figure.fit_caption(th, f"{who}: {P}×{P} pixels × 3 colours", text_room, round(th.title_size * 0.85))
    ann = [
        dict(text=head, x=x_txt, y=y_img[1], xref="paper", yref="paper", align="left",
             xanchor="left", yanchor="top", showarrow=False, font=th.font(round(th.title_size * 0.85))),
        dict(text=f"= {P}·{P}·3 = {K} numbers, each 0…255<br>(shown black 0 … white 255)", x=x_txt,
             y=(y_img[0] + y_img[1]) / 2, align="left",
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
        title or f"{who[0].upper() + who[1:]} → {K} pixel numbers → a {D}-dim embedding", width, height,
        margin=margin,
        xaxis=xa, yaxis=ya, xaxis2=xa2, yaxis2=ya2, xaxis3=xa3, yaxis3=ya3, annotations=ann, shapes=shapes,
        meta={"order": order, "patch_index": i, "pixels": K, "dims": D},
    )
    return fig
