"""Plain HTTP for bench/load_client.py: the requests a page makes besides its websocket (the
page, the health check that sets the XSRF cookie, the host config, uploads), to 127.0.0.1 only."""
from __future__ import annotations

import asyncio
import collections
import uuid

HOST = "127.0.0.1"  # the only address this bench ever talks to


class ProtocolError(RuntimeError):
    """The app did not answer as a browser expects (no such widget, a missing cache entry, …)."""


# ----------------------------------------------------------------------------- plain HTTP


async def http(port: int, method: str, path: str, *, headers: dict | None = None, body: bytes = b"",
               timeout: float = 10.0) -> tuple[int, dict[str, list[str]], bytes]:
    """One HTTP/1.1 request to 127.0.0.1:port (Connection: close); (status, headers, body)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close",
                 "User-Agent: patchlight-load/1", "Accept-Encoding: gzip", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), timeout)  # to EOF: Connection: close
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ProtocolError(f"{method} {path}: not an HTTP answer: {status_line[:80]!r}")
    out: dict[str, list[str]] = collections.defaultdict(list)
    for line in header_lines:
        name, _, value = line.partition(":")
        out[name.strip().lower()].append(value.strip())
    if "chunked" in ",".join(out.get("transfer-encoding", [])).lower():
        payload = _dechunk(payload)
    return int(parts[1]), dict(out), payload


def _dechunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    for _ in range(100_000):  # bounded: a chunk per iteration
        end = data.find(b"\r\n", pos)
        if end < 0:
            break
        size = int(data[pos:end].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[end + 2:end + 2 + size]
        pos = end + 2 + size + 2
    return bytes(out)


def multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file, as the browser's FormData sends it."""
    boundary = "----patchlight" + uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
