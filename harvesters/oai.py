"""OAI-PMH: ListRecords in date windows, every response page landed as received.

- **Identify** gives the granularity (day or seconds), earliestDatestamp and the server's clock
  (responseDate): the run's `until` is the server's now, so clock skew cannot hide a record.
- **ListMetadataFormats** picks the prefix: MARCXML first (marc21, marcxml, marc, usmarc, then
  cnmarc, unimarc; those two first for a CNMARC/UNIMARC library), then any prefix in the MARC21
  slim namespace, then oai_dc (first for a `dc` library). `set` comes from the registry.
- **Windows.** A full run (the first run, or `full=True`) covers everything up to the server's
  now: a first window without `from` ending a year after earliestDatestamp (2000 at the
  earliest), then one window a year; it replaces the catalogue. An incremental run covers
  [watermark, now], the watermark being the last committed `until`, and appends to the
  catalogue. from/until are inclusive and formatted in the server's granularity; a window starts
  at the granule where the previous one (or the last run) ended, so that granule is harvested
  twice (the replay keeps the last version) and nothing at a boundary is missed.
- **Checkpoints.** Each page is landed as `NNNNNN.xml`, bytes as received, and checkpointed with
  the token to go on from; the current window's pages are the tail of `in_progress.pages` from
  `position.window_start`. A crash resumes from the last committed page, same windows.
- **badResumptionToken** (an expired token on resume, say) restarts the current window from its
  `from`: its pages so far are dropped from the run (and deleted) and replaced by the new ones;
  a window restarts at most `WINDOW_RESTARTS` times, then BadResumptionToken.
- **Errors.** noRecordsMatch is a window of zero records. Other OAI errors raise the class named
  after their code (TerminalHarvestError subclasses, as in sickle), also when the server sends
  them with HTTP 4xx as Zenodo does (`harvesters.http.fetch` drops a 4xx body, so this module
  fetches with its own loop over the same policy: timeouts, retries on 408/429/5xx and
  connection failures honouring Retry-After, the size cap).
- **Guards** (all terminal). A resumption token seen before in the window →
  RepeatedResumptionToken; pages with the records of an earlier page of the run (the same
  identifiers, whatever their datestamps: the same page for ever, a cycle, or a server that
  restamps records as it serves them) coming `REPEATED_PAGES` times in one window →
  RepeatedPage; more than twice the announced completeListSize → TerminalHarvestError; and,
  since a server need not announce a size, more than `max_window_pages` pages in one window
  with the list still going on (ever-new tokens over ever-new records) → EndlessList, naming
  the window and the last token (`MAX_WINDOW_PAGES` unless given: 5 million records 50 a page;
  raise it for a larger window). A window that ends with another count than announced is
  noted in the state (`oai.warnings`).
- **Malformed pages.** A page that does not parse is fetched once more. If it still does not,
  XML-invalid characters (raw or as character references) are stripped; if it then parses it is
  landed stripped, with the bytes received kept beside it as `NNNNNN.received` and a warning
  naming the page. We strip rather than land the page as is because the transform reads a page
  with one XML parse: an invalid character would send every record after it to quarantine as
  one blob. A page that stripping cannot mend (truncated) → MalformedPage, retryable: the next
  attempt resumes from the last committed page.
- **Speed.** Four stages overlap, each in its own thread: page N+1 is fetched while page N is
  parsed (the next token is guessed from page N's raw bytes; a wrong guess is dropped and the
  page fetched again), page N-1 landed (written, fsync'd, renamed) and page N-2 checkpointed; a
  page is only checkpointed once it has landed. lxml parses without holding the GIL. XML is
  parsed with entities unresolved and no network.

`harvest(..., policy=HttpPolicy(...))` overrides the HTTP timeouts, retries and size cap (tests
pass small ones); the default is `HttpPolicy()`. `harvest(..., max_window_pages=N)` overrides
the pages one window may take.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import requests
from lxml import etree

from harvesters import state as harvest_state
from harvesters.credentials import credentials_for
from harvesters.errors import RetryableHarvestError, TerminalHarvestError
from harvesters import http
from harvesters.http import HttpPolicy
from harvesters.landing import HarvestResult, HarvestRun
from unioncat.prefetch import prefetched
from unioncat.registry import Library
from unioncat.settings import Settings

OAI = "{http://www.openarchives.org/OAI/2.0/}"
MARC21_SLIM = "http://www.loc.gov/MARC21/slim"
MARC_PREFIXES = ("marc21", "marcxml", "marc", "usmarc", "cnmarc", "unimarc")
WINDOW = timedelta(days=365)
FIRST_WINDOW_FROM = datetime(2000, 1, 1, tzinfo=timezone.utc)
WINDOW_RESTARTS = 3
REPEATED_PAGES = 3
MAX_WINDOW_PAGES = 100_000
SECONDS = "%Y-%m-%dT%H:%M:%SZ"


# ---- errors, named after the OAI-PMH error codes ----------------------------------------------

class OAIError(TerminalHarvestError):
    """An OAI-PMH error response with a code no subclass is named after."""

    code = "OAIError"


class BadArgument(OAIError):
    code = "badArgument"


class BadResumptionToken(OAIError):
    code = "badResumptionToken"


class BadVerb(OAIError):
    code = "badVerb"


class CannotDisseminateFormat(OAIError):
    code = "cannotDisseminateFormat"


class IdDoesNotExist(OAIError):
    code = "idDoesNotExist"


class NoMetadataFormats(OAIError):
    code = "noMetadataFormats"


class NoRecordsMatch(OAIError):
    """Not a failure: the list loop turns it into a window of zero records."""

    code = "noRecordsMatch"


class NoSetHierarchy(OAIError):
    code = "noSetHierarchy"


OAI_ERRORS = {cls.code: cls for cls in OAIError.__subclasses__()}


class RepeatedResumptionToken(TerminalHarvestError):
    """The server handed out a resumption token it had already given in this window."""


class RepeatedPage(TerminalHarvestError):
    """The server keeps sending records it already sent in this window."""


class EndlessList(TerminalHarvestError):
    """A window's list goes on beyond `max_window_pages` pages: ever-new tokens, never an end."""


