"""What the Data set page shows, as arrays: artifact-token frequency over the images, and the
AttentionViz-style joint embedding of one head's queries and keys. numpy in, numpy out."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .datasets import DataSet

MAX_QK_POINTS = 30_000  # plotly's WebGL scatter stays fluid; beyond it the first images that fit are shown
QK_COLOURS = {"kind": "query / key", "row": "patch row", "col": "patch column"}  # viz.QK_COLOUR_BY, in words


def common_grid(ds: DataSet) -> tuple[int, int]:
    """The patch grid most images share (a model with a fixed input size: all of them)."""
    if not ds.M:
        raise ValueError("the data set has no processed image")
    (h, w), _ = Counter(map(tuple, ds.grids.tolist())).most_common(1)[0]
    return int(h), int(w)


def artifact_frequency(ds: DataSet) -> tuple[np.ndarray, np.ndarray, int]:
    """(share [h, w] of the images that flag each patch position, count [M] of flagged patches per
    image, how many images share that grid — the others are left out of the share)."""
    h, w = common_grid(ds)
    same = [i for i in range(ds.M) if tuple(ds.grids[i]) == (h, w)]
    hits = np.zeros(h * w)
    for i in same:
        hits[np.unique(ds.artifacts[i])] += 1
    counts = np.asarray([len(np.unique(a)) for a in ds.artifacts], dtype=np.int64)
    return (hits / max(len(same), 1)).reshape(h, w), counts, len(same)


# ----------------------------------------------------------------------------- queries and keys


def normalise_qk(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Queries and keys moved into one comparable cloud without changing any attention weight.

    AttentionViz (Yeh et al. 2023, §4.1 "vector normalisation") uses the two freedoms the softmax
    leaves: (1) every key may be shifted by one vector v, since q·(k + v) adds q·v to all of a
    query's scores alike; (2) queries may be scaled by c and keys by 1/c, since (cq)·(k/c) = q·k.
    It shifts the keys onto the queries' centroid and scales the two to the same average size,
    so that a query lies near the keys it attends to instead of in a separate cloud. Here the size
    is the mean distance from the own centroid (so the two steps commute): with s_q, s_k the mean
    ‖q − q̄‖, ‖k − k̄‖, c = √(s_k / s_q); q' = c·q and k' = (k − k̄)/c + c·q̄.
    Returns (q' [n, d], k' [n, d], c).
    """
    q = np.asarray(queries, dtype=np.float64)
    k = np.asarray(keys, dtype=np.float64)
    q_mean, k_mean = q.mean(axis=0), k.mean(axis=0)
    s_q = float(np.linalg.norm(q - q_mean, axis=1).mean())
    s_k = float(np.linalg.norm(k - k_mean, axis=1).mean())
    c = float(np.sqrt(s_k / s_q)) if s_q > 0 and s_k > 0 else 1.0
    return c * q, (k - k_mean) / c + c * q_mean, c


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the rows of x on their first two principal axes [n, 2], the share of variance of each).

    The axes are the top eigenvectors of the d × d scatter matrix (d = head width, 64 at most in
    these models): much cheaper than an SVD of the n × d points (n up to 30,000), same axes."""
    centred = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
    order = np.argsort(values)[::-1][:2]
    axes = vectors[:, order].T  # [≤2, d]
    # a principal axis has no sign: fix it (largest loading positive) so a figure does not flip
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    xy = centred @ axes.T
    if xy.shape[1] < 2:  # d = 1: a line
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    total = float(np.clip(values, 0, None).sum()) or 1.0
    share = np.clip(values[order], 0, None) / total
    return xy, np.pad(share, (0, 2 - len(share)))


@dataclass(frozen=True)
class QKEmbedding:
    """Every token of the shown images twice, as a query and as a key, placed in 2-D.

    xy [n, 2], is_key [n] bool, image [n] (processed-image index), token [n] (index in the image's
    T tokens), row / col [n] (patch position; -1 for prefix tokens), explained [2] the PCA variance
    shares, scale c of :func:`normalise_qk`, images_shown of images_total.
    """

    xy: np.ndarray
    is_key: np.ndarray
    image: np.ndarray
    token: np.ndarray
    row: np.ndarray
    col: np.ndarray
    explained: np.ndarray
    scale: float
    images_shown: int
    images_total: int


def qk_embedding(ds: DataSet, max_points: int = MAX_QK_POINTS) -> QKEmbedding:
    """The joint query/key embedding of the stored head over the images (PCA after AttentionViz's
    normalisation); at most ``max_points`` points (the first images that fit)."""
    if not ds.has_qk:
        raise ValueError("this data set stores no queries and keys; write it with the queries and keys of a head")
    p = ds.num_prefix_tokens
    per_image = [2 * len(q) for q in ds.queries]
    shown = max(1, int(np.searchsorted(np.cumsum(per_image), max_points, side="right")))
    qs, ks = ds.queries[:shown], ds.keys[:shown]
    q, k = np.concatenate(qs), np.concatenate(ks)
    q_n, k_n, c = normalise_qk(q, k)
    xy, explained = pca_2d(np.concatenate([q_n, k_n]))
    image = np.concatenate([np.full(len(qi), i) for i, qi in enumerate(qs)])
    token = np.concatenate([np.arange(len(qi)) for qi in qs])
    w = np.concatenate([np.full(len(qi), ds.grids[i][1]) for i, qi in enumerate(qs)])
    patch = token - p
    row = np.where(patch >= 0, patch // w, -1)
    col = np.where(patch >= 0, patch % w, -1)
    n = len(q)
    return QKEmbedding(xy=xy.astype(np.float32), is_key=np.repeat([False, True], n),
                       image=np.tile(image, 2), token=np.tile(token, 2), row=np.tile(row, 2), col=np.tile(col, 2),
                       explained=explained, scale=c, images_shown=shown, images_total=ds.M)


def point_from_selection(points, embedding: QKEmbedding) -> tuple[int, int] | None:
    """(processed-image index, token) of the first clicked point of the q/k figure, read from its
    customdata ``[point index]`` (the figure's traces split the points, so their own index is not it)."""
    for pt in points or []:
        cd = pt.get("customdata") if isinstance(pt, dict) else None
        if isinstance(cd, dict):
            cd = [cd[k] for k in sorted(cd, key=lambda s: int(s) if str(s).isdigit() else 0)]
        if isinstance(cd, (list, tuple)) and cd:
            cd = cd[0]
        if isinstance(cd, bool) or not isinstance(cd, (int, float)):
            continue
        i = int(cd)
        if 0 <= i < len(embedding.xy):
            return int(embedding.image[i]), int(embedding.token[i])
    return None
