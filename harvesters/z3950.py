"""Z39.50 harvesting (over YAZ ZOOM, `harvesters.yaz`), and the search/retrieve harvest it shares with SRU.

A search/retrieve server has no "list everything changed since" verb, so a
harvest is one of two searches, each presented page by page:

- enumeration: every record (Zebra's `@attr 1=_ALLRECORDS @attr 2=103 ""`,
  CQL `cql.allRecords=1`). Used on the first run, with `full=True`, when the
  server cannot search by date, and whenever an incremental run cannot prove
  it saw every change. It replaces the catalogue; deletions are the 001s of
  the previous census missing from this one.
- date window: records whose 005 is at or after the watermark (bib-1 use 1012
  `@attr 2=4`, CQL `rec.lastModificationDate>=`), appended to the catalogue.
  Whether the server supports it is probed once and kept in the state. A
  date search cannot see deletions, so the run reconciles counts: the
  catalogue now holds (records at the last census) + (new 001s in the window)
  records exactly when nothing was deleted. When the server's all-records
  count says otherwise, the run falls back to an enumeration.

The census (the set of 001s, the record count, the date-search capability)
lives in the state (`census`), the 001s in a sidecar `<library_id>.<run_id>.ids`
next to the state file. Every page is checkpointed with the next position,
the hit count and the 001 of its last record: a rerun repeats the search and
goes on from there, unless the hit count changed or the record before that
position is no longer the same one, in which case the search starts over.
A page whose records (001 and 005, in order) are those of an earlier page of
the same search means the server is looping (the same page for ever, or a cycle
of pages): a terminal error, raised before the page is landed. The hit count
alone would end such a harvest "complete" with records missing.

Z39.50 specifics: the record syntax is negotiated from `library.syntax`
(cnmarc/unimarc -> UNIMARC, marc21 -> USMARC), no character set is
negotiated, and Zebra is asked for element set `zebra::data` (its stored
bytes), other servers for `F`. Each page is the raw ISO 2709 records of one
present, concatenated as received (`NNNNNN.mrc`).

Size cap (`Z3950Policy.max_bytes`, 64 MiB unless given, the counterpart of
`HttpPolicy.max_bytes`): it is negotiated at Init as preferredMessageSize and
maximumRecordSize, so a conforming server sends no larger message (ZOOM asks
for the rest of a present in further ones) and refuses a larger record with
diagnostic 16/17, reported as a record beyond the cap; and it is checked on
what arrives: a page whose records come to more than the cap (a server that
ignores the negotiation) is refused before it is landed. Both are terminal.
libyaz itself buffers at most 128 MiB of one APDU (its comstack's limit, which
ZOOM has no option for): that bounds the memory a server ignoring the cap can
take before the check.
"""

from __future__ import annotations

import contextlib
import hashlib
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harvesters import state as harvest_state
from harvesters import yaz
from harvesters.credentials import credentials_for
from harvesters.errors import HarvestError, RetryableHarvestError, TerminalHarvestError
from harvesters.landing import HarvestResult, HarvestRun
from transforms.iso2709 import FIELD_TERMINATOR, split_records
from unioncat import atomic
from unioncat.registry import Library
from unioncat.settings import Settings

ALL_RECORDS_PQF = '@attr 1=_ALLRECORDS @attr 2=103 ""'
RECORD_SYNTAXES = {"cnmarc": "unimarc", "unimarc": "unimarc", "marc21": "usmarc", "auto": None}
# Bib-1 diagnostics meaning "this server cannot run that search" (unsupported attribute, relation...)
UNSUPPORTED_SEARCH = frozenset({113, 114, 116, 117, 118, 121, 123})
DATABASE_UNAVAILABLE = frozenset({109, 235})
RECORD_SYNTAX_UNSUPPORTED = frozenset({238, 239})
RECORD_TOO_LARGE = frozenset({16, 17})  # record exceeds Exceptional-record-size / Preferred-message-size
ACCESS_REFUSED = frozenset({yaz.ERROR_INIT, *range(1010, 1017)})  # init rejected, Init/AC diagnostics
TRANSIENT = frozenset({2, yaz.ERROR_CONNECT, yaz.ERROR_DECODE, yaz.ERROR_CONNECTION_LOST, yaz.ERROR_TIMEOUT})
RESTARTS = 3  # times a search may start over because the server's catalogue changed under it