class MalformedPage(RetryableHarvestError):
    """A response that is not OAI-PMH XML, even fetched again and stripped of invalid characters."""


# ---- datestamps and windows --------------------------------------------------------------------

def parse_datestamp(text: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or timezone.utc).astimezone(timezone.utc)


def in_granularity(stamp: str, granularity: str) -> str:
    """A seconds-form datestamp as the server's granularity wants it."""
    return stamp[:10] if granularity == "day" else stamp


def plan_windows(start: datetime | None, end: datetime, earliest: datetime) -> list[list[str | None]]:
    """[from, until] pairs (seconds form, inclusive, `from` None for the open start) from `start` to `end`."""
    edge = (start or max(earliest, FIRST_WINDOW_FROM)) + WINDOW
    points: list[datetime | None] = [start]
    while edge < end:
        points.append(edge)
        edge += WINDOW
    points.append(max(end, start) if start else end)
    return [[a.strftime(SECONDS) if a else None, b.strftime(SECONDS)] for a, b in zip(points, points[1:])]


def choose_metadata_prefix(formats: dict[str, str], syntax: str) -> str | None:
    """The prefix to harvest from {prefix: namespace}: MARCXML first, oai_dc last (first for `dc`)."""
    names = MARC_PREFIXES[4:] + MARC_PREFIXES[:4] if syntax in ("cnmarc", "unimarc") else MARC_PREFIXES

    def rank(prefix: str) -> int | None:
        name = prefix.lower()
        if name == "oai_dc":
            return -1 if syntax == "dc" else len(names) + 1
        if name in names:
            return names.index(name)
        return len(names) if formats[prefix] == MARC21_SLIM else None

    ranked = sorted((rank(prefix), prefix) for prefix in formats if rank(prefix) is not None)
    return ranked[0][1] if ranked else None


# ---- pages ---------------------------------------------------------------------------------------

_INVALID_XML = re.compile(
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]"
    rb"|&#(?:[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F])|0*(?:[0-8]|1[1-2]|1[4-9]|2[0-9]|3[01]));"
)


def strip_invalid_xml(body: bytes) -> tuple[bytes, int]:
    """`body` (UTF-8) without the characters XML 1.0 forbids, raw or as references; and how many there were."""
    return _INVALID_XML.subn(b"", body)


