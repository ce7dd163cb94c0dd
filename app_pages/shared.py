"""What every page shares: session settings, the caches, the current model and trace,
and one way to show a figure (with its PNG / CSV downloads). UI glue only: the numbers
come from model.app_support, the figures from viz.

Caching (DESIGN.md "Data flow"): the model is a bounded ``st.cache_resource`` keyed by its
source; the trace is a bounded ``st.cache_data`` keyed by (model id, image sha256), with a
small ``st.cache_resource`` of read-only arrays in front of it so that a rerun does not
unpickle 50 MB; attention gradients are cached per (model id, image, class). Nothing that
a layer, head, query, method setting or colormap changes reaches the model.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import viz
from app_core.figure_png import figure_png, png_export_available
from model import app_support as S
from model.gallery import get_sample, list_samples
from model.preprocess import ImageError



def public() -> bool:
    """Hosted-demo mode, read from the environment on every run (PATCHLIGHT_PUBLIC=1)."""
    return S.is_public()

CLICK_KEYS = ("explorer_click", "heads_click")  # plotly selection widgets: not settings

# ----------------------------------------------------------------------------- settings state


def init_state() -> None:
    """Defaults on the first run (query parameters override them), then keep every setting
    alive across page switches: a widget's value is dropped when its page is not shown,
    unless the key is written back as plain session state (Streamlit's documented way)."""
    ss = st.session_state
    if "_initialised" not in ss:
        ss["_initialised"] = True
        for key, value in S.DEFAULTS.items():
            ss.setdefault(key, value)
        if st.query_params:
            settings, warnings = S.parse_settings(st.query_params.to_dict(), public())
            apply_settings(settings)
            if "sample" not in settings:
                fit_sample_to_model()
            ss["_notes"] = warnings
    for key in S.SETTING_KEYS:
        if key in ss:
            ss[key] = ss[key]
        else:
            ss[key] = S.DEFAULTS[key]


def fit_sample_to_model() -> None:
    """A built-in model with a gallery image meant for the other one: switch to a fitting sample."""
    ss = st.session_state
    choice = ss.get("model_choice")
    if choice in S.BUILTIN_CHOICES and ss.get("image_source") == "gallery":
        if get_sample(ss["sample"]).suggested_model != choice:
            ss["sample"] = next(s.key for s in list_samples() if s.suggested_model == choice)


def apply_settings(settings: dict) -> None:
    """Write validated settings into session state (call before the widgets are drawn)."""
    for key, value in settings.items():
        st.session_state[key] = value


def current_settings() -> dict:
    return {key: st.session_state.get(key, S.DEFAULTS[key]) for key in S.SETTING_KEYS}


def theme():
    return "classroom" if st.session_state.get("classroom") else None


def classroom() -> bool:
    return bool(st.session_state.get("classroom"))


# ----------------------------------------------------------------------------- caches


@st.cache_resource(max_entries=3, show_spinner=False)
def get_model(model_key: str, source: str):
    """Loaded once per source, shared by every session and never modified."""
    return S.load(source)


@st.cache_data(max_entries=12, ttl=3600, show_spinner=False)
def trace_data(model_key: str, digest: str, _image_name: str, _model, _data: bytes) -> S.TraceData:
    """Keyed by (model id, image sha256) only: the file name does not change the numbers."""
    return S.run_trace(_model, _data, _image_name, model_key)


@st.cache_resource(max_entries=4, ttl=1800, show_spinner=False)
def live_trace(model_key: str, digest: str, _image_name: str, _model, _data: bytes) -> S.TraceData:
    """The cached trace as one shared, read-only object: no copy per rerun."""
    return trace_data(model_key, digest, _image_name, _model, _data).freeze()


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def attention_gradients(model_key: str, digest: str, class_index: int, _image_name: str, _model,
                        _data: bytes) -> np.ndarray:
    return S.run_gradients(_model, _data, _image_name, class_index)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def head_statistics(model_key: str, digest: str, _td: S.TraceData) -> dict:
    return S.head_statistics(_td)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def explanation_maps(model_key: str, digest: str, class_index: int | None, fusion: str, discard_ratio: float,
                     residual_alpha: float, start_layer: int, query: int, _ctx) -> dict:
    grads = None
    if class_index is not None:
        grads = attention_gradients(model_key, digest, class_index, _ctx.image_name, _ctx.model, _ctx.data)
    return S.explanation_maps(_ctx.td, grads, fusion=fusion, discard_ratio=discard_ratio,
                              residual_alpha=residual_alpha, start_layer=start_layer, query=query)


@st.cache_data(max_entries=64, show_spinner=False)
def sample_bytes(key: str) -> bytes:
    return get_sample(key).path.read_bytes()


# ----------------------------------------------------------------------------- the current input


@dataclasses.dataclass
class Context:
    """The model and image every page works on."""

    source: str
    model_key: str
    model: object
    facts: dict
    image_name: str
    data: bytes
    digest: str
    true_label: int | None
    td: S.TraceData | None = None

    @property
    def theme(self):
        return theme()


def selected_model() -> tuple[str, str]:
    """(source, cache key) chosen in the sidebar, or ValueError saying what to type."""
    ss = st.session_state
    source = S.resolve_source(ss["model_choice"], ss.get("hf_repo", ""), ss.get("local_path", ""), public())
    return source, S.source_key(source)


def load_selected_model():
    """The chosen model from the cache, with a spinner; a failure is remembered per source so a
    broken checkpoint is not read again on every rerun (Retry clears it)."""
    source, key = selected_model()
    failed = st.session_state.setdefault("_load_errors", {})
    if key in failed:
        raise ValueError(failed[key])
    try:
        with st.spinner(S.loading_message(source)):
            model = get_model(key, source)
    except ValueError as err:
        failed[key] = str(err)
        raise
    return source, key, model


KEPT_UPLOAD = "_kept_upload"


def _upload_id(upload) -> str:
    return getattr(upload, "file_id", None) or upload.name


def remember_upload() -> None:
    """The uploader's on_change: keep the file (or forget it when the user removed it).

    Streamlit drops a widget's value when the widget is not drawn, so switching the image
    source to the gallery and back would lose the upload; the kept copy brings it back.
    """
    ss = st.session_state
    upload = ss.get("upload")
    if upload is None:
        ss.pop(KEPT_UPLOAD, None)
    else:
        ss[KEPT_UPLOAD] = (upload.name, upload.getvalue(), _upload_id(upload))


def forget_upload() -> None:
    st.session_state.pop(KEPT_UPLOAD, None)


def kept_upload_name() -> str | None:
    """The name of the upload in use when the uploader itself is empty (after a source switch)."""
    ss = st.session_state
    if ss.get("upload") is None and ss.get(KEPT_UPLOAD):
        return ss[KEPT_UPLOAD][0]
    return None


def selected_image() -> tuple[str, bytes, str, int | None]:
    """(name, bytes, sha256, true label index or None) of the chosen image."""
    ss = st.session_state
    if ss.get("image_source") == "upload":
        upload = ss.get("upload")
        if upload is not None:
            name, data, fid = upload.name, upload.getvalue(), _upload_id(upload)
        elif ss.get(KEPT_UPLOAD):
            name, data, fid = ss[KEPT_UPLOAD]
        else:
            raise LookupError("upload an image in the sidebar (PNG, JPEG, WebP, BMP, GIF or TIFF), "
                              "or switch the image source to the sample gallery")
        memo = ss.setdefault("_digests", {})
        if fid not in memo:  # hash each upload once, not on every rerun
            memo.clear()
            memo[fid] = S.image_digest(data)
        return name, data, memo[fid], None
    sample = get_sample(ss.get("sample") or S.DEFAULTS["sample"])
    data = sample_bytes(sample.key)
    return sample.path.name, data, _sample_digest(sample.key), sample.label_index


@st.cache_data(max_entries=64, show_spinner=False)
def _sample_digest(key: str) -> str:
    return S.image_digest(sample_bytes(key))


def context() -> Context:
    """The current model and image (and their trace), or a message and a stop.

    Expected failures — a bad image, a model that does not load — are shown as st.error
    with what to do; the sidebar stays usable.
    """
    try:
        source, key, model = load_selected_model()
    except ValueError as err:
        st.error(f"**The model could not be loaded.** {err}", icon=":material/error:")
        st.stop()
    try:
        name, data, digest, label = selected_image()
    except LookupError as err:
        st.info(str(err), icon=":material/image:")
        st.stop()
    ctx = Context(source, key, model, S.model_facts(model), name, data, digest, label)
    try:
        with st.spinner(f"Running {ctx.facts['name']} on {name}…"):
            ctx.td = live_trace(key, digest, name, model, data)
    except ImageError as err:
        st.error(f"**This image cannot be used.** {err}", icon=":material/image:")
        st.stop()
    except (ValueError, RuntimeError) as err:  # e.g. an input size the checkpoint cannot take
        st.error(f"**The model could not process this image.** {err}", icon=":material/error:")
        st.stop()
    # A new model or image can shrink the ranges: bring the settings inside before any widget.
    apply_settings(S.clamp_settings(current_settings(), ctx.td.L, ctx.td.H, ctx.td.T, ctx.td.K))
    return ctx


def figure_and_text():
    """(figure box, text box): side by side on a screen; on a projector the figure takes the
    full width (classroom figures are larger) and its text follows below."""
    if classroom():
        return st.container(), st.container()
    return st.columns([2, 1], gap="medium")


def head_picker(where, H: int) -> None:
    """One button per head when they fit (up to 8), else a list; both write the "head" setting."""
    if H <= 8:
        where.segmented_control("Head", list(range(H)), key="head", required=True)
    else:
        where.selectbox("Head", list(range(H)), key="head")


def class_index(ctx: Context, setting: int) -> int | None:
    """The class a class-specific view explains: the setting, or the top class for -1."""
    if not ctx.td.has_head:
        return None
    if 0 <= setting < ctx.td.K:
        return int(setting)
    return int(np.argmax(ctx.td.logits))


# ----------------------------------------------------------------------------- figures


@st.cache_resource(max_entries=48, ttl=1800, show_spinner=False)
def _cached_figure(key: tuple, _build) -> go.Figure:
    return streamlit_safe_colors(_build())


def figure(ctx: Context, what: str, params: tuple, build) -> go.Figure:
    """A figure built once per (model, image, theme, what, params) and shared read-only.

    Building a plotly figure (validation) costs far more than drawing it, so going back to a
    layer or head already seen is instant. Callers never modify the returned figure.
    """
    return _cached_figure((ctx.model_key, ctx.digest, bool(classroom()), what) + tuple(params), build)


def add_click_targets(fig: go.Figure, xs, ys, customdata, size_px: float, hover: str, xref="x", yref="y",
                      name: str = "click targets") -> go.Figure:
    """Invisible markers on top of a figure: plotly selects points of scatter traces only,
    so a heatmap or image becomes clickable through a transparent scatter over it."""
    fig.add_trace(go.Scatter(
        x=np.asarray(xs), y=np.asarray(ys), mode="markers", name=name, xaxis=xref, yaxis=yref,
        customdata=np.asarray(customdata),
        marker={"size": max(6.0, float(size_px)), "symbol": "square", "color": "rgba(0,0,0,0)",
                "opacity": 0.01, "line": {"width": 0}},
        selected={"marker": {"opacity": 0.01}}, unselected={"marker": {"opacity": 0.01}},
        hovertemplate=hover, showlegend=False,
    ))
    fig.update_layout(clickmode="event+select", dragmode=False, hovermode="closest")
    return fig


def plot_px(fig: go.Figure) -> tuple[float, float]:
    """Width and height in px of the main plot area of a figure."""
    lay = fig.layout
    m = lay.margin
    return (lay.width or 700) - (m.l or 0) - (m.r or 0), (lay.height or 450) - (m.t or 0) - (m.b or 0)


# Streamlit's plotly frontend rewrites the colours #000001…#000030 in every figure (they are its
# theme placeholders), whatever the `theme` argument; inferno and magma start at #000004, which
# would turn the zero end of every map violet. The same colour written as rgb() is left alone.
_PLACEHOLDER = re.compile(r"#0000([0-3][0-9])")


def _safe_scale(scale):
    if not scale:
        return None
    fixed = [[pos, f"rgb(0,0,{int(m.group(1))})" if isinstance(c, str) and (m := _PLACEHOLDER.fullmatch(c.lower()))
              else c] for pos, c in scale]
    return fixed if fixed != [list(stop) for stop in scale] else None


def streamlit_safe_colors(fig: go.Figure) -> go.Figure:
    """Rewrite placeholder-looking colorscale stops (in place, only when there is one)."""
    for trace in fig.data:
        for owner in (trace, getattr(trace, "marker", None)):
            scale = getattr(owner, "colorscale", None) if owner is not None else None
            fixed = _safe_scale(scale)
            if fixed:
                owner.colorscale = fixed
    for name in fig.layout:
        if name.startswith("coloraxis"):
            fixed = _safe_scale(fig.layout[name].colorscale)
            if fixed:
                fig.layout[name].colorscale = fixed
    return fig


PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"], "scrollZoom": False,
                 "toImageButtonOptions": {"format": "png", "scale": 2}}  # the camera icon: slide-sized PNGs


