"""Patchlight figures: pure builders, numpy arrays in, ``plotly.graph_objects.Figure`` out.

No streamlit, no torch, no file I/O. Every builder takes ``theme=`` (None, "classroom",
a scale factor or a :class:`Theme`) the same way. Where the tokens are comes in one
:class:`TokenLayout` (``tokens=``), how a map is drawn in one :class:`MapStyle` (``style=``).
Token order everywhere: prefix tokens (CLS, DIST, registers) first, then patches row-major;
patches are named by their patch index ("patch 24 (row 3, col 3)", see :mod:`viz.specs`).
"""

from .attention import (
    attention_grid_figure,
    attention_heads_figure,
    attention_layers_figure,
    attention_matrix_figure,
    attention_overlay_figure,
)
from .colormaps import DIVERGING, SEQUENTIAL, colorscale, lut, to_rgb8
from .dataset import (
    QK_COLOUR_BY,
    artifact_count_figure,
    artifact_frequency_figure,
    head_spread_figure,
    qk_embedding_figure,
)
from .embeddings import pca_image_figure, pos_similarity_figure
from .explain import explanation_figure, mass_mask_figure
from .faithfulness import CurvePanel, MapPanel, compare_figure, faithfulness_figure, randomisation_figure
from .scrub import attention_scrub_figure
from .figure_data import data_from_csv, figure_data, image_pixels, figure_to_csv, figure_to_npz
from .logits import log_softmax, loss_figure, softmax, topk_figure, training_curve_figure
from .maps import flatten_patches, normalise_map, tile_maps, untile, upsample_map
from .overlay import overlay_image, overlay_png
from .patches import (
    flatten_patch,
    mosaic_image,
    patch_embedding_figure,
    patch_flatten_figure,
    patch_grid_figure,
    patch_matrix_figure,
    patch_mosaic_figure,
)
from .specs import MapStyle, TokenLayout
from .stats import (
    attention_distance_figure,
    attention_entropy_figure,
    prefix_attention_figure,
    token_norms_figure,
)
from .steps_attention import attention_scores_figure, value_mixing_figure
from .steps_stream import mlp_activation_figure, residual_stream_figure, token_norms_lines_figure
from .theme import CLASSROOM, SCREEN, Theme, resolve_theme

__all__ = [
    # where tokens are, how maps are drawn
    "TokenLayout", "MapStyle",
    # theme and colormaps
    "Theme", "SCREEN", "CLASSROOM", "resolve_theme", "SEQUENTIAL", "DIVERGING", "colorscale", "lut", "to_rgb8",
    # patches
    "patch_grid_figure", "patch_mosaic_figure", "patch_matrix_figure", "patch_embedding_figure",
    # attention
    "attention_overlay_figure", "attention_scrub_figure", "attention_heads_figure", "attention_layers_figure", "attention_grid_figure",
    "attention_matrix_figure",
    # explanations, statistics, embeddings, logits
    "explanation_figure", "attention_distance_figure", "attention_entropy_figure", "prefix_attention_figure",
    "token_norms_figure", "pos_similarity_figure", "pca_image_figure", "topk_figure", "loss_figure",
    "training_curve_figure",
    # how far to trust a map: deletion/insertion, the randomisation check, maps compared
    "CurvePanel", "MapPanel", "faithfulness_figure", "randomisation_figure", "compare_figure",
    # walkthrough: one step of the model at a time
    "patch_flatten_figure", "attention_scores_figure", "value_mixing_figure", "residual_stream_figure",
    "mlp_activation_figure", "mass_mask_figure", "token_norms_lines_figure",
    # a data set: statistics over many images, artifact frequency, the joint query/key embedding
    "head_spread_figure", "artifact_frequency_figure", "artifact_count_figure", "qk_embedding_figure",
    "QK_COLOUR_BY",
    # array helpers
    "upsample_map", "normalise_map", "tile_maps", "untile", "flatten_patches", "mosaic_image", "softmax",
    "log_softmax", "flatten_patch",
    # data export (figure PNGs come from plotly's own export: app_core.figure_png)
    "figure_data", "image_pixels", "figure_to_npz", "figure_to_csv", "data_from_csv",
    # an attention map blended over its image, as pixels or PNG bytes
    "overlay_image", "overlay_png",
]
