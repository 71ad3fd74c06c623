"""A real Zebra loaded with a small demo province, and faulty network paths in front of it.

Databases (named like the libraries whose records they hold):
- ZJ001: CNMARC in GB18030 (the demo's GB18030 exporter), ZJ002: CNMARC in UTF-8,
- LOC: the 300 real Library of Congress MARC21 records (demo/real/loc_books_300.mrc),
- ZJ004: CNMARC in UTF-8 indexed without bib-1 use 1012, a server that cannot search by date.
Tests that change a catalogue load their own database with `fresh_database`.

`TcpProxy` forwards to Zebra and can throttle or cut the server's answer after
N bytes (a connection that drops mid-present or mid-transfer); `HttpFaults`
answers chosen SRU requests with 503 + Retry-After, a truncated body or a
canned diagnostic; `silent_port` accepts connections and never answers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from lxml import etree

from harvesters.landing import catalogue_pages
from transforms.iso2709 import parse_record, split_records
from unioncat.network.zebra import HOST, ZebraServer, free_port
from unioncat.province import DemoLibrary, write_demo_drops
from unioncat.registry import Library
from unioncat.settings import Settings

REPO = Path(__file__).resolve().parent.parent
LOC_RECORDS = REPO / "demo" / "real" / "loc_books_300.mrc"
DEMO_LIBRARIES = [
    DemoLibrary("ZJ001", "浙江图书馆", "杭州", "province"),
    DemoLibrary("ZJ002", "杭州图书馆", "杭州", "city"),
    DemoLibrary("ZJ003", "宁波图书馆", "宁波", "city"),
    DemoLibrary("ZJ004", "温州市图书馆", "温州", "city"),
]
UNDATED = "ZJ004"
SYNTAX = {"ZJ001": "cnmarc", "ZJ002": "cnmarc", "LOC": "marc21", "ZJ004": "cnmarc"}
_fresh = itertools.count(1)


def marc_records(path: Path) -> list[bytes]:
    return [record for _, record in split_records(path.read_bytes())]


def local_id(record: bytes) -> str:
    return next(f.data for f in parse_record(record).fields if f.tag == "001").decode("utf-8").strip()


def last_modified(record: bytes) -> str:
    return next(f.data for f in parse_record(record).fields if f.tag == "005")[:14].decode("ascii")


def with_control_fields(record: bytes, *, new_id: str | None = None, stamp: str | None = None) -> bytes:
    """The record with another 001 and/or 005 of the same length (so the directory stays valid)."""
    if new_id is not None:
        old = local_id(record)
        assert len(new_id) == len(old)
        record = record.replace(b"\x1e" + old.encode() + b"\x1e", b"\x1e" + new_id.encode() + b"\x1e", 1)
    if stamp is not None:
        record = record.replace(last_modified(record).encode(), stamp.encode(), 1)
    return record


@dataclass
class ZebraCatalogues:
    server: ZebraServer
    records: dict[str, list[bytes]]  # what each database holds

    def library(self, database: str, protocol: str, *, endpoint: str | None = None, syntax: str | None = None,
                conn_id: str | None = None) -> Library:
        default = self.server.z3950_endpoint(database) if protocol == "z3950" else self.server.sru_url(database)
        return Library(database, f"测试图书馆 {database}", "杭州", "city", protocol, endpoint or default,
                       syntax=syntax or SYNTAX.get(database, "cnmarc"), conn_id=conn_id)

    def fresh_database(self, records: list[bytes]) -> str:
        """A new database holding `records`, for a test that changes its catalogue."""
        name = f"FRESH{next(_fresh):03d}"
        self.server.put_records(name, records)
        self.records[name] = list(records)
        return name


@pytest.fixture(scope="module")
def zebra(tmp_path_factory) -> ZebraCatalogues:
    root = tmp_path_factory.mktemp("zebra")
    write_demo_drops(DEMO_LIBRARIES, root / "drops", titles=300)
    files = {"ZJ001": root / "drops/ZJ001/catalogue.mrc", "ZJ002": root / "drops/ZJ002/catalogue.mrc",
             "LOC": LOC_RECORDS, "ZJ004": root / "drops/ZJ004/catalogue.mrc"}
    assert not _is_utf8(files["ZJ001"]) and _is_utf8(files["ZJ002"]), "the demo's export plan changed"
    with ZebraServer(root / "server", {db: [path] for db, path in files.items()}, undated=[UNDATED]) as server:
        yield ZebraCatalogues(server, {db: marc_records(path) for db, path in files.items()})


def _is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "sources.toml", tmp_path / "data")


# ---- reading back what a harvest landed ---------------------------------------------------------------


def landed_marc(settings: Settings, library_id: str) -> list[bytes]:
    """The records of the library's catalogue pages (ISO 2709), in replay order."""
    return [record for page in catalogue_pages(settings, library_id) for record in marc_records(page)]


