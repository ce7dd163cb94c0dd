"""How much to trust a map: deletion/insertion curves beside each map (Petsiuk et al. 2018), the
model-randomisation check (Adebayo et al. 2018), and maps compared side by side with their AUCs.

The numbers come from ``model.faithfulness`` and ``model.sanity``; these builders only draw them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from . import _figure
from ._checks import float_array, image_array
from .attention import map_traces
from .maps import normalise_map
from .specs import MapStyle, TokenLayout, as_style
from .text import text_px
from .theme import resolve_theme

# The widest these rows of panels are built, where their text allows: what the page's main column
# holds at a 1280-px screen with the sidebar open (a page draws a wider figure squeezed, at its height)
FIT_WIDTH_PX = 760


@dataclass(frozen=True)
class CurvePanel:
    """One map's deletion and insertion curves (p_c against the fraction k/N of patches), and the
    mean curves of the random orders with their AUCs (None: no random reference)."""

    name: str
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float
    random_deletion: np.ndarray | None = None
    random_insertion: np.ndarray | None = None
    random_deletion_auc: float | None = None
    random_insertion_auc: float | None = None

    def summary(self) -> str:
        """``deletion AUC 0.21 (random 0.40)<br>insertion AUC 0.55 (random 0.40)``: two lines."""
        rand = self.random_deletion_auc is not None
        return (f"deletion AUC {self.deletion_auc:.2f}" + (f" (random {self.random_deletion_auc:.2f})" if rand else "")
                + f"<br>insertion AUC {self.insertion_auc:.2f}"
                + (f" (random {self.random_insertion_auc:.2f})" if rand else ""))


def faithfulness_figure(panels: list[CurvePanel], *, class_name: str | None = None, title: str | None = None,
                        theme=None) -> go.Figure:
    """Small deletion/insertion plots side by side, one per map, on one probability scale.

    Per panel, traces in this order: deletion (solid, red), insertion (solid, blue), then — with
    a random reference — random deletion and random insertion (dotted). x = k/N, y = p_c. Each
    panel's title gives its AUCs against the random ones (a faithful map: deletion below random,
    insertion above). ``layout.meta``: ``{"aucs": [[deletion, insertion], …]}``.
    """
    th = resolve_theme(theme)
    if not panels:
        raise ValueError("panels is empty; pass one CurvePanel per map")
    n = len(panels)
    gap_px = 40 * th.scale  # room for the "100%" and "0%" at the ends of neighbouring x axes
    margin = dict(th.margin)
    margin.update(l=round(70 * th.scale), b=round(60 * th.scale), t=round(th.title_size * 2.6 + th.font_size * 5.0))
    titles = [f"<b>{p.name}</b><br>{p.summary()}" for p in panels]
    # at most FIT_WIDTH_PX wide where the panel titles allow (a page squeezes a wider figure into
    # its column, and the titles and axis labels of neighbouring panels then run together)
    text_w = max(text_px(line.replace("<b>", "").replace("</b>", ""), th.font_size)
                 for t in titles for line in t.split("<br>")) + 8
    room = th.px(FIT_WIDTH_PX) - margin["l"] - margin["r"] - (n - 1) * gap_px
    tile_w = max(text_w - gap_px / 2, min(th.px(300), room / n))
    tile_h = th.px(170)
    plot_w = n * tile_w + (n - 1) * gap_px
    axes, notes = _figure.subplot_grid(th, 1, n, titles, gap_px / plot_w if n > 1 else 0.0, 0.0)
    colors = {"deletion": th.accent_color, "insertion": th.bar_color}
    traces = []
    for i, p in enumerate(panels):
        xname, yname, xref, yref = _figure.subplot_axis_names(i + 1)
        x = float_array(p.fractions, 1, f"panels[{i}].fractions", "k/N per step")
        series = [("deletion", p.deletion, "solid"), ("insertion", p.insertion, "solid")]
        if p.random_deletion is not None:
            series += [("deletion", p.random_deletion, "dot"), ("insertion", p.random_insertion, "dot")]
        for kind, y, dash in series:
            which = f"{kind}{' (random)' if dash == 'dot' else ''}"
            traces.append(go.Scatter(
                x=x, y=float_array(y, 1, f"panels[{i}].{kind}", "p_c per step"), mode="lines", name=which,
                xaxis=xref, yaxis=yref, legendgroup=which, showlegend=i == 0,
                line={"color": colors[kind], "width": (2.5 if dash == "solid" else 2.0) * th.scale, "dash": dash},
                hovertemplate=f"{p.name}: {which}<br>%{{x:.0%}} of patches<br>p = %{{y:.3f}}<extra></extra>"))
        axes[xname] = th.axis("patches removed / restored" if i == 0 else "", chart=True, range=[0, 1],
                              tickformat=".0%", dtick=0.5, **axes[xname])
        axes[yname] = th.axis(f"p({class_name})" if class_name and i == 0 else ("p(class)" if i == 0 else ""),
                              chart=True, range=[0, 1.02], dtick=0.5, showticklabels=i == 0, **axes[yname])
    height = tile_h + margin["t"] + margin["b"]
    return go.Figure(traces, layout=th.layout(
        title or "Deletion and insertion" + (f" for “{class_name}”" if class_name else ""),
        plot_w + margin["l"] + margin["r"], height, margin=margin, annotations=notes, showlegend=True,
        legend=th.legend(orientation="h", x=0.5, xanchor="center", y=-0.32 * 170 / max(tile_h, 1), yanchor="top"),
        meta={"aucs": [[p.deletion_auc, p.insertion_auc] for p in panels]}, hovermode="closest", **axes))


def randomisation_figure(steps, correlations: dict, *, title: str | None = None, theme=None) -> go.Figure:
    """The model-randomisation check: one line per method, its map's Spearman rank correlation
    with the trained model's map after each cumulative re-initialisation step (x = ``steps``,
    "trained" first). A line that stays near 1 is a map the model's weights barely change."""
    th = resolve_theme(theme)
    names = [str(s) for s in steps]
    if not correlations:
        raise ValueError("correlations is empty; pass {method: [S] rank correlations}")
    width, height, margin = _figure.figure_size(th, 0.5, 680, colorbar=False)
    colors = (th.bar_color, th.accent_color) + tuple(th.palette)
    traces = []
    for i, (method, values) in enumerate(correlations.items()):
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (len(names),):
            raise ValueError(f"correlations[{method!r}] has shape {v.shape}; expected one value per step ({len(names)})")
        traces.append(go.Scatter(
            x=names, y=v, mode="lines+markers", name=str(method), line={"color": colors[i % len(colors)],
                                                                        "width": 2.5 * th.scale},
            marker={"size": th.marker_size * 0.7, "color": colors[i % len(colors)]},
            hovertemplate=f"{method}<br>%{{x}}: ρ = %{{y:.2f}}<extra></extra>"))
    height, margin = _figure.legend_room(th, [t.name for t in traces], width, height, margin)
    xa = th.axis("re-initialised so far (from the top down, cumulative)", chart=True, type="category")
    ya = th.axis("rank correlation with the trained map", chart=True, range=[-1.05, 1.05], dtick=0.5)
    return go.Figure(traces, layout=th.layout(
        title or "Randomisation check: do the maps change when the model is destroyed?", width, height,
        margin=margin, xaxis=xa, yaxis=ya, showlegend=True, legend=th.legend()))