Stamp = tuple[str | None, str | None]  # (001, yyyymmddhhmmss of 005) of one record


@dataclass(frozen=True)
class Z3950Policy:
    timeout: int = 60  # seconds ZOOM waits for connect and for every answer
    page_records: int = 1000  # records per present, i.e. per landed page
    deadline: float = 600.0  # seconds a whole search or present may take (a trickling server never times out)
    max_bytes: int = 64 * 1024 * 1024  # the most one page (the records of one present) may bring, as HttpPolicy.max_bytes


# ---- the search/retrieve harvest, protocol-independent ----------------------------------------------


class SearchUnsupported(Exception):
    """The server cannot run this search (an unsupported index, attribute or relation)."""


class ResultSetChanged(Exception):
    """The server's result set changed while it was being presented."""


@dataclass
class Page:
    data: bytes  # as received, or mended (see `received`)
    next: int  # 0-based position after this page
    stamps: list[Stamp]  # one per record
    hits: int | None = None  # the result size reported with this page, where the protocol repeats it
    received: bytes | None = None  # the bytes received, when `data` had to be mended to be read


class SearchServer(Protocol):
    suffix: str  # of landed pages
    all_records: str

    def window(self, since: str) -> str:
        """The query for records changed at or after `since` (yyyymmddhhmmss)."""

    def search(self, query: str) -> int:
        """Run `query`; the number of hits. Raises SearchUnsupported."""

    def fetch(self, start: int, count: int) -> Page:
        """Up to `count` records of the last search from 0-based `start`."""

    def stamps(self, data: bytes) -> list[Stamp]:
        """The stamps of a landed page."""


@dataclass
class Census:
    """What the last committed harvest knew of the server's catalogue."""

    ids: set[str] = field(default_factory=set)
    records: int = 0
    date_search: bool | None = None  # None: not probed yet

    @classmethod
    def load(cls, settings: Settings, library_id: str, state: dict) -> Census | None:
        entry = state.get("census")
        if not entry:
            return None
        sidecar = settings.state_path(library_id).parent / entry["ids"]
        try:
            text = sidecar.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:  # without the 001s nothing can be reconciled: enumerate again
            return None
        return cls({line for line in text.split("\n") if line}, entry["records"], entry["date_search"])

    def save(self, settings: Settings, library_id: str, run_id: str) -> dict:
        """Write the 001s to this run's sidecar; returns the state entry naming it."""
        name = f"{library_id}.{run_id}.ids"
        text = "\n".join(sorted(self.ids))
        atomic.write_bytes(settings.state_path(library_id).parent / name, text.encode("utf-8", "surrogateescape"))
        return {"ids": name, "records": self.records, "date_search": self.date_search}


def _drop_old_sidecars(settings: Settings, library_id: str, keep: str) -> None:
    for sidecar in settings.state_path(library_id).parent.glob(f"{library_id}.*.ids"):
        if sidecar.name != keep:
            sidecar.unlink(missing_ok=True)


def harvest_by_search(settings: Settings, library: Library, run_id: str, server: SearchServer, *, full: bool,
                      page_records: int) -> HarvestResult:
    """Harvest `library` from a search/retrieve `server` (see the module docstring)."""
    state = harvest_state.load(settings, library.id)
    census = Census.load(settings, library.id, state)
    enumeration_interrupted = (state.get("in_progress") or {}).get("full", False)
    watermark = state.get("watermark")
    if census and watermark and census.date_search is not False and not (full or enumeration_interrupted):
        result = _harvest_window(settings, library, run_id, server, census, watermark, page_records)
        if result is not None:
            return result
    return _enumerate(settings, library, run_id, server, census, page_records)


