"""Streamlit glue for how far to trust a map: the caches of deletion/insertion, the randomisation
check and the Compare page's panels (numbers from app_core.faithfulness), and the button that
starts a slow measurement. Shared by every session, like shared.py's caches.
"""
from __future__ import annotations

import dataclasses
import html

import streamlit as st

from app_core import faithfulness, figures, safe_text, sources, views
from app_pages import shared
from model import cards
from model.explain import EXTRA_METHODS


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def maps_faithfulness(model_key: str, digest: str, class_index: int | None, fusion: str, discard_ratio: float,
                      residual_alpha: float, start_layer: int, query: int, extra_method: str, baseline: str, _ctx):
    """Deletion/insertion of the explanation view's maps, per (model, image, class, map settings,
    the added method, baseline): one batched pass for all maps and the random reference."""
    maps = shared.explanation_maps(model_key, digest, class_index, fusion, discard_ratio, residual_alpha, start_layer,
                                   query, extra_method, _ctx)
    return faithfulness.measure(_ctx.model, _ctx.trace, maps, class_index, baseline)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def randomisation(model_key: str, digest: str, class_index: int | None, _ctx):
    return faithfulness.run_randomisation(_ctx.model, _ctx.data, _ctx.image_name, class_index)


def for_view(ctx: shared.Context, view: figures.View):
    return maps_faithfulness(ctx.model_key, ctx.digest, view.class_index, view.fusion, view.discard_ratio,
                             view.residual_alpha, view.start_layer, view.query, view.extra_method, view.baseline, ctx)


def randomisation_for(ctx: shared.Context, view: figures.View):
    return randomisation(ctx.model_key, ctx.digest, view.class_index, ctx)


# ----------------------------------------------------------------------------- measuring on demand

def wanted(ctx: shared.Context, what: str, quick: bool, label: str, help_text: str) -> bool:
    """True when `what` may be computed now: at once when it is quick, else after the user pressed
    the button (remembered per model and image, so the result stays while they look around)."""
    if quick:
        return True
    done = st.session_state.setdefault("_measured", set())
    mark = (what, ctx.model_key, ctx.digest)
    if mark in done:
        return True
    if st.button(label, key=f"measure_{what}", help=help_text, icon=":material/speed:"):
        done.add(mark)
        return True
    return False


# ----------------------------------------------------------------------------- the Compare page

def other_context(ctx: shared.Context, source: str) -> shared.Context:
    """The same image on a second model (loaded and traced through the shared caches)."""
    key = sources.source_key(source)
    model = shared.get_model(key, source)
    trace = shared.trace_of(key, ctx.digest, ctx.image_name, model, ctx.data,
                            f"{safe_text.md_text(source)} on {ctx.image_label}")
    return dataclasses.replace(ctx, source=source, model_key=key, model=model, facts=cards.model_facts(model),
                               trace=trace)


def _class_of(ctx: shared.Context, view: figures.View) -> int | None:
    return view.class_index if ctx.trace.has_head else None


def _maps_and_faith(ctx: shared.Context, view: figures.View, class_index: int | None, query: int):
    maps = shared.explanation_maps(ctx.model_key, ctx.digest, class_index, view.fusion, view.discard_ratio,
                                   view.residual_alpha, view.start_layer, query, view.extra_method, ctx)
    faith = None
    if ctx.trace.has_head:
        faith = maps_faithfulness(ctx.model_key, ctx.digest, class_index, view.fusion, view.discard_ratio,
                                  view.residual_alpha, view.start_layer, query, view.extra_method, view.baseline, ctx)
    return maps, faith


def with_compare_defaults(ctx: shared.Context, view: figures.View, titles: list[str]) -> figures.View:
    """The view with what the Compare page has not chosen yet (e.g. a Downloads click before any
    visit) filled in as the page would: a class map (else the first map), the top 3 classes, the
    first other built-in model."""
    from model.explain import CLASS_METHODS, METHOD_TITLES

    changes = {}
    if view.compare_method not in titles:
        class_titles = [METHOD_TITLES[m] for m in CLASS_METHODS if METHOD_TITLES.get(m) in titles]
        changes["compare_method"] = (class_titles if view.compare_mode == "classes" and class_titles else titles)[0]
    if not view.compare_classes and ctx.trace.has_head:
        changes["compare_classes"] = tuple(int(k) for k in ctx.trace.logits[0].argsort()[::-1][:3])
    if not view.compare_model:
        others = [c for c in sources.BUILTIN_CHOICES if sources.source_key(c) != ctx.model_key]
        changes["compare_model"] = others[0] if others else ctx.source
    return dataclasses.replace(view, **changes) if changes else view


def compare_panels(ctx: shared.Context, view: figures.View) -> list:
    """The viz.MapPanel list the "compare" figure draws, for the view's compare mode."""
    view = with_compare_defaults(ctx, view, list(shared.explanation_maps(
        ctx.model_key, ctx.digest, _class_of(ctx, view), view.fusion, view.discard_ratio, view.residual_alpha,
        view.start_layer, view.query, view.extra_method, ctx)))
    if view.compare_mode == "classes" and not ctx.trace.has_head:
        raise ValueError(f"{ctx.facts['name']} has no classification head, so there are no classes to compare")
    items = []
    if view.compare_mode == "methods":  # every method this model and image allow, each map cached on its own
        for extra in ("none", *EXTRA_METHODS):
            if views.explanation_methods(ctx.trace, extra)[1] is not None:
                continue  # e.g. attention flow on a large grid, a class method without a head
            maps, faith = _maps_and_faith(ctx, dataclasses.replace(view, extra_method=extra), _class_of(ctx, view),
                                          view.query)
            for title, m in maps.items():
                if all(item[0] != title for item in items):
                    items.append((title, ctx.trace, m, faith and faith.curves[title], faith and faith.random,
                                  view.query))
    elif view.compare_mode == "classes":
        names = ctx.trace.class_names()
        for k in view.compare_classes:
            maps, faith = _maps_and_faith(ctx, view, int(k), view.query)
            p = float(ctx.trace.probabilities()[0][int(k)])
            items.append((f"{names[int(k)]} (p = {p:.2f})", ctx.trace, maps[view.compare_method],
                          faith.curves[view.compare_method], faith.random, view.query))
    else:
        for c in (ctx, other_context(ctx, view.compare_model)):
            query = faithfulness.query_in(view.query, ctx.trace, c.trace)
            top = int(c.trace.logits[0].argmax()) if c.trace.has_head else None
            maps, faith = _maps_and_faith(c, view, view.class_index if c is ctx else top, query)
            if view.compare_method not in maps:
                raise ValueError(f"{c.facts['name']} cannot show {view.compare_method} (it has no class head); "
                                 "choose rollout to compare it")
            items.append((html.escape(str(c.facts["name"])), c.trace, maps[view.compare_method],
                          faith and faith.curves[view.compare_method], faith and faith.random, query))
    return faithfulness.compare_panels(items)
