"""The one figure registry: every figure the app shows or exports, named once.

A figure is a :class:`FigureSpec` — its name, the view settings it depends on, and how to
build it from one image's trace. Pages ask for a figure by name; the Downloads page lists
them all; the cache key is (model, image, name, the values of exactly those settings), so a
figure is built once per inputs and shared by every session that asks for it.

Builders here only pick arrays out of the trace (through ``views``) and call ``viz``; the
numbers come from model/ and app_core.views, the drawing from viz. The Data set page's figures
are FigureSpecs too (``app_core.dataset_figures``), keyed by a data set's digest instead of
(model, image).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import plotly.graph_objects as go

import viz
from model import patch_embedding_pca, pos_embed_similarity
from model.explain import METHOD_TITLES
from viz._figure import on_wire as viz_on_wire
from viz._figure import subplot_axis_names as viz_axes
from viz._figure import value_format as viz_value_format

from . import clicks, faithfulness, views
from model.trace import Trace


class ViewKey:
    """What every view (this module's `View`, app_core.dataset_figures' `DataSetView`) shares:
    its `classroom` field picks the theme, and the cache key of the fields a figure depends on."""

    @property
    def theme(self) -> str | None:
        return "classroom" if self.classroom else None

    def key(self, fields: tuple[str, ...]) -> tuple:
        """The values of `fields` (and the theme, which every figure depends on)."""
        return (self.classroom,) + tuple(getattr(self, f) for f in fields)


@dataclass(frozen=True)
class View(ViewKey):
    """Every setting besides the trace that some figure depends on (hashable: part of cache keys)."""

    layer: int = 0
    head: int = 0
    query: int = 0
    colormap: str = "inferno"
    opacity: float = 0.6
    upsample: str = "nearest"
    classroom: bool = False
    matrix_log: bool = False
    mask_share: float = 0.6
    class_index: int | None = None  # the class a class-specific map explains (None: no head)
    fusion: str = "mean"
    discard_ratio: float = 0.0
    residual_alpha: float = 0.5
    start_layer: int = 0
    extra_method: str = "none"  # one of model.explain.EXTRA_METHODS shown beside the default maps
    loss_label: int = 0
    baseline: str = "mean"  # deletion/insertion: what replaces a patch ("mean" or "blur")
    compare_mode: str = "methods"  # the Compare page: "methods", "classes" or "models"
    compare_method: str = ""  # the map compared across classes or models (its title)
    compare_classes: tuple = ()  # the classes compared
    compare_model: str = ""  # the second model's source


@dataclass
class FigureInputs:
    """What builders read: the trace, and lazily computed (and separately cached) extras."""

    trace: Trace
    model_name: str
    statistics: Callable[[], dict]
    explanations: Callable[[View], dict]
    mlp_hidden: Callable[[int, int], np.ndarray]
    training_curve: dict | None = None
    pad_value: int | None = None  # the grey level of a letterboxing preprocessor's padding
    faithfulness: Callable[[View], object] | None = None  # app_core.faithfulness.MapsFaithfulness of the maps
    randomisation: Callable[[View], object] | None = None  # model.sanity.RandomisationCheck
    compare: Callable[[View], list] | None = None  # the Compare page's viz.MapPanel list


@dataclass(frozen=True)
class FigureSpec:
    name: str
    label: str  # what the Downloads page calls it
    depends: tuple[str, ...]  # the View fields it reads
    build: Callable[[FigureInputs, View], go.Figure]
    available: Callable[[FigureInputs], bool] = lambda inputs: True

    def file_stem(self, view: View) -> str:
        """A file name part that says which layer/head/token the figure shows."""
        marks = {"layer": "l", "head": "h", "query": "t", "loss_label": "label"}
        return self.name + "".join(f"_{marks[f]}{getattr(view, f)}" for f in self.depends if f in marks)


# ----------------------------------------------------------------------------- shared pieces

LOOK = ("colormap", "opacity", "upsample")


def _tokens(trace: Trace) -> viz.TokenLayout:
    """Where the tokens are: prefix tokens and their names, the patch grid, the patch size."""
    return viz.TokenLayout(trace.num_prefix_tokens, tuple(trace.prefix_names), trace.grid, trace.patch_size)


def _style(v: View, **extra) -> viz.MapStyle:
    """How maps are drawn: the view's colormap, opacity and upsampling (and a colour range)."""
    return viz.MapStyle(colormap=v.colormap, opacity=v.opacity, upsample=v.upsample, **extra)


