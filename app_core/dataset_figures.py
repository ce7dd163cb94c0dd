"""The data-set figures, in the registry's own form (:class:`app_core.figures.FigureSpec`).

A registry figure is keyed by (model, image, the View fields it reads); a data-set figure has no
model trace and no image — it depends on one data set, so its key is (data-set digest, the
:class:`DataSetView` fields it reads). The specs, ``cache_key`` and the build-once-per-key rule are
the registry's; only the subject differs, which is why these specs live in their own table instead
of in ``figures.FIGURES`` (whose builders all read a Trace, and which the Downloads page lists for
the current image).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import viz

from . import dataset_views, safe_text
from .datasets import DataSet
from .figures import FigureSpec, Registry, ViewKey


@dataclass(frozen=True)
class DataSetView(ViewKey):
    """The settings a data-set figure may depend on (hashable: part of cache keys)."""

    colour_by: str = "kind"  # the q/k embedding: "kind", "row" or "col"
    classroom: bool = False


@dataclass
class DataSetInputs:
    """What data-set builders read: the data set and its (separately cached) q/k embedding."""

    dataset: DataSet
    qk_embedding: Callable[[], dataset_views.QKEmbedding]


def _image_width(ds: DataSet) -> float:
    """The model input's width in pixels (grid width × patch size), the largest useful distance."""
    _, w = dataset_views.common_grid(ds)
    return float(w * ds.meta["patch_size"])


def _distance(inputs, v):
    ds = inputs.dataset
    return viz.head_spread_figure(ds.distance, quantity="mean attention distance", unit=" px",
                                  top=_image_width(ds), theme=v.theme,
                                  title=f"Mean attention distance per head over {ds.M} images (mean ± std)")


def _entropy(inputs, v):
    ds = inputs.dataset
    h, w = dataset_views.common_grid(ds)
    tokens = ds.num_prefix_tokens + h * w
    return viz.head_spread_figure(ds.entropy, quantity="attention entropy", unit=" nats", top=float(np.log(tokens)),
                                  theme=v.theme, title=f"Attention entropy per head over {ds.M} images "
                                                       f"(mean ± std; at most ln {tokens} = {np.log(tokens):.2f})")


def _artifact_map(inputs, v):
    share, _, same = dataset_views.artifact_frequency(inputs.dataset)
    return viz.artifact_frequency_figure(share, images=same, theme=v.theme)


def _artifact_counts(inputs, v):
    _, counts, _ = dataset_views.artifact_frequency(inputs.dataset)
    return viz.artifact_count_figure(counts, theme=v.theme)


def _qk(inputs, v):
    ds, e = inputs.dataset, inputs.qk_embedding()
    names = [safe_text.plot_text(ds.image_name(i)) for i in range(e.images_shown)]  # names come from a file
    layer, head = ds.meta.get("qk_layer"), ds.meta.get("qk_head")
    shown = f"{e.images_shown} of {e.images_total}" if e.images_shown < e.images_total else f"{e.images_total}"
    return viz.qk_embedding_figure(e.xy, e.is_key, image=e.image, token=e.token, row=e.row, col=e.col, names=names,
                                   colour_by=v.colour_by, explained=e.explained, theme=v.theme,
                                   title=f"Queries and keys of layer {layer}, head {head} over {shown} images")


DATASET_FIGURES: dict[str, FigureSpec] = {s.name: s for s in [
    FigureSpec("dataset_distance", "Mean attention distance over the images", (), _distance),
    FigureSpec("dataset_entropy", "Attention entropy over the images", (), _entropy),
    FigureSpec("dataset_artifact_map", "Where artifact tokens appear", (), _artifact_map),
    FigureSpec("dataset_artifact_counts", "Artifact tokens per image", (), _artifact_counts),
    FigureSpec("dataset_qk", "Joint query/key embedding of one head", ("colour_by",), _qk,
               lambda inputs: inputs.dataset.has_qk),
]}


REGISTRY = Registry(DATASET_FIGURES, "data-set figure")
spec, build, cache_key = REGISTRY.spec, REGISTRY.build, REGISTRY.cache_key


def replace(view: DataSetView, **changes) -> DataSetView:
    return dataclasses.replace(view, **changes)