@dataclass
class Page:
    """One ListRecords response, parsed."""

    body: bytes  # what is landed: the bytes received, or those stripped of invalid characters
    received: bytes | None  # the bytes received, when they had to be stripped
    records: int
    deleted: int
    token: str | None
    complete_list_size: int | None
    digest: bytes  # of its records' identifiers: pages of the same records have equal digests, whatever their datestamps


_XPATH = {"oai": OAI[1:-1]}
_IDENTIFIERS = etree.XPath(  # the identifiers of the page's records, in document order
    "oai:ListRecords/oai:record/oai:header/oai:identifier/text()", namespaces=_XPATH)
_HEADERS = etree.XPath("count(oai:ListRecords/oai:record/oai:header)", namespaces=_XPATH)
_DELETED = etree.XPath("count(oai:ListRecords/oai:record/oai:header[@status='deleted'])", namespaces=_XPATH)


def read_page(root, body: bytes, received: bytes | None) -> Page | None:
    """The Page of a ListRecords response, None if it has no ListRecords element."""
    listing = root.find(OAI + "ListRecords")
    if listing is None:
        return None
    deleted = int(_DELETED(root))
    element = listing.find(OAI + "resumptionToken")
    token = (element.text or "").strip() or None if element is not None else None
    size = element.get("completeListSize", "") if element is not None else ""
    digest = hashlib.blake2b("\0".join(_IDENTIFIERS(root)).encode(), digest_size=16).digest()
    return Page(body, received, int(_HEADERS(root)) - deleted, deleted, token, int(size) if size.isdecimal() else None, digest)


_TOKEN = re.compile(rb"<(?:\w+:)?resumptionToken\b[^>]*>([^<]+)</")


def _token_in(body: bytes) -> str | None:
    """A quick guess at the page's resumptionToken (near its end), before the page is parsed."""
    found = _TOKEN.search(body, max(0, len(body) - 4096))
    return html.unescape(found[1].decode("utf-8", "replace")).strip() or None if found else None


# No entity expansion (billion laughs, external entities), no DTD loading, no network, libxml2's size limits kept.
# One parser per call: pages are parsed in several threads, and an lxml parser is not to be shared.
_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, collect_ids=False)


def _parse(body: bytes):
    """The OAI-PMH root element of `body`; ValueError says why there is none."""
    try:
        root = etree.fromstring(body, etree.XMLParser(**_PARSER_OPTIONS))
    except etree.XMLSyntaxError as error:
        raise ValueError(f"not well-formed XML: {error}") from None
    if root.tag != OAI + "OAI-PMH":
        raise ValueError(f"not an OAI-PMH response but <{etree.QName(root).localname}>")
    return root


# ---- the client ----------------------------------------------------------------------------------

@dataclass
class Answer:
    root: object
    body: bytes
    received: bytes | None = None


