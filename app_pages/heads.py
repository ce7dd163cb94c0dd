"""Heads: what each head does on this image — mean attention distance against depth, entropy,
attention parked on prefix tokens, high-norm artifact tokens. Click a head to open its maps."""
import numpy as np
import streamlit as st

from app_pages import session, shared
from app_core import clicks, figures, views

ctx = shared.context()
trace = ctx.trace
p = trace.num_prefix_tokens
prefix = list(trace.prefix_names)
stats = shared.head_statistics(ctx.model_key, ctx.digest, trace)

shared.page_title("Heads", f"{trace.L} layers × {trace.H} heads of {ctx.model_label} on {ctx.image_label}. "
                           "Click a dot or a cell to "
           "open that head below, or choose it there.")


def _clicked(key: str) -> None:
    event = st.session_state.get(key)
    points = event["selection"]["points"] if event else []
    hit = clicks.head_from_points(points, trace.L, trace.H)
    if hit is not None:
        session.set_setting("layer", hit[0])
        session.set_setting("head", hit[1])
        st.session_state["_scroll_to_head"] = True


def overview() -> None:
    # Not a fragment: a click here must also redraw the chosen head below (a full rerun).
    # One figure per row, its explanation beside it: the figures keep their designed width.
    st.subheader("How far does each head look?")
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        shared.show(ctx, "attention_distance", "heads_distance", on_select=lambda: _clicked("heads_distance"))
    with text_col:
        st.markdown("Mean distance in pixels between a patch and the patches it attends to, one dot per head "
                    "(ViT paper, Fig. 7). " + views.distance_summary(stats["distance"]))

    st.subheader("How focused is each head?")
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        shared.show(ctx, "attention_entropy", "heads_entropy", on_select=lambda: _clicked("heads_entropy"))
    with text_col:
        (lo_l, lo_h, lo), (hi_l, hi_h, hi) = views.extreme_heads(stats["entropy"])
        st.markdown(f"Entropy of the attention rows in nats: 0 means a head looks at one token only, "
                    f"ln {trace.T} = {np.log(trace.T):.2f} means it spreads evenly over all {trace.T} tokens. "
                    "Here the most "
                    f"focused head is layer {lo_l}, head {lo_h} ({lo:.2f} nats); the most spread out is layer "
                    f"{hi_l}, head {hi_h} ({hi:.2f} nats).")

    if p:
        st.subheader("Attention parked on prefix tokens")
        fig_col, text_col = shared.figure_and_text()
        with fig_col:
            shared.show(ctx, "prefix_attention", "heads_prefix", on_select=lambda: _clicked("heads_prefix"))
        with text_col:
            _, (top_l, top_h, top) = views.extreme_heads(stats["prefix"])
            st.markdown(f"The share of each patch's attention that goes to {', '.join(prefix)}, averaged over "
                        f"the patches. Heads with nothing to do often park their attention there; here layer "
                        f"{top_l}, head {top_h} parks the most ({100 * top:.0f}%).")

    st.subheader("Artifact tokens")
    fig_col, text_col = shared.figure_and_text()
    with fig_col:
        shared.show(ctx, "token_norms", "heads_norms")
    with text_col:
        if stats["artifacts"]:
            st.markdown(f"**{len(stats['artifacts'])} high-norm token(s)** in the last layer (norm above "
                        f"{stats['artifact_threshold']:.1f}): "
                        + ", ".join(f"{r['token']} (‖z‖ = {r['norm']:.1f})" for r in stats["artifact_rows"])
                        + ". Large ViTs reuse such background patches as scratch space for global information "
                          "(Darcet et al. 2023, *Vision Transformers Need Registers*).")
        else:
            st.markdown("The L2 norm of every token after each layer (log scale). No patch token stands out in the "
                        "last layer "
                        "of this image; in large ViTs a few background patches can grow about ten times larger "
                        "than the rest (Darcet et al. 2023).")


@st.fragment
def chosen_head() -> None:
    ss = st.session_state
    st.subheader("The chosen head", anchor="the-chosen-head")
    if st.session_state.pop("_scroll_to_head", False):
        shared.scroll_to("the-chosen-head")
    # Controls and numbers in rows above, the figures below them at full width, on a screen as on
    # a projector: beside a column of controls the overlay was fitted to ~2/3 of the width at its
    # designed height, and the photo shrank to ~260 px between empty bands. Layer and head share
    # a row (a third column left the head buttons cut off at 1024 px); the query token, which only
    # the first figure follows, sits just above it.
    layer_col, head_col = st.columns(2, gap="medium")
    layer_col.slider("Layer", 0, trace.L - 1, **session.kept("layer"))
    shared.head_picker(head_col, trace.H)
    layer, head = ss["layer"], ss["head"]
    numbers = [("Mean attention distance", f"{stats['distance'][layer, head]:.1f} px"),
               ("Entropy", f"{stats['entropy'][layer, head]:.2f} nats")]
    if p:
        numbers.append((f"Share on {', '.join(prefix)}", f"{100 * stats['prefix'][layer, head]:.1f}%"))
    for col, (label, value) in zip(st.columns(3, gap="medium"), numbers):
        col.metric(label, value)
    st.markdown("The first figure shows where the query token looks in this head; the second the whole "
                "T×T matrix of the head — row i is token i's softmax over all tokens, the first rows and "
                "columns are the prefix tokens.")
    st.columns(3)[0].selectbox("Query token", views.query_options(trace), **session.kept("query"),
                               format_func=trace.token_name)
    shared.show(ctx, "attention_overlay", "heads_map")
    shared.show(ctx, "attention_matrix", "heads_matrix", view=figures.replace(shared.current_view(ctx),
                                                                              matrix_log=False))


overview()
chosen_head()
