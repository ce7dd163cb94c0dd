"""What every page shares: session settings, the caches, the current model and trace,
and one way to show a figure (with its PNG / CSV downloads). UI glue only: the numbers
come from app_core, the figures from viz.

Caching (DESIGN.md "Data flow"): the model is a bounded ``st.cache_resource`` keyed by its
source; the trace is a bounded ``st.cache_resource`` of read-only arrays keyed by (model id,
sha256 of the image bytes used), one copy shared by every session; attention gradients are
cached per (model id, image, class); figures by (model, image, the settings they depend on).
Nothing that a layer, head, query, method setting or colormap changes reaches the model.
"""
from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app_pages import charts, session
from app_core import figures, prompts, settings, sources, safe_text, teaching, traces, uploads, views
from model import cards
from model.gallery import get_sample, list_samples
from model.explain import MODEL_METHODS
from model.ood import check_ood
from model.preprocess import ImageError
from model.trace import Trace



# ----------------------------------------------------------------------------- caches


@st.cache_resource(max_entries=sources.model_cache_size(), show_spinner=False)
def get_model(model_key: str, source: str):
    """Loaded once per source, shared by every session and never modified. The cache holds
    every model a public demo offers, so visitors choosing different models do not evict
    each other's (each reload would cost seconds and a download)."""
    return sources.load(source)


@st.cache_resource(max_entries=8, ttl=3600, show_spinner=False)
def prompted_model(model_key: str, names: tuple[str, ...], template: str, _model):
    """A CLIP model with these text prompts as its classes, once per (model, prompt set) for all
    sessions: the text tower reads the prompts once (it is loaded once per model, in
    model.clip.text_encoder); the image backbone is shared, not copied (model.heads.attach_head)."""
    from model.clip import with_prompts

    return with_prompts(_model, list(names), template)


@st.cache_resource(max_entries=32, ttl=1800, show_spinner=False)
def model_with_head(model_key: str, head_digest: str, _model, _head_bytes: bytes):
    """A backbone with a session's taught head: keyed by the head's sha256, so sessions never see
    each other's heads; it shares every backbone parameter with the cached backbone."""
    return teaching.with_head(_model, _head_bytes)


TRACE_CACHE_ENTRIES = 12  # traces no session holds any more (held ones are shared, see live_trace): ~48 MB each for dinov2-small


@st.cache_resource(max_entries=TRACE_CACHE_ENTRIES, ttl=1800, show_spinner=False)
def live_trace(model_key: str, digest: str, _image_name: str, _model, _data: bytes) -> Trace:
    """Keyed by (model id, image sha256) only — the file name does not change the numbers —
    and held as ONE read-only object that every session shares: no pickled copy per session
    or per rerun (a second, pickling cache layer cost ~55 MB per copy and per miss).

    A trace the cache has let go may still be in use: a session keeps the globals of its last
    page run (its widgets' callbacks refer to them), and with them its trace. Such a trace is
    handed out again rather than computed a second time: 40 visitors once held 58 traces
    (2.6 GB) in one process whose cache held 12 (issue 15)."""
    alive = _TRACES_IN_USE.get((model_key, digest))
    if alive is not None:
        return alive
    # A taught head's trace of an image whose backbone trace is at hand (a gallery photo the whole
    # class looks at) shares its arrays and adds the head's logits: 12 students teaching at once
    # each held a ~48 MB trace of the same photo (issue 15, eighth pass).
    base = _TRACES_IN_USE.get((teaching.backbone_key(model_key), digest))
    if base is not None and getattr(_model, "attached_head", None) is not None:
        trace = traces.with_head(base, _model)
    else:
        trace = traces.run_trace(_model, _data, _image_name)
    _TRACES_IN_USE[(model_key, digest)] = trace
    return trace


_TRACES_IN_USE: "weakref.WeakValueDictionary[tuple, Trace]" = weakref.WeakValueDictionary()


