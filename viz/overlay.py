"""An attention map blended over its image as an RGB array or PNG: :mod:`model.overlay`, the one
implementation (the command line uses it without plotly), offered here with the figures."""

from model.overlay import overlay_image, overlay_png

__all__ = ["overlay_image", "overlay_png"]
