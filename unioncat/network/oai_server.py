"""A small, standards-conformant OAI-PMH 2.0 repository for the demo network and the tests.

`RecordStore` keeps MARC records in SQLite (identifier, 001, datestamp, sets, deleted flag,
MARCXML bytes) and may change while the server runs: `upsert` (a pymarc Record, ISO 2709 or
MARCXML), `delete`, `load_file` (a library's whole ISO 2709 or MARCXML file; records pymarc
cannot read, such as a truncated last one, are skipped; pass `encoding="gb18030"` for GB
exports). Identifiers are `oai:<repository_id>:<001>`. `OAIServer` serves a store over HTTP on
127.0.0.1 (a free port unless given) from a background thread, with start()/stop() or as a
context manager: `with OAIServer(store) as server: server.url`.

All six verbs (Identify, ListMetadataFormats, ListSets, ListIdentifiers, ListRecords, GetRecord),
GET and POST, metadata prefixes `marc21` (the stored MARCXML, CNMARC included) and `oai_dc` (a
crosswalk made when served), from/until in the day form and, with `granularity="seconds"`
(the default), in the seconds form; sets with hierarchy (`a:b` is in `a`); deleted records
kept as `<header status="deleted">` (deletedRecord `persistent`); every error code of the
protocol. Lists page in datestamp order by keyset, so records changed during a harvest move to
its end instead of shifting pages; resumption tokens carry completeListSize, cursor and
expirationDate, stay valid (retries may repeat them) for `token_ttl` seconds, and are refused
with badResumptionToken after that or after `expire_tokens()`.

XML-invalid characters (a real LoC record has a 0x1F in its 001) are stripped when a record is
stored, so every response is well-formed XML.

Why not the `oaipmh` package's server: its tokens encode an offset (pages shift when the store
changes) and cannot expire, and it rebuilds every record through lxml writers on each request;
this module serves the stored bytes, so the harvest benchmark measures the harvesters, not
the server.

Run one from the command line: `python -m unioncat.network.oai_server --store oai.sqlite
--load catalogue.mrc --port 8080` prints its URL and serves until interrupted.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Iterable
from urllib.parse import parse_qs, quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from xml.sax.saxutils import escape, quoteattr

import pymarc
from lxml import etree

OAI_NAMESPACE = "http://www.openarchives.org/OAI/2.0/"
MARC_NAMESPACE = "http://www.loc.gov/MARC21/slim"
METADATA_FORMATS = {  # prefix: (schema, namespace)
    "marc21": ("http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd", MARC_NAMESPACE),
    "oai_dc": ("http://www.openarchives.org/OAI/2.0/oai_dc.xsd", "http://www.openarchives.org/OAI/2.0/oai_dc/"),
}
SECONDS = "YYYY-MM-DDThh:mm:ssZ"
DAY = "YYYY-MM-DD"

_INVALID_XML = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]"
    r"|&#(?:[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F])|0*(?:[0-8]|1[1-2]|1[4-9]|2[0-9]|3[01]));"
)
_DATESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?")
_PARSER = dict(resolve_entities=False, no_network=True)


def xml_safe(text: str) -> str:
    """`text` without the characters (raw or as references) XML 1.0 forbids."""
    return _INVALID_XML.sub("", text)


def utc_stamp(moment: datetime | str | None = None) -> str:
    """A datestamp in the seconds form; `None` is now."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the record store --------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    identifier TEXT PRIMARY KEY, local_id TEXT, datestamp TEXT NOT NULL,
    sets TEXT NOT NULL DEFAULT '', deleted INTEGER NOT NULL DEFAULT 0, metadata BLOB);
