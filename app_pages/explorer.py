"""Explorer: click a patch (or pick CLS / a register) and see its attention in every layer and
head, the T×T matrix, and rollout / gradient rollout / Chefer maps side by side."""
import streamlit as st

from app_pages import session, shared, trust
from model import FUSIONS, heads
from model.explain import EXTRA_METHODS, METHOD_DESCRIPTIONS, METHOD_TITLES
from app_core import clicks, faithfulness, figures, safe_text, settings, views

ctx = shared.context()
trace = ctx.trace
p = trace.num_prefix_tokens
prefix = list(trace.prefix_names)

shared.page_title("Explorer", f"{ctx.model_label} on {ctx.image_label}. Click any patch of the image to make it the "
                  "query, or pick a token in the list. Changing a layer, head, token, method setting or colormap "
                  "never re-runs the model.")


def _clicked() -> None:
    """A click on a patch makes it the query, at the layer and head the figure showed then (the
    slider and head buttons run in the browser; the click is how the server learns them)."""
    event = st.session_state.get("explorer_click")
    points = event["selection"]["points"] if event else []
    hit = clicks.scrub_from_points(points, trace)
    if hit is None:
        return
    token, layer, head = hit
    session.set_setting("query", token)
    if layer is not None:
        session.set_setting("layer", layer)
        session.set_setting("head", head)
    st.session_state[SCRUB_START] = (token, ss_layer_head())


SCRUB_START = "_scrub_start"  # (query, (layer, head)) the scrubbing figure opens at


def ss_layer_head() -> tuple[int, int]:
    return st.session_state["layer"], st.session_state["head"]


def scrub_view(query: int) -> tuple[int, int]:
    """The layer and head the in-browser figure opens at: the session's when the query changed
    (or a click set them), NOT the live Layer/Head controls of the views below — so moving those
    does not send the figure (~150 KB) again (issue 15)."""
    start = st.session_state.get(SCRUB_START)
    if not start or start[0] != query:
        start = (query, ss_layer_head())
        st.session_state[SCRUB_START] = start
    return start[1]


@st.fragment
def explorer() -> None:
    ss = st.session_state
    # The image and its controls side by side, so that on a projector both fit one screen and
    # the teacher never scrolls between a control and the map it changes (issue 10).
    image_col, control_col = st.columns([3, 2] if session.classroom() else [2, 1], gap="medium")
    control_col.selectbox("Query token", views.query_options(trace), **session.kept("query"),
                          format_func=trace.token_name,
                          help="Click a patch of the image, or pick a token here: prefix tokens (CLS, "
                               "distillation, registers) first, then the patches row by row.")
    with control_col:
        if not session.classroom():
            with st.expander("Display: colormap, opacity, smoothing"):
                st.selectbox("Colormap", settings.COLORMAPS, **session.kept("colormap"))
                st.slider("Overlay opacity", 0.0, 1.0, step=0.05, **session.kept("opacity"))
                st.radio("Map upsampling", settings.UPSAMPLES, **session.kept("upsample"), horizontal=True,
                         format_func={"nearest": "blocks (exact)", "smooth": "smooth"}.get)
    query = ss["query"]
    with control_col:
        st.markdown(f"**{trace.token_name(query)}**: the brighter a patch, the more of this token's attention goes "
                    "there. The outlined patch is the query itself. Slide through the layers and pick a head "
                    "in the figure: that happens in your browser, at once.")

    with image_col:
        start_layer, start_head = scrub_view(query)
        shared.show(ctx, "attention_scrub", "explorer_click", on_select=_clicked,
                    view=figures.replace(shared.current_view(ctx), layer=start_layer, head=start_head))
    views_below()


