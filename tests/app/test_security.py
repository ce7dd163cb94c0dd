"""The public demo's security properties (issue 13), driven through the real app script.

One visitor must never change what another sees: anything shared between sessions is keyed
by the bytes actually used, and user-controlled text reaches the page as inert text.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from model.gallery import get_sample

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TIMEOUT = 180

pytestmark = pytest.mark.filterwarnings("ignore")


def _plotly_array(value) -> np.ndarray:
    """A figure array as plotly serialises it: a nested list or a base64 typed array."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = [int(n) for n in shape.split(",")]
        return flat.reshape(shape) if shape else flat
    return np.asarray(value)


def _data_uri_pixels(uri: str) -> np.ndarray:
    """The RGB pixels of a ``data:image/…;base64,…`` URI, decoded here (not through viz)."""
    head, _, payload = uri.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64"), head[:40]
    with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
        return np.asarray(im.convert("RGB"))


def _first_image(at: AppTest) -> np.ndarray:
    """The pixels of the first image trace on the page (the walkthrough's patch grid)."""
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        for trace in spec.get("data", []):
            if trace.get("type") == "image":
                if "source" in trace:  # the photo as a compressed data URI (issue 15)
                    return _data_uri_pixels(trace["source"])
                return _plotly_array(trace["z"])
    raise AssertionError("no image trace on the page")


def _red_png(size=(28, 28)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def test_new_bytes_under_an_old_file_id_cannot_poison_the_shared_trace_cache():
    """Issue 13, item 1: visitor A uploads the bytes of a gallery sample, the shared cache
    forgets that trace, then A sends a red image under the *same* file id. A visitor who then
    opens that gallery sample must see the sample, not A's red picture."""
    st.cache_data.clear()
    st.cache_resource.clear()
    sample = get_sample("fashion-ankle-boot")  # the default sample of the default model
    attacker = AppTest.from_file(APP, default_timeout=TIMEOUT)
    attacker.run()
    attacker.radio(key="image_source").set_value("upload").run()
    attacker.file_uploader(key="upload").set_value((sample.path.name, sample.path.read_bytes(), "image/png")).run()
    assert not attacker.exception
    file_id = attacker.session_state["upload"].file_id

    st.cache_data.clear()  # other visitors' uploads evict the sample's trace
    st.cache_resource.clear()
    # The client re-sends new bytes under the file id it already holds (what a PUT to the
    # upload endpoint with the old id does); AppTest registers exactly these files.
    attacker.file_uploader(key="upload")._files = [(file_id, sample.path.name, _red_png(), "image/png")]
    attacker.run()
    assert not attacker.exception
    seen_by_attacker = _first_image(attacker)
    # fashion-vit sees grey: the red square arrives as one flat grey level
    assert seen_by_attacker.std() == 0, "the attacker's own session should show the flat image it uploaded"

    visitor = AppTest.from_file(APP, default_timeout=TIMEOUT)
    visitor.run()
    assert not visitor.exception
    assert visitor.session_state["sample"] == sample.key
    seen = _first_image(visitor)
    assert seen.std() > 10, "a new visitor sees the attacker's flat red image instead of the gallery sample"
    expected = np.asarray(Image.open(sample.path).convert("L"), dtype=np.float64)
    assert np.corrcoef(seen[..., 0].astype(np.float64).ravel(), expected.ravel())[0, 1] > 0.5


# ----------------------------------------------------------------------------- markdown injection

ATTACKS = [
    "[Log in again](http://evil.example/login)",
    "![pixel](http://evil.example/track.png)",
    "<http://evil.example>",
    "see www.evil.example now",
    "https://evil.example/a",
    "**bold** _em_ `code` ~~gone~~",
    "# heading\n- item\n> quote",
    ":red[coloured] :material/warning: $x^2$",
    "a\\b [x]: http://evil.example",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_md_text_renders_as_the_text_itself(text):
    """Escaped text, rendered by a CommonMark parser, has no link, image, emphasis, heading,
    list or quote, and reads exactly as typed (line breaks folded to spaces)."""
    import html
    import re

    import markdown_it

    from app_core.safe_text import md_text

    rendered = markdown_it.MarkdownIt("commonmark").enable("strikethrough").render(md_text(text))
    for tag in ("<a", "<img", "<em", "<strong", "<code", "<h1", "<ul", "<blockquote", "<s>", "<del"):
        assert tag not in rendered, (text, rendered)
    shown = html.unescape(re.sub(r"</?p>", "", rendered)).strip()
    assert shown == " ".join(text.split())
    for token in ("](", ":red[", "www.", "://"):
        if token in text:
            assert token not in md_text(text), "the raw construct survives escaping"


def test_query_parameters_and_hub_ids_are_shown_as_text():
    """Issue 13, item 2: a crafted link must not put the attacker's link or image in the app's
    own warning and error boxes."""
    link = "[Log in again](http://evil.example/login)"
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params[link] = "1"
    at.query_params["view"] = "![x](http://evil.example/p.png)"
    at.query_params["model"] = "hf:[x](http://evil.example)/y"
    at.run()
    assert not at.exception
    shown = [w.value for w in at.warning] + [e.value for e in at.error]
    assert any("Log in again" in text for text in shown), shown
    for text in shown:
        assert "](" not in text and "![" not in text, text


# ----------------------------------------------------------------------------- upload quotas

def test_a_session_keeps_only_its_newest_uploads():
    from app_core import uploads

    mb = 1024 * 1024
    assert uploads.files_to_evict([], 5 * mb) == []
    held = [(f"f{i}", mb) for i in range(uploads.MAX_SESSION_FILES)]
    assert uploads.files_to_evict(held, mb) == ["f0"]
    big = [("a", 19 * mb), ("b", 19 * mb)]
    assert uploads.files_to_evict(big, 19 * mb) == ["a"]  # 40 MB per session
    assert uploads.files_to_evict([("a", 1)], 1) == []


def test_the_upload_manager_enforces_both_quotas(monkeypatch):
    """Issue 13, item 3: 30 uploads of 19 MB under chosen file ids leave at most the session's
    quota in memory, and the server-wide total refuses more with a message."""
    from starlette.exceptions import HTTPException
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from app_core import uploads
    from app_pages import session

    manager = session._QuotaFileManager("/_stcore/upload_file")
    blob = b"x" * (19 * 1024 * 1024)
    for i in range(30):
        manager.add_file("attacker", UploadedFileRec(file_id=f"id{i}", name="a.png", type="image/png", data=blob))
    held = manager.file_storage["attacker"]
    assert len(held) <= uploads.MAX_SESSION_FILES
    assert sum(len(r.data) for r in held.values()) <= uploads.MAX_SESSION_MB * 1024 * 1024
    assert list(held)[-1] == "id29"  # the newest upload is the one kept in use

    monkeypatch.setenv(uploads.TOTAL_UPLOAD_ENV, "60")
    with pytest.raises(HTTPException) as refused:
        for session in range(5):
            manager.add_file(f"s{session}", UploadedFileRec(file_id="x", name="b.png", type="image/png", data=blob))
    assert refused.value.status_code == 429 and "try again" in refused.value.detail
    assert manager._total_bytes <= 60 * 1024 * 1024


def test_messages_are_sentences_that_keep_user_values_as_typed():
    from app_core.safe_text import message

    assert message("type a repo id") == "Type a repo id\\."
    assert message("broken.png is not an image").startswith("broken\\.png")  # a file name keeps its case
    assert message("Done!") == "Done\\!"
