"""Figures as PNG, drawn by plotly.js itself: plotly's static export (kaleido v1 + Chromium).

``figure_png(fig, scale=2)`` gives the picture ``fig.to_image(format="png", scale=2)`` gives —
the same kaleido render of the same figure dict — so a slide shows exactly what the page
shows: legends, fonts, colour bars, everything plotly draws. ``png_export_available()`` says
whether it can run here; without it the app offers plotly's own camera button only.

The browser. Kaleido drives a Chromium through choreographer, which looks for one in
``$BROWSER_PATH``, then on ``PATH`` (``chromium``, ``google-chrome`` …), then in the usual
install paths. We do the same search ourselves (``browser_path``) and hand kaleido the path,
so the browser in use is the one ``png_export_available`` saw — on Debian ``/usr/bin/chromium``
(``apt-get install chromium``). Nothing is ever downloaded: kaleido fetches Chrome only when
asked to (``kaleido_get_chrome``), and MathJax, which it would load from a CDN, is switched off
(no figure here uses LaTeX).

One warm browser per process. Starting Chromium and loading plotly.js costs seconds; a figure
afterwards costs a fraction of one (numbers in the README). It is closed again after
``IDLE_CLOSE_S`` without an export, because it holds memory a hosted demo wants back. Kaleido's own warm server
(``kaleido.start_sync_server``) is not used: when the browser fails to start or dies, a call
to it blocks forever, and callers from two threads share one result queue, so two sessions
exporting at once could swap images. Here every export has a timeout, concurrent exports
queue for the browser's tab (each gets its own result), and a browser that failed is closed
and started afresh on the next export.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.metadata
import os
import shutil
import threading
from concurrent.futures import TimeoutError as FutureTimeout

__all__ = ["figure_png", "png_export_available", "browser_path", "PngExportUnavailable", "UNAVAILABLE_MESSAGE"]

UNAVAILABLE_MESSAGE = ("PNG export of figures needs kaleido and Chromium: pip install kaleido; "
                       "apt-get install chromium — or use the camera icon above the figure")
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
IDLE_CLOSE_S = 300.0  # close the warm browser after this long without an export
START_TIMEOUT_S = 60.0  # Chromium's first start on a busy 2-core host takes ~3 s; leave a wide margin
RENDER_TIMEOUT_S = 60.0  # one figure; the largest here takes well under a second warm


class PngExportUnavailable(RuntimeError):
    """Raised by :func:`figure_png` when kaleido or a Chromium browser is missing."""


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def browser_path() -> str | None:
    """The Chromium-family browser kaleido will drive, or None: ``$BROWSER_PATH`` when set
    (and only it: a wrong setting is reported, not silently replaced), else the first of
    :data:`BROWSER_NAMES` on ``PATH``, else the first of :data:`BROWSER_PATHS` that exists."""
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured if _executable(configured) else None
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in BROWSER_PATHS if _executable(p)), None)


@functools.lru_cache(maxsize=1)
def _kaleido_version() -> tuple[int, ...] | None:
    """Kaleido's version when it is installed (v1 or later drives Chromium; v0 had its own).
    Read once: installing a package needs a restart of the app anyway."""
    try:
        text = importlib.metadata.version("kaleido")
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def png_export_available() -> bool:
    """True when :func:`figure_png` can run: kaleido >= 1 installed and a browser found.

    Cheap (a PATH search, tens of microseconds), so a page may ask on every run.
    """
    version = _kaleido_version()
    return version is not None and version >= (1,) and browser_path() is not None


class _WarmBrowser:
    """One ``kaleido.Kaleido`` — a headless Chromium with plotly.js loaded — kept open on a
    private event loop in a daemon thread; exports from any thread are submitted to it."""

    def __init__(self, path: str):
        import kaleido  # only here: the app imports this module whether or not kaleido is installed

        self.path = path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="figure-png-browser", daemon=True)
        self._thread.start()

        async def start():
            browser = kaleido.Kaleido(n=1, timeout=RENDER_TIMEOUT_S, mathjax=False, path=path)
            await browser.open()
            return browser

        try:
            self._kaleido = self._wait(start(), START_TIMEOUT_S)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise

    def _wait(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def png(self, figure: dict, scale: float) -> bytes:
        # the same call plotly's to_image makes; width and height come from the figure's layout
        return self._wait(self._kaleido.calc_fig(figure, opts={"format": "png", "scale": scale}),
                          RENDER_TIMEOUT_S + 5)

    def close(self) -> None:
        try:
            self._wait(self._kaleido.close(), 10)
        except Exception:  # closing a browser that already died (or hangs): nothing more to do
            pass
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)


# One warm browser for the process, with the number of exports using it. Kept while exports
# come (a teacher saving a slide deck), closed after IDLE_CLOSE_S without one: a warm Chromium
# holds about 430 MiB (PSS of its 11 processes, measured), too much to keep for a rare click.
_lock = threading.Lock()
_browser: _WarmBrowser | None = None
_in_flight = 0
_idle_timer: threading.Timer | None = None


def _acquire() -> _WarmBrowser:
    global _browser, _in_flight
    path = browser_path()
    if path is None or (_kaleido_version() or (0,)) < (1,):
        raise PngExportUnavailable(UNAVAILABLE_MESSAGE)
    with _lock:
        if _idle_timer is not None:
            _idle_timer.cancel()
        if _browser is None:
            try:
                _browser = _WarmBrowser(path)
            except Exception as err:
                raise RuntimeError(f"the browser at {path} did not start for PNG export ({err}); "
                                   f"use the camera icon above the figure.") from err
        _in_flight += 1
        return _browser


def _release(browser: _WarmBrowser, failed: bool) -> None:
    """End one export; a browser that failed is forgotten (the next export starts a fresh one)."""
    global _browser, _in_flight, _idle_timer
    with _lock:
        _in_flight -= 1
        forget = failed and _browser is browser
        if forget:
            _browser = None
        if _browser is not None and _in_flight == 0:
            _idle_timer = threading.Timer(IDLE_CLOSE_S, _close_if_idle)
            _idle_timer.daemon = True
            _idle_timer.start()
    if forget:
        browser.close()


def _close_if_idle() -> None:
    global _browser
    with _lock:
        if _browser is None or _in_flight:
            return
        browser, _browser = _browser, None
    browser.close()


atexit.register(_close_if_idle)


def figure_png(fig, scale: float = 2) -> bytes:
    """PNG bytes of a plotly figure, ``layout.width × scale`` by ``layout.height × scale`` pixels.

    ``scale=2`` (the default) makes a 760 px wide figure 1520 px: sharp on a projector and
    on slides. Raises :class:`PngExportUnavailable` when kaleido or a browser is missing, and
    ``RuntimeError`` when the browser fails (it is restarted for the next call).
    """
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0):
        raise ValueError(f"scale={scale!r}; expected a positive number, e.g. 2 for slides.")
    figure = fig.to_dict() if hasattr(fig, "to_dict") else fig
    browser = _acquire()
    failed = True
    try:
        png = browser.png(figure, float(scale))
        failed = False
        return png
    except FutureTimeout as err:
        raise RuntimeError(f"PNG export did not finish within {RENDER_TIMEOUT_S:.0f} s, so the browser at "
                           f"{browser.path} is restarted for the next one; or use the camera icon above the "
                           f"figure.") from err
    except Exception as err:
        # most likely a browser that died; a figure plotly.js refuses raises the same way, and
        # telling the two apart would mean parsing kaleido's messages, so both restart it
        raise RuntimeError(f"PNG export failed in the browser at {browser.path}: {err}") from err
    finally:
        _release(browser, failed)
