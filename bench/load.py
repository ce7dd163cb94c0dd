"""Many visitors on one Patchlight server at once: interaction latency, bytes, server memory.

    python bench/load.py --start "bash scripts/demo.sh --port 8765 --address 127.0.0.1" --port 8765 \
        --visitors 1,5,10,20,40 [--duration 60] [--model dinov2-small] [--json out.json]
    python bench/load.py --port 8501 --server-pid PID --visitors 10      # a server already running
    python bench/load.py --start "…" --port 8765 --soak 20                # RSS after each of 20 sessions
    python bench/load.py --start "…" --port 8765 --compare-defaults --visitors 10

Each simulated visitor is a real Streamlit session spoken at the protocol level
(bench/load_client.py: the page's HTTP requests through load_http.py, the websocket, reruns with
widget states and fragment ids, the message cache, uploads through the upload endpoint), so the
server does exactly the work a browser would cause. The journey follows issue 15: open the app → choose the
model (default dinov2-small) → pick a sample photo, or upload one of samples/*.jpg (each upload
made unique by bytes after the JPEG end marker, as every student's photo is their own; --same-uploads
sends the files as they are) → the Explorer → layer / head / query moves → click a patch of the
image → switch the view → another page (--pages: Heads or Walkthrough unless given) and back, and
again, with about 1 s of seeded think time between actions, until --duration is over.
With --teach-share S, a share S of the visitors first teaches a head on photos of its own (Teach
classes: --teach-images crops of samples/*.jpg, different pixels for each visitor, uploaded into
each of the page's two classes, then the fit's button; kinds teach_upload and teach).

For every level of --visitors it prints one row of | concurrent visitors | interactions |
interaction p50 | p95 | max | failed | KB per interaction (median) | KB on the wire | server RSS peak | load avg |
server CPU per interaction | CPU stolen by the host | (the last: time a virtual machine's host gave
its CPUs to others — runs compare only when it is near 0), then a per-kind breakdown (open, model, image, upload, page,
layer/head/query, click, view) with the KB that figures take, and every figure received in full by
chart key (the Explorer's view figure by view). Latency is from the request leaving
to script_finished arriving (a fragment's finish for fragment reruns); a time-out (--timeout) or
an app exception is a failed interaction, and its time counts in the percentiles. KB are websocket
payload bytes received (after permessage-deflate, if the server enabled it, is undone); KB on the
wire are the same messages as they crossed the network (compressed, where the server agreed to
permessage-deflate: scripts/demo.sh turns it on). RSS is the
sum over the server's process tree, sampled from /proc every --sample seconds. The page's static
JS/CSS is not fetched (a browser caches it after the first visit). --soak N runs N one-visitor
sessions in a row and prints the server's RSS after each, its trend, and (--soak-idle 130) the RSS
once the closed sessions are past server.disconnectedSessionTTL.

Bounded: every level ends after ramp + --duration + --timeout (+ a grace of 30 s), each
visitor makes at most --max-actions actions, every network wait has a time-out, and the
bench only ever connects to 127.0.0.1. With --start it starts the server itself (a fresh one
per level unless --reuse-server), waits for /_stcore/health, and stops it at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_client import Interaction, ProtocolError, Session  # noqa: E402
from load_server import Sampler, Server, loadavg, tree_usage, wait_healthy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# What the bench knows about Patchlight: the stable widget keys and page names (DESIGN.md,
# app.py, app_pages/*). Everything else it reads from what the server sends.
MODEL, IMAGE_SOURCE, SAMPLE, UPLOAD = "model_choice", "image_source", "sample", "upload"
LAYER, HEAD, QUERY, VIEW, CLICK = "layer", "head", "query", "view", "explorer_click"
EXPLORER, OTHER_PAGES = "Explorer", ("Heads", "Walkthrough")
CLICK_TRACE = "click targets"  # the transparent scatter app_pages.shared.add_click_targets draws
KIND_ORDER = ("open", "model", "image", "upload", "page", "layer", "head", "query", "click", "view",
              "teach_upload", "teach")
TEACH_PAGE, TEACH_FIT = "Teach classes", "teach_fit"  # app_pages/teach.py: its page title and the fit's button
MOVES = ("layer", "head", "query")


# ----------------------------------------------------------------------------- one visitor


class Visitor:
    """One student: a Session plus the issue-15 journey, seeded."""

    def __init__(self, index: int, args, deadline: float):
        self.index, self.args, self.deadline = index, args, deadline
        self.rng = random.Random(args.seed * 100_003 + index)
        self.session = Session(args.port, visitor=index, timeout=args.timeout)
        self.sessions = [self.session]  # a failed open is retried in a new tab, like a reload
        self.actions = 0

    @property
    def records(self) -> list[Interaction]:
        return [r for s in self.sessions for r in s.interactions]

    def time_left(self) -> bool:
        return time.perf_counter() < self.deadline and self.actions < self.args.max_actions

    async def think(self) -> None:
        pause = self.args.think * self.rng.uniform(0.5, 1.5)
        await asyncio.sleep(max(0.0, min(pause, self.deadline - time.perf_counter())))

    async def act(self, action) -> Interaction | None:
        """One action, then think; an action whose widget is missing is a failed interaction."""
        if not self.time_left():
            return None
        self.actions += 1
        try:
            rec = await action()
            if VIEW in self.session.keys():
                rec.note = str((self.session.value(VIEW) or [""])[0])
        except ProtocolError as err:
            rec = Interaction(kind="missing", visitor=self.index, start=time.perf_counter(), latency=0.0,
                              error=str(err))
            self.session.interactions.append(rec)
        await self.think()
        return rec

    async def run(self) -> None:
        s, rng = self.session, self.rng
        try:
            for _ in range(self.args.max_actions):
                rec = await self.act(lambda: s.open("open"))
                if rec is None or rec.ok:
                    break
                await s.close()
                s = self.session = Session(self.args.port, visitor=self.index, timeout=self.args.timeout)
                self.sessions.append(s)
            if not self.time_left():
                return
            await self.choose_model()
            await self.choose_image()
            if self.rng.random() < self.args.teach_share:
                await self.teach()
            await self.act(lambda: s.switch_page(EXPLORER))
            while self.time_left():
                for _ in range(rng.randint(2, 5)):
                    await self.move()
                await self.act(self.click)
                await self.act(self.switch_view)
                for _ in range(rng.randint(1, 2)):
                    await self.move()
                await self.act(lambda: s.switch_page(rng.choice(self.args.pages)))
                await self.act(lambda: s.switch_page(EXPLORER))
                if self.broken():
                    break
        except ProtocolError as err:  # the page lacks what the journey needs: one failure, then stop
            self.session.interactions.append(Interaction(kind="missing", visitor=self.index, start=time.perf_counter(),
                                                         latency=0.0, error=str(err)))
        finally:
            await self.session.close()

    def broken(self) -> bool:
        """Three failures in a row: the visitor gives up (a closed or stuck session)."""
        last = self.session.interactions[-3:]
        return len(last) == 3 and not any(r.ok for r in last)

    async def choose_model(self) -> None:
        s = self.session
        option = next((o for o in s.options(MODEL) if o.startswith(self.args.model)), None)
        if option is None:
            raise ProtocolError(f"model {self.args.model!r} is not offered (options: {s.options(MODEL)})")
        if s.value(MODEL) != option:
            await self.act(lambda: s.set_value(MODEL, option, "model"))

    async def choose_image(self) -> None:
        s, rng = self.session, self.rng
        photos = sorted((ROOT / "samples").glob("*.jpg"))
        if photos and self.args.model != "fashion-vit" and rng.random() < self.args.upload_share:
            upload_label = next(o for o in s.options(IMAGE_SOURCE) if "upload" in o.lower())
            await self.act(lambda: s.set_value(IMAGE_SOURCE, upload_label, "image"))
            path = rng.choice(photos)
            data = path.read_bytes()
            if not self.args.same_uploads:  # a JPEG ends at FFD9; what follows changes the hash only
                data += f"patchlight-load {self.args.seed} {self.index} {rng.random()}".encode()
            await self.act(lambda: s.upload(UPLOAD, f"visitor{self.index}-{path.name}", data, "image/jpeg"))
            return
        fits = [o for o in s.options(SAMPLE) if ("Fashion-MNIST" in o) == (self.args.model == "fashion-vit")]
        current = s.value(SAMPLE)
        choices = [o for o in fits if o != current] or fits
        await self.act(lambda: s.set_value(SAMPLE, rng.choice(choices), "image"))

    async def teach(self) -> None:
        """Teach a head on photos of one's own: two classes of --teach-images photos each (crops of
        the sample photos, different pixels for every visitor, so no features are shared), then
        the fit. Its interaction lasts until the page shows the taught head."""
        from PIL import Image

        s, rng = self.session, self.rng
        photos = sorted((ROOT / "samples").glob("*.jpg"))
        await self.act(lambda: s.switch_page(TEACH_PAGE))

        def own_photo(path: Path) -> bytes:
            img = Image.open(path).convert("RGB")
            w, h = img.size
            f = rng.uniform(0.6, 0.9)
            x, y = rng.uniform(0, w * (1 - f)), rng.uniform(0, h * (1 - f))
            out = io.BytesIO()
            img.crop((round(x), round(y), round(x + w * f), round(y + h * f))).save(out, "JPEG", quality=85)
            return out.getvalue()

        for cid in (0, 1):  # the page starts with two empty classes, ids 0 and 1
            files = [(f"visitor{self.index}-class{cid}-{k}.jpg", own_photo(rng.choice(photos)))
                     for k in range(self.args.teach_images)]
            key = next(k for k in sorted(s.keys()) if k.startswith(f"teach_up_{cid}_"))
            await self.act(lambda key=key, files=files: s.upload_files(key, files, "image/jpeg", "teach_upload"))
        await self.act(lambda: s.press(TEACH_FIT, "teach"))

    async def move(self) -> None:
        """A layer, head or query-token change inside the Explorer's fragment."""
        s, rng = self.session, self.rng
        what = rng.choices(MOVES, weights=(4, 4, 1))[0]

        async def action():
            if what == LAYER:
                w = s.widget(LAYER)
                top = int(w.proto.max)
                now = int((s.value(LAYER) or [0])[0])
                return await s.set_value(LAYER, rng.choice([v for v in range(top + 1) if v != now] or [now]), "layer")
            options = s.options(what)
            now = s.value(what)
            if isinstance(now, list):
                now = now[0] if now else None
            pick = rng.choice([o for o in options if o != now] or options)
            return await s.set_value(what, pick, what)

        await self.act(action)

    async def click(self) -> Interaction:
        return await self.session.click(CLICK, CLICK_TRACE, lambda n: self.rng.randrange(n), "click")

    async def switch_view(self) -> Interaction:
        s = self.session
        now = (s.value(VIEW) or [None])[0]
        return await s.set_value(VIEW, self.rng.choice([o for o in s.options(VIEW) if o != now]), "view")


