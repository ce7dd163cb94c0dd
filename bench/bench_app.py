"""Speed of the running app: server time per interaction and upload-to-first-figure.

    python bench/bench_app.py [--model dinov2-small] [--n 40] [--browser]

Interactions are measured with Streamlit's AppTest, which executes the real script (app.py,
the sidebar, the page) exactly as the server does, minus the network; AppTest reruns the
whole script where the server reruns only the page's fragment, so these figures are an upper
bound. Each interaction changes one widget (layer, head, query token, colormap, opacity, view)
on the Explorer page with the model loaded and the image traced — the situation of a user
exploring. Upload-to-first-figure uploads a new image (new bytes, so nothing is cached but
the model) and times the run that decodes it, traces it and builds the Explorer's figures.

--browser also drives a real `streamlit run` server in headless Chromium and reports the
wall time from a key press on the layer slider until the app is idle again (server time,
websocket and drawing included).

Targets (issue): median interaction ≤ 150 ms with dinov2-small on 2 CPU cores; upload to
first figure ≤ 2 s with the model loaded.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _photo(seed: int) -> bytes:
    """A real photo from the gallery, changed in one pixel so that its hash is new."""
    from PIL import Image

    img = Image.open(ROOT / "samples" / "astronaut.jpg").convert("RGB")
    arr = np.asarray(img).copy()
    arr[0, 0] = [seed % 256, (seed // 256) % 256, 7]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def interactions(at, n: int) -> list[tuple[str, float]]:
    """Change one widget at a time; return (what, seconds) for each rerun."""
    td_L = at.slider(key="layer").max + 1
    td_H = len(at.segmented_control(key="head").options)
    td_T = len(at.selectbox(key="query").options)
    plan = []
    views = ["grid", "matrix", "grid", "heads", "grid"]
    for i in range(n):
        kind = i % 6
        if kind == 0:
            plan.append(("layer", lambda i=i: at.slider(key="layer").set_value((i // 6 * 5 + 3) % td_L)))
        elif kind == 1:
            plan.append(("head", lambda i=i: at.segmented_control(key="head").set_value((i // 6 + 1) % td_H)))
        elif kind == 2:
            plan.append(("query", lambda i=i: at.selectbox(key="query").set_value(1 + (i * 37) % (td_T - 1))))
        elif kind == 3:
            plan.append(("colormap", lambda i=i: at.selectbox(key="colormap").set_value(
                ["viridis", "inferno", "magma", "cividis"][(i // 6) % 4])))
        elif kind == 4:
            plan.append(("opacity", lambda i=i: at.slider(key="opacity").set_value(
                round(0.3 + 0.05 * (i // 6 % 8), 2))))
        else:
            plan.append(("view", lambda i=i: at.segmented_control(key="view").set_value(views[(i // 6) % len(views)])))
    out = []
    for what, change in plan:
        change()
        t0 = time.perf_counter()
        at.run()
        out.append((what, time.perf_counter() - t0))
        if at.exception:
            raise SystemExit(f"the app raised: {at.exception[0].value}")
    return out


def upload_to_first_figure(at, repeats: int) -> list[float]:
    at.radio(key="image_source").set_value("upload").run()
    times = []
    for k in range(repeats):
        data = _photo(1000 + k)
        at.file_uploader(key="upload").set_value((f"photo{k}.jpg", data, "image/jpeg"))
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        if at.exception or at.error or not at.get("plotly_chart"):
            raise SystemExit("upload did not produce a figure: "
                             + str([e.value for e in list(at.exception) + list(at.error)]))
    return times


def browser_interactions(model: str, n: int) -> list[float]:
    """Real server + Chromium: layer slider key presses, wall time until the app is idle."""
    import socket
    import subprocess

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    times = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"])
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            for _ in range(60):
                try:
                    page.goto(f"http://127.0.0.1:{port}/explorer?model={model}&sample=chelsea")
                    break
                except Exception:  # the server is still starting
                    time.sleep(0.5)
            page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=120_000)
            idle = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
            page.wait_for_function(idle, timeout=120_000)
            thumb = page.get_by_test_id("stMain").get_by_test_id("stSlider").first.get_by_role("slider")
            layer = 0
            for i in range(n):
                step = 1 if (i // 11) % 2 == 0 else -1
                layer += step
                thumb.focus()
                t0 = time.perf_counter()
                thumb.press("ArrowRight" if step > 0 else "ArrowLeft")
                page.wait_for_function(
                    "t => (document.querySelector('[data-testid=\"stPlotlyChart\"] .gtitle') || {})"
                    ".textContent?.includes(t)", arg=f"layer {layer},", timeout=60_000)
                times.append(time.perf_counter() - t0)
                page.wait_for_function(idle, timeout=60_000)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dinov2-small", help="built-in model (default dinov2-small)")
    parser.add_argument("--n", type=int, default=42, help="interactions to time (default 42)")
    parser.add_argument("--uploads", type=int, default=5, help="uploads to time (default 5)")
    parser.add_argument("--browser", action="store_true", help="also time a real server in headless Chromium")
    args = parser.parse_args(argv)

    import torch
    from streamlit.testing.v1 import AppTest

    os.chdir(ROOT)
    sample = "chelsea" if args.model == "dinov2-small" else "fashion-sneaker"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params.update({"model": args.model, "sample": sample})
    t0 = time.perf_counter()
    at.run()
    at.switch_page("app_pages/explorer.py").run()
    print(f"model {args.model}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs; "
          f"first page (model load + trace) {time.perf_counter() - t0:.2f} s")
    interactions(at, 6)  # warm-up: imports, first figures
    runs = interactions(at, args.n)
    ms = [1000 * t for _, t in runs]
    print(f"interaction (AppTest rerun, whole script): median {statistics.median(ms):.0f} ms, "
          f"p90 {np.percentile(ms, 90):.0f} ms, max {max(ms):.0f} ms over {len(ms)} changes")
    for what in ("layer", "head", "query", "colormap", "opacity", "view"):
        sel = [1000 * t for w, t in runs if w == what]
        print(f"  {what:9s} median {statistics.median(sel):5.0f} ms  ({len(sel)} changes)")
    ups = upload_to_first_figure(at, args.uploads)
    print(f"upload to first figure (decode + trace + Explorer figures): median {statistics.median(ups):.2f} s, "
          f"max {max(ups):.2f} s over {len(ups)} uploads")
    if args.browser:
        wall = [1000 * t for t in browser_interactions(args.model, 22)]
        print(f"browser (real server, Chromium, layer key press → idle): median {statistics.median(wall):.0f} ms, "
              f"p90 {np.percentile(wall, 90):.0f} ms")


if __name__ == "__main__":
    main()