def _clickable(fig: go.Figure, trace: Trace, values: np.ndarray) -> go.Figure:
    """Click targets over a map; their hover names the patch and its value (they cover the map's
    own), the value sent and printed as the map's heatmap sends it (weights as whole counts:
    viz._figure.on_wire, the heatmap's ``meta["z_scale"]``)."""
    xs, ys, tokens = clicks.patch_centres(trace)
    patches = tokens - trace.num_prefix_tokens
    scale = next((int(t.meta["z_scale"]) for t in fig.data
                  if t.type == "heatmap" and isinstance(t.meta, dict) and "z_scale" in t.meta), 1)
    sent = viz_on_wire(np.ravel(values), scale)  # float32 (three digits), or uint16/uint32 counts
    custom = np.stack([tokens, patches, patches // trace.grid[1], patches % trace.grid[1], sent], axis=-1)
    return clicks.add_click_targets(fig, xs, ys, custom.astype(sent.dtype), clicks.plot_px(fig)[0] / trace.grid[1],
                                    "patch %{customdata[1]} (row %{customdata[2]}, col %{customdata[3]})<br>"
                                    f"attention {viz_value_format('customdata[4]', scale)}<br>"
                                    "click to make it the query<extra></extra>")


def _cell_targets(fig: go.Figure, values: np.ndarray, what: str, fmt: str) -> go.Figure:
    """Click targets on the cells of a layer × head heatmap (x = head, y = layer)."""
    L, H = values.shape
    layers, heads = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    w, h = clicks.plot_px(fig)
    return clicks.add_click_targets(
        fig, heads.ravel(), layers.ravel(), np.stack([layers.ravel(), heads.ravel(), values.ravel()], axis=-1),
        min(w / H, h / L),
        "layer %{customdata[0]}, head %{customdata[1]}<br>" + what + " %{customdata[2]:" + fmt + "}"
        "<br>click to open<extra></extra>")


def _has_head(inputs: FigureInputs) -> bool:
    return inputs.trace.has_head


# ----------------------------------------------------------------------------- 1 patches, 2 positions

def _patch_one(inputs, v):
    trace = inputs.trace
    patch = views.centre_patch(trace)
    return viz.patch_flatten_figure(views.patch_pixels(trace, patch), trace.patch_embeddings[0][patch],
                                    patch_index=patch,
                                    tokens=_tokens(trace), theme=v.theme)


def _patch_pca(inputs, v):
    keep = views.content_patches(inputs.trace, inputs.pad_value)
    rgb, ratio = patch_embedding_pca(inputs.trace.patch_embeddings[0], inputs.trace.grid, fit_mask=keep)
    return viz.pca_image_figure(rgb, theme=v.theme, title=f"Patch embeddings: 3 principal components as RGB "
                                                          f"({100 * ratio.sum():.0f}% of the variance)")


def _z0(inputs, v):
    trace = inputs.trace
    return viz.patch_embedding_figure(trace.hidden_states[0][0], tokens=_tokens(trace), theme=v.theme,
                                      title=f"z₀ = embeddings + positions: {trace.T} tokens × {trace.D}")


# ----------------------------------------------------------------------------- 3 attention

def _overlay(inputs, v):
    trace = inputs.trace
    m = views.attention_map(trace, v.layer, v.head, v.query)
    fig = viz.attention_overlay_figure(trace.image(0), m, query=v.query, tokens=_tokens(trace), style=_style(v),
                                       theme=v.theme,
                                       title=f"{trace.token_name(v.query)} → layer {v.layer}, head {v.head}")
    return _clickable(fig, trace, m)


def _scrub(inputs, v):
    """Every layer and head of the query, switched in the browser; opens at the view's layer/head."""
    trace = inputs.trace
    return viz.attention_scrub_figure(trace.image(0), views.grid_maps(trace, v.query), layer=v.layer, head=v.head,
                                      query=v.query, tokens=_tokens(trace),
                                      style=viz.MapStyle(colormap=v.colormap, opacity=v.opacity), theme=v.theme,
                                      title=f"{trace.token_name(v.query)} → every layer and head")


def _scores(inputs, v):
    trace = inputs.trace
    q = views.qkv_step(trace, v.layer, v.head, v.query)
    return viz.attention_scores_figure(q["scores"], trace.attentions[0][v.layer, v.head, v.query], query=v.query,
                                       tokens=_tokens(trace), theme=v.theme)


def _mixing(inputs, v):
    trace = inputs.trace
    q = views.qkv_step(trace, v.layer, v.head, v.query)
    return viz.value_mixing_figure(trace.attentions[0][v.layer, v.head, v.query], trace.values[0][v.layer, v.head],
                                   q["out"],
                                   query=v.query, tokens=_tokens(trace), theme=v.theme)


def _heads(inputs, v):
    trace = inputs.trace
    maps = views.heads_maps(trace, v.layer, v.query)
    return viz.attention_heads_figure(maps, image=trace.image(0), layer=v.layer, query=v.query, tokens=_tokens(trace),
                                      style=_style(v, zmax=views.color_top(maps)), theme=v.theme)


def _layers(inputs, v):
    trace = inputs.trace
    maps = views.layers_maps(trace, v.head, v.query)
    return viz.attention_layers_figure(maps, image=trace.image(0), head=v.head, query=v.query, tokens=_tokens(trace),
                                       style=_style(v, zmax=views.color_top(maps)), theme=v.theme)


def _grid(inputs, v):
    trace = inputs.trace
    maps = views.grid_maps(trace, v.query)
    return viz.attention_grid_figure(maps, query=v.query, tokens=_tokens(trace),
                                     style=viz.MapStyle(colormap=v.colormap, zmax=views.color_top(maps)), theme=v.theme)


def _matrix(inputs, v):
    trace = inputs.trace
    return viz.attention_matrix_figure(trace.attentions[0][v.layer, v.head], tokens=_tokens(trace), layer=v.layer,
                                       head=v.head, log_scale=v.matrix_log, style=viz.MapStyle(colormap=v.colormap),
                                       theme=v.theme)


def _mask(inputs, v):
    trace = inputs.trace
    return viz.mass_mask_figure(trace.image(0), *views.mass_mask(trace, v.layer, v.head, v.query, v.mask_share),
                                tokens=_tokens(trace), threshold=v.mask_share, theme=v.theme)


def _explanations(inputs, v):
    trace = inputs.trace
    label = trace.class_names()[v.class_index] if v.class_index is not None else None
    return viz.explanation_figure(
        trace.image(0), inputs.explanations(v), tokens=_tokens(trace), style=_style(v), label=label, theme=v.theme,
        title=f"Rollout of {trace.token_name(v.query)}" + (f" · class maps for “{label}” (CLS)" if label else ""))


def _faithfulness(inputs, v):
    result = inputs.faithfulness(v)
    return viz.faithfulness_figure(
        faithfulness.curve_panels(result), class_name=result.class_name, theme=v.theme,
        title=f"Deletion and insertion for “{result.class_name}” (p = {result.clean_probability:.2f}), "
              f"baseline: {faithfulness.BASELINE_LABELS[result.baseline]}")


def _randomisation(inputs, v):
    check = inputs.randomisation(v)
    titles = {m: METHOD_TITLES.get(m, m) for m in check.rank_correlation}
    return viz.randomisation_figure(check.steps, {titles[m]: rho for m, rho in check.rank_correlation.items()},
                                    theme=v.theme)


MAX_STEP_COLUMNS = 7  # randomisation steps drawn as maps (the ρ chart has every step): a row fits the page


def shown_steps(count: int, most: int = MAX_STEP_COLUMNS) -> list[int]:
    """Indices of at most ``most`` of ``count`` steps, evenly spread, the first and last always."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def _randomisation_maps(inputs, v):
    """Each method's map after the re-initialisation steps: one row per method, one column per
    step (at most MAX_STEP_COLUMNS of them, evenly spread; each step is cumulative, so any
    column is the model re-initialised from the top down to that point)."""
    check, image = inputs.randomisation(v), inputs.trace.image(0)
    shown = shown_steps(len(check.steps))
    rho = {m: [round(r, 2) + 0.0 for r in check.rank_correlation[m]] for m in check.methods}  # + 0.0: never "-0.00"
    panels = [viz.MapPanel(image, check.maps[m][j], check.steps[j], f"ρ = {rho[m][j]:.2f}")
              for m in check.methods for j in shown]
    which = "" if len(shown) == len(check.steps) else f" ({len(shown)} of its {len(check.steps)} steps)"
    return viz.compare_figure(panels, style=_style(v), theme=v.theme, columns=len(shown),
                              row_labels=[METHOD_TITLES.get(m, m) for m in check.methods],
                              title="The maps as the model is re-initialised from the top down" + which)


def _compare(inputs, v):
    what = {"methods": "Methods on this image", "classes": f"{v.compare_method} for several classes",
            "models": f"{v.compare_method} in two models"}[v.compare_mode]
    panels = inputs.compare(v)
    fig = viz.compare_figure(panels, style=_style(v), theme=v.theme, title=what)
    trace = inputs.trace
    xs, ys, tokens = clicks.patch_centres(trace)
    for i, panel in enumerate(panels):  # a click on a panel of this model's grid makes that patch the query
        if np.shape(panel.map) == tuple(trace.grid):
            _, _, xref, yref = viz_axes(i + 1)
            clicks.add_click_targets(fig, xs, ys, np.stack([tokens, tokens - trace.num_prefix_tokens], axis=-1),
                                     clicks.plot_px(fig)[0] / len(panels) / trace.grid[1],
                                     "patch %{customdata[1]}<br>click to make it the query<extra></extra>", xref, yref)
    return fig


# ----------------------------------------------------------------------------- 4 MLP and the stream

def _stream(inputs, v):
    trace = inputs.trace
    norms = views.residual_norms(trace, v.query)
    return viz.residual_stream_figure(norms["attn"], norms["mlp"], norms["stream"],
                                      token_name=trace.token_name(v.query), theme=v.theme)


def _units(inputs, v):
    trace = inputs.trace
    return viz.mlp_activation_figure(inputs.mlp_hidden(v.layer, v.query),
                                     token_name=f"{trace.token_name(v.query)}, block {v.layer}", theme=v.theme)


def _norm_lines(inputs, v):
    trace, stats = inputs.trace, inputs.statistics()
    return viz.token_norms_lines_figure(stats["norms"], tokens=_tokens(trace), artifact_tokens=stats["artifacts"],
                                        theme=v.theme)


def _norms(inputs, v):
    trace, stats = inputs.trace, inputs.statistics()
    return viz.token_norms_figure(stats["norms"], tokens=_tokens(trace), artifact_tokens=stats["artifacts"],
                                  log_scale=True, theme=v.theme)


# ----------------------------------------------------------------------------- heads

def _distance(inputs, v):
    fig = viz.attention_distance_figure(inputs.statistics()["distance"],
                                        image_size=float(inputs.trace.image(0).shape[1]), theme=v.theme)
    fig.update_layout(clickmode="event+select", dragmode=False)  # its dots carry x = layer, customdata = head
    return fig


def _entropy(inputs, v):
    entropy = inputs.statistics()["entropy"]
    fig = viz.attention_entropy_figure(entropy, num_keys=inputs.trace.T, theme=v.theme,
                                       title="Attention entropy per head")
    return _cell_targets(fig, entropy, "entropy", ".2f")


def _prefix(inputs, v):
    share = inputs.statistics()["prefix"]
    fig = viz.prefix_attention_figure(share, theme=v.theme, title="Attention to prefix tokens")
    return _cell_targets(fig, share, "prefix share", ".2f")


# ----------------------------------------------------------------------------- 5 logits, 6 loss

def _topk(inputs, v):
    trace = inputs.trace
    return viz.topk_figure(trace.logits[0], trace.class_names(), k=min(5, trace.K), theme=v.theme)


def _loss(inputs, v):
    trace = inputs.trace
    return viz.loss_figure(trace.logits[0], trace.class_names(), v.loss_label, k=min(8, trace.K), theme=v.theme)


def _training(inputs, v):
    taught = "x_title" in inputs.training_curve  # a taught head's fit (model.cards.taught_curve)
    what = "loss while its head was taught" if taught else "loss during training"
    return viz.training_curve_figure(inputs.training_curve, title=f"{inputs.model_name}: {what}", theme=v.theme)


def _spec(name, label, depends, build, available=None) -> FigureSpec:
    return FigureSpec(name, label, tuple(depends), build, available or (lambda inputs: True))


ATTENTION = ("layer", "head", "query")
EXPLAIN = ("query", "class_index", "fusion", "discard_ratio", "residual_alpha", "start_layer", "extra_method")
COMPARE = ("compare_mode", "compare_method", "compare_classes", "compare_model")
FIGURES: dict[str, FigureSpec] = {s.name: s for s in [
    _spec("patch_grid", "Patch grid", (), lambda i, v: viz.patch_grid_figure(
        i.trace.image(0), i.trace.patch_size, tokens=_tokens(i.trace), theme=v.theme)),
    _spec("patch_one", "One patch → its embedding", (), _patch_one),
    _spec("patch_mosaic", "Patches as a sequence", (), lambda i, v: viz.patch_mosaic_figure(
        i.trace.image(0), i.trace.patch_size, theme=v.theme)),
    _spec("patch_matrix", "Flattened patches", (), lambda i, v: viz.patch_matrix_figure(
        i.trace.image(0), i.trace.patch_size, theme=v.theme)),
    _spec("patch_embeddings", "Patch-embedding matrix", (), lambda i, v: viz.patch_embedding_figure(
        i.trace.patch_embeddings[0], tokens=viz.TokenLayout(0, grid=i.trace.grid), theme=v.theme)),
    _spec("patch_pca", "Patch-embedding PCA", (), _patch_pca),
    _spec("position_similarity", "Position-embedding similarity", (), lambda i, v: viz.pos_similarity_figure(
        pos_embed_similarity(i.trace.pos_embed, i.trace.grid, i.trace.num_prefix_tokens), theme=v.theme)),
    _spec("z0", "z₀ = embeddings + positions", (), _z0),
    _spec("attention_overlay", "Attention of the query token", ATTENTION + LOOK, _overlay),
    _spec("attention_scrub", "Attention of the query token, every layer and head (interactive)",
          ATTENTION + ("colormap", "opacity"), _scrub),
    _spec("attention_scores", "Scores → softmax", ATTENTION, _scores),
    _spec("value_mixing", "Weighted sum of values", ATTENTION, _mixing),
    _spec("heads_of_layer", "All heads of the layer", ("layer", "query") + LOOK, _heads),
    _spec("layers_of_head", "All layers of the head", ("head", "query") + LOOK, _layers),
    _spec("layer_head_grid", "Every layer × head", ("query", "colormap"), _grid),
    _spec("attention_matrix", "Attention matrix (T×T)", ("layer", "head", "matrix_log", "colormap"), _matrix),
    _spec("mass_mask", "Attention mass mask", ATTENTION + ("mask_share",), _mask),
    _spec("explanations", "Rollout and class maps", EXPLAIN + LOOK, _explanations),
    _spec("faithfulness", "Deletion and insertion of the maps", EXPLAIN + ("baseline",), _faithfulness,
          lambda i: i.trace.has_head and i.faithfulness is not None),
    _spec("randomisation_check", "Randomisation check", ("class_index",), _randomisation,
          lambda i: i.randomisation is not None),
    _spec("randomisation_maps", "Randomisation check: the maps at each step", ("class_index",) + LOOK,
          _randomisation_maps, lambda i: i.randomisation is not None),
    _spec("compare", "Maps compared side by side", EXPLAIN + ("baseline",) + COMPARE + LOOK, _compare,
          lambda i: i.compare is not None),
    _spec("residual_stream", "The query token's residual stream", ("query",), _stream),
    _spec("mlp_units", "MLP units of the query token", ("layer", "query"), _units),
    _spec("token_norm_lines", "All token norms (lines)", (), _norm_lines),
    _spec("token_norms", "Token norms and artifact tokens", (), _norms),
    _spec("attention_distance", "Mean attention distance", (), _distance),
    _spec("attention_entropy", "Attention entropy", (), _entropy),
    _spec("prefix_attention", "Prefix-token attention", (), _prefix,
          lambda i: i.trace.num_prefix_tokens > 0),
    _spec("topk", "Top-5 predictions", (), _topk, _has_head),
    _spec("loss", "Loss for the chosen label", ("loss_label",), _loss, _has_head),
    _spec("training_curve", "Loss during training", (), _training, lambda i: i.training_curve is not None),
]}


class Registry:
    """Look-ups in one table of FigureSpecs: the image figures below (`FIGURES`) and the data-set
    figures (app_core.dataset_figures) share this, with their own inputs and views."""

    def __init__(self, specs: dict[str, FigureSpec], what: str):
        self.specs, self.what = specs, what

    def spec(self, name: str) -> FigureSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise KeyError(f"no {self.what} named {name!r}; there are {', '.join(self.specs)}") from None

    def build(self, name: str, inputs, view) -> go.Figure:
        """Build figure `name` (uncached: the app caches it by ``cache_key``)."""
        return self.spec(name).build(inputs, view)

    def cache_key(self, name: str, view) -> tuple:
        return (name,) + view.key(self.spec(name).depends)


REGISTRY = Registry(FIGURES, "figure")
spec, build, cache_key = REGISTRY.spec, REGISTRY.build, REGISTRY.cache_key


def available(inputs: FigureInputs) -> list[FigureSpec]:
    """The figures this model and image can show, in registry order (the Downloads list)."""
    return [s for s in FIGURES.values() if s.available(inputs)]


def replace(view: View, **changes) -> View:
    return dataclasses.replace(view, **changes)
