"""One visitor of a Streamlit app at the protocol level: what the browser does, without a browser.

bench/load.py runs many of these at once. The protocol was read from the installed
streamlit (1.6x) — web/server/starlette/starlette_websocket.py and starlette_routes.py (the
websocket, the XSRF cookie, the upload endpoint), runtime/app_session.py (reruns, fragments,
uploads), runtime/forward_msg_cache.py (cached messages) and proto/*.proto — and from what
its frontend bundle sends. A visitor:

- GETs ``/``, ``/_stcore/health`` (which sets the ``_streamlit_xsrf`` cookie) and
  ``/_stcore/host-config``, as the page does before it connects;
- opens the websocket ``/_stcore/stream`` offering the subprotocols ``["streamlit", <xsrf cookie>]``
  (the server selects the first; the second is its XSRF token) with the cookie and a same-origin
  ``Origin``;
- sends ``BackMsg.rerun_script`` (a ``ClientState``: page script hash, query string, the state of
  every widget on screen, the hashes of the messages it holds in its cache, ``fragment_id`` when
  the changed widget lives in an ``st.fragment``, browser context) and reads ForwardMsgs until
  ``script_finished`` of that run;
- keeps the frontend's message cache: a ``new_element`` delta of at least 10 kB
  (``global.minCachedMessageSize``) is kept by hash, the server sends a ``ref_hash`` instead
  when the visitor lists that hash, and entries age out after
  ``new_session.config.max_cached_message_age`` runs (only the rerun fragment's entries age on a
  fragment run), as in the frontend;
- uploads like the file chooser: ``BackMsg.file_urls_request`` → ``file_urls_response`` → HTTP
  PUT multipart to ``/_stcore/upload_file/<session>/<file id>`` with ``X-Xsrftoken`` → a rerun
  whose ``file_uploader`` state lists the file.

Widgets are found by the user key at the end of their element id (``$$ID-<hash>-<key>``).
Only 127.0.0.1 is ever contacted; every wait has a time-out.
"""
from __future__ import annotations

import array
import asyncio
import base64
import collections
import dataclasses
import json
import time
import uuid
from typing import Any, Callable

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.Common_pb2 import UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

from load_http import HOST, ProtocolError, http, multipart  # noqa: F401  (ProtocolError: the callers')

XSRF_COOKIE = "_streamlit_xsrf"
WIDGET_TYPES = ("selectbox", "radio", "slider", "button_group", "checkbox", "text_input", "plotly_chart",
                "file_uploader", "button")
FAILED_STATUSES = (ForwardMsg.FINISHED_WITH_COMPILE_ERROR,)


# ----------------------------------------------------------------------------- records


@dataclasses.dataclass
class Interaction:
    """One user action and the app's answer to it."""

    kind: str
    visitor: int = -1
    start: float = 0.0  # time.perf_counter() when the request left
    latency: float | None = None  # seconds to script_finished; None: no answer
    ok: bool = False
    error: str = ""
    bytes: int = 0  # websocket payload bytes received for this action (including what trails it)
    wire: int = 0  # the same messages as they crossed the network: compressed when the server deflates
    messages: int = 0
    bytes_by: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    largest: int = 0
    figures: int = 0  # plotly figures received in full
    figure_bytes: int = 0  # their JSON spec bytes
    refs: int = 0  # messages answered from the visitor's cache (ref_hash)
    deltas: int = 0
    uploaded: int = 0  # request bytes sent over HTTP (uploads)
    figure_sizes: list = dataclasses.field(default_factory=list)  # (chart key, JSON bytes) of each full figure
    note: str = ""  # free text the caller adds (load.py: the Explorer's view at the time)

    def add(self, size: int, category: str, wire: int | None = None) -> None:
        self.bytes += size
        self.wire += size if wire is None else wire
        self.messages += 1
        self.bytes_by[category] += size
        self.largest = max(self.largest, size)

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["bytes_by"] = dict(self.bytes_by)
        return out


@dataclasses.dataclass
class Widget:
    id: str
    key: str
    type: str  # the element's proto type: selectbox, slider, button_group, …
    proto: Any
    fragment_id: str  # "" outside any st.fragment
    script_hash: str  # the script that drew it: the main script (sidebar) or a page


