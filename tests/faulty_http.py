"""A fault-injecting HTTP proxy for protocol tests: put it in front of any local HTTP server
(the OAI-PMH server, Zebra's SRU) and script what goes wrong.

    from faulty_http import FaultyProxy, status, reset, stall, truncate   # tests/ is on sys.path under pytest

    with FaultyProxy("http://127.0.0.1:8080/oai") as proxy:   # upstream URL
        proxy.plan(status(503, retry_after="1"), truncate(match="resumptionToken", skip=2))
        harvest(proxy.url ...)           # same path as upstream; GET and POST are forwarded
        proxy.log                        # [(query string, fault kind or "pass"), ...] in order

A request goes to the first planned fault that wants it, otherwise it is passed through
unchanged. Every fault takes the same three keywords:
- `match`: a substring the request's query string (or POST form body) must contain, such as
  `"verb=ListRecords"` or `"resumptionToken"` (default `""`: every request);
- `skip`: how many matching requests to let through before the fault starts (default 0);
- `times`: how many matching requests it then affects (default 1; `None` for ever).

The faults (functions returning a `Fault`):
- `status(code, retry_after=None)`: answer `code` (503, 429, ...) with an empty body, and a
  `Retry-After` header if given;
- `reset()`: send the headers and half the body, then reset the connection (TCP RST);
- `stall(seconds)`: wait `seconds` before answering (beyond the client's read timeout to test
  timeouts; a short stall with `times=None` paces a harvest, e.g. to kill it mid-run); a
  stopping proxy ends its stalls at once;
- `truncate()`: half the body, with a Content-Length that fits it (the HTTP is fine, the XML is
  cut);
- `invalid_chars(chars=b"\\x1f")`: XML-invalid characters inserted after the root element's start
  tag (stripping them gives back the original body);
- `repeat_token()`: the paging cursor frozen: every response's OAI `resumptionToken` or SRU
  `nextRecordPosition` replaced by the first one this fault saw;
- `same_page()`: the first response this fault saw served again and again, each time with the
  paging cursor of the real response (new tokens, the same records: a server in a loop);
- `oversize(extra_bytes)`: the body followed by `extra_bytes` of spaces (still well-formed XML),
  streamed without a Content-Length, to hit a client's size cap.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus, urlsplit

_CURSOR = re.compile(rb"(<((?:\w+:)?(?:resumptionToken|nextRecordPosition))\b[^>]*?)(?:/>|>([^<]*)</\2>)")


@dataclass
class Fault:
    """One scripted fault, made by the functions below; `applied` counts the requests it affected."""

    kind: str
    match: str = ""
    skip: int = 0
    times: int | None = 1
    options: dict = field(default_factory=dict)
    seen: int = 0
    applied: int = 0
    memory: dict = field(default_factory=dict)

    def wants(self, query: str) -> bool:
        if self.match not in query:
            return False
        self.seen += 1
        return self.seen > self.skip and (self.times is None or self.applied < self.times)


def status(code: int, retry_after: str | None = None, **when) -> Fault:
    return Fault("status", options={"code": code, "retry_after": retry_after}, **when)


def reset(**when) -> Fault:
    return Fault("reset", **when)


def stall(seconds: float, **when) -> Fault:
    return Fault("stall", options={"seconds": seconds}, **when)


def truncate(**when) -> Fault:
    return Fault("truncate", **when)


def invalid_chars(chars: bytes = b"\x1f", **when) -> Fault:
    return Fault("invalid_chars", options={"chars": chars}, **when)


def repeat_token(**when) -> Fault:
    return Fault("repeat_token", **when)


def same_page(**when) -> Fault:
    return Fault("same_page", **when)


def oversize(extra_bytes: int, **when) -> Fault:
    return Fault("oversize", options={"extra_bytes": extra_bytes}, **when)


def _cursor(body: bytes) -> bytes | None:
    found = _CURSOR.search(body)
    return found[3] if found and found[3] else None


def _with_cursor(body: bytes, value: bytes | None) -> bytes:
    """`body` with its paging cursor's value replaced (set in an empty one, emptied if None)."""
    return _CURSOR.sub(lambda m: m[1] + (b">" + value + b"</" + m[2] + b">" if value else b"/>"), body, count=1)


