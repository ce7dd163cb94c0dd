"""Warm a demo worker before its first visitor: load the built-in models and trace the gallery.

A fresh Streamlit process does its heavy first-time work in the script run of whoever comes
first: importing the pages' libraries (~1.8 s of one core here), loading dinov2-small (~1.3 s),
tracing the gallery photo chosen (~0.2 s each). Behind a sticky proxy every visitor routed to
that worker waits meanwhile, and in class they all come within seconds (issue 15). A teacher
trying the demo beforehand warms only the worker their own cookie goes to.

`warm` does that work once, at start (scripts/serve.py calls it in a thread as soon as
Streamlit's runtime exists; PATCHLIGHT_WARM=0 turns it off), through the same caches a page
uses (`app_pages.shared`), so a visitor's script finds everything there. The models stay (their
cache has no time limit); the gallery's traces are ordinary entries of the trace cache, which
keeps the newest 12 for up to 30 minutes: holding them for the life of the process was measured
and dropped — with every student uploading a photo of their own it added ~0.4 GB per worker
(3.9 against 3.1 GB at 40 visitors) for traces nobody used. A gallery photo whose trace has gone
costs its first visitor on each worker ~0.2 s again.
"""
from __future__ import annotations

import dataclasses
import time

from app_core import sources
from app_pages import shared
from model.gallery import list_samples


@dataclasses.dataclass(frozen=True)
class Warmed:
    """What `warm` loaded and traced, what it could not load and why, and how long it took."""

    models: tuple[str, ...]
    traces: int
    seconds: float
    failed: tuple[tuple[str, str], ...] = ()  # (model, why)

    def __str__(self) -> str:
        said = (f"{', '.join(self.models) or 'no model'} loaded and {self.traces} gallery "
                f"image{'s' if self.traces != 1 else ''} traced in {self.seconds:.1f} s")
        return "; ".join([said] + [f"{choice} not loaded ({why})" for choice, why in self.failed])


def warm(models: tuple[str, ...] = sources.BUILTIN_CHOICES) -> Warmed:
    """Load each built-in model in `models` into the model cache and trace every gallery sample
    made for it into the trace cache (see the module docstring). A model that does not load is
    skipped and named with the reason (its visitors get the page's own message). Safe beside
    visitors: the caches compute a key once, whoever asks first."""
    started = time.perf_counter()
    loaded, failed, traced = [], [], 0
    for choice in models:
        source = sources.resolve_source(choice)
        key = sources.source_key(source)
        try:
            model = shared.get_model(key, source)
        except ValueError as err:  # e.g. dinov2-small without its weights package
            failed.append((choice, str(err)))
            continue
        loaded.append(choice)
        for sample in list_samples():
            if sample.suggested_model != choice:
                continue
            name, data, digest = shared.gallery_image(sample.key)
            shared.live_trace(key, digest, name, model, data)
            traced += 1
    return Warmed(tuple(loaded), traced, time.perf_counter() - started, tuple(failed))