def landed_marcxml_ids(settings: Settings, library_id: str, *, run_id: str | None = None) -> list[str]:
    """The 001 of every record in the library's catalogue pages (SRU responses), in replay order;
    with `run_id`, only in the pages that run landed."""
    ids = []
    for page in catalogue_pages(settings, library_id):
        if run_id is None or page.parent.name == run_id:
            root = etree.fromstring(page.read_bytes(), etree.XMLParser(resolve_entities=False, no_network=True))
            ids += [text.strip() for text in root.xpath(MARCXML_001)]
    return ids


MARCXML_001 = "//*[local-name()='recordData']//*[local-name()='controlfield'][@tag='001']/text()"


def replayed(records: list[bytes]) -> dict[str, bytes]:
    """The catalogue a replay builds: the last version of each 001 wins."""
    return {local_id(record): record for record in records}


# ---- faulty network paths -----------------------------------------------------------------------------


class TcpProxy:
    """Forwards a loopback port to Zebra; the server's answer can be slowed (`delay` per chunk), cut
    after `cut_after` bytes on every connection, or held back both ways (`hold`, `release`)."""

    def __init__(self, upstream_port: int, *, cut_after: int | None = None, delay: float = 0.0) -> None:
        self.upstream_port, self.cut_after, self.delay = upstream_port, cut_after, delay
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.upstream_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, None, 0.0, self._flowing), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.cut_after, self.delay, self._flowing), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, limit: int | None, delay: float,
              flowing: threading.Event | None) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if limit is not None and sent + len(chunk) >= limit:
                    target.sendall(chunk[: limit - sent])
                    break
                time.sleep(delay)
                if flowing is not None:
                    flowing.wait()
                target.sendall(chunk)
                sent += len(chunk)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def hold(self) -> None:
        """Both directions wait in the proxy (at most one chunk each) until `release`: no request
        reaches the server and no answer the client."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self.listener.close()
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def silent_port():
    """A port whose connections are accepted (by the kernel's backlog) and never answered."""
    with socket.create_server((HOST, 0), backlog=8) as listener:
        yield listener.getsockname()[1]


def closed_port() -> int:
    """A loopback port nobody listens on: connections are refused."""
    return free_port()


class HttpFaults:
    """An HTTP proxy in front of an SRU server: request n (1-based) gets `faults[n]` instead of the
    server's answer: "503" (with Retry-After: 1), "truncate" (half the body, no Content-Length),
    "corrupt" (a vertical tab, which XML forbids, in the first subfield) or "diagnostic:<code>" (a
    canned SRU diagnostic)."""

    def __init__(self, upstream: str, faults: dict[int, str]) -> None:
        self.upstream, self.faults, self.requests = upstream, faults, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.requests += 1
                proxy.answer(self, proxy.faults.get(proxy.requests))

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, handler: BaseHTTPRequestHandler, fault: str | None) -> None:
        if fault == "503":
            handler.send_response(503)
            handler.send_header("Retry-After", "1")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if fault and fault.startswith("diagnostic:"):
            body = DIAGNOSTIC_RESPONSE.format(code=fault.split(":")[1]).encode()
            status = 200
        else:
            upstream = requests.get(self.upstream + handler.path, timeout=30)
            body, status = upstream.content, upstream.status_code
            if fault == "corrupt":
                body = body.replace(b"</subfield>", b"\x0b</subfield>", 1)
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml")
        if fault == "truncate":
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.close_connection = True
            return
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HttpFaults:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


DIAGNOSTIC_RESPONSE = """<?xml version="1.0" encoding="UTF-8"?>
<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:version>1.2</zs:version>
<zs:diagnostics xmlns:diag="http://www.loc.gov/zing/srw/diagnostic/"><diag:diagnostic>
<diag:uri>info:srw/diagnostic/1/{code}</diag:uri><diag:message>canned diagnostic</diag:message>
</diag:diagnostic></zs:diagnostics></zs:searchRetrieveResponse>
"""


def wait_for_pages(state_path: Path, pages: int, process, timeout: float = 30.0) -> dict:
    """Poll a harvest's state file until its run in progress has landed `pages` pages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the harvest ended before {pages} pages: {process.communicate()}"
        try:
            state = json.loads(state_path.read_text())
        except (FileNotFoundError, ValueError):
            state = {}
        if len((state.get("in_progress") or {}).get("pages", [])) >= pages:
            return state
        time.sleep(0.01)
    raise AssertionError(f"no {pages} pages within {timeout} s")
