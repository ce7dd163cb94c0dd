"""One theme for every figure: colorscales, fonts, margins, line widths, sizes.

Every builder takes ``theme=`` the same way and calls :func:`resolve_theme`:

- ``theme=None`` -> :data:`SCREEN` (fonts >= 14 px, for a laptop browser);
- ``theme="classroom"`` -> :data:`CLASSROOM` (fonts >= 21 px, lines twice as thick,
  figures 1.25x larger: readable from the back of a room);
- ``theme=<float>`` -> :data:`SCREEN` scaled by that factor;
- ``theme=<Theme>`` -> that theme.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .colormaps import colorscale
from .text import wrap_text

CLASSROOM_SCALE = 1.5


@dataclass(frozen=True)
class Theme:
    """Visual constants shared by all figures. Sizes are CSS pixels at ``scale == 1``."""

    name: str = "screen"
    scale: float = 1.0  # font scale relative to the screen theme
    font_size: int = 14  # body text, axis titles, annotations, hover
    tick_size: int = 14  # tick labels (never smaller than 14 px)
    title_size: int = 19
    small_size: int = 14  # labels drawn on top of patches
    line_width: float = 1.0  # grid lines and separators
    outline_width: float = 3.0  # query-patch outline, highlights
    marker_size: float = 10.0
    size_scale: float = 1.0  # figure width/height multiplier
    width: int = 760  # default figure width
    font_family: str = "DejaVu Sans, Verdana, Arial, sans-serif"
    font_color: str = "#1f1f1f"
    paper_bg: str = "#ffffff"
    plot_bg: str = "#ffffff"
    axis_color: str = "#444444"
    chart_grid_color: str = "#dddddd"
    grid_line_color: str = "rgba(255,255,255,0.8)"  # patch grid drawn over an image
    separator_color: str = "#ffffff"
    label_bg: str = "rgba(0,0,0,0.55)"  # box behind white text on images
    label_color: str = "#ffffff"
    highlight_color: str = "#00e5ff"  # query outline: cyan reads on inferno/viridis
    accent_color: str = "#d62728"  # chosen class, artifact tokens
    bar_color: str = "#4c78a8"
    second_color: str = "#f58518"  # a second series (MLP next to attention; prefix tokens next to patches)
    muted_color: str = "#b8c4d6"  # context that is not the point (bands, other bars)
    # distinct line colours for a few named series (prefix tokens), dark enough for text on white;
    # blue and red are left out: they mean "patch tokens" and "artifact / chosen" elsewhere
    palette: tuple = ("#f58518", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22")
    sequential: str = "viridis"  # generic non-negative values
    attention: str = "inferno"  # attention weights and relevance maps
    diverging: str = "balance"  # signed values (cmocean, perceptually uniform)
    margin: dict = field(default_factory=lambda: {"l": 80, "r": 40, "t": 80, "b": 70})
    colorbar_thickness: int = 20
    # a title line is at most this wide: the app may show a figure narrower than it was built
    # (Streamlit shrinks a figure to its column, e.g. two thirds of the page), and plotly.js
    # clips a title that does not fit instead of wrapping it (issue 10, item 6)
    title_width: int = 600

    # --- derived ------------------------------------------------------------------------
    def scaled(self, factor: float, name: str | None = None) -> "Theme":
        """This theme with fonts and margins times ``factor``, lines times ``factor**1.7``."""
        if not factor > 0:
            raise ValueError(f"theme scale must be > 0, got {factor!r}; use e.g. 1.5 for a projector")
        f = float(factor)
        return replace(
            self,
            name=name or f"{self.name}x{f:g}",
            scale=self.scale * f,
            font_size=round(self.font_size * f),
            tick_size=round(self.tick_size * f),
            title_size=round(self.title_size * f),
            small_size=round(self.small_size * f),
            line_width=self.line_width * f**1.7,
            outline_width=self.outline_width * f**1.7,
            marker_size=self.marker_size * f,
            size_scale=self.size_scale * (1.0 + (f - 1.0) / 2.0),
            margin={k: round(v * f) for k, v in self.margin.items()},
            colorbar_thickness=round(self.colorbar_thickness * f),
            title_width=round(self.title_width * f),
        )

    def px(self, value: float) -> int:
        """A figure dimension in pixels for this theme."""
        return int(round(value * self.size_scale))

    def title_room(self, width: float) -> float:
        """How wide a title line may be in a figure ``width`` px wide."""
        return min(width - 2 * round(12 * self.scale), self.title_width)

    def cmap(self, name: str | None, default: str) -> list:
        """The resolved plotly colorscale for ``name`` (or the theme's ``default`` role)."""
        role = {"sequential": self.sequential, "attention": self.attention, "diverging": self.diverging}
        return colorscale(name if name is not None else role[default])

    def font(self, size: int | None = None, color: str | None = None) -> dict:
        return {"family": self.font_family, "size": size or self.font_size, "color": color or self.font_color}

    def colorbar(self, title: str, **extra) -> dict:
        """A colour bar with a vertical title (saves width) and readable ticks."""
        bar = {
            "title": {"text": title, "side": "right", "font": self.font()},
            "thickness": self.colorbar_thickness,
            "tickfont": self.font(self.tick_size),
            "outlinewidth": 0,
            "len": 1.0,
            "x": 1.02,
            "xanchor": "left",
        }
        bar.update(extra)
        return bar

    @property
    def legend_row_height(self) -> int:
        """Pixels one row of a horizontal legend takes (plotly.js: 1.3 line spacing + 3 px),
        with a few pixels to spare so that an estimate a little short still clears the title."""
        return round(self.font_size * 1.3 + 3 + 4 * self.scale)

    def legend(self, **extra) -> dict:
        """A real plotly legend, horizontal, in a band between the title and the plot.

        Above the plot it never covers data, and a colour bar (right of the plot) never meets
        it; entries use the body font, so they read on a projector. The theme's layout hides
        legends (``showlegend`` False: most figures have one series, or hover-only traces);
        a figure with several series passes ``showlegend=True, legend=theme.legend()`` and
        reserves the rows with :func:`viz._figure.legend_room`.
        """
        leg = {
            "orientation": "h",
            "x": 0.0,
            "xanchor": "left",
            "y": 1.0,
            "yanchor": "bottom",
            "font": self.font(),
            "bgcolor": "rgba(0,0,0,0)",
            "borderwidth": 0,
            "itemsizing": "constant",
            "traceorder": "normal",
        }
        leg.update(extra)
        return leg

    def axis(self, title: str | None = None, *, chart: bool = False, **extra) -> dict:
        """Axis style. ``chart=True`` for value axes (grid lines); False for image axes."""
        ax = {
            "title": {"text": title or "", "font": self.font(), "standoff": 8},
            "tickfont": self.font(self.tick_size),
            "showgrid": chart,
            "gridcolor": self.chart_grid_color,
            "zeroline": False,
            "showline": True,
            "linecolor": self.axis_color,
            "linewidth": 1,
            "ticks": "outside",
            "ticklen": 5,
            "tickcolor": self.axis_color,
            "automargin": True,
        }
        ax.update(extra)
        return ax

    def layout(self, title: str | None, width: int, height: int, **extra) -> dict:
        """The whole layout dict. Give it to the figure in one piece (``go.Figure(traces,
        layout=...)`` or ``fig.layout = ...``): ``fig.update_layout(**...)`` merges key by key and
        costs 10 ms for one axis, ~0.5 s for a figure of 12 subplots."""
        margin = dict(self.margin)
        margin.update(extra.pop("margin", {}))
        title, lines = wrap_text(title or "", self.title_size, self.title_room(width), max_lines=3)
        if lines > 1:  # more title lines: grow the figure, keep the plot area
            grow = round(self.title_size * 1.3 * (lines - 1))
            margin["t"] = margin["t"] + grow
            height = height + grow
        # shapes: no fill and full opacity unless asked (never inherit a template's defaults)
        for shape in extra.get("shapes") or []:
            shape.setdefault("fillcolor", "rgba(0,0,0,0)")
            shape.setdefault("opacity", 1)
        title_mid = round(12 * self.scale + lines * self.title_size * 1.25 / 2)
        lay = {
            "title": {
                "text": title or "",
                "font": self.font(self.title_size),
                # centred on the figure, not on the plot area: a plot with a wide left margin
                # (long category names) would push a centred title off the right edge
                "x": 0.5,
                "xanchor": "center",
                "xref": "container",
                # a fixed band at the top (centred: plotly.js anchors multi-line titles well
                # only with yanchor='middle'), so the title never meets the plot
                "y": 1.0 - title_mid / float(height),
                "yref": "container",
                "yanchor": "middle",
            },
            "font": self.font(),
            "width": int(width),
            "height": int(height),
            "margin": margin,
            "paper_bgcolor": self.paper_bg,
            "plot_bgcolor": self.plot_bg,
            # a light label whatever it points at: plotly's default takes the point's colour as
            # the background, and on the dark end of a colormap the theme's dark text was unreadable
            "hoverlabel": {"font": self.font(self.font_size), "bgcolor": "rgba(255,255,255,0.94)",
                           "bordercolor": self.axis_color},
            "showlegend": False,
            "template": "none",  # everything explicit: no template default leaks into a figure
        }
        lay.update(extra)
        return lay


SCREEN = Theme()
CLASSROOM = SCREEN.scaled(CLASSROOM_SCALE, name="classroom")

_NAMED = {"screen": SCREEN, "default": SCREEN, "classroom": CLASSROOM, "projector": CLASSROOM}


def resolve_theme(theme=None) -> Theme:
    """The :class:`Theme` a builder uses for ``theme=`` (see the module doc)."""
    if theme is None:
        base = SCREEN
    elif isinstance(theme, Theme):
        base = theme
    elif isinstance(theme, str):
        if theme.lower() not in _NAMED:
            raise ValueError(f"unknown theme {theme!r}; expected one of {sorted(_NAMED)} or a Theme")
        base = _NAMED[theme.lower()]
    elif isinstance(theme, (int, float)) and not isinstance(theme, bool):
        base = SCREEN.scaled(float(theme))
    else:
        raise ValueError(f"theme must be None, a name, a scale factor or a Theme; got {type(theme).__name__}")
    return base