def trace_of(model_key: str, digest: str, image_name: str, model, data: bytes, what: str) -> Trace:
    """The trace, from the cache or a session holding it, else computed under a spinner that
    names `what` (the model and the image, inert markdown). A trace already there needs no
    spinner (its timer thread cost ~1 ms per rerun under load, issue 15).

    Tried and measured (issue 15): running a process's traces one at a time in order of arrival,
    with a "n images ahead of yours" line, made 40 arriving visitors wait longer (p95 1.62 s
    against 1.22 s back to back, the slowest 11.9 s): torch releases the GIL, so traces side by
    side use the time other sessions' scripts leave free."""
    if (model_key, digest) in _TRACES_IN_USE:
        return live_trace(model_key, digest, image_name, model, data)
    with st.spinner(f"Running {what}…"):
        return live_trace(model_key, digest, image_name, model, data)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def attention_gradients(model_key: str, digest: str, class_index: int, _image_name: str, _model,
                        _data: bytes) -> np.ndarray:
    return traces.run_gradients(_model, _data, _image_name, class_index)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def head_statistics(model_key: str, digest: str, _td: traces.Trace) -> dict:
    return views.head_statistics(_td)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def model_relevance(model_key: str, digest: str, method: str, class_index: int, _model, _trace) -> np.ndarray:
    """What LeGrad, AttnLRP or Grad-CAM need from the model (one backward pass or L small
    ones), once per (model, image, method, class) for every session."""
    return traces.run_relevance(_model, _trace, method, class_index)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def explanation_maps(model_key: str, digest: str, class_index: int | None, fusion: str, discard_ratio: float,
                     residual_alpha: float, start_layer: int, query: int, extra_method: str, _ctx) -> dict:
    grads = None
    if class_index is not None:
        grads = attention_gradients(model_key, digest, class_index, _ctx.image_name, _ctx.model, _ctx.data)
    methods, _ = views.explanation_methods(_ctx.trace, extra_method)
    relevance = {m: model_relevance(model_key, digest, m, class_index, _ctx.model, _ctx.trace)
                 for m in methods if m in MODEL_METHODS}
    return views.explanation_maps(_ctx.trace, grads, methods=methods, relevance=relevance, fusion=fusion,
                                  discard_ratio=discard_ratio, residual_alpha=residual_alpha,
                                  start_layer=start_layer, query=query)



@st.cache_data(max_entries=4, ttl=1800, show_spinner=False)
def trace_npz(model_key: str, digest: str, _td) -> bytes:
    """The whole-trace download (~0.75 s of compression, ~23 MB for dinov2-small), made once
    per (model, image) however often any visitor asks for it."""
    return traces.trace_npz(_td)


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
    trace: traces.Trace | None = None

    @property
    def theme(self):
        return session.theme()

    @property
    def model_label(self) -> str:
        """The model's name as inert markdown (a hub id or a path is user-controlled)."""
        return safe_text.md_text(self.facts["name"])

    @property
    def image_label(self) -> str:
        """The image's file name as inert markdown (an upload's name is user-controlled)."""
        return safe_text.md_text(self.image_name)


def selected_model() -> tuple[str, str]:
    """(source, cache key) chosen in the sidebar, or ValueError saying what to type."""
    ss = st.session_state
    source = sources.resolve_source(ss["model_choice"], ss.get("hf_repo", ""), ss.get("local_path", ""),
                                    session.public())
    return source, sources.source_key(source)


def model_or_stop(load):
    """`load()`'s (source, key, model), or the page stops with what to do: an info when an input
    is missing (a path or hub id not typed yet), an error when the model could not be loaded."""
    try:
        return load()
    except sources.MissingInput as err:
        st.info(safe_text.message(err), icon=":material/edit:")
        st.stop()
    except ValueError as err:
        st.error(f"**The model could not be loaded.** {safe_text.message(err)}", icon=":material/error:")
        st.stop()


def load_selected_model():
    """The chosen model as every page uses it: the backbone with the session's taught head when
    one is in use for it (its cache key then carries the head's digest)."""
    source, key, model = load_backbone()
    taught = taught_head(source)
    if taught is not None:
        model = model_with_head(key, taught["digest"], model, taught["data"])
        key = teaching.model_key_with_head(key, taught["digest"])
    return source, key, model


TAUGHT = "_taught_head"  # this session's head: {"data": bytes, "digest", "backbone", "name", "active"}


def taught_head(source: str | None = None) -> dict | None:
    """The session's taught head when it is switched on (and, given `source`, made for it)."""
    taught = st.session_state.get(TAUGHT)
    if not taught or not taught.get("active"):
        return None
    if source is not None and taught["backbone"] != source:
        return None
    return taught


def load_backbone():
    """The chosen model from the cache, with a spinner; a failure is remembered per source so a
    broken checkpoint is not read again on every rerun (Retry clears it)."""
    source, key = selected_model()
    failed = st.session_state.setdefault("_load_errors", {})
    if key in failed:
        raise ValueError(failed[key])
    if key in _LOADED:  # loaded before in this process: a cache hit needs no spinner (its timer thread
        return source, key, get_model(key, source)  # cost ~1 ms per rerun under load, issue 15)
    try:
        with st.spinner(sources.loading_message(source)):
            model = get_model(key, source)
    except ValueError as err:
        failed[key] = str(err)
        raise
    _LOADED.add(key)
    return source, key, model


_LOADED: set[str] = set()  # model keys this process has loaded (the model cache keeps every offered model)


def selected_image(model_source: str | None = None) -> tuple[str, bytes, str, int | None]:
    """(name, bytes, sha256, true label index or None) of the chosen image; the label only for
    the model a gallery sample was labelled for (any model when `model_source` is None)."""
    ss = st.session_state
    if ss.get("image_source") == "upload":
        current = session.current_upload()
        if current is not None:
            name, data = current
        else:
            raise LookupError("upload an image in the sidebar (PNG, JPEG, WebP, BMP, GIF or TIFF), "
                              "or switch the image source to the sample gallery")
        # The digest keys caches shared by every session, so it is taken from the bytes used now,
        # on every run: a client may PUT new bytes under an old file id (issue 13). sha256 runs at
        # ~1 GB/s, so even a 20 MB upload costs ~20 ms.
        return name, data, uploads.image_digest(data), None
    sample = get_sample(ss.get("sample") or settings.DEFAULTS["sample"])
    name, data, digest = gallery_image(sample.key)
    # A gallery label is a class of the model the sample was made for (fashion-vit's), not of another
    # model's head (a CLIP model's prompts, an ImageNet classifier's classes).
    label = sample.label_index if model_source in (None, sample.suggested_model) else None
    return name, data, digest, label


def gallery_image(key: str) -> tuple[str, bytes, str]:
    """(file name, bytes, sha256) of a gallery sample, as the trace cache is keyed."""
    return get_sample(key).path.name, sample_bytes(key), _sample_digest(key)


@st.cache_data(show_spinner=False)
def _sample_digests() -> frozenset:
    """The gallery's own images need no notes about how they were used."""
    return frozenset(_sample_digest(s.key) for s in list_samples())


@st.cache_data(max_entries=64, show_spinner=False)
def _sample_digest(key: str) -> str:
    return uploads.image_digest(sample_bytes(key))


def context() -> Context:
    """The current model and image (and their trace), or a message and a stop.

    Expected failures — a bad image, a model that does not load — are shown as st.error
    with what to do; the sidebar stays usable.
    """
    source, key, model = model_or_stop(load_selected_model)
    try:
        name, data, digest, label = selected_image(source)
    except LookupError as err:
        st.info(safe_text.message(err), icon=":material/image:")
        st.stop()
    key, model = with_session_head(key, model)
    ctx = Context(source, key, model, cards.model_facts(model), name, data, digest, _true_label(model, label))
    try:
        ctx.trace = trace_of(key, digest, name, model, data, f"{ctx.model_label} on {ctx.image_label}")
    except ImageError as err:
        st.error(f"**This image cannot be used.** {safe_text.message(err)}", icon=":material/image:")
        st.stop()
    except (ValueError, RuntimeError) as err:  # e.g. an input size the checkpoint cannot take
        st.error(f"**The model could not process this image.** {safe_text.message(err)}", icon=":material/error:")
        st.stop()
    far = out_of_distribution(key, digest, ctx)
    if far:
        st.warning(safe_text.message(far), icon=":material/warning:")
    if ctx.digest not in _sample_digests():
        for note in uploads.image_notes(data, ctx.facts["input_size"]):
            st.caption(f":material/info: {note}")
    # A new model or image can shrink the ranges: bring the settings inside before any widget.
    session.apply_settings(settings.clamp_settings(session.current_settings(), ctx.trace.L, ctx.trace.H, ctx.trace.T,
                                                   ctx.trace.K))
    return ctx


def with_session_head(key: str, model):
    """(cache key, model) with the classes this session gave the model: a CLIP model gets the
    prompts of the sidebar's Classes box as its head; other models are returned as they are.
    Prompts that cannot be used leave the model without classes, with a warning saying why. A
    head already attached (one taught on the Teach classes page) is kept: it is the session's choice."""
    from model.clip import DEFAULT_TEMPLATE, is_clip

    if not is_clip(model) or getattr(model, "attached_head", None) is not None:
        return key, model
    try:
        names = prompts.session_prompts(st.session_state.get("prompts", prompts.DEFAULT_PROMPTS), session.public())
        with st.spinner("Reading the class prompts with CLIP's text tower…"):
            prompted = prompted_model(key, tuple(names), DEFAULT_TEMPLATE, model)
    except ValueError as err:
        st.warning(f"**Class prompts:** {safe_text.message(err)} Until then the model has no classes.",
                   icon=":material/edit:")
        return key, model
    return prompts.prompts_model_key(key, names, DEFAULT_TEMPLATE), prompted


def _true_label(model, index: int | None) -> int | None:
    """A gallery sample's true label, when the model's head has that class at that index (a
    Fashion-MNIST tile on fashion-vit; not on a taught head with classes of its own)."""
    if index is None or not model.cfg.has_head:
        return None
    names = model.cfg.class_names or []
    sample = get_sample(st.session_state.get("sample") or settings.DEFAULTS["sample"])
    return index if index < len(names) and names[index] == sample.label else None


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def out_of_distribution(model_key: str, digest: str, _ctx) -> str | None:
    """The warning when the image is far from what the model was trained on (a photo on a
    28×28 clothing classifier), else None; models without the statistics are not checked."""
    result = check_ood(_ctx.model, _ctx.trace)
    return result.message if result is not None and result.far else None


def figure_and_text():
    """(figure box, text box): side by side on a screen; on a projector the figure takes the
    full width (classroom figures are larger) and its text follows below."""
    if session.classroom():
        return st.container(), st.container()
    return st.columns([2, 1], gap="medium")


def head_picker(where, H: int) -> None:
    """One button per head when they fit (up to 8), else a list; both write the "head" setting."""
    if H <= 8:
        where.segmented_control("Head", list(range(H)), required=True, **session.kept("head"))
    else:
        where.selectbox("Head", list(range(H)), **session.kept("head"))


def class_index(ctx: Context, setting: int) -> int | None:
    """The class a class-specific view explains: the setting, or the top class for -1."""
    if not ctx.trace.has_head:
        return None
    if 0 <= setting < ctx.trace.K:
        return int(setting)
    return int(np.argmax(ctx.trace.logits[0]))


# ----------------------------------------------------------------------------- figures


def current_view(ctx: Context) -> figures.View:
    """The settings every figure may depend on, read once from session state."""
    ss = st.session_state
    loss_label = (ss["loss_label"] if ss["loss_label"] >= 0 else ctx.true_label if ctx.true_label is not None
                  else int(np.argmax(ctx.trace.logits[0])) if ctx.trace.has_head else 0)
    return figures.View(
        layer=ss["layer"], head=ss["head"], query=ss["query"], colormap=ss["colormap"], opacity=ss["opacity"],
        upsample=ss["upsample"], classroom=session.classroom(), matrix_log=bool(ss.get("matrix_log", False)),
        mask_share=float(ss.get("mask_threshold", 0.6)), class_index=class_index(ctx, ss["target_class"]),
        fusion=ss["fusion"], discard_ratio=ss["discard_ratio"], residual_alpha=ss["residual_alpha"],
        start_layer=ss["start_layer"], extra_method=ss.get("extra_method", "none"), loss_label=loss_label,
        baseline=ss["baseline"], compare_mode=ss["compare_mode"], compare_method=ss.get("compare_method") or "",
        compare_classes=tuple(ss.get("compare_classes") or ()), compare_model=ss.get("compare_model") or "")


def figure_inputs(ctx: Context) -> figures.FigureInputs:
    """The trace and the cached extras the registry's builders read."""
    def explanations(view: figures.View) -> dict:
        return explanation_maps(ctx.model_key, ctx.digest, view.class_index, view.fusion, view.discard_ratio,
                                view.residual_alpha, view.start_layer, view.query, view.extra_method, ctx)

    from app_pages import trust  # late: trust imports this module

    return figures.FigureInputs(
        trace=ctx.trace, model_name=ctx.facts["name"],
        faithfulness=lambda view: trust.for_view(ctx, view),
        randomisation=lambda view: trust.randomisation_for(ctx, view),
        compare=lambda view: trust.compare_panels(ctx, view),
        statistics=lambda: head_statistics(ctx.model_key, ctx.digest, ctx.trace),
        explanations=explanations,
        mlp_hidden=lambda layer, token: views.mlp_hidden(ctx.model, ctx.trace, layer, token),
        training_curve=cards.training_curve_of(ctx.model),
        pad_value=ctx.model.preprocessor.pad_value if ctx.model.preprocessor.pad_to else None)


