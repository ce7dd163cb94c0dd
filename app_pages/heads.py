"""Heads: what each head does on this image — mean attention distance against depth, entropy,
attention parked on prefix tokens, high-norm artifact tokens. Click a head to open its maps."""
import numpy as np
import streamlit as st

import viz
from app_pages import shared
from app_core import clicks, views

ctx = shared.context()
td = ctx.td
th = ctx.theme
p = td.num_prefix_tokens
prefix = list(td.prefix_names)
stats = shared.head_statistics(ctx.model_key, ctx.digest, td)

st.title("Heads")
st.caption(f"{td.L} layers × {td.H} heads of {ctx.model_label} on {ctx.image_label}. Click a dot or a cell to "
           "open that head below, or choose it there.")


def _clicked(key: str) -> None:
    event = st.session_state.get(key)
    points = event["selection"]["points"] if event else []
    hit = clicks.head_from_points(points, td.L, td.H)
    if hit is not None:
        st.session_state["layer"], st.session_state["head"] = hit
        st.toast(f"Opened layer {hit[0]}, head {hit[1]} in “The chosen head” at the bottom of the page.",
                 icon=":material/arrow_downward:")


def _cell_targets(fig, values: np.ndarray, what: str, fmt: str) -> None:
    """Click targets on the cells of a layer × head heatmap (x = head, y = layer)."""
    layers, heads = np.meshgrid(np.arange(td.L), np.arange(td.H), indexing="ij")
    w, h = shared.plot_px(fig)
    shared.add_click_targets(
        fig, heads.ravel(), layers.ravel(), np.stack([layers.ravel(), heads.ravel(), values.ravel()], axis=-1),
        min(w / td.H, h / td.L),
        "layer %{customdata[0]}, head %{customdata[1]}<br>" + what + " %{customdata[2]:" + fmt + "}"
        "<br>click to open<extra></extra>")


def overview() -> None:
    # Not a fragment: a click here must also redraw the chosen head below (a full rerun).
    # One figure per row, its explanation beside it: the figures keep their designed width.
    st.subheader("How far does each head look?")
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        fig = viz.attention_distance_figure(stats["distance"], image_size=float(td.image.shape[1]), theme=th)
        fig.update_layout(clickmode="event+select", dragmode=False)  # its dots carry x = layer, head
        shared.show_figure(fig, "heads_distance", shared.file_stem(ctx, "attention_distance"),
                           on_select=lambda: _clicked("heads_distance"))
    with text_col:
        st.markdown("Mean distance in pixels between a patch and the patches it attends to, one dot per head "
                    "(ViT paper, Fig. 7). Early layers mix local and global heads; later layers look further.")

    st.subheader("How focused is each head?")
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        fig = viz.attention_entropy_figure(stats["entropy"], num_keys=td.T, theme=th,
                                           title="Attention entropy per head")
        _cell_targets(fig, stats["entropy"], "entropy", ".2f")
        shared.show_figure(fig, "heads_entropy", shared.file_stem(ctx, "attention_entropy"),
                           on_select=lambda: _clicked("heads_entropy"))
    with text_col:
        st.markdown(f"Entropy of the attention rows in nats: 0 means a head looks at one token only, "
                    f"ln {td.T} = {np.log(td.T):.2f} means it spreads evenly over all {td.T} tokens.")

    if p:
        st.subheader("Attention parked on prefix tokens")
        fig_col, text_col = shared.figure_and_text()
        with fig_col:
            fig = viz.prefix_attention_figure(stats["prefix"], theme=th, title="Attention to prefix tokens")
            _cell_targets(fig, stats["prefix"], "prefix share", ".2f")
            shared.show_figure(fig, "heads_prefix", shared.file_stem(ctx, "prefix_attention"),
                               on_select=lambda: _clicked("heads_prefix"))
        with text_col:
            st.markdown(f"The share of each patch's attention that goes to {', '.join(prefix)}, averaged over "
                        "the patches. Heads with nothing to do often park their attention there.")

    st.subheader("Artifact tokens")
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        fig = viz.token_norms_figure(stats["norms"], num_prefix_tokens=p, prefix_names=prefix,
                                     artifact_tokens=stats["artifacts"], log_scale=True, theme=th)
        shared.show_figure(fig, "heads_norms", shared.file_stem(ctx, "token_norms"))
    with text_col:
        if stats["artifacts"]:
            st.markdown(f"**{len(stats['artifacts'])} high-norm token(s)** in the last layer (norm above "
                        f"{stats['artifact_threshold']:.1f}): "
                        + ", ".join(f"{r['token']} (‖z‖ = {r['norm']:.1f})" for r in stats["artifact_rows"])
                        + ". Large ViTs reuse such background patches as scratch space for global information "
                          "(Darcet et al. 2023, *Vision Transformers Need Registers*).")
        else:
            st.markdown("The L2 norm of every token after each layer (log scale). No patch token stands out in the last layer "
                        "of this image; in large ViTs a few background patches can grow about ten times larger "
                        "than the rest (Darcet et al. 2023).")


@st.fragment
def chosen_head() -> None:
    ss = st.session_state
    st.subheader("The chosen head")
    if shared.classroom():  # controls first, then the figures at full width
        right, left = st.container(), st.container()
    else:
        left, right = st.columns([2, 1], gap="medium")
    with right:
        st.slider("Layer", 0, td.L - 1, key="layer")
        shared.head_picker(st, td.H)
        st.selectbox("Query token", views.query_options(td), key="query", format_func=td.token_name)
        layer, head, query = ss["layer"], ss["head"], ss["query"]
        m1, m2 = st.columns(2)
        m1.metric("Mean attention distance", f"{stats['distance'][layer, head]:.1f} px")
        m2.metric("Entropy", f"{stats['entropy'][layer, head]:.2f} nats")
        if p:
            st.metric(f"Share on {', '.join(prefix)}", f"{100 * stats['prefix'][layer, head]:.1f}%")
        st.markdown("The first figure shows where the query token looks in this head; the second the whole "
                    "T×T matrix of the head — row i is token i's softmax over all tokens, the first rows and "
                    "columns are the prefix tokens.")
    with left:
        fig = shared.figure(ctx, "head_overlay", (layer, head, query, ss["colormap"], ss["opacity"], ss["upsample"]),
                            lambda: viz.attention_overlay_figure(
                                td.image, views.attention_map(td, layer, head, query), query=query, num_prefix_tokens=p,
                                prefix_names=prefix, patch_size=td.patch_size, colormap=ss["colormap"],
                                alpha=ss["opacity"], upsample=ss["upsample"], theme=th,
                                title=f"{td.token_name(query)} → layer {layer}, head {head}"))
        shared.show_figure(fig, "heads_map", shared.file_stem(ctx, f"head_l{layer}_h{head}_t{query}"))
        fig = shared.figure(ctx, "matrix", (layer, head, False, ss["colormap"]), lambda: viz.attention_matrix_figure(
            td.attentions[layer, head], num_prefix_tokens=p, prefix_names=prefix, grid=td.grid, layer=layer,
            head=head, colormap=ss["colormap"], theme=th))
        shared.show_figure(fig, "heads_matrix", shared.file_stem(ctx, f"matrix_l{layer}_h{head}"))


overview()
chosen_head()