def _after_root_start(body: bytes) -> int:
    position = 0
    while True:
        start = body.index(b"<", position)
        position = body.index(b">", start) + 1
        if body[start + 1 : start + 2] not in (b"?", b"!"):
            return position


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 injecting the planned faults; a context manager."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self._upstream, self._path = f"{parts.scheme}://{parts.netloc}", parts.path or "/"
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.log: list[tuple[str, str]] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.proxy = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}{self._path}"

    def plan(self, *faults: Fault) -> None:
        """Add faults to the plan (they apply in the order planned)."""
        with self._lock:
            self._faults.extend(faults)

    def start(self) -> "FaultyProxy":
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="faulty-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> "FaultyProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # one request
    def _choose(self, query: str) -> Fault | None:
        with self._lock:
            willing = [fault for fault in self._faults if fault.wants(query)]
            chosen = willing[0] if willing else None
            if chosen:
                chosen.applied += 1
            self.log.append((query, chosen.kind if chosen else "pass"))
            return chosen

    def _forward(self, handler: BaseHTTPRequestHandler, form: bytes) -> tuple[int, str, bytes]:
        request = urllib.request.Request(self._upstream + handler.path, data=form or None, method=handler.command)
        if form:
            request.add_header("Content-Type", handler.headers.get("Content-Type", "application/x-www-form-urlencoded"))
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers.get("Content-Type", "text/xml"), response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", "text/xml"), error.read()

    def handle(self, handler: BaseHTTPRequestHandler, form: bytes) -> None:
        query = unquote_plus(form.decode("latin-1") if form else urlsplit(handler.path).query)
        fault = self._choose(query)
        kind, options = (fault.kind, fault.options) if fault else ("pass", {})
        if kind == "status":
            headers = {"Retry-After": options["retry_after"]} if options["retry_after"] else {}
            return _send(handler, options["code"], "text/plain", b"", headers)
        if kind == "stall" and self._stopping.wait(options["seconds"]):
            return
        code, content_type, body = self._forward(handler, form)
        if kind == "reset":
            return _reset(handler, code, content_type, body)
        if kind == "oversize":
            return _stream(handler, code, content_type, body, options["extra_bytes"])
        if kind == "truncate":
            body = body[: len(body) // 2]
        elif kind == "invalid_chars":
            at = _after_root_start(body)
            body = body[:at] + options["chars"] + body[at:]
        elif kind in ("repeat_token", "same_page"):
            with self._lock:
                first = fault.memory.setdefault("body", body)
                frozen = fault.memory.setdefault("cursor", _cursor(body))
            body = _with_cursor(body, frozen) if kind == "repeat_token" else _with_cursor(first, _cursor(body))
        _send(handler, code, content_type, body)


def _send(handler: BaseHTTPRequestHandler, code: int, content_type: str, body: bytes, headers: dict | None = None) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def _reset(handler: BaseHTTPRequestHandler, code: int, content_type: str, body: bytes) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()  # with linger 0: a TCP RST, mid-body


def _stream(handler: BaseHTTPRequestHandler, code: int, content_type: str, body: bytes, extra_bytes: int) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.end_headers()
    handler.wfile.write(body)
    chunk = b" " * 65536
    for _ in range(0, extra_bytes, len(chunk)):
        handler.wfile.write(chunk)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection; a body may end with the connection

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _handle(self, form: bytes) -> None:
        try:
            self.server.proxy.handle(self, form)
        except OSError:  # the client gave up (timeout, size cap) or the connection was reset on purpose
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass
