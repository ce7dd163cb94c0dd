"""Data set: what a model's heads do over many images — the result of `python -m model dataset`
(mean attention distance and entropy per head with their spread, where artifact tokens appear,
and the joint query/key embedding of one head, whose points open their image in the Explorer)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app_core import dataset_figures, dataset_views, datasets, safe_text, sources, uploads
from app_pages import charts, session, shared
from model.preprocess import ImageError

KEPT = "_dataset_kept"  # ("upload", name, bytes) or ("path", path): outlives the widgets and page switches
PENDING = "_dataset_open"  # (digest, processed-image index, token) a click on the q/k figure asks to open
SOURCES = {"upload": "Upload a .parquet file", "path": "A path on this machine"}


# ----------------------------------------------------------------------------- caches (per data-set digest)


@st.cache_resource(max_entries=4, ttl=3600, show_spinner=False)
def load(digest: str, _source, _name: str | None) -> datasets.DataSet:
    """One read-only copy per data set, shared by every session (like a trace): a data set with
    stored queries and keys can be tens of MB, which a pickling cache would copy on every run."""
    return datasets.read_dataset(_source, _name)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def qk_embedding(digest: str, _ds: datasets.DataSet) -> dataset_views.QKEmbedding:
    return dataset_views.qk_embedding(_ds)


@st.cache_resource(max_entries=32, ttl=1800, show_spinner=False)
def _cached_figure(key: tuple, _name: str, _inputs, _view) -> go.Figure:
    return charts.frozen(dataset_figures.build(_name, _inputs, _view))


def figure(ds: datasets.DataSet, name: str, view: dataset_figures.DataSetView) -> go.Figure:
    """Data-set figure `name`, built once per (data set, the settings it reads) for every session."""
    inputs = dataset_figures.DataSetInputs(ds, lambda: qk_embedding(ds.digest, ds))
    return _cached_figure((ds.digest,) + dataset_figures.cache_key(name, view), name, inputs, view)


# ----------------------------------------------------------------------------- loading


def _remember_file() -> None:
    ss = st.session_state
    upload = ss.get("dataset_file")
    if upload is not None:
        ss[KEPT] = ("upload", upload.name, upload.getvalue())
    elif ss.get(KEPT, ("",))[0] == "upload":  # the person removed the file with its ×
        ss.pop(KEPT)


def _remember_path() -> None:
    path = st.session_state.get("dataset_path", "").strip()
    if path:
        st.session_state[KEPT] = ("path", path)


def choose_source() -> None:
    ss = st.session_state
    public = session.public()
    where = "upload"
    kept = ss.get(KEPT)
    if not public:
        if "dataset_source" not in ss and kept:
            ss["dataset_source"] = kept[0]  # back from another page: the radio says what is shown
        where = st.radio("Load a result", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                         key="dataset_source")
    if where == "upload":
        st.file_uploader("Data-set result (.parquet)", key="dataset_file", on_change=_remember_file,
                         help=f"One .parquet file (e.g. OUT/part-00000.parquet), up to {uploads.MAX_UPLOAD_MB} MB.")
    else:
        if "dataset_path" not in ss and kept and kept[0] == "path":
            ss["dataset_path"] = kept[1]  # the box comes back with the path after a visit to another page
        st.text_input("Result path", key="dataset_path", on_change=_remember_path,
                      placeholder="/path/to/OUT (a directory of part-*.parquet) or a .parquet file",
                      help="The --out of `python -m model dataset`, on the machine that runs Patchlight.")


def loaded() -> tuple[datasets.DataSet, Path | None]:
    """The data set in use and the directory its image paths may be relative to, or a message and a stop."""
    kept = st.session_state.get(KEPT)
    if not kept:
        st.info("Load a data-set result above. Make one with `python -m model dataset IMAGES_DIR --model MODEL "
                "--out OUT --qk 1,0`; it runs the model over every image and stores each head's statistics (and, "
                "with `--qk LAYER,HEAD`, that head's queries and keys).",
                icon=":material/dataset:")
        st.stop()
    try:
        if kept[0] == "upload":
            _, name, data = kept
            datasets.check_upload(data, name)
            with st.spinner(f"Reading {safe_text.md_text(name)}…"):
                return load(hashlib.sha256(data).hexdigest(), data, name), None
        if session.public():  # a kept path from before the server went public: never read it
            raise datasets.DataSetError("paths on the server are turned off in the hosted demo; upload the file")
        path = Path(kept[1]).expanduser()
        with st.spinner(f"Reading {safe_text.md_text(str(path))}…"):
            ds = load(datasets.path_key(path), str(path), None)
        return ds, path if path.is_dir() else path.parent
    except datasets.DataSetError as err:
        st.error(f"**This data-set result cannot be used.** {safe_text.message(err)}", icon=":material/error:")
        st.stop()


# ----------------------------------------------------------------------------- the page


def summary(ds: datasets.DataSet) -> None:
    s = datasets.summary(ds)
    meta = ds.meta
    cols = st.columns(4)
    cols[0].metric("Images", s["images"])
    cols[1].metric("Processed", s["processed"])
    cols[2].metric("Failed", len(s["failed"]))
    cols[3].metric("Accuracy", f"{100 * s['accuracy']:.1f}%" if s["accuracy"] is not None else "—",
                   help=f"Top-1 over the {s['labelled']} images with a known label." if s["labelled"] else
                   "No image has a known label (or the model has no class head).")
    st.caption(f"Model **{safe_text.md_text(str(meta.get('model')))}** · {ds.L} layers × {ds.H} heads · patch "
               f"{meta.get('patch_size')} px · {ds.num_prefix_tokens} prefix token(s) · explanation maps: "
               f"{safe_text.md_text(str(meta.get('method') or '—'))}")
    if s["failed"]:
        with st.expander(f"{len(s['failed'])} image(s) could not be processed"):
            shared.table([{"image": img, "error": err} for img, err in s["failed"]])
    if not ds.M:
        st.warning("No image of this data set was processed, so there is nothing to show.", icon=":material/warning:")
        st.stop()


def show(ds: datasets.DataSet, name: str, key: str, view: dataset_figures.DataSetView, on_select=None):
    stem = f"patchlight_dataset_{Path(str(ds.meta.get('model'))).name}_{name.removeprefix('dataset_')}"
    return charts.show_figure(figure(ds, name, view), key, stem.replace(" ", "_"), on_select=on_select)


def statistics(ds: datasets.DataSet, view: dataset_figures.DataSetView) -> None:
    st.subheader("How far does each head look?")
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        show(ds, "dataset_distance", "dataset_distance", view)
    with text_col:
        st.markdown(f"Each dot is one head: the mean over {ds.M} images of its mean attention distance (the "
                    "pixels between a patch and the patches it attends to), with a bar of ± one standard "
                    "deviation over the images — the ViT paper's Fig. 7 over a data set instead of one image. "
                    "A short bar means the head looks as far on every image.")
    st.subheader("How focused is each head?")
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        show(ds, "dataset_entropy", "dataset_entropy", view)
    with text_col:
        st.markdown("The entropy of each head's attention rows in nats, averaged over the images (± std): 0 means "
                    "every token looks at one token only, the top of the axis that attention spreads evenly over "
                    "all tokens.")
    st.subheader("Where do artifact tokens appear?")
    _, counts, same = dataset_views.artifact_frequency(ds)
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        show(ds, "dataset_artifact_map", "dataset_artifacts", view)
        show(ds, "dataset_artifact_counts", "dataset_artifact_counts", view)
    with text_col:
        flagged = int((counts > 0).sum())
        st.markdown(f"A patch is an artifact token when its norm in the last layer is far above the others' "
                    f"(Darcet et al. 2023, *Vision Transformers Need Registers*). {flagged} of {ds.M} images have "
                    f"at least one; the map shows, per patch position, the share of the {same} images that flag it."
                    + (f" ({ds.M - same} images with another grid are left out of the map.)" if same < ds.M else ""))


def _clicked(digest: str, embedding: dataset_views.QKEmbedding) -> None:
    event = st.session_state.get("dataset_qk")
    hit = dataset_views.point_from_selection(event["selection"]["points"] if event else [], embedding)
    if hit is not None:
        st.session_state[PENDING] = (digest,) + hit


def qk_view(ds: datasets.DataSet, view: dataset_figures.DataSetView) -> None:
    st.subheader("Queries and keys of one head")
    if not ds.has_qk:
        st.info("This result stores no queries and keys. Write it again with `--qk LAYER,HEAD` (see `python -m "
                "model dataset --help`) to see where each token's query lies among the keys of one head.",
                icon=":material/info:")
        return
    embedding = qk_embedding(ds.digest, ds)
    fig_col, text_col = shared.figure_and_text()
    with fig_col:  # over the figure: the text column is too narrow for the three choices at a 1280-px screen
        st.segmented_control("Colour by", list(dataset_views.QK_COLOURS), key="dataset_colour", required=True,
                             default="kind", format_func=dataset_views.QK_COLOURS.get)
        view = dataset_figures.replace(view, colour_by=st.session_state.get("dataset_colour") or "kind")
        show(ds, "dataset_qk", "dataset_qk", view, on_select=lambda: _clicked(ds.digest, embedding))
    with text_col:
        shown = (f" The first {embedding.images_shown} of the {embedding.images_total} images are shown (at most "
                 f"{dataset_views.MAX_QK_POINTS:,} points)." if embedding.images_shown < embedding.images_total else "")
        st.markdown("Every token of every image appears twice: its query (circle) and its key (diamond), projected "
                    "together onto their two main directions (PCA), in the style of AttentionViz (Yeh et al. 2023). "
                    "Before that the keys are shifted onto the queries' centre and both are scaled to the same "
                    f"spread (queries × {embedding.scale:.2f}, keys ÷ {embedding.scale:.2f}) — neither changes any "
                    "attention weight — so a query lies near the keys it attends to." + shown
                    + " **Click a point** to open its image and token in the Explorer.")


def open_in_explorer(ds: datasets.DataSet, base: Path | None, image: int, token: int) -> None:
    """Make processed image `image` the current image and `token` the query, then go to the Explorer."""
    raw = ds.images[int(ds.ok[image])]
    if session.public():
        st.warning(f"The hosted demo does not open files named in a data set ({safe_text.md_text(raw)}); upload "
                   "that image in the sidebar, or run Patchlight on your own machine.", icon=":material/warning:")
        return
    path = datasets.resolve_image(ds, image, base)
    if path is None:
        st.warning(f"{safe_text.md_text(raw)} is not a file on this machine, so it cannot be opened; it is token "
                   f"{token} of that image.", icon=":material/warning:")
        return
    try:
        data = path.read_bytes()
        uploads.check_upload(data, path.name)
    except (OSError, ImageError) as err:
        st.warning(f"{safe_text.md_text(str(path))} cannot be opened: {safe_text.message(err)}", icon=":material/warning:")
        return
    # The sidebar's widgets are drawn already: the settings take effect on the Explorer's run.
    model = str(ds.meta.get("model") or "")
    if model in sources.BUILTIN_CHOICES:
        session.set_setting_next_run("model_choice", model)
    elif model.startswith("hf:"):
        session.set_setting_next_run("model_choice", sources.HF_CHOICE)
        session.set_setting_next_run("hf_repo", model[3:])
    elif model:
        session.set_setting_next_run("model_choice", sources.PATH_CHOICE)
        session.set_setting_next_run("local_path", model)
    session.open_image(path.name, data)
    session.set_setting_next_run("query", int(token))
    if ds.meta.get("qk_head") is not None:
        session.set_setting_next_run("layer", int(ds.meta["qk_layer"]))
        session.set_setting_next_run("head", int(ds.meta["qk_head"]))
    st.switch_page("app_pages/explorer.py")


shared.page_title("Data set", "A model over many images: load the result of `python -m model dataset` and see each "
                              "head's statistics with their spread, where artifact tokens appear, and one head's "
                              "queries and keys. The sidebar's model and image are not used here.")
choose_source()
ds, base = loaded()
summary(ds)
view = dataset_figures.DataSetView(classroom=session.classroom())
pending = st.session_state.pop(PENDING, None)
if pending and pending[0] == ds.digest:
    open_in_explorer(ds, base, pending[1], pending[2])
statistics(ds, view)
qk_view(ds, view)