CREATE INDEX IF NOT EXISTS records_by_datestamp ON records (datestamp, identifier);
CREATE TABLE IF NOT EXISTS sets (spec TEXT PRIMARY KEY, name TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Query:
    """What a list request selects: datestamps in [low, high] (seconds form), optionally a set."""

    low: str
    high: str
    set: str | None = None

    def where(self) -> tuple[str, list]:
        sql, arguments = "datestamp >= ? AND datestamp <= ?", [self.low, self.high]
        if self.set:
            sql += " AND (instr(' ' || sets || ' ', ' ' || ? || ' ') > 0 OR instr(' ' || sets, ' ' || ? || ':') > 0)"
            arguments += [self.set, self.set]
        return sql, arguments


class RecordStore:
    """MARC records as an OAI repository holds them; safe to change while a server reads it."""

    def __init__(self, path: str | Path = ":memory:", *, repository_id: str = "unioncat"):
        self.repository_id = repository_id
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)  # one connection, used under the lock
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # writing
    def upsert(self, record, datestamp=None, sets: Iterable[str] = (), *, identifier: str | None = None, encoding: str = "auto") -> str:
        """Add or replace one record: a `pymarc.Record`, ISO 2709 bytes or MARCXML; returns its identifier.

        The identifier is `oai:<repository_id>:<001>` unless given; `encoding` decodes ISO 2709
        (`auto`: UTF-8 when leader/09 is `a` or the bytes are valid UTF-8, otherwise MARC-8).
        """
        with self._lock, self._db:
            return self._upsert(_marcxml(record, encoding), utc_stamp(datestamp), tuple(sets), identifier)

    def delete(self, identifier: str, datestamp=None) -> None:
        """Mark a record deleted (it stays listed with a deleted header)."""
        with self._lock, self._db:
            changed = self._db.execute(
                "UPDATE records SET deleted = 1, metadata = NULL, datestamp = ? WHERE identifier = ?", (utc_stamp(datestamp), identifier)
            ).rowcount
        if not changed:
            raise KeyError(identifier)

    def load_file(self, path: str | Path, *, datestamp=None, sets: Iterable[str] = (), encoding: str = "auto") -> int:
        """Upsert every record of an ISO 2709 or MARCXML file in one transaction; returns how many."""
        stamp, sets, count = utc_stamp(datestamp), tuple(sets), 0
        with self._lock, self._db:
            for count, element in enumerate(_file_records(Path(path), encoding), 1):
                self._upsert(element, stamp, sets, None, fallback_id=f"{Path(path).stem}-{count}")
        return count

    def _upsert(self, element, stamp: str, sets: tuple[str, ...], identifier: str | None, fallback_id: str | None = None) -> str:
        local_id = next((c.text.strip() for c in element if c.get("tag") == "001" and c.text and c.text.strip()), None)
        if identifier is None:
            if not (local_id or fallback_id):
                raise ValueError("the record has no 001: pass identifier=")
            identifier = f"oai:{self.repository_id}:{quote(local_id or fallback_id, safe=':/-._~')}"
        for spec in sets:  # a record in `a:b` makes both `a:b` and `a` sets
            parts = spec.split(":")
            self._db.executemany("INSERT OR IGNORE INTO sets VALUES (?, ?)", [(":".join(parts[:n]),) * 2 for n in range(1, len(parts) + 1)])
        self._db.execute(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, 0, ?)",
            (identifier, local_id, stamp, " ".join(sets), etree.tostring(element, encoding="utf-8", with_tail=False)),
        )
        return identifier

    # reading
    def headers(self) -> dict[str, tuple[str, bool]]:
        """identifier → (datestamp, deleted) for every record."""
        with self._lock:
            return {row[0]: (row[1], bool(row[2])) for row in self._db.execute("SELECT identifier, datestamp, deleted FROM records")}

    def earliest(self) -> str | None:
        with self._lock:
            return self._db.execute("SELECT min(datestamp) FROM records").fetchone()[0]

    def sets(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute("SELECT spec, name FROM sets ORDER BY spec").fetchall()

    def record(self, identifier: str) -> tuple | None:
        """(identifier, datestamp, deleted, sets, metadata) or None."""
        with self._lock:
            return self._db.execute(
                "SELECT identifier, datestamp, deleted, sets, metadata FROM records WHERE identifier = ?", (identifier,)
            ).fetchone()

    def count(self, query: Query) -> int:
        where, arguments = query.where()
        with self._lock:
            return self._db.execute(f"SELECT count(*) FROM records WHERE {where}", arguments).fetchone()[0]

    def page(self, query: Query, after: tuple[str, str] | None, limit: int) -> list[tuple]:
        """Up to `limit` rows (identifier, datestamp, deleted, sets, metadata) after the key `after`."""
        where, arguments = query.where()
        if after:
            where += " AND (datestamp > ? OR (datestamp = ? AND identifier > ?))"
            arguments += [after[0], after[0], after[1]]
        with self._lock:
            return self._db.execute(
                f"SELECT identifier, datestamp, deleted, sets, metadata FROM records WHERE {where} "
                "ORDER BY datestamp, identifier LIMIT ?",
                arguments + [limit],
            ).fetchall()


def _marcxml(record, encoding: str):
    """One record as an lxml MARCXML element, XML-invalid characters stripped."""
    if isinstance(record, (bytes, bytearray)) and not record.lstrip().startswith(b"<"):
        record = _iso2709(bytes(record), encoding)
    if isinstance(record, pymarc.Record):
        record = pymarc.record_to_xml(record, namespace=True)
    text = record.decode("utf-8", "replace") if isinstance(record, (bytes, bytearray)) else record
    root = etree.fromstring(xml_safe(text).encode("utf-8"), etree.XMLParser(**_PARSER))
    return root if etree.QName(root).localname == "record" else next(_marc_elements(root))


def _iso2709(data: bytes, encoding: str) -> pymarc.Record:
    if encoding == "utf-8" or (encoding == "auto" and (data[9:10] == b"a" or _is_utf8(data))):
        return pymarc.Record(data, force_utf8=True, utf8_handling="replace")
    # pymarc reads MARC-8 when told the file is "iso8859-1", and any other encoding as it is named
    return pymarc.Record(data, file_encoding="iso8859-1" if encoding in ("auto", "marc-8") else encoding)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _marc_elements(root):
    return (e for e in root.iter("{*}record") if any(etree.QName(c).localname == "leader" for c in e))


def _file_records(path: Path, encoding: str):
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    if data.lstrip()[:1] == b"<":
        yield from _marc_elements(etree.fromstring(xml_safe(data.decode("utf-8", "replace")).encode("utf-8"), etree.XMLParser(**_PARSER)))
        return
    for chunk in filter(bytes.strip, data.split(b"\x1d")):
        try:
            element = _marcxml(chunk + b"\x1d", encoding)
        except (pymarc.exceptions.PymarcException, ValueError, etree.XMLSyntaxError):
            continue  # a record pymarc cannot read (e.g. a truncated last one) is not served
        yield element


# ---- oai_dc, crosswalked when served -----------------------------------------------------------

_DUBLIN_CORE = {  # (tag, subfield codes, element), in the order oai_dc lists its elements
    "marc21": [("245", "ab", "title"), ("100", "a", "creator"), ("110", "a", "creator"), ("700", "a", "creator"), ("710", "a", "creator"),
               ("650", "a", "subject"), ("260", "b", "publisher"), ("264", "b", "publisher"), ("260", "c", "date"), ("264", "c", "date"),
               ("020", "a", "identifier"), ("041", "a", "language")],
    "cnmarc": [("200", "ae", "title"), ("700", "a", "creator"), ("701", "a", "creator"), ("702", "a", "creator"), ("710", "a", "creator"),
               ("711", "a", "creator"), ("606", "a", "subject"), ("210", "c", "publisher"), ("210", "d", "date"), ("010", "a", "identifier"),
               ("101", "a", "language")],
}


def dublin_core(marcxml: bytes) -> bytes:
    """oai_dc for a stored MARCXML record (CNMARC when it has a 200 field, else MARC21)."""
    record = etree.fromstring(marcxml, etree.XMLParser(**_PARSER))
    fields = [(f.get("tag"), f) for f in record if etree.QName(f).localname == "datafield"]
    crosswalk = _DUBLIN_CORE["cnmarc" if any(tag == "200" for tag, _ in fields) else "marc21"]
    elements = []
    for tag, codes, name in crosswalk:
        for field in (field for field_tag, field in fields if field_tag == tag):
            value = " ".join(s.text.strip() for s in field if s.get("code") in codes and s.text and s.text.strip())
            if value:
                elements.append(f"<dc:{name}>{escape(('ISBN ' if name == 'identifier' else '') + value)}</dc:{name}>")
    return (
        '<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        + "".join(elements) + "</oai_dc:dc>"
    ).encode("utf-8")


# ---- the protocol ------------------------------------------------------------------------------

class OAIPMHError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_LIST_ARGUMENTS = ({"metadataPrefix"}, {"from", "until", "set"})
_VERBS = {  # verb: (required, optional); resumptionToken is exclusive where lists page
    "Identify": (set(), set()),
    "ListMetadataFormats": (set(), {"identifier"}),
    "ListSets": (set(), set()),
    "GetRecord": ({"identifier", "metadataPrefix"}, set()),
    "ListIdentifiers": _LIST_ARGUMENTS,
    "ListRecords": _LIST_ARGUMENTS,
}
_PAGED = ("ListSets", "ListIdentifiers", "ListRecords")


@dataclass(frozen=True)
class Listing:
    """Where a list request stands; what a resumption token stands for."""

    verb: str
    prefix: str
    query: Query
    after: tuple[str, str] | None
    cursor: int
    size: int
    expires: float


class Repository:
    """The OAI-PMH protocol over a `RecordStore`, as a WSGI application."""

    def __init__(self, store: RecordStore, *, base_url: str, page_size: int, token_ttl: float, granularity: str, name: str):
        if granularity not in ("seconds", "day"):
            raise ValueError("granularity is 'seconds' or 'day'")
        self.store, self.base_url, self.page_size, self.token_ttl = store, base_url, page_size, token_ttl
        self.granularity, self.name = granularity, name
        self._tokens: OrderedDict[str, Listing] = OrderedDict()
        self._tokens_lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            query = environ["wsgi.input"].read(length).decode("utf-8", "replace")
        else:
            query = environ.get("QUERY_STRING", "")
        body = self.respond(parse_qs(query, keep_blank_values=True))
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    def expire_tokens(self) -> None:
        with self._tokens_lock:
            for token, listing in self._tokens.items():
                self._tokens[token] = replace(listing, expires=0.0)

    def respond(self, arguments: dict[str, list[str]]) -> bytes:
        request = ""
        try:
            verb, single = self._validate(arguments)
            request = "".join(f" {name}={quoteattr(value)}" for name, value in sorted({**single, "verb": verb}.items()))
            content = getattr(self, "_" + verb)(single)
        except OAIPMHError as error:
            request = "" if error.code in ("badVerb", "badArgument") else request  # the protocol wants no attributes then
            content = f"<error code={quoteattr(error.code)}>{escape(str(error))}</error>"
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<OAI-PMH xmlns="{OAI_NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{OAI_NAMESPACE} http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">'
            f"<responseDate>{utc_stamp()}</responseDate><request{request}>{escape(self.base_url)}</request>"
        ).encode("utf-8") + (content if isinstance(content, bytes) else content.encode("utf-8")) + b"</OAI-PMH>\n"

    def _validate(self, arguments: dict[str, list[str]]) -> tuple[str, dict[str, str]]:
        verbs = arguments.get("verb", [])
        if len(verbs) != 1 or verbs[0] not in _VERBS:
            raise OAIPMHError("badVerb", f"illegal or missing verb: {verbs!r}")
        verb = verbs[0]
        single = {name: values[0] for name, values in arguments.items() if name != "verb"}
        if any(len(values) > 1 for values in arguments.values()):
            raise OAIPMHError("badArgument", "an argument is repeated")
        required, optional = _VERBS[verb]
        if "resumptionToken" in single and verb in _PAGED:
            if len(single) > 1:
                raise OAIPMHError("badArgument", "resumptionToken is an exclusive argument")
            return verb, single
        unknown, missing = set(single) - required - optional, required - set(single)
        if unknown or missing:
            raise OAIPMHError("badArgument", f"{verb}: illegal arguments {sorted(unknown)}, missing {sorted(missing)}")
        return verb, single

    # verbs
    def _Identify(self, _: dict) -> str:
        earliest = self.store.earliest() or "1970-01-01T00:00:00Z"
        return (
            f"<Identify><repositoryName>{escape(self.name)}</repositoryName><baseURL>{escape(self.base_url)}</baseURL>"
            f"<protocolVersion>2.0</protocolVersion><adminEmail>oai@unioncat.invalid</adminEmail>"
            f"<earliestDatestamp>{self._stamp(earliest)}</earliestDatestamp><deletedRecord>persistent</deletedRecord>"
            f"<granularity>{SECONDS if self.granularity == 'seconds' else DAY}</granularity></Identify>"
        )

    def _ListMetadataFormats(self, arguments: dict) -> str:
        if "identifier" in arguments and not self.store.record(arguments["identifier"]):
            raise OAIPMHError("idDoesNotExist", f"no record {arguments['identifier']}")
        formats = "".join(
            f"<metadataFormat><metadataPrefix>{prefix}</metadataPrefix><schema>{schema}</schema>"
            f"<metadataNamespace>{namespace}</metadataNamespace></metadataFormat>"
            for prefix, (schema, namespace) in METADATA_FORMATS.items()
        )
        return f"<ListMetadataFormats>{formats}</ListMetadataFormats>"

    def _ListSets(self, arguments: dict) -> str:
        if "resumptionToken" in arguments:
            raise OAIPMHError("badResumptionToken", "ListSets is never paged")
        sets = self.store.sets()
        if not sets:
            raise OAIPMHError("noSetHierarchy", "this repository has no sets")
        return "<ListSets>" + "".join(f"<set><setSpec>{escape(s)}</setSpec><setName>{escape(n)}</setName></set>" for s, n in sets) + "</ListSets>"

    def _GetRecord(self, arguments: dict) -> bytes:
        self._check_prefix(arguments["metadataPrefix"])
        row = self.store.record(arguments["identifier"])
        if row is None:
            raise OAIPMHError("idDoesNotExist", f"no record {arguments['identifier']}")
        return b"<GetRecord>" + self._record(row, arguments["metadataPrefix"]) + b"</GetRecord>"

    def _ListIdentifiers(self, arguments: dict) -> bytes:
        return self._list("ListIdentifiers", arguments)

    def _ListRecords(self, arguments: dict) -> bytes:
        return self._list("ListRecords", arguments)

    def _list(self, verb: str, arguments: dict) -> bytes:
        listing = self._resume(verb, arguments["resumptionToken"]) if "resumptionToken" in arguments else self._start(verb, arguments)
        rows = self.store.page(listing.query, listing.after, self.page_size + 1)
        more, rows = len(rows) > self.page_size, rows[: self.page_size]
        if verb == "ListRecords":
            items = b"".join(self._record(row, listing.prefix) for row in rows)
        else:
            items = b"".join(self._header(row) for row in rows)
        token, where = "", f'completeListSize="{listing.size}" cursor="{listing.cursor}"'
        if more:
            following, expires = self._issue(listing, rows[-1])
            token = f'<resumptionToken {where} expirationDate="{utc_stamp(datetime.fromtimestamp(expires, timezone.utc))}">{following}</resumptionToken>'
        elif listing.cursor:  # the last page of a list that took several
            token = f"<resumptionToken {where}/>"
        return f"<{verb}>".encode() + items + f"{token}</{verb}>".encode()

    # lists and their tokens
    def _start(self, verb: str, arguments: dict) -> Listing:
        prefix = arguments["metadataPrefix"]
        self._check_prefix(prefix)
        low = self._bound(arguments.get("from"), "T00:00:00Z") or "0000-01-01T00:00:00Z"
        high = self._bound(arguments.get("until"), "T23:59:59Z") or "9999-12-31T23:59:59Z"
        if "from" in arguments and "until" in arguments and len(arguments["from"]) != len(arguments["until"]):
            raise OAIPMHError("badArgument", "from and until have different granularities")
        if low > high:
            raise OAIPMHError("badArgument", "from is later than until")
        if arguments.get("set") and not self.store.sets():
            raise OAIPMHError("noSetHierarchy", "this repository has no sets")
        query = Query(low, high, arguments.get("set"))
        size = self.store.count(query)
        if not size:
            raise OAIPMHError("noRecordsMatch", "no records match the request")
        return Listing(verb, prefix, query, None, 0, size, 0.0)

    def _resume(self, verb: str, token: str) -> Listing:
        with self._tokens_lock:
            listing = self._tokens.get(token)
            if listing is None or listing.verb != verb:
                raise OAIPMHError("badResumptionToken", f"unknown resumptionToken {token!r}")
            if listing.expires < time.time():
                del self._tokens[token]
                raise OAIPMHError("badResumptionToken", f"resumptionToken {token!r} has expired")
        return listing

    def _issue(self, listing: Listing, last_row: tuple) -> tuple[str, float]:
        """A new token for the list after `last_row`, and when it expires."""
        now, token = time.time(), secrets.token_urlsafe(12)
        following = Listing(listing.verb, listing.prefix, listing.query, (last_row[1], last_row[0]), listing.cursor + self.page_size, listing.size, now + self.token_ttl)
        with self._tokens_lock:
            while self._tokens and next(iter(self._tokens.values())).expires < now:
                self._tokens.popitem(last=False)
            self._tokens[token] = following
        return token, following.expires

    # rendering
    def _check_prefix(self, prefix: str) -> None:
        if prefix not in METADATA_FORMATS:
            raise OAIPMHError("cannotDisseminateFormat", f"metadataPrefix {prefix!r} is not supported")

    def _bound(self, value: str | None, day_suffix: str) -> str | None:
        if value is None:
            return None
        form = _DATESTAMP.fullmatch(value)
        if not form or (form[1] and self.granularity == "day"):
            raise OAIPMHError("badArgument", f"bad datestamp {value!r} for granularity {self.granularity}")
        try:
            datetime.strptime(value[:10], "%Y-%m-%d")
        except ValueError:
            raise OAIPMHError("badArgument", f"bad datestamp {value!r}") from None
        return value if form[1] else value + day_suffix

    def _stamp(self, datestamp: str) -> str:
        return datestamp if self.granularity == "seconds" else datestamp[:10]

    def _header(self, row: tuple) -> bytes:
        identifier, datestamp, deleted, sets = row[:4]
        specs = "".join(f"<setSpec>{escape(s)}</setSpec>" for s in sets.split())
        status = ' status="deleted"' if deleted else ""
        return f"<header{status}><identifier>{escape(identifier)}</identifier><datestamp>{self._stamp(datestamp)}</datestamp>{specs}</header>".encode()

    def _record(self, row: tuple, prefix: str) -> bytes:
        if row[2]:
            return b"<record>" + self._header(row) + b"</record>"
        metadata = row[4] if prefix == "marc21" else dublin_core(row[4])
        return b"<record>" + self._header(row) + b"<metadata>" + metadata + b"</metadata></record>"


