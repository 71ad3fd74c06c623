"""A real Zebra (`idzebra-2.0`) for the tests and the demo: Z39.50 and SRU on one loopback port.

    with ZebraServer(workdir, {"ZJ001": [Path("catalogue.mrc")]}) as zebra:
        zebra.z3950_endpoint("ZJ001")   # '127.0.0.1:40123/ZJ001'
        zebra.sru_url("ZJ001")          # 'http://127.0.0.1:40123/ZJ001'
        zebra.put_records("ZJ001", [record_bytes])
        zebra.delete_records("ZJ001", ["zj0010288233"])

Each database holds ISO 2709 MARC records (MARC21 or UNIMARC/CNMARC, UTF-8 or
GB18030: a database whose files are not all valid UTF-8 is taken as GB18030).
Records are identified by their 001, so putting a record whose 001 is already
there replaces it. Over Z39.50, element set `zebra::data` returns the stored
bytes unchanged; over SRU, `recordSchema=marcxml` is built from Zebra's parsed
record, which the abstract syntax below decodes from the database's charset,
so GB18030 catalogues come out as proper UTF-8 MARCXML, as a Chinese
library's SRU server would send them.

Indexed: 001 as bib-1 use 12 (Local-number), the first 14 characters of 005
(yyyymmddhhmmss) as use 1012 (Date/time-last-modified, so `@attr 2=4` finds
records changed since a moment; CQL `rec.lastModificationDate`), 200$a / 245$a
as title. Databases named in `undated` are indexed without 1012, standing for
servers that cannot search by date (they answer bib-1 diagnostic 114).
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ZEBRA_TABLES = Path("/usr/share/idzebra-2.0/tab")
YAZ_CQL_TO_PQF = Path("/usr/share/yaz/etc/pqf.properties")
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

ABSTRACT_SYNTAX = """name {name}
reference USmarc
attset bib1.att
tagset usmarc.tag
marc usmarc.mar
encoding {charset}
esetname F @
elm 001 Local-number !:w,!:p
{last_modified}elm 200 title -
elm 200/? title -
elm 200/?/a title !:w,!:p
elm 245 title -
elm 245/? title -
elm 245/?/a title !:w,!:p
"""
LAST_MODIFIED = "elm 005 Date/time-last-modified !:w:range(data,0,14)\n"

ZEBRA_CFG = """profilePath: {tab}:{zebra_tables}
modulePath: {modules}
attset: bib1.att
register: {workdir}/register:4G
shadow: {workdir}/shadow:4G
lockDir: {workdir}/tmp
keyTmpDir: {workdir}/tmp
storeData: 1
storeKeys: 1
recordId: $database (bib1,Local-number)
"""

# Z39.50 clients get the stored bytes (zebra::data) or Zebra's own rendering; SRU gets MARCXML.
YAZGFS_XML = """<yazgfs>
  <listen id="loopback">tcp:{host}:{port}</listen>
  <server id="zebra" listenref="loopback">
    <directory>{workdir}</directory>
    <config>zebra.cfg</config>
    <cql2rpn>pqf.properties</cql2rpn>
    <maximumrecordsize>67108864</maximumrecordsize>
    <retrievalinfo>
      <retrieval syntax="usmarc"/>
      <retrieval syntax="unimarc"/>
      <retrieval syntax="xml" name="marcxml" identifier="info:srw/schema/1/marcxml-v1.1">
        <backend syntax="usmarc" name="F">
          <marc inputformat="marc" outputformat="marcxml" inputcharset="utf-8"/>
        </backend>
      </retrieval>
    </retrievalinfo>
  </server>