def widget_key(element_id: str) -> str:
    """The user key at the end of a generated element id ("$$ID-<hash>-<key>")."""
    parts = element_id.split("-", 2)
    return parts[2] if len(parts) == 3 and element_id.startswith("$$ID") else ""


def initial_state(w: Widget) -> WidgetState | None:
    """The value the frontend holds for a widget when it is drawn (None: it holds none)."""
    p, s = w.proto, WidgetState(id=w.id)
    if w.type in ("selectbox", "radio"):
        if p.set_value and p.HasField("raw_value"):
            s.string_value = p.raw_value
        elif p.HasField("default") and 0 <= p.default < len(p.options):
            s.string_value = p.options[p.default]
        else:
            return None
    elif w.type == "slider":
        s.double_array_value.data.extend(p.value if p.set_value else p.default)
    elif w.type == "button_group":
        values = list(p.raw_values) if p.set_value else [p.options[i].content for i in p.default
                                                          if 0 <= i < len(p.options)]
        s.string_array_value.data.extend(values)
    elif w.type == "checkbox":
        s.bool_value = p.value if p.set_value else p.default
    elif w.type == "text_input":
        if p.set_value and p.HasField("value"):
            s.string_value = p.value
        elif p.HasField("default"):
            s.string_value = p.default
        else:
            return None
    else:  # plotly selections and uploads hold a value only after the user acts
        return None
    return s


# ----------------------------------------------------------------------------- plotly specs