# ---- serving -----------------------------------------------------------------------------------

class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class OAIServer:
    """A `Repository` served on 127.0.0.1 from a background thread; a context manager."""

    def __init__(self, store: RecordStore, *, port: int = 0, page_size: int = 100, token_ttl: float = 600.0,
                 granularity: str = "seconds", name: str = "unioncat OAI-PMH repository"):
        self._http = make_server("127.0.0.1", port, self._app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
        self.repository = Repository(store, base_url=self.url, page_size=page_size, token_ttl=token_ttl, granularity=granularity, name=name)
        self._thread: threading.Thread | None = None

    def _app(self, environ, start_response):
        return self.repository(environ, start_response)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/oai"

    def expire_tokens(self) -> None:
        """Make every resumption token issued so far expired (as after `token_ttl`)."""
        self.repository.expire_tokens()

    def start(self) -> "OAIServer":
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, name="oai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def serve_forever(self) -> None:
        self._http.serve_forever(poll_interval=0.1)

    def __enter__(self) -> "OAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="example: python -m unioncat.network.oai_server --store oai.sqlite --load catalogue.mrc")
    parser.add_argument("--store", default=":memory:", help="SQLite file of the record store (default: in memory)")
    parser.add_argument("--load", nargs="*", default=[], metavar="FILE", help="ISO 2709 or MARCXML files to load first")
    parser.add_argument("--encoding", default="auto", help="encoding of ISO 2709 files (auto, utf-8, marc-8, gb18030, ...)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--token-ttl", type=float, default=600.0, help="seconds a resumption token stays valid")
    parser.add_argument("--granularity", choices=("seconds", "day"), default="seconds")
    args = parser.parse_args(argv)
    store = RecordStore(args.store)
    for path in args.load:
        store.load_file(path, encoding=args.encoding)
    server = OAIServer(store, port=args.port, page_size=args.page_size, token_ttl=args.token_ttl, granularity=args.granularity)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        store.close()


if __name__ == "__main__":
    main()