@st.fragment
def views_below() -> None:
    """The layer, head and view controls and the view they drive: their own fragment, so that
    moving them (half of what a class does here) reruns this part only, not the in-browser
    figure above and its controls (issue 15). A click on the figure or a new query reruns both."""
    ss = st.session_state
    query = ss["query"]
    with st.container():
        st.markdown("**Layer and head of the views below** (a click on a patch above brings them to what the "
                    "figure shows)")
        layer_col, head_col = st.columns(2)
        layer_col.slider("Layer", 0, trace.L - 1, **session.kept("layer"))
        shared.head_picker(head_col, trace.H)
        layer, head = ss["layer"], ss["head"]
        if p:
            share = views.prefix_share(trace, layer, head, query)
            st.caption(f"In layer {layer}, head {head}, {100 * share:.1f}% of the query's attention goes to the "
                       f"prefix token{'s' if p > 1 else ''} ({', '.join(prefix)}), which the maps do not show.")
        st.segmented_control("View", settings.VIEWS, **session.kept("view"), format_func=settings.VIEW_LABELS.get,
                             required=True,
                             label_visibility="collapsed")
        view = ss["view"]
        if view == "matrix":
            st.toggle("Log colour scale", key="matrix_log", help="Small weights become visible on a log₁₀ scale.")
        elif view == "mask":
            st.columns([1, 2])[0].slider(
                "Share of the attention", 0.1, 1.0, 0.6, 0.05, key="mask_threshold",
                help="DINO (Caron et al. 2021) keeps the smallest set of patches holding 60% of the attention.")
        elif view == "explain":
            explanation_controls()
        if view == "sanity":
            randomisation_view()
            return
        shared.show(ctx, VIEW_FIGURES[view], "explorer_view")
        if view in ("grid", "heads", "layers"):
            st.caption("All tiles share one colour scale, which saturates at the 99.5th percentile so that one "
                       "very sharp head does not leave the others black.")
        elif view == "explain":
            st.caption("Each map is divided by its largest absolute value, so all share one colour scale up to 1 "
                       "(AttnLRP's negative relevance goes below 0). Rollout and attention flow follow the chosen "
                       "query token; the class maps explain the class logit, which the model reads from CLS.")
            method_descriptions()
            faithfulness_view()


VIEW_FIGURES = {"grid": "layer_head_grid", "heads": "heads_of_layer", "layers": "layers_of_head",
                "matrix": "attention_matrix", "mask": "mass_mask", "explain": "explanations",
                "sanity": "randomisation_check"}


def explanation_controls() -> None:
    names = trace.class_names()
    class_col, method_col = st.columns(2)
    if trace.has_head:
        top = views.top_classes(trace, 1)[0]["class"]
        class_col.selectbox("Class to explain", [-1] + list(range(trace.K)), **session.kept("target_class"),
                            format_func=lambda i: f"predicted: {top}" if i == -1 else names[i])
        class_col.caption(f":material/model_training: The class maps explain a logit from: "
                          f"{heads.head_description(ctx.model, quote=safe_text.md_text)}.")
    else:
        class_col.info(f"{ctx.model_label} has no classification head, so no class is explained: gradient rollout, "
                       "Chefer et al., LeGrad, AttnLRP and Grad-CAM need a class logit. Rollout and attention flow "
                       "need none. Teach it a few classes on the **Teach classes** page to see the others.",
                       icon=":material/info:")
    method_col.selectbox("Add a method", ("none",) + EXTRA_METHODS, **session.kept("extra_method"),
                         format_func=lambda m: "none" if m == "none" else METHOD_TITLES[m],
                         help="One more map beside rollout and the gradient maps; what each computes is below "
                              "the figure. LeGrad, AttnLRP and Grad-CAM run the model backwards once for this "
                              "image and class (then cached).")
    _, why_not = views.explanation_methods(trace, st.session_state["extra_method"])
    if why_not:
        st.warning(why_not, icon=":material/block:")
    if not session.classroom():
        e1, e2, e3, e4 = st.columns(4)
        e1.selectbox("Head fusion", FUSIONS, **session.kept("fusion"),
                     help="How rollout combines the heads of a layer.")
        e2.slider("Discard ratio", 0.0, 0.99, step=0.05, **session.kept("discard_ratio"),
                  help="Fraction of the weakest patch-to-patch attention set to 0 in each layer.")
        e3.slider("Residual weight α", 0.0, 1.0, step=0.05, **session.kept("residual_alpha"),
                  help="Â = α·A + (1−α)·I models the skip connection (Abnar & Zuidema use 0.5).")
        e4.slider("Start layer", 0, trace.L - 1, **session.kept("start_layer"), help="Compose layers from this one on.")


