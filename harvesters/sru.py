"""SRU searchRetrieve harvesting (SRU 1.1, 1.2 and 2.0), with the strategies of `harvesters.z3950`.

SRU is Z39.50's search and present over HTTP, so the harvest is the same one
(`z3950.harvest_by_search`): an enumeration with `cql.allRecords=1` that
replaces the catalogue and reports deletions by diffing 001s, or, where the
server supports it, a date window `rec.lastModificationDate>="<watermark>"`
reconciled against the all-records count. Pages are the raw XML responses
(`recordSchema=marcxml`), landed as `NNNNNN.xml`.

Paging follows `nextRecordPosition` when the server sends it and otherwise
adds the records returned to `startRecord` (Zebra never sends it). The SRU
version is 1.2 unless the endpoint URL names one (`...?version=2.0`); the
response is read namespace-agnostically, so 1.1, 1.2 and 2.0 all work.
Requests go through `harvesters.http.fetch` (timeouts, retries on 5xx with
`Retry-After`, size cap). A response that does not parse is fetched once
more, as OAI-PMH pages are; if it still does not, the characters XML forbids
(and bytes that are not UTF-8) are taken out and the mended page is landed,
with the bytes received beside it as `NNNNNN.received` (the transform reads a
page with one XML parse, so one bad character would otherwise cost every
record after it). A response that cannot be mended (cut off) is a retryable
error: the rerun resumes from the last committed page.

Diagnostics: general/temporary system errors (1, 2) are retryable; query
syntax (10, 47), authentication (3), unknown schema (66, 67) and the rest are
terminal; an unsupported index or relation (15-24, 48) on the date window
switches to enumeration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests
from lxml import etree

from harvesters.credentials import credentials_for
from harvesters.errors import RetryableHarvestError, TerminalHarvestError
from harvesters.http import HttpPolicy, fetch
from harvesters.landing import HarvestResult
from harvesters.oai import strip_invalid_xml
from harvesters.z3950 import Page, ResultSetChanged, SearchUnsupported, Stamp, harvest_by_search
from unioncat.registry import Library
from unioncat.settings import Settings

DEFAULT_VERSION = "1.2"
ALL_RECORDS_CQL = "cql.allRecords=1"
TEMPORARY = frozenset({1, 2})
UNSUPPORTED_SEARCH = frozenset({15, 16, 18, 19, 20, 21, 22, 23, 24, 48})
FIRST_RECORD_OUT_OF_RANGE = 61
FETCHES = 2  # a response that does not parse is fetched once more before it is mended
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class SruPolicy:
    http: HttpPolicy = field(default_factory=HttpPolicy)
    page_records: int = 200  # maximumRecords; the server may send fewer


class MalformedResponse(Exception):
    """The response is not well-formed XML (cut off, or an invalid character)."""


@dataclass
class Diagnostic:
    code: int
    message: str
    details: str

    def __str__(self) -> str:
        return f"SRU diagnostic {self.code} {self.message}" + (f" ({self.details})" if self.details else "")


@dataclass
class SearchRetrieveResponse:
    hits: int | None
    next_position: int | None  # nextRecordPosition, 1-based
    stamps: list[Stamp]  # one per record returned, surrogate diagnostics included
    diagnostics: list[Diagnostic]
    first_position: int | None = None  # recordPosition of the first record, when the server says


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _child(element, name: str):
    return next((child for child in element if _local(child) == name), None)


def _integer(element, name: str) -> int | None:
    child = _child(element, name)
    text = (child.text or "").strip() if child is not None else ""
    return int(text) if text.isdecimal() else None


def mend(data: bytes) -> bytes:
    """The response without the characters XML 1.0 forbids and with any bytes that are not UTF-8 replaced."""
    return strip_invalid_xml(data)[0].decode("utf-8", "replace").encode("utf-8")


def _items(element, container: str, item: str) -> list:
    """The `item` elements inside `element`'s `container` child."""
    holder = _child(element, container)
    return [child for child in holder if _local(child) == item] if holder is not None else []


def _marcxml_stamp(record_data) -> Stamp:
    """001 and 005 of the MARCXML record in a recordData; (None, None) for a surrogate diagnostic."""
    if record_data is None:
        return None, None
    record = next((child for child in record_data if isinstance(child.tag, str)), None)
    if record is None and (record_data.text or "").strip():  # recordPacking=string: the record is escaped text
        try:
            record = etree.fromstring(record_data.text.strip().encode("utf-8"), _PARSER)
        except etree.XMLSyntaxError:
            return None, None
    local_id = stamp = None
    for field_ in record if record is not None else ():
        if _local(field_) != "controlfield":
            continue
        text = (field_.text or "").strip()
        if field_.get("tag") == "001":
            local_id = text or None
        elif field_.get("tag") == "005" and len(text) >= 14 and text[:14].isdigit():
            stamp = text[:14]
    return local_id, stamp