# ----------------------------------------------------------------------------- one level


async def run_visitors(args, n: int, label: str) -> dict:
    """n concurrent visitors for --duration seconds; their interactions and the server's usage."""
    t0 = time.perf_counter()
    rng = random.Random(args.seed)
    starts = sorted(rng.uniform(0, args.ramp) for _ in range(n)) if n > 1 else [0.0]
    deadline = t0 + args.ramp + args.duration
    visitors = [Visitor(i, args, deadline) for i in range(n)]

    async def one(v: Visitor, delay: float):
        await asyncio.sleep(delay)
        await v.run()

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    async with Sampler(args.server_pid, args.sample) as sampler:
        tasks = [asyncio.create_task(one(v, d)) for v, d in zip(visitors, starts)]
        done, pending = await asyncio.wait(tasks, timeout=args.ramp + args.duration + args.timeout + 30)
        for t in pending:  # past every bound: stop them
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            if t.exception() is not None:
                print(f"  a visitor stopped: {type(t.exception()).__name__}: {t.exception()}", file=sys.stderr)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    records = [r for v in visitors for r in v.records]
    wall = time.perf_counter() - t0
    return {"label": label, "visitors": n, "wall_s": wall, "records": records, "ramp": args.ramp,
            "rss_start": sampler.rss_start, "rss_peak": sampler.rss_peak, "rss_end": sampler.rss_end,
            "server_cpu_s": sampler.cpu_end - sampler.cpu_start, "load_max": sampler.load_max,
            "steal": sampler.steal_share,
            "client_cpu_s": (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)}


