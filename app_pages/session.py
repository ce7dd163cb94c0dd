"""Session state the pages share: the view settings that outlive widgets, pages, fragments
and server restarts; the kept upload; the upload quota; the page icon; classroom mode.

Streamlit glue only (the rules for settings live in app_core.settings)."""
from __future__ import annotations

import streamlit as st

from app_core import settings, sources, uploads
from model.gallery import get_sample, list_samples


def install_upload_quota() -> None:
    """Bound what the upload endpoint keeps: per session (oldest files dropped first) and in
    total (refused with HTTP 429 and a message). Streamlit's in-memory file manager is given
    the quota by swapping in a subclass, keeping its state; without a running server (AppTest)
    there is nothing to bound."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    if not Runtime.exists():
        return
    manager = Runtime.instance().uploaded_file_mgr
    if type(manager) is MemoryUploadedFileManager:
        manager.__class__ = _QuotaFileManager


def _quota_error(message: str) -> Exception:
    try:
        from starlette.exceptions import HTTPException
    except ImportError:  # an older, Tornado-based server: a plain error still stops the upload
        return uploads.UploadRefused(message)
    return HTTPException(status_code=429, detail=message)


def _quota_class():
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    class QuotaFileManager(MemoryUploadedFileManager):
        def add_file(self, session_id, file) -> None:
            with self._lock:
                held = [(fid, len(rec.data)) for fid, rec in self.file_storage.get(session_id, {}).items()
                        if fid != file.file_id]
            for fid in uploads.files_to_evict(held, len(file.data)):
                self.remove_file(session_id, fid)
            try:
                uploads.check_total(self._total_bytes, len(file.data))
            except uploads.UploadRefused as err:
                raise _quota_error(str(err)) from None
            super().add_file(session_id, file)

    return QuotaFileManager


_QuotaFileManager = _quota_class()


@st.cache_resource(show_spinner=False)
def page_icon():
    """The browser-tab icon, drawn here: a light beam on a patch grid. (A ``:material/…:`` icon
    makes the browser fetch a web font, which fails offline, e.g. in a classroom.)"""
    from PIL import Image, ImageDraw

    icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((2, 2, 61, 61), radius=12, fill=(11, 87, 208, 255))
    for i in (22, 42):
        draw.line((i, 8, i, 56), fill=(255, 255, 255, 90), width=2)
        draw.line((8, i, 56, i), fill=(255, 255, 255, 90), width=2)
    draw.polygon([(10, 54), (44, 12), (56, 24)], fill=(255, 210, 60, 255))
    return icon


def public() -> bool:
    """Hosted-demo mode, read from the environment on every run (PATCHLIGHT_PUBLIC=1)."""
    return sources.is_public()

CLICK_KEYS = ("explorer_click", "heads_click")  # plotly selection widgets: not settings

# ----------------------------------------------------------------------------- settings state


SAVED = "_settings"  # the one copy of the view settings that outlives widgets, pages and fragments


def init_state() -> None:
    """Keep every setting alive across pages, fragments and server restarts.

    A widget's value lives only while its widget is drawn, and a widget changed inside a
    fragment never reaches the full reruns that used to copy it forward, so a page switch
    reset layer, head and query (issue 10). Now every setting widget commits its value to
    ``SAVED`` in its own on_change callback (``kept``), every programmatic change goes through
    ``set_setting``, and each full run hands the saved values to the widgets. The first run of
    a session reads the query parameters, which ``sync_query_params`` keeps equal to the view:
    a reload, a shared link or the reconnect after a server restart brings the view back.
    """
    ss = st.session_state
    if SAVED not in ss:
        ss[SAVED] = dict(settings.DEFAULTS)
        if st.query_params:
            parsed, warnings = settings.parse_settings(st.query_params.to_dict(), public())
            apply_settings(parsed)
            if "sample" not in parsed:
                fit_sample_to_model()
            ss["_notes"] = warnings
    for key in settings.SETTING_KEYS:
        ss[key] = ss[SAVED][key]


def remember(key: str) -> None:
    """on_change of a setting widget: commit its new value (runs before the rerun)."""
    st.session_state[SAVED][key] = st.session_state[key]


def kept(key: str, then=None) -> dict:
    """Widget arguments that bind it to setting `key`: ``st.slider(..., **kept("layer"))``."""
    def changed() -> None:
        remember(key)
        if then is not None:
            then()

    return {"key": key, "on_change": changed}


def set_setting(key: str, value) -> None:
    """Change a setting from code (a click, a button, a loaded file)."""
    st.session_state[key] = value
    st.session_state[SAVED][key] = value


def set_setting_next_run(key: str, value) -> None:
    """Change a setting from a page, after the sidebar's widgets are drawn (Streamlit refuses to
    change a drawn widget's value): it takes effect on the next run, whose ``init_state`` hands the
    saved values to the widgets — call it right before ``st.switch_page`` or ``st.rerun``."""
    st.session_state[SAVED][key] = value


def sync_query_params() -> None:
    """Mirror the view into the address bar (only the settings that differ from the defaults).

    The address is then always a link to this view, and the browser sends it again when it
    reconnects to a restarted server, whose new session restores the view from it instead
    of showing stale sliders that jump back to layer 0 at the next click (issue 13)."""
    wanted = settings.settings_query(current_settings(), public())
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def fit_sample_to_model() -> None:
    """A built-in model with a gallery image meant for the other one: switch to a fitting sample.
    Reads the saved settings: on a session's first run (a link with ``?model=…``) the widgets'
    own keys are not set yet."""
    saved = st.session_state[SAVED]
    choice = saved.get("model_choice")
    if choice in sources.BUILTIN_CHOICES and saved.get("image_source") == "gallery":
        if get_sample(saved["sample"]).suggested_model != choice:
            set_setting("sample", next(s.key for s in list_samples() if s.suggested_model == choice))


def apply_settings(values: dict) -> None:
    """Write validated settings into session state (call before the widgets are drawn)."""
    for key, value in values.items():
        set_setting(key, value)


def current_settings() -> dict:
    saved = st.session_state.get(SAVED, settings.DEFAULTS)
    return {key: saved.get(key, settings.DEFAULTS[key]) for key in settings.SETTING_KEYS}


def theme():
    return "classroom" if st.session_state.get("classroom") else None


def classroom() -> bool:
    return bool(st.session_state.get("classroom"))




KEPT_UPLOAD = "_kept_upload"


OPENED = "_opened_image"  # an image opened from elsewhere (the Data set page) replaces the uploader's file


def remember_upload() -> None:
    """The uploader's on_change: keep the file (or forget it when the user removed it).

    Streamlit drops a widget's value when the widget is not drawn, so switching the image
    source to the gallery and back would lose the upload; the kept copy brings it back.
    """
    ss = st.session_state
    ss.pop(OPENED, None)  # the person chose a file: it wins over an image opened from a data set
    upload = ss.get("upload")
    if upload is None:
        ss.pop(KEPT_UPLOAD, None)
    else:
        ss[KEPT_UPLOAD] = (upload.name, upload.getvalue())


def forget_upload() -> None:
    st.session_state.pop(KEPT_UPLOAD, None)
    st.session_state.pop(OPENED, None)


def open_image(name: str, data: bytes) -> None:
    """Make `data` the current image from the next run on, as if uploaded (the Data set page opens
    one of its images, then switches page).

    A file uploader's value cannot be set from code, so the image becomes the kept upload and
    the uploader's own file, if any, is set aside until the person uploads another one."""
    ss = st.session_state
    ss[KEPT_UPLOAD] = (name, data)
    ss[OPENED] = True
    set_setting_next_run("image_source", "upload")


def current_upload() -> tuple[str, bytes] | None:
    """(name, bytes) of the uploaded image in use: the uploader's file, else the kept one."""
    ss = st.session_state
    upload = None if ss.get(OPENED) else ss.get("upload")
    if upload is not None:
        return upload.name, upload.getvalue()
    return ss.get(KEPT_UPLOAD)


def kept_upload_name() -> str | None:
    """The name of the upload in use when the uploader itself is empty (after a source switch)
    or set aside (an image opened from a data set)."""
    ss = st.session_state
    if (ss.get("upload") is None or ss.get(OPENED)) and ss.get(KEPT_UPLOAD):
        return ss[KEPT_UPLOAD][0]
    return None