class OAIClient:
    """OAI-PMH requests to one library's endpoint."""

    def __init__(self, library: Library, policy: HttpPolicy):
        self.library, self.policy = library, policy
        try:
            credentials = credentials_for(library)
        except LookupError as error:
            raise TerminalHarvestError(library.id, str(error)) from None
        self.auth = credentials.as_tuple() if credentials else None
        self.pages_seen: set[bytes] = set()  # digests of the pages of this run, for RepeatedPage
        self.session = requests.Session()  # shared by the threads of the harvest; keeps connections alive
        # The environment's proxies and CA bundle, read once: requests would scan os.environ on every request.
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(library.endpoint)
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

    def request(self, params: dict, fetched: tuple[int, bytes] | None = None) -> Answer:
        """One request (its response already `fetched`, if given); its OAI error raised as the class named after the code."""
        for attempt in range(2):  # a page that does not parse is fetched once more
            status, body = fetched if fetched and not attempt else self._get(params)
            try:
                return self._answer(status, body)
            except ValueError as error:
                if status >= 400:
                    raise TerminalHarvestError(self.library.id, f"{self.library.endpoint}: HTTP {status}") from None
                problem = str(error)
        cleaned, count = strip_invalid_xml(body)
        if count:
            try:
                return self._answer(status, cleaned, received=body)
            except ValueError as error:
                problem = str(error)
        raise MalformedPage(self.library.id, f"{params.get('verb')}: fetched twice, {problem}")

    def _answer(self, status: int, body: bytes, received: bytes | None = None) -> Answer:
        root = _parse(body)
        for error in root.iterfind(OAI + "error"):
            code = error.get("code", "")
            raise OAI_ERRORS.get(code, OAIError)(self.library.id, f"{code}: {(error.text or '').strip()}")
        if status >= 400:
            raise TerminalHarvestError(self.library.id, f"{self.library.endpoint}: HTTP {status}")
        return Answer(root, body, received)

    def _get(self, params: dict) -> tuple[int, bytes]:
        return http.get(self.session, self.library.endpoint, params, library_id=self.library.id, policy=self.policy, auth=self.auth)

    def plan(self, watermark: str | None) -> dict:
        """Identify + ListMetadataFormats → the position a new run starts from."""
        root = self.request({"verb": "Identify"}).root
        granularity = "seconds" if "hh" in (root.findtext(f"{OAI}Identify/{OAI}granularity") or "") else "day"
        earliest = parse_datestamp(root.findtext(f"{OAI}Identify/{OAI}earliestDatestamp")) or FIRST_WINDOW_FROM
        now = parse_datestamp(root.findtext(OAI + "responseDate")) or datetime.now(timezone.utc)
        windows = plan_windows(parse_datestamp(watermark), now, earliest)
        return dict(metadataPrefix=self.metadata_prefix(), granularity=granularity, windows=windows, until=windows[-1][1],
                    token=None, window_start=0, window_base=[0, 0], records=0, deleted=0, next_page=1, warnings=[])

    def metadata_prefix(self) -> str:
        root = self.request({"verb": "ListMetadataFormats"}).root
        formats = {
            (f.findtext(OAI + "metadataPrefix") or "").strip(): (f.findtext(OAI + "metadataNamespace") or "").strip()
            for f in root.iter(OAI + "metadataFormat")
        }
        prefix = choose_metadata_prefix(formats, self.library.syntax)
        if prefix is None:
            raise CannotDisseminateFormat(self.library.id, f"neither MARCXML nor oai_dc among the formats offered: {sorted(formats)}")
        return prefix

    def list_records(self, first: dict, token: str | None) -> Iterator[Page | None]:
        """The pages of one window, from `token` if given; None where the window restarts from `first`."""
        restarts, repeats, tokens, digests = 0, 0, set(), set()
        params = _resumption(token) if token else first
        ahead: tuple[dict, Future] | None = None  # the next page, fetched while this one is parsed
        while True:
            fetched = ahead[1].result() if ahead and ahead[0] == params else self._get(params)
            guess = _token_in(fetched[1])
            ahead = (_resumption(guess), _in_background(self._get, _resumption(guess))) if guess else None
            try:
                answer = self.request(params, fetched)
            except NoRecordsMatch:
                return
            except BadResumptionToken:
                if "resumptionToken" not in params or restarts == WINDOW_RESTARTS:
                    raise
                self.pages_seen -= digests
                restarts, repeats, tokens, digests, params = restarts + 1, 0, set(), set(), first
                yield None
                continue
            page = read_page(answer.root, answer.body, answer.received)
            if page is None:
                raise MalformedPage(self.library.id, "ListRecords: the response has no ListRecords element")
            repeats += page.digest in self.pages_seen
            if repeats >= REPEATED_PAGES:
                raise RepeatedPage(self.library.id, f"ListRecords: records already received came again in {repeats} pages; the server is looping")
            self.pages_seen.add(page.digest)
            digests.add(page.digest)
            yield page
            if page.token is None:
                return
            if page.token in tokens:
                raise RepeatedResumptionToken(self.library.id, f"ListRecords: resumptionToken {page.token!r} came twice")
            tokens.add(page.token)
            params = _resumption(page.token)


def _resumption(token: str) -> dict:
    return {"verb": "ListRecords", "resumptionToken": token}