def show_figure(fig: go.Figure, key: str, file_stem: str, *, on_select=None, downloads: bool = True,
                width="content"):
    """Draw a viz figure as built (its own theme, not Streamlit's) with PNG and CSV downloads.

    The files are made only when a button is pressed (deferred data), so an unused download
    costs nothing on a rerun.
    """
    streamlit_safe_colors(fig)
    config = dict(PLOTLY_CONFIG, toImageButtonOptions=dict(PLOTLY_CONFIG["toImageButtonOptions"], filename=file_stem))
    kwargs = dict(theme=None, key=key, config=config, width=width)
    if on_select is not None:
        event = st.plotly_chart(fig, on_select=on_select, selection_mode="points", **kwargs)
    else:
        event = st.plotly_chart(fig, **kwargs)
    if downloads:
        download_row(fig, key, file_stem)
    return event


def download_row(fig: go.Figure, key: str, file_stem: str) -> None:
    row = st.container(horizontal=True, gap="small")
    if png_export_available():  # else the camera icon above the figure is the PNG export
        row.download_button("PNG", data=lambda: figure_png(fig), file_name=f"{file_stem}.png", mime="image/png",
                            key=f"png_{key}", on_click="ignore", icon=":material/download:")
    row.download_button("CSV", data=lambda: viz.figure_to_csv(fig), file_name=f"{file_stem}.csv", mime="text/csv",
                        key=f"csv_{key}", on_click="ignore", icon=":material/download:")


