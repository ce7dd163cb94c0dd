"""The load bench (bench/load.py, bench/load_client.py) speaks Streamlit's browser protocol correctly.

The helpers are checked on their own; the slow test starts the real app with scripts/demo.sh on a
free port and drives one protocol-level visitor through it with fashion-vit. It checks that every
interaction ends with script_finished, that a layer move inside the Explorer's fragment produces
deltas and a new figure, and that bytes are counted — never timings.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("websockets")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402
import load_client  # noqa: E402
import load_http  # noqa: E402


def test_widget_key_is_the_user_key_at_the_end_of_the_element_id():
    assert load_client.widget_key("$$ID-3aaad600cdb15414f76c1fb431f08aae-classroom") == "classroom"
    assert load_client.widget_key("$$ID-3aaad600cdb15414f76c1fb431f08aae-explorer-click") == "explorer-click"
    assert load_client.widget_key("$$ID-3aaad600cdb15414f76c1fb431f08aae-None") == "None"
    assert load_client.widget_key("plain") == ""


def test_click_point_reads_plotly_typed_arrays_as_the_frontend_reports_a_click():
    def typed(code, fmt, values):
        return {"dtype": code, "bdata": base64.b64encode(struct.pack(f"<{len(values)}{fmt}", *values)).decode()}

    spec = json.dumps({"data": [
        {"type": "image", "name": "image"},
        {"type": "scatter", "name": "click targets", "x": typed("f8", "d", [2.0, 6.0, 10.0]),
         "y": [2, 2, 2], "customdata": typed("i2", "h", [1, 2, 3])},
    ]})
    selection, i = load_client.click_point(spec, "click targets", lambda n: n - 1)
    assert i == 2
    assert selection == {"selection": {"points": [{"curve_number": 1, "point_number": 2, "point_index": 2,
                                                   "x": 10.0, "y": 2, "customdata": 3}],
                                       "point_indices": [2], "box": [], "lasso": []}}
    with pytest.raises(load_client.ProtocolError):
        load_client.click_point(spec, "no such trace", lambda n: 0)


def test_two_dimensional_customdata_comes_back_in_rows():
    flat = [0, 1, 5, 2, 3, 7]
    cd = {"dtype": "i4", "bdata": base64.b64encode(struct.pack("<6i", *flat)).decode(), "shape": "2, 3"}
    assert load_client._typed(cd) == [[0, 1, 5], [2, 3, 7]]


def test_http_helpers():
    assert load_http._dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n") == b"Wikipedia"
    body, ctype = load_http.multipart("file", "a.jpg", b"\xff\xd8data\xff\xd9", "image/jpeg")
    boundary = ctype.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"\r\n--{boundary}--\r\n".encode())
    assert b'name="file"; filename="a.jpg"' in body and b"\xff\xd8data\xff\xd9" in body


def test_nearest_rank_percentile():
    assert load.pct([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert load.pct(list(range(1, 101)), 95) == 95
    assert load.pct([5.0], 95) == 5.0
    assert load.pct([], 50) != load.pct([], 50)  # nan


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_lines(log: Path, prefix: str, count: int, wait_s: float = 60.0) -> list[str]:
    """The lines of a server log that start with `prefix`, once there are `count` of them or
    `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    while True:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(prefix)]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


@pytest.fixture()
def demo_server(request, tmp_path):
    """(port, pid, log file) of the real app as scripts/demo.sh starts it (public mode, production
    flags), on 127.0.0.1; ``@pytest.mark.parametrize("demo_server", [{"ENV": "value"}], indirect=True)``
    adds settings."""
    port = _free_port()
    env = dict(os.environ, PYTHON=sys.executable, HF_HUB_OFFLINE="1", PATCHLIGHT_PUBLIC="1",
               **getattr(request, "param", {}))
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "scripts/demo.sh", "--port", str(port), "--address", "127.0.0.1"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        asyncio.run(load.wait_healthy(port, 45, proc))
        yield port, proc.pid, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def test_serve_deflates_the_websocket_at_level_1_with_a_32_kb_window():
    """scripts/serve.py (demo.sh's start of Streamlit): uvicorn's deflate extension, built as
    uvicorn builds it, compresses at zlib level 1 with a 32 KB window — byte for byte what zlib
    gives so, and a copy 8 KB back is found again (uvicorn's own 4 KB window misses it)."""
    import importlib.util
    import zlib

    from uvicorn.protocols.websockets import websockets_sansio_impl as impl
    from websockets.frames import Frame, Opcode

    spec = importlib.util.spec_from_file_location("serve", ROOT / "scripts" / "serve.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    original = impl.ServerPerMessageDeflateFactory
    try:
        assert "uvicorn.protocols.websockets.websockets_sansio_impl" in serve.fast_deflate()
        factory = impl.ServerPerMessageDeflateFactory(server_max_window_bits=12, client_max_window_bits=12,
                                                      compress_settings={"memLevel": 5})
        assert factory.compress_settings == {"memLevel": 8, "level": 1}
        response, extension = factory.process_request_params([], [])
        assert ("server_max_window_bits", "12") not in response  # the browser is told 15 (the default)
        rng = np.random.default_rng(0)
        part = json.dumps([round(float(x), 5) for x in rng.random(1200)])  # ~8.6 KB of numbers
        data = json.dumps({"z": part, "again": part}).encode()
        sent = extension.encode(Frame(Opcode.TEXT, data)).data
        for level, bits, mem, same in ((1, 15, 8, True), (6, 15, 8, False), (1, 12, 5, False)):
            z = zlib.compressobj(level, zlib.DEFLATED, -bits, mem)
            expected = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
            assert (sent == expected[:-4]) is same, level  # the message drops deflate's 00 00 ff ff tail
            if bits == 12:
                assert len(sent) < 0.65 * len(expected), "the second copy should cost next to nothing"
    finally:
        for name in serve._MODULES:
            if name in sys.modules:
                sys.modules[name].ServerPerMessageDeflateFactory = original


def test_pages_option_names_the_pages_between_explorer_rounds():
    assert load.parse_args([]).pages == ("Heads", "Walkthrough")
    assert load.parse_args(["--pages", "Compare, Teach classes ,Data set"]).pages == (
        "Compare", "Teach classes", "Data set")
    with pytest.raises(SystemExit):
        load.parse_args(["--pages", " , "])


def test_arrival_split_separates_the_arrivals_from_the_rest():
    recs = [load_client.Interaction(kind="open", start=100.0 + t, latency=lat, ok=True)
            for t, lat in [(0, 3.0), (2, 2.0), (14, 1.0), (16, 0.2), (30, 0.4)]]
    line = load.arrival_split(recs, ramp=5.0)
    assert line == "p95 in the first 15 s (arrivals): 3.00 s over 3 interactions; afterwards: 0.40 s over 2"
    assert load.arrival_split([], ramp=5.0) == "no interactions"


@pytest.mark.slow
def test_one_visitor_drives_the_real_app(demo_server):
    port, pid, _ = demo_server

    async def journey():
        s = load_client.Session(port, timeout=40)
        try:
            done = [await s.open()]
            assert done[0].ok, done[0].error
            assert {"model_choice", "image_source", "sample"} <= s.keys()
            assert s.value("model_choice").startswith("fashion-vit")  # the default, no model switch needed
            assert set(s.pages) >= {"Walkthrough", "Explorer", "Heads"}
            other = next(o for o in s.options("sample") if "Fashion-MNIST" in o and o != s.value("sample"))
            done.append(await s.set_value("sample", other, "image"))
            done.append(await s.switch_page("Explorer"))
            assert {"layer", "head", "query", "view", "explorer_click"} <= s.keys(), s.keys()
            assert s.widget("layer").fragment_id, "the Explorer's controls live in an st.fragment"
            # the views below the in-browser figure are a fragment of their own (issue 15)
            assert s.widget("query").fragment_id and s.widget("layer").fragment_id != s.widget("query").fragment_id
            before_query = s.value("query")
            # the server-side Layer control drives the views below the overlay: show one that depends on it
            done.append(await s.set_value("view", s.options("view")[1], "view"))  # heads of this layer
            layer = await s.set_value("layer", 1, "layer")
            done.append(layer)
            done.append(await s.set_value("head", s.options("head")[-1], "head"))
            click = await s.click("explorer_click", "click targets", lambda n: n // 2)
            done.append(click)
            after_click = s.value("query")
            done.append(await s.set_value("view", s.options("view")[2], "view"))
            for k in (2, 3):  # more runs of the views below, then a trip to another page and back
                done.append(await s.set_value("layer", k, "layer"))
            done.append(await s.switch_page("Heads"))
            back = await s.switch_page("Explorer")
            done.append(back)
            # the browser still holds the in-browser figure: a reference comes, not ~190 KB again
            # (global.maxCachedMessageAge in .streamlit/config.toml; Streamlit's 2 counts fragment runs)
            assert "explorer_click" not in {name for name, _ in back.figure_sizes} and back.refs >= 1, back
            return done, layer, click, before_query, after_click
        finally:
            await s.close()

    done, layer, click, before_query, after_click = asyncio.run(asyncio.wait_for(journey(), 50))
    for rec in done:
        assert rec.ok, f"{rec.kind}: {rec.error}"
        assert rec.latency is not None  # script_finished arrived
        assert rec.bytes > 0 and rec.messages > 0
    assert layer.deltas > 0 and layer.figures + layer.refs >= 1
    assert layer.bytes_by["plotly_chart"] > 0 and layer.figure_bytes > 0  # the view below was redrawn
    assert "selectbox" not in layer.bytes_by  # ... and nothing above it: not the query token's control
    assert "selectbox" in click.bytes_by  # a click reruns the figure's part and the views below
    assert "new_session" in layer.bytes_by and "script_finished" in layer.bytes_by
    assert after_click != before_query, "a click on a patch makes it the query token"
    # demo.sh deflates the websocket: the figures crossed the network smaller than they arrived
    assert 0 < sum(r.wire for r in done) < 0.8 * sum(r.bytes for r in done)

    # The bench's own visitor, for a few seconds, with the RSS of the server sampled.
    args = load.parse_args(["--port", str(port), "--server-pid", str(pid), "--visitors", "1", "--duration", "6",
                            "--think", "0.2", "--model", "fashion-vit", "--timeout", "30", "--ramp", "0"])
    res = asyncio.run(asyncio.wait_for(load.run_visitors(args, 1, "test"), 45))
    kinds = {r.kind for r in res["records"]}
    assert {"open", "image", "page"} <= kinds and kinds & {"layer", "head", "query"}, kinds
    assert all(r.ok for r in res["records"]), load.failures(res["records"])
    assert res["rss_peak"] > 50 * 2**20
    assert "| 1 |" in load.level_row(res) and "layer" in load.kind_table(res["records"])


def test_a_teaching_visitor_uploads_photos_of_its_own_and_fits_a_head(demo_server):
    """--teach-share: the bench's visitor goes to Teach classes, uploads photos into both classes
    (several files in one uploader at once) and presses the fit's button, through the protocol."""
    port, pid, _ = demo_server
    args = load.parse_args(["--port", str(port), "--server-pid", str(pid), "--visitors", "1", "--duration", "4",
                            "--think", "0.2", "--model", "fashion-vit", "--timeout", "40", "--ramp", "0",
                            "--teach-share", "1", "--teach-images", "3"])
    res = asyncio.run(asyncio.wait_for(load.run_visitors(args, 1, "test"), 90))
    records = res["records"]
    assert all(r.ok for r in records), load.failures(records)
    uploads = [r for r in records if r.kind == "teach_upload"]
    assert len(uploads) == 2 and all(r.uploaded > 3 * 1000 for r in uploads)  # three photos each
    fit = next(r for r in records if r.kind == "teach")
    live = [name for name, _ in fit.figure_sizes if name.startswith("teach_live_")]
    assert len(live) >= 5, fit.figure_sizes  # the loss drawn as it fell, then the page with the head
    assert "teach_curve" in {name for name, _ in fit.figure_sizes}
    assert "| teach |" in load.kind_table(records).replace("| teach_upload |", "")


@pytest.mark.slow
@pytest.mark.parametrize("demo_server", [{"PATCHLIGHT_UPLOAD_TOTAL_MB": "1"}], indirect=True)
def test_the_running_server_enforces_the_upload_quota(demo_server):
    """Issue 13: the quota is installed on the real server's file manager; an upload over the
    server-wide limit is refused with 429 and a message, and the session keeps working."""
    port, _, _ = demo_server

    async def journey():
        s = load_client.Session(port, timeout=40)
        try:
            assert (await s.open()).ok
            assert (await s.set_value("image_source", "Upload", "image")).ok
            small = (ROOT / "samples" / "fashion-7-sneaker.png").read_bytes()
            fits = await s.upload("upload", "small.png", small, "image/png")
            too_big = await s.upload("upload", "big.png", small + b"\0" * (2 * 1024 * 1024), "image/png")
            again = await s.upload("upload", "again.png", small, "image/png")
            return fits, too_big, again
        finally:
            await s.close()

    fits, too_big, again = asyncio.run(asyncio.wait_for(journey(), 60))
    assert fits.ok and again.ok, (fits.error, again.error)
    assert not too_big.ok and "429" in too_big.error and "limit of 1 MB" in too_big.error


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is missing (apt-get install nginx-light)")
@pytest.mark.parametrize("demo_server", [{"WORKERS": "2"}], indirect=True)
def test_two_workers_behind_the_sticky_proxy(demo_server):
    """scripts/demo.sh --workers 2: nginx routes every request of a visitor (page, websocket,
    upload) to one worker by its route cookie, so sessions work as with one process."""
    port, _, log = demo_server

    async def journeys():
        routes, results = set(), []
        for _ in range(4):
            s = load_client.Session(port, timeout=40)
            try:
                results.append(await s.open())
                results.append(await s.set_value("image_source", "Upload", "image"))
                small = (ROOT / "samples" / "fashion-7-sneaker.png").read_bytes()
                results.append(await s.upload("upload", "mine.png", small, "image/png"))
                results.append(await s.switch_page("Explorer"))
                results.append(await s.set_value("layer", 2, "layer"))
                routes.add(s.jar.get("patchlight_route"))
            finally:
                await s.close()
        return routes, results

    routes, results = asyncio.run(asyncio.wait_for(journeys(), 90))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len(routes) == 4 and None not in routes  # each visitor got its own route cookie
    # Every worker warmed itself at start (scripts/serve.py, app_pages.warm), not only the one
    # a first visitor's cookie went to.
    warmed = _log_lines(log, "serve.py: warmed: ", count=2)
    assert len(warmed) == 2, log.read_text(errors="replace")[-2000:]
    from model import onnx_dinov2

    photos = onnx_dinov2.find_onnx() is not None  # dinov2-small's weights are installed
    expected = ("fashion-vit, dinov2-small loaded and 18 gallery images traced in " if photos
                else "fashion-vit loaded and 10 gallery images traced in ")
    assert all(line.startswith("serve.py: warmed: " + expected) for line in warmed), warmed