async def warm_up(args) -> None:
    """One quick visitor so that the model is loaded before a level is measured."""
    warm = argparse.Namespace(**{**vars(args), "duration": args.warmup, "upload_share": 0.0, "ramp": 0.0})
    v = Visitor(10_000, warm, time.perf_counter() + args.warmup)
    await v.run()
    bad = [r for r in v.records if not r.ok]
    if bad:
        print(f"  warm-up: {len(bad)} failed: {bad[0].kind}: {bad[0].error}", file=sys.stderr)


# ----------------------------------------------------------------------------- statistics


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0…100); nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def latencies(records) -> list[float]:
    return [r.latency if r.latency is not None else 0.0 for r in records]


def fmt_s(x: float) -> str:
    return "–" if x != x else (f"{x:.2f} s" if x < 10 else f"{x:.1f} s")


def fmt_kb(b: float) -> str:
    return "–" if b != b else (f"{b / 1000:.1f}" if b < 100_000 else f"{b / 1000:.0f}")


def level_row(res: dict) -> str:
    recs = res["records"]
    lat = latencies(recs)
    failed = sum(not r.ok for r in recs)
    kb = statistics.median([r.bytes for r in recs]) if recs else float("nan")
    wire = statistics.median([r.wire for r in recs]) if recs else float("nan")
    cpu = res["server_cpu_s"] / len(recs) if recs and res["rss_peak"] else float("nan")
    rss = f"{res['rss_peak'] / 2**30:.2f} GB" if res["rss_peak"] else "–"
    return (f"| {res['visitors']} | {len(recs)} | {fmt_s(pct(lat, 50))} | {fmt_s(pct(lat, 95))} | "
            f"{fmt_s(max(lat, default=float('nan')))} | {failed} | {fmt_kb(kb)} | {fmt_kb(wire)} | {rss} | {res['load_max']:.1f} | "
            + ("–" if cpu != cpu else f"{cpu * 1000:.0f} ms") + f" | {100 * res.get('steal', 0.0):.0f}% |")


LEVEL_HEADER = ("| concurrent visitors | interactions | interaction p50 | p95 | max | failed | "
                "KB per interaction (median) | KB on the wire (median) | server RSS peak | load avg (1 min, max) | "
                "server CPU per interaction | CPU stolen by the host |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|")


def kind_table(records) -> str:
    rows = ["| kind | n | p50 | p95 | max | failed | KB median | KB p95 | wire KB median | wire KB p95 | "
            "figures per action | figure JSON KB median | cache refs per action | biggest message types (KB, median) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    kinds = [k for k in KIND_ORDER if any(r.kind == k for r in records)]
    kinds += sorted({r.kind for r in records} - set(KIND_ORDER))
    groups = [(k, [r for r in records if r.kind == k]) for k in kinds]
    moves = [r for r in records if r.kind in MOVES]
    if moves:
        groups.append(("layer/head/query (together)", moves))
    for name, recs in groups:
        lat = latencies(recs)
        by: dict[str, list[int]] = {}
        for r in recs:
            for cat, b in r.bytes_by.items():
                by.setdefault(cat, []).append(b)
        top = sorted(by.items(), key=lambda kv: -statistics.median(kv[1] + [0] * (len(recs) - len(kv[1]))))[:3]
        tops = ", ".join(f"{c} {fmt_kb(statistics.median(v + [0] * (len(recs) - len(v))))}" for c, v in top)
        sizes = [r.bytes for r in recs]
        wires = [r.wire for r in recs]
        rows.append(
            f"| {name} | {len(recs)} | {fmt_s(pct(lat, 50))} | {fmt_s(pct(lat, 95))} | {fmt_s(max(lat))} | "
            f"{sum(not r.ok for r in recs)} | {fmt_kb(statistics.median(sizes))} | {fmt_kb(pct(sizes, 95))} | "
            f"{fmt_kb(statistics.median(wires))} | {fmt_kb(pct(wires, 95))} | "
            f"{statistics.mean(r.figures for r in recs):.1f} | "
            f"{fmt_kb(statistics.median(r.figure_bytes for r in recs))} | "
            f"{statistics.mean(r.refs for r in recs):.1f} | {tops} |")
    return "\n".join(rows)


def figure_table(records) -> str:
    """Every figure received in full, by chart key (the Explorer's view figure by view)."""
    sizes: dict[str, list[int]] = {}
    for r in records:
        for key, size in r.figure_sizes:
            name = f"{key} ({r.note})" if key == "explorer_view" and r.note else key
            sizes.setdefault(name, []).append(size)
    rows = ["| figure (chart key) | times sent | JSON KB median | max |", "|---|---|---|---|"]
    for name, v in sorted(sizes.items(), key=lambda kv: -sum(kv[1])):
        rows.append(f"| {name} | {len(v)} | {fmt_kb(statistics.median(v))} | {fmt_kb(max(v))} |")
    total = sum(sum(v) for v in sizes.values())
    received = sum(r.bytes for r in records)
    rows.append(f"\nFigures are {100 * total / received:.0f}% of the {received / 1e6:.0f} MB received." if received else "")
    return "\n".join(rows)


def failures(records, limit: int = 5) -> str:
    bad = [r for r in records if not r.ok]
    lines = [f"  - {r.kind} (visitor {r.visitor}): {r.error}" for r in bad[:limit]]
    return "\n".join(lines + ([f"  - … and {len(bad) - limit} more"] if len(bad) > limit else []))


def arrival_split(records, ramp: float, settle: float = 10.0) -> str:
    """p95 while the visitors arrive (the ramp plus `settle` s: every one opens the app, picks the
    model and an image or uploads one, each a new trace for the server) and p95 afterwards."""
    if not records:
        return "no interactions"
    t0 = min(r.start for r in records)
    cut = ramp + settle
    early = latencies([r for r in records if r.start - t0 <= cut])
    late = latencies([r for r in records if r.start - t0 > cut])
    return (f"p95 in the first {cut:.0f} s (arrivals): {fmt_s(pct(early, 95))} over {len(early)} interactions; "
            f"afterwards: {fmt_s(pct(late, 95))} over {len(late)}")


def print_level(res: dict) -> None:
    print(f"\n### {res['label']}: {res['visitors']} visitor(s), {res['wall_s']:.0f} s; load generator CPU "
          f"{res['client_cpu_s']:.1f} s; server RSS {res['rss_start'] / 2**20:.0f} → peak "
          f"{res['rss_peak'] / 2**20:.0f} MiB\n")
    print(LEVEL_HEADER)
    print(level_row(res))
    print()
    print(arrival_split(res["records"], ramp=res.get("ramp", 5.0)))
    print()
    print(kind_table(res["records"]))
    print()
    print(figure_table(res["records"]))
    if any(not r.ok for r in res["records"]):
        print("\nfailed interactions:\n" + failures(res["records"]))
    sys.stdout.flush()


# ----------------------------------------------------------------------------- modes


async def levels(args, command: str | None, label: str) -> list[dict]:
    out = []
    server = None
    try:
        for i, n in enumerate(args.visitors):
            if command and (i == 0 or not args.reuse_server):
                if server is not None:
                    await server.__aexit__(None, None, None)
                server = Server(args, command)
                await server.__aenter__()
                args.server_pid = server.pid
                if args.warmup > 0:
                    await warm_up(args)
            elif not command and i == 0:
                await wait_healthy(args.port, args.start_timeout)
            res = await run_visitors(args, n, label)
            print_level(res)
            out.append(res)
    finally:
        if server is not None:
            await server.__aexit__(None, None, None)
    return out


async def soak(args, command: str | None) -> list[dict]:
    """--soak N: N one-visitor sessions in a row; the server's RSS after each."""
    out = []
    server = Server(args, command) if command else None
    try:
        if server is not None:
            await server.__aenter__()
            args.server_pid = server.pid
        else:
            await wait_healthy(args.port, args.start_timeout)
        if not args.server_pid:
            raise SystemExit("--soak measures the server's memory: give --server-pid or --start")
        print(f"\n### soak: {args.soak} sessions of {args.soak_duration:.0f} s in a row, one visitor each\n")
        print("| session | interactions | failed | p95 | server RSS after | change |\n|---|---|---|---|---|---|")
        soak_args = argparse.Namespace(**{**vars(args), "duration": args.soak_duration, "ramp": 0.0})
        first = None
        for i in range(args.soak):
            soak_args.seed = args.seed + i
            res = await run_visitors(soak_args, 1, f"soak {i + 1}")
            await asyncio.sleep(args.soak_settle)
            rss = tree_usage(args.server_pid)[0]
            first = first or rss
            res["rss_after"] = rss
            recs = res["records"]
            print(f"| {i + 1} | {len(recs)} | {sum(not r.ok for r in recs)} | {fmt_s(pct(latencies(recs), 95))} | "
                  f"{rss / 2**20:.0f} MiB | {(rss - first) / 2**20:+.0f} MiB |")
            sys.stdout.flush()
            out.append(res)
        ys = [r["rss_after"] / 2**20 for r in out]
        if len(ys) > 3:
            half = len(ys) // 2
            print(f"\nRSS trend: {slope(ys):+.1f} MiB per session over all {len(ys)}, {slope(ys[half:]):+.1f} MiB per "
                  f"session over the second half (a leak keeps growing; bounded caches level off).")
        if args.soak_idle > 0 and out:
            # Streamlit keeps a closed tab's session for server.disconnectedSessionTTL (120 s by default).
            await asyncio.sleep(args.soak_idle)
            rss = tree_usage(args.server_pid)[0]
            print(f"After {args.soak_idle:.0f} s idle: server RSS {rss / 2**20:.0f} MiB "
                  f"({(rss - out[-1]['rss_after']) / 2**20:+.0f} MiB since the last session).")
    finally:
        if server is not None:
            await server.__aexit__(None, None, None)
    return out


def slope(ys: list[float]) -> float:
    """Least-squares slope of ys against 1, 2, 3, …"""
    xs = range(1, len(ys) + 1)
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8765, help="the server's port on 127.0.0.1")
    p.add_argument("--start", help='start the server with this command, e.g. "bash scripts/demo.sh --port 8765 '
                                   '--address 127.0.0.1", and stop it at the end; it runs in the current '
                                   'directory (to measure another checkout, run from there)')
    p.add_argument("--server-pid", type=int, help="pid of a running server (its process tree's RSS is sampled)")
    p.add_argument("--server-log", default="", help="append the started server's output to this file")
    p.add_argument("--reuse-server", action="store_true", help="one started server for all levels (default: a fresh one each)")
    p.add_argument("--compare-defaults", action="store_true",
                   help="run the levels twice, back to back: --start as given, then with Streamlit's runner "
                        "defaults (demo.sh --defaults)")
    p.add_argument("--rounds", type=int, default=1, help="with --compare-defaults: alternate the two this many times")
    p.add_argument("--visitors", default="1,5,10", help="comma-separated concurrent visitor counts (default 1,5,10)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds each level runs after the ramp (default 60)")
    p.add_argument("--ramp", type=float, default=5.0, help="visitors arrive spread over this many seconds (default 5)")
    p.add_argument("--think", type=float, default=1.0, help="mean think time between actions, s (±50%%, seeded)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before an interaction counts as failed")
    p.add_argument("--max-actions", type=int, default=500, help="actions per visitor at most")
    p.add_argument("--model", default="dinov2-small", choices=("dinov2-small", "fashion-vit"))
    p.add_argument("--pages", default=",".join(OTHER_PAGES),
                   help="the pages visited between Explorer rounds, by title (default: %(default)s; e.g. "
                        "Heads,Walkthrough,Compare,Teach classes,Data set,Downloads)")
    p.add_argument("--upload-share", type=float, default=0.25, help="share of visitors who upload a photo (default 0.25)")
    p.add_argument("--same-uploads", action="store_true", help="upload samples/*.jpg unchanged (cache hits)")
    p.add_argument("--teach-share", type=float, default=0.0,
                   help="share of visitors who first teach a head on photos of their own (Teach classes page)")
    p.add_argument("--teach-images", type=int, default=6, help="photos per class a teaching visitor uploads")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--warmup", type=float, default=8.0, help="seconds of one visitor before each fresh server (0: none)")
    p.add_argument("--sample", type=float, default=0.25, help="RSS / load sampling period, s")
    p.add_argument("--start-timeout", type=float, default=120.0)
    p.add_argument("--soak", type=int, default=0, help="instead of levels: this many one-visitor sessions in a row")
    p.add_argument("--soak-duration", type=float, default=15.0, help="seconds per soak session")
    p.add_argument("--soak-idle", type=float, default=0.0,
                   help="after the soak, wait this long (e.g. 130 s, past disconnectedSessionTTL) and read RSS again")
    p.add_argument("--soak-settle", type=float, default=1.0, help="seconds to wait before reading RSS after a session")
    p.add_argument("--json", help="write every interaction and level summary to this file")
    args = p.parse_args(argv)
    args.visitors = [int(v) for v in str(args.visitors).split(",") if v.strip()]
    args.pages = tuple(page.strip() for page in str(args.pages).split(",") if page.strip())
    if not args.pages:
        p.error("--pages needs at least one page title")
    if not args.visitors or min(args.visitors) < 1 or max(args.visitors) > 500:
        p.error("--visitors takes counts from 1 to 500")
    if args.start and args.server_pid:
        p.error("give --start or --server-pid, not both")
    if args.compare_defaults and not args.start:
        p.error("--compare-defaults needs --start (the bench restarts the server with --defaults)")
    return args