def _diagnostic(element) -> Diagnostic:
    texts = {_local(part): (part.text or "").strip() for part in element}
    code = texts.get("uri", "").rsplit("/", 1)[-1]
    return Diagnostic(int(code) if code.isdecimal() else 0, texts.get("message", ""), texts.get("details", ""))


def parse_response(data: bytes) -> SearchRetrieveResponse:
    """numberOfRecords, nextRecordPosition, (001, 005) per record and diagnostics of a response."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as error:
        raise MalformedResponse(str(error)) from None
    if _local(root) != "searchRetrieveResponse":
        raise ValueError(f"not an SRU searchRetrieve response (root element {_local(root)})")
    records = _items(root, "records", "record")
    stamps = [_marcxml_stamp(_child(record, "recordData")) for record in records]
    diagnostics = [_diagnostic(element) for element in _items(root, "diagnostics", "diagnostic")]
    first_position = _integer(records[0], "recordPosition") if records else None
    return SearchRetrieveResponse(_integer(root, "numberOfRecords"), _integer(root, "nextRecordPosition"), stamps, diagnostics,
                                  first_position)


class SruServer:
    """A library's SRU base URL as the search/retrieve harvest sees it."""

    suffix = "xml"
    all_records = ALL_RECORDS_CQL

    def __init__(self, library: Library, policy: SruPolicy) -> None:
        self.library, self.policy = library, policy
        url = urlsplit(library.endpoint)
        self.url = urlunsplit(url._replace(query=""))
        self.base_params = dict(parse_qsl(url.query))
        self.version = self.base_params.setdefault("version", DEFAULT_VERSION)
        try:
            credentials = credentials_for(library)
        except LookupError as error:
            raise TerminalHarvestError(library.id, str(error)) from None
        self.auth = credentials.as_tuple() if credentials else None
        self.session = requests.Session()
        self.query = ALL_RECORDS_CQL

    def __enter__(self) -> SruServer:
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()

    def window(self, since: str) -> str:
        return f'rec.lastModificationDate>="{since}"'

    def search(self, query: str) -> int:
        self.query = query
        *_, response = self._search_retrieve(0, 0)
        return response.hits or 0

    def fetch(self, start: int, count: int) -> Page:
        data, received, response = self._search_retrieve(start, count)
        if response.first_position not in (None, start + 1):
            raise TerminalHarvestError(self.library.id, f"SRU {self.url}: asked for records from position {start + 1}, "
                                                        f"the server sent them from {response.first_position}: it is looping")
        following = response.next_position - 1 if response.next_position else start + len(response.stamps)
        return Page(data, following, response.stamps, response.hits, received)

    def stamps(self, data: bytes) -> list[Stamp]:
        return parse_response(data).stamps

    def _params(self, start: int, count: int) -> dict:
        params = {**self.base_params, "query": self.query, "startRecord": start + 1, "maximumRecords": count,
                  "recordSchema": "marcxml"}
        if self.version.startswith("1."):
            params.update(operation="searchRetrieve", recordPacking="xml")
        else:
            params.update(recordXMLEscaping="xml")
        return params

    def _search_retrieve(self, start: int, count: int) -> tuple[bytes, bytes | None, SearchRetrieveResponse]:
        """(the page to land, the bytes received if the page had to be mended, the parsed response)."""
        params = self._params(start, count)
        for _ in range(FETCHES):
            received = fetch(self.session, self.url, params, library_id=self.library.id, policy=self.policy.http,
                             auth=self.auth)
            try:
                return received, None, self._answer(received)
            except MalformedResponse as error:
                problem = str(error)
        mended = mend(received)
        try:
            return mended, received, self._answer(mended)
        except MalformedResponse:
            raise RetryableHarvestError(
                self.library.id, f"SRU {self.url}: fetched {FETCHES} times, the response is not XML ({problem})") from None

    def _answer(self, data: bytes) -> SearchRetrieveResponse:
        try:
            response = parse_response(data)
        except ValueError as error:  # well-formed, but not SRU
            raise TerminalHarvestError(self.library.id, f"SRU {self.url}: {error}") from None
        if response.diagnostics:
            self._raise_for(response.diagnostics[0])
        return response

    def _raise_for(self, diagnostic: Diagnostic):
        where = f"SRU {self.url} query {self.query!r}"
        if diagnostic.code in UNSUPPORTED_SEARCH:
            raise SearchUnsupported(str(diagnostic))
        if diagnostic.code == FIRST_RECORD_OUT_OF_RANGE:
            raise ResultSetChanged(str(diagnostic))
        if diagnostic.code in TEMPORARY:
            raise RetryableHarvestError(self.library.id, f"{where}: {diagnostic}")
        raise TerminalHarvestError(self.library.id, f"{where}: {diagnostic}")


def harvest(settings: Settings, library: Library, run_id: str, *, full: bool = False,
            policy: SruPolicy = SruPolicy()) -> HarvestResult:
    with SruServer(library, policy) as server:
        return harvest_by_search(settings, library, run_id, server, full=full, page_records=policy.page_records)
