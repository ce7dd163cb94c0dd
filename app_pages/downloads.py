"""Downloads: every current figure as PNG, the current maps as NPZ/CSV, the whole trace as NPZ,
and the settings that reproduce this view (as JSON to load back, or as a link)."""
from urllib.parse import urlencode

import streamlit as st

from app_core.figure_png import UNAVAILABLE_MESSAGE, figure_png, png_export_available
from app_pages import charts, session, shared
from app_core import exports, figures, settings, safe_text, views

ctx = shared.context()
trace = ctx.trace
ss = st.session_state
# Every value is read now: the files are made later, on a click, in a thread without the session.
view = shared.current_view(ctx)
layer, head, query = view.layer, view.head, view.query
inputs = shared.figure_inputs(ctx)


def _explanations() -> dict:
    return inputs.explanations(view)


def _png(name: str):
    return lambda: figure_png(charts.full(shared.figure(ctx, name, view)))


def _maps() -> dict:
    maps = {f"attention_l{layer}_h{head}_t{query}": views.attention_map(trace, layer, head, query)}
    maps.update(_explanations())
    return maps


def _maps_all() -> dict:
    maps = _maps()
    maps[f"heads_l{layer}_t{query}"] = views.heads_maps(trace, layer, query)
    maps[f"layers_h{head}_t{query}"] = views.layers_maps(trace, head, query)
    return maps


def _load_settings() -> None:
    upload = ss.get("settings_file")
    if upload is None:
        return
    try:
        loaded, warnings = settings.settings_from_json(upload.getvalue(), session.public())
    except ValueError as err:
        ss["_settings_result"] = ("error", str(err))
        return
    session.apply_settings(loaded)
    ss["_settings_result"] = ("ok", f"Loaded {len(loaded)} settings." + "".join(f"\n- {safe_text.md_text(w, 300)}"
                                                                                for w in warnings))


shared.page_title("Downloads", f"Everything for {ctx.model_label} on {ctx.image_label} with the current settings "
                               f"(layer {layer}, "
           f"head {head}, query {trace.token_name(query)}). Files are made when you press a button.")

figs, data = st.columns([3, 2], gap="large")
with figs:
    st.subheader("Figures as PNG")
    can_png = png_export_available()
    if not can_png:
        st.caption(UNAVAILABLE_MESSAGE + " on each page.")
    cols = [st.container()] * 2  # one button per row: in two columns the labels were cut
    for i, spec in enumerate(figures.available(inputs) if can_png else []):
        cols[i % 2].download_button(spec.label, data=_png(spec.name),
                                    file_name=shared.file_stem(ctx, spec.file_stem(view)) + ".png",
                                    mime="image/png", key=f"dl_fig_{spec.name}", on_click="ignore",
                                    icon=":material/image:", width="stretch")
with data:
    st.subheader("Data")
    st.download_button("Current maps (NPZ)", data=lambda: exports.maps_npz(_maps_all()),
                       file_name=shared.file_stem(ctx, "maps") + ".npz", mime="application/octet-stream",
                       key="dl_maps_npz", on_click="ignore", icon=":material/dataset:", width="stretch")
    st.download_button("Current maps (CSV)", data=lambda: exports.maps_csv(_maps()),
                       file_name=shared.file_stem(ctx, "maps") + ".csv", mime="text/csv", key="dl_maps_csv",
                       on_click="ignore", icon=":material/table:", width="stretch")
    st.download_button("Whole trace (NPZ)", data=lambda: shared.trace_npz(ctx.model_key, ctx.digest, trace),
                       file_name=shared.file_stem(ctx, "trace") + ".npz", mime="application/octet-stream",
                       key="dl_trace", on_click="ignore", icon=":material/inventory_2:", width="stretch",
                       help="attentions, hidden_states, patch_embeddings, pos_embed, pixel_values, logits, grid, "
                            "patch_size, num_prefix_tokens — the arrays of `python -m model trace`.")

    st.subheader("Settings")
    image_info = ({"sample": ss["sample"]} if ss["image_source"] == "gallery"
                  else {"upload": ctx.image_name, "sha256": ctx.digest})
    st.download_button("Settings (JSON)", data=settings.settings_to_json(session.current_settings(), image_info),
                       file_name="patchlight_settings.json", mime="application/json", key="dl_settings",
                       on_click="ignore", icon=":material/settings:", width="stretch")
    st.file_uploader("Load settings (JSON)", type=["json"], key="settings_file", on_change=_load_settings,
                     help="A file saved with the button above restores the model, sample and every view setting.")
    result = ss.pop("_settings_result", None)
    if result and result[0] == "error":
        st.error(safe_text.message(result[1]), icon=":material/warning:")
    elif result:
        st.success(result[1], icon=":material/check_circle:")
    query_string = urlencode(settings.settings_query(session.current_settings(), session.public()))
    base = (st.context.url or "").split("?")[0].rsplit("/", 1)[0] + "/explorer"
    st.markdown("**Link to this view** (open it to restore the settings):")
    st.code(f"{base}?{query_string}" if query_string else base, language=None, wrap_lines=True)
    if ss["image_source"] == "upload":
        st.caption("An uploaded image cannot travel in a link or a settings file; upload it again after loading.")