def _typed(values) -> list:
    """A plotly JSON array, plain or typed ({"dtype": "f8", "bdata": base64})."""
    if isinstance(values, dict) and "bdata" in values:
        codes = {"f8": "d", "f4": "f", "i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I",
                 "i8": "q", "u8": "Q"}
        arr = array.array(codes[values["dtype"]])
        arr.frombytes(base64.b64decode(values["bdata"]))
        flat = arr.tolist()
        shape = [int(n) for n in str(values.get("shape", "")).split(",") if n.strip()]
        if len(shape) == 2:
            return [flat[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
        return flat
    return list(values or [])


def click_point(spec_json: str, trace_name: str, index_of: Callable[[int], int]) -> tuple[dict, int]:
    """The selection state the frontend sends when a point of the trace named `trace_name` is
    clicked: {"selection": {"points": [...], "point_indices": [...], "box": [], "lasso": []}}.
    `index_of(n)` picks the point among n."""
    spec = json.loads(spec_json)
    data = spec.get("data", [])
    # the trace named so; else the head shown by an in-browser scrubbing figure (a visible trace
    # with a legendgroup, which the frontend reports with the point)
    named = [c for c, t in enumerate(data) if t.get("name") == trace_name]
    shown = [c for c, t in enumerate(data) if t.get("visible", True) is True and t.get("legendgroup")]
    for curve in named or shown[:1]:
        trace = data[curve]
        xs, ys, cds = _typed(trace.get("x")), _typed(trace.get("y")), _typed(trace.get("customdata"))
        if not xs:
            break
        i = index_of(len(xs))
        point = {"curve_number": curve, "point_number": i, "point_index": i, "x": xs[i], "y": ys[i]}
        if trace.get("legendgroup"):
            point["legendgroup"] = trace["legendgroup"]
        if cds:
            point["customdata"] = cds[i]
        return {"selection": {"points": [point], "point_indices": [i], "box": [], "lasso": []}}, i
    raise ProtocolError(f"no clickable trace {trace_name!r} in the figure")


# ----------------------------------------------------------------------------- the visitor


class Session:
    """One browser tab on the app. Use ``await open()``, then the actions, then ``await close()``."""

    def __init__(self, port: int, *, visitor: int = 0, timeout: float = 60.0, compression: bool = True):
        self.port, self.visitor, self.timeout, self.compression = port, visitor, timeout, compression
        self.ws = None
        self.cookie = ""
        self.jar: dict[str, str] = {}  # cookies the server set, sent back like a browser does
        self.session_id = ""
        self.main_hash = ""
        self.page_hash = ""
        self.query_string = ""
        self.pages: dict[str, str] = {}  # page name -> page script hash
        self.widgets: dict[str, Widget] = {}
        self.states: dict[str, WidgetState] = {}
        self.interactions: list[Interaction] = []
        self._cache: dict[str, list] = {}  # hash -> [raw bytes, last run used, fragment id]
        self._max_age = 2
        self._run_count = 0
        self._current: Interaction | None = None
        self._waiting: asyncio.Future | None = None
        self._run_id = ""  # script_run_id of the run this visitor waits for
        self._seen: set[str] = set()  # widget ids drawn in the current run
        self._run_fragments: list[str] = []
        self._new_session_seen = False
        self._run_errors: list[str] = []
        self._url_waiters: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._wire: collections.deque = collections.deque()  # compressed size of each message read, in order
        self._wire_partial = 0

    # --------------------------------------------------------------- connection

    async def open(self, kind: str = "open") -> Interaction:
        """Load the page and run the app once, as a browser tab does."""
        rec = self._begin(kind)
        try:
            await self._get("/")
            status, _, _ = await self._get("/_stcore/health")
            if status != 200:
                raise ProtocolError(f"/_stcore/health answered {status}")
            self.cookie = self.jar.get(XSRF_COOKIE, "")
            await self._get("/_stcore/host-config")
            token = self.cookie or "PLACEHOLDER_AUTH_TOKEN"
            self.ws = await connect(
                f"ws://{HOST}:{self.port}/_stcore/stream", subprotocols=["streamlit", token],
                origin=f"http://{HOST}:{self.port}", open_timeout=self.timeout, max_size=None, ping_interval=None,
                compression="deflate" if self.compression else None, user_agent_header="patchlight-load/1",
                additional_headers={"Cookie": self._cookies()} if self.jar else None)
            self._count_wire()
            if self.ws.subprotocol != "streamlit":
                raise ProtocolError(f"the server chose subprotocol {self.ws.subprotocol!r}, not 'streamlit'")
            self._reader = asyncio.create_task(self._read())
        except (OSError, asyncio.TimeoutError, ProtocolError, ConnectionClosed) as err:
            return self._fail(rec, f"connect: {type(err).__name__}: {err}")
        return await self._rerun(rec, ClientState(page_script_hash="", page_name=""))

    def _count_wire(self) -> None:
        """Record each data message's size as it came over the network: permessage-deflate
        (when the server agreed to it) decodes frames before ``_on_message`` sees them, so its
        decoder is wrapped to note the compressed size first. Messages arrive in order, so a
        queue pairs each size with its message."""
        for ext in self.ws.protocol.extensions:
            decode = ext.decode

            def counted(frame, *, max_size=None, _decode=decode):
                if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                    self._wire_partial += len(frame.data)
                    if frame.fin:
                        self._wire.append(self._wire_partial)
                        self._wire_partial = 0
                return _decode(frame, max_size=max_size)

            ext.decode = counted

    def _wire_size(self, data: bytes) -> int:
        return self._wire.popleft() if self._wire else len(data)

    async def _get(self, path: str):
        """A GET with the tab's cookies; the cookies it sets are kept (a browser's jar: the XSRF
        cookie, and e.g. a sticky-routing cookie of a proxy in front of several workers)."""
        headers = {"Cookie": self._cookies()} if self.jar else None
        status, answer_headers, body = await http(self.port, "GET", path, headers=headers, timeout=self.timeout)
        for cookie in answer_headers.get("set-cookie", []):
            name, _, rest = cookie.partition("=")
            self.jar[name.strip()] = rest.split(";")[0]
        return status, answer_headers, body

    def _cookies(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.jar.items())

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except (asyncio.TimeoutError, OSError, ConnectionClosed):
                pass
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the reader's end is not ours to judge
                pass
        self.ws = self._reader = None

    # --------------------------------------------------------------- what a user does

    def widget(self, key: str, type_: str | None = None) -> Widget:
        found = [w for w in self.widgets.values() if w.key == key and (type_ is None or w.type == type_)]
        if not found:
            raise ProtocolError(f"no widget with key {key!r} on screen (keys: {sorted(self.keys())})")
        return found[-1]

    def keys(self) -> set[str]:
        return {w.key for w in self.widgets.values() if w.key}

    def value(self, key: str):
        """The widget's value as the frontend holds it (options are their shown labels)."""
        w = self.widget(key)
        s = self.states.get(w.id)
        if s is None:
            return None
        field = s.WhichOneof("value")
        v = getattr(s, field)
        return list(v.data) if hasattr(v, "data") else v

    def options(self, key: str) -> list[str]:
        w = self.widget(key)
        if w.type == "button_group":
            return [o.content for o in w.proto.options]
        return list(getattr(w.proto, "options", []))

    async def set_value(self, key: str, value, kind: str) -> Interaction:
        """Change a widget as the user would: an option label for select boxes, radios and
        segmented controls, a number for sliders, a bool for toggles, a str for text inputs."""
        w = self.widget(key)
        s = WidgetState(id=w.id)
        if w.type in ("selectbox", "radio", "text_input"):
            s.string_value = str(value)
        elif w.type == "slider":
            s.double_array_value.data.extend(value if isinstance(value, (list, tuple)) else [float(value)])
        elif w.type == "button_group":
            s.string_array_value.data.extend([value] if isinstance(value, str) else list(value))
        elif w.type == "checkbox":
            s.bool_value = bool(value)
        else:
            raise ProtocolError(f"widget {key!r} is a {w.type}: set_value does not drive it")
        return await self._change(w, s, kind)

    async def click(self, key: str, trace_name: str, index_of: Callable[[int], int], kind: str = "click"
                    ) -> Interaction:
        """Click a point of a plotly chart drawn with on_select (selection_mode points)."""
        w = self.widget(key, "plotly_chart")
        selection, _ = click_point(w.proto.spec, trace_name, index_of)
        return await self._change(w, WidgetState(id=w.id, string_value=json.dumps(selection)), kind)

    async def switch_page(self, name: str, kind: str = "page") -> Interaction:
        """Open another page of st.navigation, as a click in the top navigation does."""
        if name not in self.pages:
            raise ProtocolError(f"no page {name!r} (pages: {sorted(self.pages)})")
        rec = self._begin(kind)
        # The frontend keeps only the main script's (sidebar) widgets across a page change.
        keep = [s for wid, s in self.states.items()
                if wid in self.widgets and self.widgets[wid].script_hash == self.main_hash]
        state = ClientState(page_script_hash=self.pages[name], query_string=self.query_string)
        state.widget_states.widgets.extend(keep)
        return await self._rerun(rec, state)

    async def upload(self, key: str, filename: str, data: bytes, content_type: str = "application/octet-stream",
                     kind: str = "upload") -> Interaction:
        """Choose a file in an st.file_uploader: get its URL, PUT it, rerun with its state."""
        return await self.upload_files(key, [(filename, data)], content_type, kind)

    async def upload_files(self, key: str, files: list[tuple[str, bytes]],
                           content_type: str = "application/octet-stream", kind: str = "upload") -> Interaction:
        """Choose several files at once in an st.file_uploader (accept_multiple_files): one URL and
        one PUT each, then one rerun with all of them in its state."""
        w = self.widget(key, "file_uploader")
        rec = self._begin(kind)
        request_id = uuid.uuid4().hex
        waiter = asyncio.get_running_loop().create_future()
        self._url_waiters[request_id] = waiter
        infos = []
        try:
            msg = BackMsg()
            msg.file_urls_request.request_id = request_id
            msg.file_urls_request.session_id = self.session_id
            msg.file_urls_request.file_names.extend(name for name, _ in files)
            await self.ws.send(msg.SerializeToString())
            answer_urls = (await asyncio.wait_for(waiter, self.timeout)).file_urls
            rec.uploaded = 0
            for (filename, data), urls in zip(files, answer_urls, strict=True):
                body, ctype = multipart("file", filename, data, content_type)
                status, _, answer = await http(self.port, "PUT", urls.upload_url, body=body, timeout=self.timeout,
                                               headers={"Content-Type": ctype, "X-Xsrftoken": self.cookie,
                                                        "Cookie": self._cookies(),
                                                        "Origin": f"http://{HOST}:{self.port}"})
                rec.uploaded += len(body)
                if status not in (200, 204):
                    raise ProtocolError(f"upload answered {status}: {answer[:200]!r}")
                info = UploadedFileInfo(name=filename, size=len(data), file_id=urls.file_id)
                info.file_urls.CopyFrom(urls)
                infos.append(info)
        except (OSError, asyncio.TimeoutError, ProtocolError, ConnectionClosed, IndexError, ValueError) as err:
            return self._fail(rec, f"upload: {type(err).__name__}: {err}")
        finally:
            self._url_waiters.pop(request_id, None)
        s = WidgetState(id=w.id)
        s.file_uploader_state_value.uploaded_file_info.extend(infos)
        return await self._change(w, s, kind, rec)

    async def press(self, key: str, kind: str) -> Interaction:
        """Press an st.button (a trigger: true for the one run it causes)."""
        w = self.widget(key, "button")
        rec = await self._change(w, WidgetState(id=w.id, trigger_value=True), kind)
        self.states.pop(w.id, None)  # the frontend resets a trigger after its run
        return rec

    # --------------------------------------------------------------- reruns

    def _begin(self, kind: str) -> Interaction:
        rec = Interaction(kind=kind, visitor=self.visitor, start=time.perf_counter())
        self.interactions.append(rec)
        self._current = rec
        return rec

    def _fail(self, rec: Interaction, error: str) -> Interaction:
        rec.ok, rec.error = False, error
        rec.latency = time.perf_counter() - rec.start
        return rec

    async def _change(self, w: Widget, state: WidgetState, kind: str, rec: Interaction | None = None
                      ) -> Interaction:
        rec = rec or self._begin(kind)
        self.states[w.id] = state
        client = ClientState(page_script_hash=self.page_hash, query_string=self.query_string,
                             fragment_id=w.fragment_id)
        client.widget_states.widgets.extend(self.states.values())
        return await self._rerun(rec, client)

    async def _rerun(self, rec: Interaction, client: ClientState) -> Interaction:
        if self.ws is None or self._reader is None or self._reader.done():
            return self._fail(rec, "not connected")
        client.cached_message_hashes.extend(self._cache)
        ctx = client.context_info
        ctx.timezone, ctx.timezone_offset, ctx.locale = "UTC", 0, "en-US"
        ctx.url, ctx.color_scheme = f"http://{HOST}:{self.port}/", "light"
        msg = BackMsg()
        msg.rerun_script.CopyFrom(client)
        self._waiting = asyncio.get_running_loop().create_future()
        self._run_errors = []
        self._new_session_seen = False
        try:
            await self.ws.send(msg.SerializeToString())
            status = await asyncio.wait_for(asyncio.shield(self._waiting), self.timeout)
        except asyncio.TimeoutError:
            return self._fail(rec, f"time-out after {self.timeout:.0f} s")
        except (ConnectionClosed, OSError, ProtocolError) as err:
            return self._fail(rec, f"{type(err).__name__}: {err}")
        finally:
            self._waiting = None
        rec.latency = time.perf_counter() - rec.start
        rec.ok = status not in FAILED_STATUSES and not self._run_errors
        if not rec.ok:
            rec.error = "; ".join(self._run_errors) or f"script finished with status {status}"
        return rec

    # --------------------------------------------------------------- what the server sends

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                self._on_message(data if isinstance(data, bytes) else data.encode())
        except ConnectionClosed as err:
            if self._waiting is not None and not self._waiting.done():
                self._waiting.set_exception(err)
        except ProtocolError as err:
            if self._waiting is not None and not self._waiting.done():
                self._waiting.set_exception(err)
            raise

    def _on_message(self, data: bytes) -> None:
        rec = self._current
        wire = self._wire_size(data)
        msg = ForwardMsg()
        msg.ParseFromString(data)
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":
            entry = self._cache.get(msg.ref_hash)
            if entry is None:
                raise ProtocolError(f"ref_hash {msg.ref_hash} is not in this visitor's cache")
            entry[1] = self._run_count
            if rec:
                rec.refs += 1
                rec.add(len(data), "ref_hash", wire)
            full = ForwardMsg()
            full.ParseFromString(entry[0])
            full.metadata.CopyFrom(msg.metadata)
            self._on_delta(full, None)
            return
        category = kind or "unknown"
        if kind == "delta":
            d = msg.delta
            category = d.new_element.WhichOneof("type") if d.WhichOneof("type") == "new_element" else d.WhichOneof("type")
            if msg.metadata.cacheable and msg.hash and msg.hash not in self._cache:
                self._cache[msg.hash] = [data, self._run_count, d.fragment_id]
            elif msg.hash in self._cache:
                self._cache[msg.hash][1] = self._run_count
        if rec:
            rec.add(len(data), category, wire)
        if kind == "delta":
            self._on_delta(msg, rec)
        elif kind == "new_session":
            self._on_new_session(msg)
        elif kind == "navigation":
            self.pages = {p.page_name: p.page_script_hash for p in msg.navigation.app_pages}
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "file_urls_response":
            waiter = self._url_waiters.get(msg.file_urls_response.response_id)
            if waiter is not None and not waiter.done():
                if msg.file_urls_response.error_msg:
                    waiter.set_exception(ProtocolError(msg.file_urls_response.error_msg))
                else:
                    waiter.set_result(msg.file_urls_response)
        elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
            self._run_errors.append("script compilation error: " + msg.session_event.script_compilation_exception.message)
        elif kind == "script_finished":
            self._on_finished(msg)

    def _on_new_session(self, msg: ForwardMsg) -> None:
        ns = msg.new_session
        self.session_id = ns.initialize.session_id or self.session_id
        self.main_hash, self.page_hash = ns.main_script_hash, ns.page_script_hash
        self._max_age = ns.config.max_cached_message_age or self._max_age
        self._run_id = msg.metadata.run.script_run_id
        self._run_fragments = list(msg.metadata.run.fragment_ids)
        self._new_session_seen = True
        self._seen = set()

    def _on_delta(self, msg: ForwardMsg, rec: Interaction | None) -> None:
        d = msg.delta
        if rec is not None:
            rec.deltas += 1
        if d.WhichOneof("type") != "new_element":
            return
        etype = d.new_element.WhichOneof("type")
        element = getattr(d.new_element, etype)
        if etype == "plotly_chart" and rec is not None:
            rec.figures += 1
            rec.figure_bytes += len(element.spec)
            rec.figure_sizes.append((widget_key(element.id), len(element.spec)))
        if etype == "exception":
            self._run_errors.append(f"the app raised {element.type}: {element.message[:200]}")
            return
        if etype not in WIDGET_TYPES or not getattr(element, "id", ""):
            return
        if etype == "plotly_chart" and not element.selection_mode:
            return  # a chart without on_select is no widget
        w = Widget(element.id, widget_key(element.id), etype, element, d.fragment_id,
                   msg.metadata.active_script_hash)
        self.widgets[w.id] = w
        self._seen.add(w.id)
        if w.id not in self.states or getattr(element, "set_value", False):
            state = initial_state(w)
            if state is not None:
                self.states[w.id] = state

    def _on_finished(self, msg: ForwardMsg) -> None:
        status = msg.script_finished
        run = msg.metadata.run
        if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            return
        if self._run_id and run.script_run_id and run.script_run_id != self._run_id:
            return  # the end of an older run, not the one this visitor waits for
        fragments = list(run.fragment_ids) or self._run_fragments
        # The frontend drops the widgets that were not drawn again (only the rerun fragment's on a
        # fragment run) and ages its cache.
        for wid in list(self.widgets):
            w = self.widgets[wid]
            if wid not in self._seen and (not fragments or w.fragment_id in fragments):
                del self.widgets[wid]
                self.states.pop(wid, None)
        if self._new_session_seen:
            self._run_count += 1
            for h, (_, used, frag) in list(self._cache.items()):
                if fragments and (not frag or frag not in fragments):
                    continue
                if self._run_count - used > self._max_age:
                    del self._cache[h]
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(status)