def _in_background(function, *args) -> Future:
    """`function(*args)` run in a daemon thread (one that cannot hold up the interpreter's exit)."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:  # kept for whoever asks for the result
            future.set_exception(error)

    threading.Thread(target=run, name="oai-fetch-ahead", daemon=True).start()
    return future


# ---- the harvest ---------------------------------------------------------------------------------

def harvest(settings: Settings, library: Library, run_id: str, *, full: bool = False, policy: HttpPolicy | None = None,
            max_window_pages: int = MAX_WINDOW_PAGES) -> HarvestResult:
    full = full or harvest_state.load(settings, library.id).get("watermark") is None
    run = HarvestRun(settings, library, run_id, full)
    resumed = run.resumed
    client = OAIClient(library, policy or HttpPolicy())
    position = dict(run.progress) if "windows" in run.progress else client.plan(None if full else run.watermark)
    while position["windows"]:
        _harvest_window(run, client, position, max_window_pages)
    run.finish(run.pages if full else run.catalogue() + run.pages, watermark=position["until"],
               oai={key: position[key] for key in ("metadataPrefix", "granularity", "warnings")})
    return HarvestResult(library.id, run_id, pages=len(run.pages), records=position["records"], deleted=position["deleted"],
                         bytes=run.bytes_landed, resumed=resumed)


def _harvest_window(run: HarvestRun, client: OAIClient, position: dict, max_window_pages: int = MAX_WINDOW_PAGES) -> None:
    """Harvest the first of `position["windows"]` (from its token, if any), updating `position`."""
    low, high = position["windows"][0]
    first = {"verb": "ListRecords", "metadataPrefix": position["metadataPrefix"], "until": in_granularity(high, position["granularity"])}
    if low:
        first["from"] = in_granularity(low, position["granularity"])
    if run.library.set:
        first["set"] = run.library.set
    pages = prefetched(client.list_records(first, position["token"]))
    for page, landed in prefetched(_landed(run, pages, position["next_page"])):
        if page is None:
            _restart_window(run, position, f"window {low}..{high}: resumptionToken refused, window restarted")
            continue
        if page.received is not None:
            position["warnings"].append(f"{landed}: XML-invalid characters stripped; the bytes received are in {Path(landed).stem}.received")
        position.update(next_page=position["next_page"] + 1, token=page.token,
                        records=position["records"] + page.records, deleted=position["deleted"] + page.deleted)
        in_window = position["records"] + position["deleted"] - sum(position["window_base"])
        if page.complete_list_size is not None and in_window > 2 * page.complete_list_size + 100:
            raise TerminalHarvestError(run.library.id, f"ListRecords: {in_window} records received, {page.complete_list_size} announced")
        window_pages = len(run.pages) + 1 - position["window_start"]
        if page.token is not None and window_pages >= max_window_pages:
            raise EndlessList(run.library.id, f"ListRecords: window {low}..{high} took {window_pages:,} pages, the most a window may "
                                              f"(max_window_pages), and the server still sent resumptionToken {page.token!r}: "
                                              "its list does not end")
        if page.token is None:
            if page.complete_list_size not in (None, in_window):
                position["warnings"].append(f"window {low}..{high}: {in_window} records received, {page.complete_list_size} announced")
            _next_window(run, position, pages_to_come=1)
        run.checkpoint(landed, **position)
        if page.token is None:
            return
    _next_window(run, position, pages_to_come=0)  # noRecordsMatch
    run.checkpoint(None, **position)


def _landed(run: HarvestRun, pages: Iterator[Page | None], number: int) -> Iterator[tuple[Page | None, str | None]]:
    """(page, where it landed) for each page, numbered from `number`; restarts (None) passed on."""
    for page in pages:
        if page is None:
            yield None, None
            continue
        name = f"{number:06d}"
        landed = run.land(name + ".xml", page.body)
        if page.received is not None:
            run.land(name + ".received", page.received)
        number += 1
        yield page, landed


def _next_window(run: HarvestRun, position: dict, pages_to_come: int) -> None:
    position.update(windows=position["windows"][1:], token=None, window_start=len(run.pages) + pages_to_come,
                    window_base=[position["records"], position["deleted"]])


def _restart_window(run: HarvestRun, position: dict, warning: str) -> None:
    """Drop the current window's pages from the run (then from the disk) and start it again."""
    dropped = run.pages[position["window_start"]:]
    del run.pages[position["window_start"]:]
    records, deleted = position["window_base"]
    position.update(token=None, records=records, deleted=deleted)
    position["warnings"].append(warning)
    run.checkpoint(None, **position)
    for page in dropped:
        (run.settings.data_dir / page).unlink(missing_ok=True)
        (run.settings.data_dir / page).with_suffix(".received").unlink(missing_ok=True)