def _harvest_window(settings: Settings, library: Library, run_id: str, server: SearchServer, census: Census,
                    watermark: str, page_records: int) -> HarvestResult | None:
    """Land the records changed since `watermark`; None when only an enumeration can be trusted."""
    run = HarvestRun(settings, library, run_id, full=False)
    resumed = run.resumed
    since = run.progress.get("since", watermark)
    try:
        total = server.search(server.all_records)
        stamps = _present(run, server, server.window(since), page_records, since=since)
    except SearchUnsupported:
        census.date_search = False
        return None
    census.date_search = True
    new_ids = {local_id for local_id, _ in stamps if local_id} - census.ids
    if census.records + len(new_ids) != total:  # something was deleted, or changed under the harvest
        return None
    census.ids |= new_ids
    census.records = total
    latest = max((stamp for _, stamp in stamps if stamp), default=watermark)
    entry = census.save(settings, library.id, run_id)
    run.finish(run.catalogue() + run.pages, watermark=max(latest, watermark), census=entry)
    _drop_old_sidecars(settings, library.id, entry["ids"])
    return HarvestResult(library.id, run_id, pages=len(run.pages), records=len(stamps),
                         unchanged=max(total - len(stamps), 0), bytes=run.bytes_landed, resumed=resumed)


def _enumerate(settings: Settings, library: Library, run_id: str, server: SearchServer, census: Census | None,
               page_records: int) -> HarvestResult:
    run = HarvestRun(settings, library, run_id, full=True)
    resumed = run.resumed
    try:
        stamps = _present(run, server, server.all_records, page_records)
    except SearchUnsupported as error:
        raise TerminalHarvestError(library.id, f"the server cannot list its catalogue ({error})") from None
    ids = {local_id for local_id, _ in stamps if local_id}
    previous = census or Census()
    entry = Census(ids, len(stamps), previous.date_search).save(settings, library.id, run_id)
    watermark = max((stamp for _, stamp in stamps if stamp), default=None)
    run.finish(list(run.pages), watermark=watermark, census=entry)
    _drop_old_sidecars(settings, library.id, entry["ids"])
    return HarvestResult(library.id, run_id, pages=len(run.pages), records=len(stamps),
                         deleted=len(previous.ids - ids), bytes=run.bytes_landed, resumed=resumed)


def _present(run: HarvestRun, server: SearchServer, query: str, page_records: int, **position) -> list[Stamp]:
    """Search, then land and checkpoint page after page; the stamps of every page of the run."""
    for _ in range(RESTARTS):
        try:
            return _present_once(run, server, query, page_records, position)
        except ResultSetChanged:
            run.pages.clear()
            run.checkpoint(None, **position)
    raise RetryableHarvestError(run.library.id, f"the catalogue kept changing during {RESTARTS} attempts to harvest it")


def _present_once(run: HarvestRun, server: SearchServer, query: str, page_records: int, position: dict) -> list[Stamp]:
    hits = server.search(query)
    checkpoint = run.progress
    sent: dict[bytes, int] = {}  # digest of each page's stamps → its position: a server sending pages again is caught
    stamps: list[Stamp] = []
    if run.pages and checkpoint.get("hits") == hits and _still_at(server, checkpoint):
        start = checkpoint["next"]
        for page in run.pages:
            landed = server.stamps((run.settings.data_dir / page).read_bytes())
            sent.setdefault(_page_digest(landed), len(stamps))
            stamps += landed
    else:
        run.pages.clear()
        start = 0
    number = _last_page_number(run)
    while start < hits:
        page = server.fetch(start, min(page_records, hits - start))
        if page.hits is not None and page.hits != hits:
            raise ResultSetChanged(f"{hits} hits became {page.hits}")
        if page.next <= start:
            raise RetryableHarvestError(run.library.id, f"the server returned no records at position {start + 1} of {hits}")
        if any(local_id for local_id, _ in page.stamps):  # a page of records without 001 cannot be told from another
            digest = _page_digest(page.stamps)
            if digest in sent:
                raise TerminalHarvestError(run.library.id, f"the server sent the {len(page.stamps)} records of position {sent[digest] + 1} "
                                                           f"again at position {start + 1} of {hits}: it is looping")
            sent[digest] = start
        number += 1
        landed = run.land(f"{number:06d}.{server.suffix}", page.data)
        if page.received is not None:
            run.land(f"{number:06d}.received", page.received)
        stamps += page.stamps
        start = page.next
        run.checkpoint(landed, next=start, hits=hits, last_id=page.stamps[-1][0] if page.stamps else None, **position)
    return stamps