FIGURE_CACHE_ENTRIES = 160  # ~0.1-0.6 MB each (the figure as sent); see charts.frozen


@st.cache_resource(max_entries=FIGURE_CACHE_ENTRIES, ttl=1800, show_spinner=False)
def _cached_figure(key: tuple, _name: str, _inputs, _view) -> go.Figure:
    return charts.frozen(figures.build(_name, _inputs, _view))


def figure(ctx: Context, name: str, view: figures.View | None = None) -> go.Figure:
    """Registry figure `name`, built once per (model, image, the settings it depends on) and
    shared read-only by every session (callers never modify it).

    Building a plotly figure (validation) costs far more than drawing it, so going back to a
    layer or head already seen is instant, and a class looking at one sample builds it once.
    """
    view = view or current_view(ctx)
    key = (ctx.model_key, ctx.digest) + figures.cache_key(name, view)
    return _cached_figure(key, name, figure_inputs(ctx), view)


def show(ctx: Context, name: str, key: str, *, view: figures.View | None = None, on_select=None):
    """Draw registry figure `name` with its downloads; the file name says what it shows."""
    view = view or current_view(ctx)
    fig = figure(ctx, name, view)
    return charts.show_figure(fig, key, file_stem(ctx, figures.spec(name).file_stem(view)), on_select=on_select)


def scroll_to(anchor: str) -> None:
    """Bring the heading with this anchor into view (after a click that opened it further down).

    A zero-height component runs one line of script in the page (its frame shares the origin)."""
    import streamlit.components.v1 as components

    components.html(f"<script>window.parent.document.getElementById({anchor!r})?.scrollIntoView("
                    "{behavior: 'smooth', block: 'start'});</script>", height=0)


def page_title(title: str, caption: str) -> None:
    """The page's title and what it shows; on a projector only a compact title, so that the
    figures start near the top of the screen."""
    if session.classroom():
        st.markdown(f"### {title}")
    else:
        st.title(title)
        st.caption(caption)


def css() -> None:
    """Classroom mode: everything larger for a projector, not only the text (the figures get
    theme="classroom" from viz), and less empty space above the page."""
    if session.classroom():
        st.html("""<style>
            [data-testid="stMainBlockContainer"] { padding-top: 3.6rem !important; }
            .stApp, .stMarkdown p, .stMarkdown li, label, .stCaption, [data-testid="stMarkdownContainer"] p,
            [data-testid="stWidgetLabel"] p
              { font-size: 1.3rem !important; line-height: 1.5 !important; }
            [data-testid="stMarkdownContainer"] h1 { font-size: 2.4rem !important; }
            [data-testid="stMarkdownContainer"] h2 { font-size: 2.1rem !important; }
            [data-testid="stMarkdownContainer"] h3 { font-size: 1.8rem !important; }
            .katex { font-size: 1.5em !important; }
            [data-baseweb="select"] div, [data-testid="stSelectbox"] input, [data-baseweb="input"] input,
            [data-baseweb="popover"] li, [role="option"] { font-size: 1.25rem !important; }
            [data-testid="stSliderThumbValue"], [data-testid="stSliderTickBarMin"],
            [data-testid="stSliderTickBarMax"] { font-size: 1.2rem !important; }
            [data-testid="stButtonGroup"] button p, [data-testid="stBaseButton-segmented_control"] p,
            [data-testid="stBaseButton-segmented_controlActive"] p { font-size: 1.25rem !important; }
            [data-testid="stTable"] td, [data-testid="stTable"] th { font-size: 1.2rem !important; }
            [data-testid="stExpander"] summary p { font-size: 1.25rem !important; }
            [data-testid="stMetricValue"], [data-testid="stMetricValue"] [data-testid="stMarkdownContainer"] p
              { font-size: 2.2rem !important; line-height: 1.3 !important; }
        </style>""")


def table(rows, column_formats: dict | None = None) -> None:
    """A table: an interactive data frame on a screen; in classroom mode a plain HTML table,
    whose text the projector CSS can enlarge (a data frame is drawn on a canvas)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    formats = column_formats or {}
    if session.classroom():
        st.table(frame.style.format({c: f"{{:{f}}}" for c, f in formats.items() if c in frame}).hide(axis="index"))
    else:
        st.dataframe(frame, hide_index=True, width="stretch", column_config={
            c: st.column_config.NumberColumn(format=f"%{f}") for c, f in formats.items() if c in frame})


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
