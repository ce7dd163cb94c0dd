"""Patchlight — the Streamlit entry: navigation and the sidebar (image, model). Nothing else.

Run it with `streamlit run app.py` (or `bash scripts/app.sh`). PATCHLIGHT_PUBLIC=1 turns the
hosted-demo mode on (no local model paths).
"""
import streamlit as st

from app_pages import session, shared
from app_core import prompts, sources, safe_text, uploads
from model import cards, heads
from model.clip import PUBLIC_MAX_PROMPT_CHARS, PUBLIC_MAX_PROMPTS
from model.gallery import get_sample

st.set_page_config(page_title="Patchlight — what a Vision Transformer sees", page_icon=session.page_icon(),
                   layout="wide",
                   # a projector needs the width: classroom links open with the sidebar folded away; "auto"
                   # folds it on a phone too (open, it covers the whole page there)
                   initial_sidebar_state="collapsed" if st.query_params.get("classroom") == "true" else "auto")
session.install_upload_quota()
session.init_state()

# Short enough for the sidebar's width (longer names were cut); the help text says more.
MODEL_LABELS = {
    "fashion-vit": "fashion-vit (clothing)",
    "dinov2-small": "dinov2-small (photos)",
    sources.HF_CHOICE: "Hugging Face hub id",
    sources.PATH_CHOICE: "Local path",
}
MODEL_HELP = ("**fashion-vit**: a small classifier of 28×28 Fashion-MNIST clothing images, all six steps. "
              "**dinov2-small**: DINOv2 ViT-S/14 for real photos, no class head. **Hugging Face hub id**: "
              "hf:<owner>/<name> (a CLIP model takes its classes as text prompts). **Local path**: a model "
              "directory or weight file on this machine.")


def _retry() -> None:
    st.session_state.pop("_load_errors", None)


pages = st.navigation([
    st.Page("app_pages/walkthrough.py", title="Walkthrough", icon=":material/school:", default=True),
    st.Page("app_pages/explorer.py", title="Explorer", icon=":material/travel_explore:"),
    st.Page("app_pages/heads.py", title="Heads", icon=":material/psychology:"),
    st.Page("app_pages/dataset.py", title="Data set", icon=":material/dataset:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("app_pages/teach.py", title="Teach classes", icon=":material/model_training:"),
    st.Page("app_pages/downloads.py", title="Downloads", icon=":material/download:"),
], position="top")

with st.sidebar:
    st.markdown("## :material/flashlight_on: Patchlight\n"
                "See what a Vision Transformer sees, step by step, on your own image.")
    st.toggle("Classroom mode", **session.kept("classroom"),
              help="Larger text and figures for a projector, fewer controls.")

    st.subheader("Image")
    st.radio("Image source", ["gallery", "upload"], **session.kept("image_source"), horizontal=True,
             format_func={"gallery": "Sample gallery", "upload": "Upload"}.get)
    if st.session_state["image_source"] == "gallery":
        st.selectbox("Sample", shared.samples_for_select(), **session.kept("sample"), format_func=shared.sample_label)
        sample = get_sample(st.session_state["sample"])
        st.caption(f"{sample.credit} · {sample.licence}. Suits **{sample.suggested_model}**.")
    else:
        # No `type=` filter: Streamlit would refuse other files with a generic message; the app
        # checks the name and the content itself and says what is wrong (app_core.uploads).
        st.file_uploader("Upload an image (PNG, JPEG, WebP, BMP, GIF, TIFF)", key="upload",
                         on_change=session.remember_upload,
                         help=f"Up to {uploads.MAX_UPLOAD_MB} MB and {uploads.MAX_PIXELS // 1_000_000} megapixels.")
        if kept := session.kept_upload_name():
            st.caption(f"Showing your earlier upload **{safe_text.md_text(kept)}**; upload another file to replace it.")
            st.button("Forget this upload", key="forget_upload", on_click=session.forget_upload,
                      icon=":material/delete:")

    st.subheader("Model")
    st.selectbox("Model", sources.model_choices(session.public()), format_func=MODEL_LABELS.get, help=MODEL_HELP,
                 **session.kept("model_choice", then=session.fit_sample_to_model))
    if st.session_state["model_choice"] == sources.HF_CHOICE:
        allowed = sources.hub_allow_list() if session.public() else None
        st.text_input("Hub repo id", **session.kept("hf_repo"), placeholder="google/vit-base-patch16-224",
                      help="Downloaded once with huggingface_hub (needs internet), then cached."
                      + (f" This demo loads: {', '.join(allowed) or 'none'}." if allowed is not None else ""))
    elif st.session_state["model_choice"] == sources.PATH_CHOICE:
        st.text_input("Model path", **session.kept("local_path"), placeholder="/path/to/model-directory",
                      help="A save_pretrained directory, a timm state dict with its config, or Patchlight's format.")
    try:
        _source, _key, _model = shared.load_selected_model()
    except sources.MissingInput:
        pass  # the page says what to type; the box is right here
    except ValueError:
        # The message itself is shown once, on the page; here only what the sidebar can do.
        st.caption(":material/error: This model did not load; the page says why.")
        st.button("Retry", key="retry_model", on_click=_retry)
    else:
        facts = cards.model_facts(_model)
        st.caption(f"Device: **{facts['device']}** · {facts['params'] / 1e6:.1f} M parameters · "
                   f"{facts['depth']} layers × {facts['num_heads']} heads")
        if shared.taught_head(_source):
            st.caption(f":material/model_training: Logits from: "
                       f"{heads.head_description(_model, quote=safe_text.md_text)} (Teach classes page).")
        elif getattr(_model, "clip", None) is not None:
            limits = (f" This demo takes up to {PUBLIC_MAX_PROMPTS} prompts of up to {PUBLIC_MAX_PROMPT_CHARS} "
                      "characters." if session.public() else "")
            st.text_area("Classes (CLIP text prompts)", **session.kept("prompts"), height=90,
                         max_chars=prompts.MAX_PROMPTS_TEXT,
                         help="CLIP scores the image against each prompt, read as \"a photo of a …\" by its text "
                              "tower; type any labels, separated by commas." + limits)
            st.caption(":material/label: The logits, the loss and the class maps of every page come from CLIP's "
                       "text prompts: these classes, each read as \"a photo of a ….\"")
        with st.expander("Model card"):
            st.markdown(cards.model_card_text(_model, quote=safe_text.md_text))
    for note in st.session_state.pop("_notes", []):
        st.warning(safe_text.message(note))

shared.css()
session.sync_query_params()
pages.run()
