"""The local library network: every library of the registry served by a real
server on loopback, loaded from its demo drop folder.

- `z3950` and `sru` libraries: one Zebra (`zebrasrv`), one database per
  library, Z39.50 and SRU on the same port (`127.0.0.1:<port>/<library id>`).
  Every third Z39.50 database is indexed without last-modified dates, like
  servers that cannot search by date: its harvests enumerate.
- `oai` libraries: one OAI-PMH server, a repository per library at
  `http://127.0.0.1:<port>/oai/<library id>`.
- `file` libraries: the drop folder itself.

The ports come from the registry's endpoints, so `sources.toml` is the single
description of the network. `unioncat network start` runs it in the
background (`serve` in a detached process); the demo and tests use
`LibraryNetwork` as a context manager.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit
from wsgiref.simple_server import make_server

import pymarc

from unioncat import atomic
from unioncat.network.oai_server import Repository, RecordStore, QuietHandler, ThreadingWSGIServer
from unioncat.network.zebra import ZebraServer
from unioncat.registry import Library
from unioncat.settings import Settings

READY_TIMEOUT = 300.0


class NetworkError(RuntimeError):
    pass


def _port(library: Library) -> int:
    if library.protocol == "z3950":
        return int(library.endpoint.split("/", 1)[0].rsplit(":", 1)[1])
    return urlsplit(library.endpoint).port or 80


def _single_port(libraries: list[Library], protocols: tuple[str, ...]) -> int | None:
    ports = {_port(lib) for lib in libraries if lib.protocol in protocols}
    if len(ports) > 1:
        raise NetworkError(f"{'/'.join(protocols)} libraries must share one port in the demo network, found {sorted(ports)}")
    return ports.pop() if ports else None


def _iso2709_files(drop: Path, workdir: Path) -> list[Path]:
    """The drop's catalogue as ISO 2709 (Zebra indexes ISO 2709; MARCXML is converted)."""
    files = []
    for path in sorted(drop.glob("*")):
        if path.suffix == ".mrc":
            files.append(path)
        elif path.suffix == ".xml":
            converted = workdir / f"{drop.name}-{path.stem}.mrc"
            records = pymarc.parse_xml_to_array(str(path))
            for record in records:
                record.force_utf8 = True
            atomic.write_bytes(converted, b"".join(r.as_marc() for r in records if r))
            files.append(converted)
    return files


def _encoding(path: Path) -> str:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


class _OaiRepositories:
    """One WSGI server routing `/oai/<library id>` to that library's repository."""

    def __init__(self, port: int, stores: dict[str, RecordStore]):
        self._http = make_server("127.0.0.1", port, self._route, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
        self.repositories = {
            library_id: Repository(store, base_url=f"http://127.0.0.1:{port}/oai/{library_id}", page_size=200,
                                   token_ttl=600.0, granularity="seconds", name=f"{library_id} catalogue")
            for library_id, store in stores.items()
        }
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def _route(self, environ, start_response):
        library_id = environ.get("PATH_INFO", "").strip("/").removeprefix("oai/")
        repository = self.repositories.get(library_id)
        if repository is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"no OAI repository {library_id!r}\n".encode()]
        return repository(environ, start_response)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


class LibraryNetwork:
    """Start and stop the servers of every enabled non-file library."""

    def __init__(self, settings: Settings, libraries: list[Library], drops_root: Path):
        self.settings = settings
        self.libraries = [lib for lib in libraries if lib.protocol != "file"]
        self.drops_root = drops_root
        self.workdir = settings.data_dir / "network"
        self._zebra: ZebraServer | None = None
        self._oai: _OaiRepositories | None = None
        self._stores: list[RecordStore] = []

    def _drop(self, library: Library) -> Path:
        drop = self.drops_root / library.id
        if not drop.is_dir():
            raise NetworkError(f"{library.id}: no catalogue to serve at {drop} (run `unioncat demo` once to generate the province)")
        return drop

    def start(self) -> "LibraryNetwork":
        self.workdir.mkdir(parents=True, exist_ok=True)
        zebra_libraries = [lib for lib in self.libraries if lib.protocol in ("z3950", "sru")]
        if zebra_libraries:
            converted = self.workdir / "converted"
            converted.mkdir(exist_ok=True)
            databases = {lib.id: _iso2709_files(self._drop(lib), converted) for lib in zebra_libraries}
            undated = [lib.id for n, lib in enumerate(zebra_libraries) if lib.protocol == "z3950" and n % 3 == 2]
            (self.workdir / "zebra").mkdir(exist_ok=True)
            self._zebra = ZebraServer(self.workdir / "zebra", databases, undated=undated, port=_single_port(zebra_libraries, ("z3950", "sru")))
            self._zebra.start()
        oai_libraries = [lib for lib in self.libraries if lib.protocol == "oai"]
        if oai_libraries:
            stores = {}
            for lib in oai_libraries:
                store_path = self.workdir / "oai" / f"{lib.id}.sqlite"
                store_path.parent.mkdir(parents=True, exist_ok=True)
                store_path.unlink(missing_ok=True)
                store = RecordStore(store_path, repository_id=lib.id.lower())
                for path in sorted(self._drop(lib).glob("*")):
                    store.load_file(path, encoding=_encoding(path))
                stores[lib.id] = store
            self._stores = list(stores.values())
            self._oai = _OaiRepositories(_single_port(oai_libraries, ("oai",)), stores)
            self._oai.start()
        return self

    def stop(self) -> None:
        if self._oai:
            self._oai.stop()
            self._oai = None
        for store in self._stores:
            store.close()
        self._stores = []
        if self._zebra:
            self._zebra.stop()
            self._zebra = None

    def __enter__(self) -> "LibraryNetwork":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


# ---- background service: `unioncat network start|stop|status` -----------------------------------

def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "network" / "network.json"


def serve(settings: Settings, libraries: list[Library], drops_root: Path) -> None:
    """Run the network until SIGTERM/SIGINT; announce readiness in the pid file."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with LibraryNetwork(settings, libraries, drops_root) as network:
        atomic.write_json(_pid_file(settings), {"pid": os.getpid(), "ready": True, "libraries": len(network.libraries)})
        try:
            stopping.wait()
        except KeyboardInterrupt:
            pass
    _pid_file(settings).unlink(missing_ok=True)


def status(settings: Settings) -> dict | None:
    """The running network's pid file, or None when it is not running."""
    info = atomic.read_json(_pid_file(settings))
    if not info:
        return None
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        _pid_file(settings).unlink(missing_ok=True)
        return None
    return info


def start_background(settings: Settings) -> dict:
    if status(settings):
        raise NetworkError(f"the network is already running (pid {status(settings)['pid']}); `unioncat network stop` first")
    log = settings.data_dir / "network" / "network.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "unioncat.cli", "network", "serve", "--sources", str(settings.sources_path), "--data-dir", str(settings.data_dir)]
    with log.open("ab") as output:
        process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        info = status(settings)
        if info and info.get("ready"):
            return info
        if process.poll() is not None:
            raise NetworkError(f"the network failed to start (exit {process.returncode}); see {log}")
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    raise NetworkError(f"the network did not become ready in {READY_TIMEOUT:.0f} s; see {log}")


def stop_background(settings: Settings) -> bool:
    info = status(settings)
    if not info:
        return False
    os.killpg(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while status(settings) and time.monotonic() < deadline:
        time.sleep(0.2)
    if status(settings):
        os.killpg(info["pid"], signal.SIGKILL)
        _pid_file(settings).unlink(missing_ok=True)
    return True
