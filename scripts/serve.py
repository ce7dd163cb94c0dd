"""Start Streamlit for the hosted demo (scripts/demo.sh): `python scripts/serve.py run app.py [flags]`
is `streamlit run app.py [flags]` with the websocket's deflate at zlib level 1.

With server.enableWebsocketCompression, Streamlit's uvicorn deflates every message at zlib's
default level 6 (4 KB window, memLevel 5). On what Patchlight sends — JSON with the maps as
numbers — level 1 costs 2-3x less server CPU for 5-13% more bytes (measured on dinov2-small:
a new query's in-browser figure 4.5 → 1.9 ms and 64 → 72 KB, the T×T matrix 13.0 → 4.3 ms and
155 → 176 KB): a demo server that a class keeps busy is short of CPU, not of bytes (issue 15).
Where uvicorn is not laid out as expected (another version), Streamlit starts unchanged and
this says so on stderr.
"""
from __future__ import annotations

import sys

DEFLATE_LEVEL = 1
# uvicorn's websocket implementations that build websockets' deflate extension by this name
_MODULES = ("uvicorn.protocols.websockets.websockets_sansio_impl", "uvicorn.protocols.websockets.websockets_impl")


def fast_deflate(level: int = DEFLATE_LEVEL) -> list[str]:
    """Make uvicorn's websocket deflate at ``level``; the modules changed (none: nothing to do)."""
    import importlib
    import warnings

    try:
        from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    except ImportError:
        return []

    class LeveledFactory(ServerPerMessageDeflateFactory):
        def __init__(self, *args, compress_settings=None, **kwargs):
            super().__init__(*args, compress_settings={**(compress_settings or {}), "level": level}, **kwargs)

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


def main() -> int:
    if not fast_deflate():
        print("serve.py: uvicorn's websocket deflate was not found; Streamlit keeps its own level",
              file=sys.stderr)
    from streamlit.web.cli import main as streamlit_main

    return streamlit_main(args=sys.argv[1:], prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main())