def method_descriptions() -> None:
    """What each shown map computes, one paragraph per method (model.explain.METHOD_DESCRIPTIONS)."""
    methods, _ = views.explanation_methods(trace, st.session_state["extra_method"])
    with st.expander("What each map computes"):
        for method in methods:
            st.markdown(f"**{METHOD_TITLES[method]}.** {METHOD_DESCRIPTIONS[method]}")


PROTOCOL = ("Patches are removed (deletion) or restored onto the baseline (insertion) in the map's order, highest "
            "first (ties by patch index), one patch per step (N/256 per step above 256 patches); the curve is the "
            "class probability p after each step, its AUC the area under it over the fraction of patches. "
            "A faithful map: deletion AUC below the random orders' (the mean of 10 seeded orders, dotted), "
            "insertion AUC above.")


def faithfulness_view() -> None:
    """Under the maps: their deletion/insertion curves and AUCs against random orders."""
    st.markdown("**How far to trust these maps: deletion and insertion** (Petsiuk et al. 2018)")
    if not trace.has_head:
        st.info(f"{ctx.model_label} has no classification head, so there is no class probability to delete or "
                "insert patches against: deletion and insertion need a classifier (e.g. fashion-vit).",
                icon=":material/info:")
        return
    st.radio("Baseline (what replaces a patch)", settings.BASELINES, **session.kept("baseline"), horizontal=True,
             format_func=faithfulness.BASELINE_LABELS.get)
    if trust.wanted(ctx, "faithfulness", faithfulness.is_quick(trace), "Measure deletion and insertion",
                    f"{trace.N} patches: {trace.N + 1 if trace.N <= 256 else 257} steps × 2 curves × (each map + 10 "
                    "random orders) forward passes; this takes a while on a CPU."):
        with st.spinner("Deleting and inserting patches…"):
            shared.show(ctx, "faithfulness", "explorer_faithfulness")
        st.caption(PROTOCOL)


def randomisation_view() -> None:
    """The model-randomisation check (Adebayo et al. 2018) of every method, live."""
    st.markdown("**Do the maps depend on the model?** The model is re-initialised from the top down — the class "
                "head, then the last block, …, the first block, then the embeddings — and every method's map "
                "(rollout and attention of CLS, the class maps of the chosen class) is computed again. The line is "
                "its rank correlation with the trained model's map: a map that stays near 1 while the model is "
                "destroyed is not about the model (Adebayo et al. 2018).")
    if trust.wanted(ctx, "randomisation", faithfulness.is_quick(trace), "Run the randomisation check",
                    f"{trace.L + 2} re-initialisation steps, each method's map after each (about 10 s for "
                    "dinov2-small on a CPU)."):
        with st.spinner("Re-initialising the model layer by layer…"):
            shared.show(ctx, "randomisation_check", "explorer_view")
            check = trust.randomisation_for(ctx, shared.current_view(ctx))
        st.caption(faithfulness.randomisation_summary(check, METHOD_TITLES))
        shared.show(ctx, "randomisation_maps", "explorer_randomisation_maps")
        st.caption("Each map ÷ its maximum, one colour scale; under each, its rank correlation ρ with the trained "
                   "model's map (first column). Rollout and attention follow CLS here; the class maps explain "
                   "the class chosen under Rollout & class maps (or the predicted one).")


explorer()