def _page_digest(stamps: list[Stamp]) -> bytes:
    return hashlib.blake2b(repr(stamps).encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _still_at(server: SearchServer, checkpoint: dict) -> bool:
    """Is the record before the checkpoint's position still the one landed there?"""
    if checkpoint.get("last_id") is None:
        return True
    page = server.fetch(checkpoint["next"] - 1, 1)
    return bool(page.stamps) and page.stamps[0][0] == checkpoint["last_id"]


def _last_page_number(run: HarvestRun) -> int:
    """The highest page number this run's landing folder already uses (a run id may be reused)."""
    folder = Path("landing") / run.library.id / run.run_id
    return max((int(Path(page).stem) for page in run.catalogue() + run.pages
                if Path(page).parent == folder and Path(page).stem.isdigit()), default=0)


# ---- ISO 2709 stamps ---------------------------------------------------------------------------------


def _control_field(record: bytes, tag: bytes, directory_end: int) -> bytes | None:
    """A control field's data, found through the directory without walking every entry."""
    entry = record.find(tag, 24, directory_end)
    while entry != -1 and (entry - 24) % 12:  # the digits of a length or offset, not a tag
        entry = record.find(tag, entry + 1, directory_end)
    if entry == -1:
        return None
    try:
        start = directory_end + 1 + int(record[entry + 7 : entry + 12])
        return record[start : start + int(record[entry + 3 : entry + 7])].rstrip(FIELD_TERMINATOR)
    except ValueError:
        return None


def marc_stamp(record: bytes) -> Stamp:
    """001 and the yyyymmddhhmmss of 005 of an ISO 2709 record, without parsing the rest."""
    directory_end = record.find(FIELD_TERMINATOR, 24)
    local_id = (_control_field(record, b"001", directory_end) or b"").strip()
    modified = (_control_field(record, b"005", directory_end) or b"")[:14]
    return (local_id.decode("utf-8", "surrogateescape") or None,
            modified.decode("ascii") if len(modified) == 14 and modified.isdigit() else None)


def marc_stamps(data: bytes) -> list[Stamp]:
    return [marc_stamp(record) for _, record in split_records(data)]


# ---- Z39.50 ------------------------------------------------------------------------------------------


class Z3950Server:
    """A library's Z39.50 database as the search/retrieve harvest sees it."""

    suffix = "mrc"
    all_records = ALL_RECORDS_PQF

    def __init__(self, library: Library, policy: Z3950Policy) -> None:
        if library.syntax not in RECORD_SYNTAXES:
            raise TerminalHarvestError(
                library.id, f"Z39.50 lands ISO 2709: syntax {library.syntax!r} must be one of {', '.join(RECORD_SYNTAXES)}")
        self.library, self.policy = library, policy
        self.address, _, self.database = library.endpoint.partition("/")
        self._connection: yaz.Connection | None = None
        self._result: yaz.ResultSet | None = None
        # The next page is fetched while the caller lands this one; only that thread touches
        # the connection until its future is collected (`_collect_ahead`).
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"z3950-{library.id}")
        self._ahead: tuple[int, int, Future] | None = None

    def __enter__(self) -> Z3950Server:
        try:
            credentials = credentials_for(self.library)
        except LookupError as error:
            raise TerminalHarvestError(self.library.id, str(error)) from None
        with self._errors():
            try:
                self._connection = yaz.Connection(
                    self.address, database=self.database, timeout=self.policy.timeout, deadline=self.policy.deadline,
                    user=credentials.user if credentials else None, password=credentials.password if credentials else None,
                    preferredRecordSyntax=RECORD_SYNTAXES[self.library.syntax],
                    preferredMessageSize=self.policy.max_bytes, maximumRecordSize=self.policy.max_bytes,
                )
            except OSError as error:  # libyaz itself is missing
                raise TerminalHarvestError(self.library.id, str(error)) from None
        # Zebra's zebra::data is the stored record, byte for byte; F is every other server's full record.
        zebra = "zebra" in self._connection.option("serverImplementationName").lower()
        self._connection.set_option("elementSetName", "zebra::data" if zebra else "F")
        return self

    def __exit__(self, *exc) -> None:
        self._collect_ahead()
        self._prefetcher.shutdown()
        if self._result:
            self._result.close()
        if self._connection:
            self._connection.close()

    def window(self, since: str) -> str:
        return f'@attr 1=1012 @attr 2=4 "{since}"'

    def search(self, query: str) -> int:
        self._collect_ahead()
        if self._result:
            self._result.close()
            self._result = None
        with self._errors(searching=True):
            self._result = self._connection.search(query)
        return self._result.size

    def fetch(self, start: int, count: int) -> Page:
        ahead = self._collect_ahead()
        with self._errors():
            page = ahead[2].result() if ahead and ahead[:2] == (start, count) else self._page(start, count)
        if count > 1 and page.next < self._result.size:
            upcoming = min(count, self._result.size - page.next)
            self._ahead = (page.next, upcoming, self._prefetcher.submit(self._page, page.next, upcoming))
        return page

    def _page(self, start: int, count: int) -> Page:
        records = self._result.records(start, count)
        size = sum(map(len, records))
        if size > self.policy.max_bytes:
            raise TerminalHarvestError(self.library.id, f"Z39.50 {self.library.endpoint}: records {start + 1}-{start + len(records)} came "
                                                        f"to {size:,} bytes, beyond the {self.policy.max_bytes:,}-byte cap")
        return Page(b"".join(records), start + len(records), [marc_stamp(record) for record in records])

    def _collect_ahead(self) -> tuple[int, int, Future] | None:
        """Wait for the page being fetched ahead, if any, and hand it over (failed or not)."""
        ahead, self._ahead = self._ahead, None
        if ahead:
            wait([ahead[2]])
        return ahead

    def stamps(self, data: bytes) -> list[Stamp]:
        return marc_stamps(data)

    @contextlib.contextmanager
    def _errors(self, *, searching: bool = False):
        try:
            yield
        except yaz.ZoomError as error:
            if searching and error.code in UNSUPPORTED_SEARCH:
                raise SearchUnsupported(str(error)) from None
            raise self._harvest_error(error) from None

    def _harvest_error(self, error: yaz.ZoomError) -> HarvestError:
        where = f"Z39.50 {self.library.endpoint}"
        if error.code in TRANSIENT:
            return RetryableHarvestError(self.library.id, f"{where}: {error}")
        if error.code in ACCESS_REFUSED:
            advice = (f"check the credentials of conn_id {self.library.conn_id!r}" if self.library.conn_id
                      else "it may require credentials (set conn_id)")
            return TerminalHarvestError(self.library.id, f"{where}: the server refused the session ({error}); {advice}")
        if error.code in DATABASE_UNAVAILABLE:
            return TerminalHarvestError(self.library.id, f"{where}: database {self.database!r} is unavailable ({error})")
        if error.code in RECORD_TOO_LARGE:
            return TerminalHarvestError(self.library.id, f"{where}: a record beyond the {self.policy.max_bytes:,}-byte cap, "
                                                         f"which the server refused to send ({error})")
        if error.code in RECORD_SYNTAX_UNSUPPORTED:
            syntax = RECORD_SYNTAXES[self.library.syntax]
            return TerminalHarvestError(self.library.id, f"{where}: the server does not send {syntax} records ({error})")
        return TerminalHarvestError(self.library.id, f"{where}: {error}")


def harvest(settings: Settings, library: Library, run_id: str, *, full: bool = False,
            policy: Z3950Policy = Z3950Policy()) -> HarvestResult:
    with Z3950Server(library, policy) as server:
        return harvest_by_search(settings, library, run_id, server, full=full, page_records=policy.page_records)
