"""Start Streamlit for the hosted demo (scripts/demo.sh): `python scripts/serve.py run app.py [flags]`
is `streamlit run app.py [flags]` with the websocket's deflate at zlib level 1 and a 32 KB window.

With server.enableWebsocketCompression, Streamlit's uvicorn deflates every message at zlib's
default level 6 (4 KB window, memLevel 5). On what Patchlight sends — JSON with the maps as
numbers — level 1 costs 2-3x less server CPU for 5-13% more bytes (measured on dinov2-small when
attention weights still went as three significant digits: a new query's in-browser figure
4.5 → 1.9 ms and 64 → 72 KB, the T×T matrix 13.0 → 4.3 ms and 155 → 176 KB; they now go as whole
counts, fewer bytes either way): a demo server that a class keeps busy is short of CPU, not of
bytes (issue 15).
uvicorn also caps the window that messages to the browser are deflated with at 4 KB (and
memLevel 5): too short to find a map again that a figure holds twice (the in-browser figure's
map and its click targets' values, ~2 KB apart as numbers, further in base64) or the colour
bars and axes that repeat from trace to trace. With 32 KB (zlib's default, memLevel 8) a new
query's in-browser figure deflated to 78 KB instead of 90 (dinov2-small, maps as numbers then), for
~0.25 MB of deflate state per open connection (10 MB for a class of 40).
Where uvicorn is not laid out as expected (another version), Streamlit starts unchanged and
this says so on stderr.

It also warms the worker: as soon as Streamlit's runtime exists, a thread loads the built-in
models and traces the gallery (app_pages.warm), so that the first visitors — a whole class, in
seconds — do not wait behind imports, a model load and traces. PATCHLIGHT_WARM=0 turns it off.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # the project's packages (model, app_pages), as for app.py's own run
    sys.path.insert(0, ROOT)

DEFLATE_LEVEL = 1
SERVER_WINDOW_BITS = 15  # the window of what the server sends: 2**15 bytes (uvicorn: 12)
MEM_LEVEL = 8  # zlib's default (uvicorn: 5)
# uvicorn's websocket implementations that build websockets' deflate extension by this name
_MODULES = ("uvicorn.protocols.websockets.websockets_sansio_impl", "uvicorn.protocols.websockets.websockets_impl")


def fast_deflate(level: int = DEFLATE_LEVEL, window_bits: int = SERVER_WINDOW_BITS,
                 mem_level: int = MEM_LEVEL) -> list[str]:
    """Make uvicorn's websocket deflate what it sends at ``level`` with a ``2**window_bits``
    window; the modules changed (none: nothing to do)."""
    import importlib
    import warnings

    try:
        from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    except ImportError:
        return []

    class LeveledFactory(ServerPerMessageDeflateFactory):
        def __init__(self, *args, compress_settings=None, **kwargs):
            settings = {**(compress_settings or {}), "level": level, "memLevel": mem_level}
            super().__init__(*args, **dict(kwargs, server_max_window_bits=window_bits), compress_settings=settings)

    changed = []
    for name in _MODULES:
        try:
            with warnings.catch_warnings():  # uvicorn warns that its older implementation is deprecated
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "ServerPerMessageDeflateFactory", None) is ServerPerMessageDeflateFactory:
            module.ServerPerMessageDeflateFactory = LeveledFactory
            changed.append(name)
    return changed


def warm_when_ready(wait_s: float = 120.0) -> str:
    """Once Streamlit's runtime exists (within `wait_s`), warm this process (app_pages.warm); what
    was done, or why not, as one line, also written to stderr. A failure here is not the
    server's: visitors then load what they need themselves, as without the warm-up."""
    from streamlit.runtime import Runtime

    deadline = time.monotonic() + wait_s
    while not Runtime.exists():
        if time.monotonic() > deadline:
            return _say(f"serve.py: not warmed: Streamlit's runtime did not start within {wait_s:.0f} s")
        time.sleep(0.1)
    try:
        from app_pages import warm

        return _say(f"serve.py: warmed: {warm.warm()}")
    except Exception as err:  # noqa: BLE001 - any failure leaves the server as it would be unwarmed
        return _say(f"serve.py: not warmed ({type(err).__name__}: {err}); the first visitors load what they need")


def _say(line: str) -> str:
    # one write of the whole line: the workers of demo.sh --workers share one log, and print's two
    # writes (the text, then the newline) let two workers' lines run into one
    sys.stderr.flush()
    os.write(sys.stderr.fileno(), (line + "\n").encode("utf-8", "backslashreplace"))
    return line


def warm_wanted(environ=None) -> bool:
    """PATCHLIGHT_WARM as the project reads its flags (model.env.parse_flag): on unless it says
    0/false/no/off."""
    from model.env import parse_flag

    return parse_flag((os.environ if environ is None else environ).get("PATCHLIGHT_WARM", "1")) is not False


def main() -> int:
    if not fast_deflate():
        print("serve.py: uvicorn's websocket deflate was not found; Streamlit keeps its own level",
              file=sys.stderr)
    if warm_wanted():
        threading.Thread(target=warm_when_ready, name="patchlight-warm", daemon=True).start()
    from streamlit.web.cli import main as streamlit_main

    return streamlit_main(args=sys.argv[1:], prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main())