def save(path: str, results: list[dict], args) -> None:
    out = {"args": {k: v for k, v in vars(args).items()}, "results": []}
    for res in results:
        out["results"].append({**{k: v for k, v in res.items() if k != "records"},
                               "interactions": [r.as_dict() for r in res["records"]]})
    Path(path).write_text(json.dumps(out, indent=1, default=str))


async def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    print(f"# Patchlight load: model {args.model}, think {args.think:g} s, duration {args.duration:g} s, "
          f"time-out {args.timeout:g} s, upload share {args.upload_share:g}, seed {args.seed}, "
          f"{os.cpu_count()} CPUs, load avg now {loadavg():.2f}")
    if args.start:
        print(f"# server: {args.start!r} in {os.getcwd()}")
    if args.soak:
        results = await soak(args, args.start)
    elif not args.compare_defaults:
        results = await levels(args, args.start, "as started" if args.start else "running server")
    else:  # alternate the two settings so that a change in the machine's load hits both alike
        head, sep, tail = args.start.partition(" -- ")
        defaults = f"{head} --defaults{sep}{tail}"
        results = []
        for r in range(args.rounds):
            results += await levels(args, args.start, f"production settings, round {r + 1}")
            results += await levels(args, defaults, f"Streamlit defaults (demo.sh --defaults), round {r + 1}")
        if results:
            print("\n## back to back\n")
            print(LEVEL_HEADER.replace("| concurrent visitors |", "| settings | concurrent visitors |")
                  .replace("|---|", "|---|---|", 1))
            for res in results:
                print(f"| {res['label']} " + level_row(res))
    if args.json:
        save(args.json, results, args)
    return results


if __name__ == "__main__":
    asyncio.run(main())
