"""Downloads: every current figure as PNG, the current maps as NPZ/CSV, the whole trace as NPZ,
and the settings that reproduce this view (as JSON to load back, or as a link)."""
from urllib.parse import urlencode

import streamlit as st

import viz
from app_core.figure_png import UNAVAILABLE_MESSAGE, figure_png, png_export_available
from app_pages import shared
from model import app_support as S
from model import patch_embedding_pca, pos_embed_similarity

ctx = shared.context()
td = ctx.td
th = ctx.theme
ss = st.session_state
p = td.num_prefix_tokens
prefix = list(td.prefix_names)
# Every value is read now: the files are made later, on a click, in a thread without the session.
layer, head, query = ss["layer"], ss["head"], ss["query"]
cmap, alpha, upsample = ss["colormap"], ss["opacity"], ss["upsample"]
look = dict(colormap=cmap, alpha=alpha, upsample=upsample, theme=th)
where = dict(query=query, num_prefix_tokens=p, prefix_names=prefix, patch_size=td.patch_size)
cls = shared.class_index(ctx, ss["target_class"])
method = (cls, ss["fusion"], ss["discard_ratio"], ss["residual_alpha"], ss["start_layer"], query)
loss_label = (ss["loss_label"] if ss["loss_label"] >= 0 else
              ctx.true_label if ctx.true_label is not None else int(td.logits.argmax()) if td.has_head else 0)


def _explanations() -> dict:
    return shared.explanation_maps(ctx.model_key, ctx.digest, *method, ctx)


def _stats() -> dict:
    return shared.head_statistics(ctx.model_key, ctx.digest, td)


# (label, file name part, builder): each builds its figure only when its button is pressed.
FIGURES = [
    ("Patch grid", "patch_grid", lambda: viz.patch_grid_figure(td.image, td.patch_size, num_prefix_tokens=p,
                                                                theme=th)),
    ("Patches as a sequence", "patch_mosaic", lambda: viz.patch_mosaic_figure(td.image, td.patch_size,
                                                                              num_prefix_tokens=p, theme=th)),
    ("Flattened patches", "patch_matrix", lambda: viz.patch_matrix_figure(td.image, td.patch_size, theme=th)),
    ("Patch-embedding matrix", "patch_embeddings", lambda: viz.patch_embedding_figure(td.patch_embeddings,
                                                                                        theme=th)),
    ("Patch-embedding PCA", "patch_pca", lambda: viz.pca_image_figure(
        patch_embedding_pca(td.patch_embeddings, td.grid)[0], theme=th)),
    ("Position-embedding similarity", "position_similarity", lambda: viz.pos_similarity_figure(
        pos_embed_similarity(td.pos_embed, td.grid, p), theme=th)),
    (f"Attention of {td.token_name(query)}, layer {layer}, head {head}", f"attention_l{layer}_h{head}_t{query}",
     lambda: viz.attention_overlay_figure(td.image, S.attention_map(td, layer, head, query), **where, **look)),
    (f"All heads of layer {layer}", f"heads_l{layer}_t{query}", lambda: viz.attention_heads_figure(
        S.heads_maps(td, layer, query), image=td.image, layer=layer, zmax=S.color_top(S.heads_maps(td, layer, query)),
        **where, **look)),
    (f"All layers of head {head}", f"layers_h{head}_t{query}", lambda: viz.attention_layers_figure(
        S.layers_maps(td, head, query), image=td.image, head=head, zmax=S.color_top(S.layers_maps(td, head, query)),
        **where, **look)),
    ("Every layer × head", f"grid_t{query}", lambda: viz.attention_grid_figure(
        S.grid_maps(td, query), query=query, num_prefix_tokens=p, prefix_names=prefix, colormap=cmap,
        zmax=S.color_top(S.grid_maps(td, query)), theme=th)),
    (f"Attention matrix, layer {layer}, head {head}", f"matrix_l{layer}_h{head}", lambda: viz.attention_matrix_figure(
        td.attentions[layer, head], num_prefix_tokens=p, prefix_names=prefix, grid=td.grid, layer=layer, head=head,
        colormap=cmap, theme=th)),
    ("Rollout and class maps", f"explanations_t{query}", lambda: viz.explanation_figure(
        td.image, _explanations(), alpha=alpha, colormap=cmap, upsample=upsample,
        patch_size=td.patch_size, label=td.class_names()[cls] if cls is not None else None, theme=th)),
    ("Mean attention distance", "attention_distance", lambda: viz.attention_distance_figure(
        _stats()["distance"], image_size=float(td.image.shape[1]), theme=th)),
    ("Attention entropy", "attention_entropy", lambda: viz.attention_entropy_figure(_stats()["entropy"],
                                                                                    num_keys=td.T, theme=th)),
    ("Token norms and artifact tokens", "token_norms", lambda: viz.token_norms_figure(
        _stats()["norms"], num_prefix_tokens=p, prefix_names=prefix, artifact_tokens=_stats()["artifacts"],
        log_scale=True, theme=th)),
]
if p:
    FIGURES.append(("Prefix-token attention", "prefix_attention",
                    lambda: viz.prefix_attention_figure(_stats()["prefix"], theme=th)))