@dataclass(frozen=True)
class MapPanel:
    """One map over its own model input: the image [H, W, 3] uint8, the map [h, w], a title, a
    note drawn under it (e.g. its AUCs), and the query patch to outline (None: none)."""

    image: np.ndarray
    map: np.ndarray
    title: str
    note: str = ""
    query_patch: int | None = None


def compare_figure(panels: list[MapPanel], *, style: MapStyle | None = None, title: str | None = None,
                   columns: int | None = None, row_labels: list[str] | None = None, theme=None) -> go.Figure:
    """Maps side by side, each over its own image (two models may see the image at different
    sizes), ONE colour scale: each map divided by its largest |value| (0…1, as
    :func:`viz.explanation_figure`). ``columns`` panels per row (default: up to 4, rows as even as can be), row-major;
    ``row_labels`` name the rows on the left. Per panel traces: ``[Image, map trace(s)]``; a
    note under each panel; the query patch outlined. ``layout.meta``: ``{"notes": [...]}``.

    The figure is at most :data:`FIT_WIDTH_PX` wide (theme-scaled) where its text allows: a page
    draws a wider figure squeezed to its column, and squeezed rows of square maps drift apart
    from their titles and notes. The colour bar lies above the maps, where it takes no width.
    """
    th = resolve_theme(theme)
    if not panels:
        raise ValueError("panels is empty; pass one MapPanel per map")
    st = as_style(style, upsample="nearest")
    n = len(panels)
    if columns is None:  # at most 4 a row, the rows as even as can be (7 maps: 4 + 3), so each map stays readable
        columns = -(-n // -(-n // 4))
    cols = max(1, min(int(columns), n))
    rows = -(-n // cols)
    gap_px = (18 if cols <= 4 else 10) * th.scale
    words = [line for p in panels for line in (p.title + "<br>" + p.note).split("<br>")]
    label_px = round(max(text_px(label, th.font_size) for label in row_labels) + 16) if row_labels else 0
    margin = dict(th.margin, l=round(24 * th.scale) + label_px, r=round(24 * th.scale))
    room = th.px(FIT_WIDTH_PX) - margin["l"] - margin["r"] - (cols - 1) * gap_px
    text_w = max(text_px(line, th.font_size) for line in words) + 8  # titles and notes never overlap
    tile_w = max(text_w, min(th.px(300), room / cols))
    aspect = max(image_array(p.image).shape[0] / image_array(p.image).shape[1] for p in panels)
    note_lines = max((p.note.count("<br>") + 1 for p in panels if p.note), default=0)
    title_px, note_px = th.font_size * 1.8, note_lines * th.font_size * 1.35 + 8
    plot_w = cols * tile_w + (cols - 1) * gap_px
    plot_h = rows * tile_w * aspect + (rows - 1) * (title_px + note_px)
    margin.update(b=round(note_px + 10 * th.scale),
                  t=round(th.title_size * 2.6 + _figure.bar_above_room(th) + title_px))
    bar_place, bar_title = _figure.bar_above(th, "relevance (÷ max)", plot_h, min(1.0, th.px(320) / plot_w), title_px)
    axes, titles = _figure.subplot_grid(th, rows, cols, [p.title for p in panels], gap_px / plot_w if cols > 1 else 0.0,
                                        (title_px + note_px) / plot_h if rows > 1 else 0.0)
    traces, shapes, notes = [], [], []
    lo = 0.0
    for i, p in enumerate(panels):
        img = image_array(p.image)
        m = normalise_map(float_array(p.map, 2, f"panels[{i}].map", "[h, w] over the patch grid"), "max")
        lo = min(lo, float(m.min()))
        H, W = img.shape[:2]
        h, w = m.shape
        P = H // h
        xname, yname, xref, yref = _figure.subplot_axis_names(i + 1)
        traces.append(_figure.photo_spec(img, xaxis=xref, yaxis=yref))
        traces += map_traces(m, P, st.upsample, name=p.title, tokens=TokenLayout(1, ("CLS",), (h, w), P),
                             opacity=st.opacity, cell_px=tile_w / w, coloraxis="coloraxis", value_label="relevance ÷ max",
                             xref=xref, yref=yref)
        xa, ya = _figure.image_axes(th, (-0.5, W - 0.5), (H - 0.5, -0.5), anchor=xref, show_ticks=False)
        xa.update(showline=False, **axes[xname])
        ya.update(showline=False, **axes[yname])
        axes[xname], axes[yname] = xa, ya
        if p.query_patch is not None and 0 <= p.query_patch < h * w:
            r, c = divmod(int(p.query_patch), w)
            shapes += _figure.outline(th, c * P - 0.5, r * P - 0.5, (c + 1) * P - 0.5, (r + 1) * P - 0.5, xref, yref)
        if p.note:
            x0, x1 = axes[xname]["domain"]
            notes.append(dict(text=p.note, x=(x0 + x1) / 2, y=axes[yname]["domain"][0], xref="paper", yref="paper",
                              xanchor="center", yanchor="top", yshift=-6, showarrow=False, font=th.font()))
    for r, label in enumerate(row_labels or []):
        y0, y1 = axes[_figure.subplot_axis_names(r * cols + 1)[1]]["domain"]
        notes.append(dict(text=label, x=0, y=(y0 + y1) / 2, xref="paper", yref="paper", xanchor="right",
                          yanchor="middle", xshift=-8, showarrow=False, font=th.font()))
    bar = _figure.colorbar(th, "", lo, 1.0, **bar_place)  # its title: bar_title
    return _figure.unchecked_figure(traces, th.layout(  # plain dicts, unvalidated: tests validate it once
        title or "Compared side by side", plot_w + margin["l"] + margin["r"], plot_h + margin["t"] + margin["b"],
        margin=margin, annotations=titles + notes + [bar_title], shapes=shapes, hovermode="closest",
        coloraxis={"colorscale": th.cmap(st.colormap, "attention"), "cmin": lo, "cmax": 1.0,
                   "colorbar": bar},
        meta={"notes": [p.note for p in panels]}, **axes))