def css() -> None:
    """Larger type in classroom mode (the figures get theme="classroom" from viz)."""
    if classroom():
        st.html("""<style>
            .stApp, .stMarkdown p, .stMarkdown li, label, .stCaption, [data-testid="stMarkdownContainer"] p
              { font-size: 1.3rem !important; line-height: 1.55 !important; }
            [data-testid="stMarkdownContainer"] h1 { font-size: 3rem !important; }
            [data-testid="stMarkdownContainer"] h2 { font-size: 2.3rem !important; }
            [data-testid="stMarkdownContainer"] h3 { font-size: 1.9rem !important; }
            .katex { font-size: 1.5em !important; }
            [data-testid="stDataFrame"] { font-size: 1.2rem !important; }
        </style>""")


def fmt_vec(v, n: int = 5) -> str:
    v = np.asarray(v).ravel()
    shown = ", ".join(f"{x:+.3f}" for x in v[:n])
    return f"[{shown}{', …' if v.size > n else ''}]"


def samples_for_select() -> list[str]:
    return [s.key for s in list_samples()]


def sample_label(key: str) -> str:
    s = get_sample(key)
    return s.title


def file_stem(ctx: Context, what: str) -> str:
    img = Path(ctx.image_name).stem.replace(" ", "_")[:40]
    return f"patchlight_{ctx.facts['name'].replace('/', '_')}_{img}_{what}"