if td.has_head:
    FIGURES += [
        ("Top-5 predictions", "topk", lambda: viz.topk_figure(td.logits, td.class_names(), k=min(5, td.K),
                                                               theme=th)),
        ("Loss for the chosen label", "loss", lambda: viz.loss_figure(td.logits, td.class_names(), loss_label,
                                                                      k=min(8, td.K), theme=th)),
    ]


def _png(build):
    return lambda: figure_png(build())


def _maps() -> dict:
    maps = {f"attention_l{layer}_h{head}_t{query}": S.attention_map(td, layer, head, query)}
    maps.update(_explanations())
    return maps


def _maps_all() -> dict:
    maps = _maps()
    maps[f"heads_l{layer}_t{query}"] = S.heads_maps(td, layer, query)
    maps[f"layers_h{head}_t{query}"] = S.layers_maps(td, head, query)
    return maps


def _load_settings() -> None:
    upload = ss.get("settings_file")
    if upload is None:
        return
    try:
        settings, warnings = S.settings_from_json(upload.getvalue(), shared.public())
    except ValueError as err:
        ss["_settings_result"] = ("error", str(err))
        return
    shared.apply_settings(settings)
    ss["_settings_result"] = ("ok", f"Loaded {len(settings)} settings." + "".join(f"\n- {w}" for w in warnings))


st.title("Downloads")
st.caption(f"Everything for {ctx.facts['name']} on {ctx.image_name} with the current settings (layer {layer}, "
           f"head {head}, query {td.token_name(query)}). Files are made when you press a button.")

figs, data = st.columns([3, 2], gap="large")
with figs:
    st.subheader("Figures as PNG")
    can_png = png_export_available()
    if not can_png:
        st.caption(UNAVAILABLE_MESSAGE + " on each page.")
    cols = st.columns(2)
    for i, (label, stem, build) in enumerate(FIGURES if can_png else []):
        cols[i % 2].download_button(label, data=_png(build), file_name=shared.file_stem(ctx, stem) + ".png",
                                    mime="image/png", key=f"dl_fig_{stem.split('_')[0]}_{i}", on_click="ignore",
                                    icon=":material/image:", width="stretch")
with data:
    st.subheader("Data")
    st.download_button("Current maps (NPZ)", data=lambda: S.maps_npz(_maps_all()),
                       file_name=shared.file_stem(ctx, "maps") + ".npz", mime="application/octet-stream",
                       key="dl_maps_npz", on_click="ignore", icon=":material/dataset:", width="stretch")
    st.download_button("Current maps (CSV)", data=lambda: S.maps_csv(_maps()),
                       file_name=shared.file_stem(ctx, "maps") + ".csv", mime="text/csv", key="dl_maps_csv",
                       on_click="ignore", icon=":material/table:", width="stretch")
    st.download_button("Whole trace (NPZ)", data=lambda: S.trace_npz(td),
                       file_name=shared.file_stem(ctx, "trace") + ".npz", mime="application/octet-stream",
                       key="dl_trace", on_click="ignore", icon=":material/inventory_2:", width="stretch",
                       help="attentions, hidden_states, patch_embeddings, pos_embed, pixel_values, logits, grid, "
                            "patch_size, num_prefix_tokens — the arrays of `python -m model trace`.")

    st.subheader("Settings")
    image_info = ({"sample": ss["sample"]} if ss["image_source"] == "gallery"
                  else {"upload": ctx.image_name, "sha256": ctx.digest})
    st.download_button("Settings (JSON)", data=S.settings_to_json(shared.current_settings(), image_info),
                       file_name="patchlight_settings.json", mime="application/json", key="dl_settings",
                       on_click="ignore", icon=":material/settings:", width="stretch")
    st.file_uploader("Load settings (JSON)", type=["json"], key="settings_file", on_change=_load_settings,
                     help="A file saved with the button above restores the model, sample and every view setting.")
    result = ss.pop("_settings_result", None)
    if result and result[0] == "error":
        st.error(result[1], icon=":material/warning:")
    elif result:
        st.success(result[1], icon=":material/check_circle:")
    query_string = urlencode(S.settings_query(shared.current_settings(), shared.public()))
    base = (st.context.url or "").split("?")[0].rsplit("/", 1)[0] + "/explorer"
    st.markdown("**Link to this view** (open it to restore the settings):")
    st.code(f"{base}?{query_string}" if query_string else base, language=None, wrap_lines=True)
    if ss["image_source"] == "upload":
        st.caption("An uploaded image cannot travel in a link or a settings file; upload it again after loading.")