</yazgfs>
"""
# YAZ's CQL mapping lacks the rec context set's last-modified index.
CQL_LAST_MODIFIED = "index.rec.lastModificationDate = 1=1012\n"


class ZebraError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _modules_dir() -> str:
    found = glob.glob("/usr/lib/*/idzebra-2.0/modules")
    if not found:
        raise ZebraError("Zebra's filter modules are missing: apt-get install idzebra-2.0")
    return found[0]


def _charset(records: Iterable[bytes]) -> str:
    try:
        for record in records:
            record.decode("utf-8")
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def _stub_record(local_id: str) -> bytes:
    """A record carrying only its 001: enough for Zebra to find the record to delete."""
    field = local_id.encode("utf-8") + b"\x1e"
    directory = b"001" + b"%04d%05d" % (len(field), 0) + b"\x1e"
    base = 24 + len(directory)
    length = base + len(field) + 1
    return b"%05dnam  22%05d   4500" % (length, base) + directory + field + b"\x1d"


class ZebraServer:
    """Index `databases` ({name: [ISO 2709 files]}) under `workdir` and serve them on a free port."""

    def __init__(self, workdir: Path, databases: Mapping[str, Sequence[Path]], *, undated: Iterable[str] = (),
                 accounts: Mapping[str, str] | None = None, port: int | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.databases = {name: [Path(p).resolve(strict=True) for p in files] for name, files in databases.items()}
        self.undated = frozenset(undated)
        self.accounts = dict(accounts or {})
        self.port = 0
        self._requested_port = port  # None: a free one
        self._record_types: dict[str, str] = {}
        self._process: subprocess.Popen | None = None
        self._updates = 0

    # -- addresses -------------------------------------------------------------------------------

    def z3950_endpoint(self, database: str) -> str:
        return f"{HOST}:{self.port}/{database}"

    def sru_url(self, database: str) -> str:
        return f"http://{HOST}:{self.port}/{database}"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "ZebraServer":
        self._write_configuration()
        self._zebraidx("init")
        for database, files in self.databases.items():
            for path in files:
                self._index(database, "update", path)
        self._zebraidx("commit")
        self.port = self._requested_port or free_port()
        (self.workdir / "yazgfs.xml").write_text(YAZGFS_XML.format(host=HOST, port=self.port, workdir=self.workdir))
        log = self.workdir / "zebrasrv.log"
        self._process = subprocess.Popen(
            ["zebrasrv", "-f", "yazgfs.xml", "-l", str(log)], cwd=self.workdir, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_until_listening(log)
        return self

    def stop(self) -> None:
        """Stop zebrasrv and every child it forked (they share its process group)."""
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                continue
        process.wait()

    def __enter__(self) -> "ZebraServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- changing the catalogue while serving ----------------------------------------------------

    def put_records(self, database: str, records: Iterable[bytes]) -> None:
        """Add records; one whose 001 is already in `database` replaces the stored one."""
        self._apply(database, "update", list(records))

    def delete_records(self, database: str, local_ids: Iterable[str]) -> None:
        self._apply(database, "delete", [_stub_record(local_id) for local_id in local_ids])

    def _apply(self, database: str, action: str, records: list[bytes]) -> None:
        self._updates += 1
        batch = self.workdir / "updates" / f"{self._updates:06d}.mrc"
        batch.parent.mkdir(exist_ok=True)
        batch.write_bytes(b"".join(records))
        self._index(database, action, batch, records)
        self._zebraidx("commit")
        batch.unlink()

    # -- internals -------------------------------------------------------------------------------

    def _write_configuration(self) -> None:
        tab = self.workdir / "tab"
        for path in (tab, self.workdir / "register", self.workdir / "shadow", self.workdir / "tmp"):
            path.mkdir(parents=True, exist_ok=True)
        for charset in ("utf-8", "gb18030"):
            for dated in (True, False):
                name = self._abstract_syntax(charset, dated)
                text = ABSTRACT_SYNTAX.format(name=name, charset=charset, last_modified=LAST_MODIFIED if dated else "")
                (tab / f"{name}.abs").write_text(text)
        config = ZEBRA_CFG.format(tab=tab, zebra_tables=ZEBRA_TABLES, modules=_modules_dir(), workdir=self.workdir)
        if self.accounts:
            (self.workdir / "passwd").write_text("".join(f"{user}:{password}\n" for user, password in self.accounts.items()))
            config += "passwd: passwd\n" + "".join(f"perm.{user}: r\n" for user in self.accounts)
        (self.workdir / "zebra.cfg").write_text(config)
        (self.workdir / "pqf.properties").write_text(YAZ_CQL_TO_PQF.read_text() + CQL_LAST_MODIFIED)

    @staticmethod
    def _abstract_syntax(charset: str, dated: bool) -> str:
        return f"catalogue-{charset}" + ("" if dated else "-undated")

    def _index(self, database: str, action: str, path: Path, records: list[bytes] | None = None) -> None:
        if database not in self._record_types:
            charset = _charset([path.read_bytes()] if records is None else records)
            self._record_types[database] = "grs.marc." + self._abstract_syntax(charset, database not in self.undated)
        self._zebraidx("-d", database, "-t", self._record_types[database], action, str(path))

    def _zebraidx(self, *arguments: str) -> None:
        result = subprocess.run(["zebraidx", "-c", "zebra.cfg", *arguments], cwd=self.workdir,
                                capture_output=True, text=True, errors="replace", timeout=600)
        if result.returncode != 0:
            raise ZebraError(f"zebraidx {' '.join(arguments)} failed: {result.stderr[-2000:]}")

    def _wait_until_listening(self, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                self._process = None
                raise ZebraError(f"zebrasrv exited at start: {tail}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ZebraError(f"zebrasrv did not answer on {HOST}:{self.port} within {START_TIMEOUT:.0f} s")
