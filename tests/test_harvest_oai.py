"""The OAI-PMH harvester against the real local OAI-PMH server (unioncat.network.oai_server),
directly and through the fault-injecting proxy (tests/faulty_http.py)."""

from __future__ import annotations

import logging
import math
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pymarc
import pytest
import requests
from lxml import etree

from conftest import REPO
from faulty_http import FaultyProxy, invalid_chars, oversize, repeat_token, reset, same_page, stall, status, truncate
from harvesters import oai
from harvesters.errors import RetryableHarvestError, TerminalHarvestError
from harvesters.http import HttpPolicy
from harvesters.landing import catalogue_pages
from unioncat import atomic
from unioncat.network.oai_server import OAIServer, RecordStore
from unioncat.registry import Library
from unioncat.settings import Settings

pytestmark = pytest.mark.timeout(60)

OAI = "{http://www.openarchives.org/OAI/2.0/}"
LOC_RECORDS = [chunk + b"\x1d" for chunk in (REPO / "demo" / "real" / "loc_books_300.mrc").read_bytes().split(b"\x1d") if chunk.strip()]
CNMARC_FILE = REPO / "demo" / "real" / "sample_cnmarcxml.xml"
PAGE_SIZE = 20
FAST = HttpPolicy(connect_timeout=1.0, read_timeout=1.0, max_bytes=1 << 20, attempts=3, backoff=0.01, max_wait=0.05)


def province_store() -> RecordStore:
    """300 LoC MARC21 records stamped over six years (so a full harvest spans several windows) and
    10 CNMARC records in set `bnu`."""
    store = RecordStore()
    for n, record in enumerate(LOC_RECORDS):
        store.upsert(record, f"{2019 + n % 6}-03-{1 + n % 28:02d}T12:00:00Z")
    store.load_file(CNMARC_FILE, datestamp="2024-06-01T08:00:00Z", sets=["bnu"])
    return store


@pytest.fixture(scope="module")
def shared_server():
    """A server the tests only read from."""
    store = province_store()
    with OAIServer(store, page_size=PAGE_SIZE) as server:
        yield server, store.headers()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "sources.toml", tmp_path / "data")


def library(url: str, **options) -> Library:
    return Library("OAI1", "测试图书馆", "杭州", "city", "oai", url, **options)


def replay(settings: Settings) -> tuple[dict[str, tuple[str, bool]], Counter]:
    """The committed catalogue replayed: identifier → (datestamp, deleted), last version wins; and
    how often each identifier occurs across the pages."""
    latest, occurrences = {}, Counter()
    for path in catalogue_pages(settings, "OAI1"):
        for header in etree.parse(str(path)).getroot().iter(OAI + "header"):
            identifier = header.findtext(OAI + "identifier")
            occurrences[identifier] += 1
            latest[identifier] = (header.findtext(OAI + "datestamp"), header.get("status") == "deleted")
    return latest, occurrences


def state(settings: Settings) -> dict:
    return atomic.read_json(settings.state_path("OAI1"))


# ---- the server ----------------------------------------------------------------------------------

def test_server_answers_every_verb_and_error_code(shared_server):
    server, headers = shared_server
    identifier = next(iter(headers))

    def ask(**arguments):
        root = etree.fromstring(requests.get(server.url, params=arguments, timeout=5).content)
        error = root.find(OAI + "error")
        return (error.get("code") if error is not None else None), root

    assert ask(verb="Identify")[1].findtext(f"{OAI}Identify/{OAI}granularity") == "YYYY-MM-DDThh:mm:ssZ"
    assert ask(verb="Identify")[1].findtext(f"{OAI}Identify/{OAI}deletedRecord") == "persistent"
    formats = ask(verb="ListMetadataFormats")[1].iter(OAI + "metadataPrefix")
    assert {f.text for f in formats} == {"marc21", "oai_dc"}
    assert [s.text for s in ask(verb="ListSets")[1].iter(OAI + "setSpec")] == ["bnu"]
    assert ask(verb="GetRecord", identifier=identifier, metadataPrefix="oai_dc")[1].find(f".//{{http://purl.org/dc/elements/1.1/}}title") is not None
    listed = ask(verb="ListIdentifiers", metadataPrefix="marc21", set="bnu")[1]
    assert len(listed.findall(f"{OAI}ListIdentifiers/{OAI}header")) == 10
    # POST works like GET
    posted = etree.fromstring(requests.post(server.url, data={"verb": "ListRecords", "metadataPrefix": "marc21", "from": "2024-01-01"}, timeout=5).content)
    assert posted.find(f"{OAI}ListRecords/{OAI}resumptionToken").get("completeListSize") == "60"
    assert ask(verb="Nonsense")[0] == "badVerb"
    assert ask(verb="ListRecords")[0] == "badArgument"
    assert ask(verb="ListRecords", metadataPrefix="marc21", **{"from": "2020-01-01", "until": "2020-01-01T00:00:00Z"})[0] == "badArgument"
    assert ask(verb="ListRecords", metadataPrefix="mods")[0] == "cannotDisseminateFormat"
    assert ask(verb="ListRecords", metadataPrefix="marc21", **{"from": "2030-01-01"})[0] == "noRecordsMatch"
    assert ask(verb="ListRecords", resumptionToken="made-up")[0] == "badResumptionToken"
    assert ask(verb="GetRecord", identifier="oai:unioncat:nothing", metadataPrefix="marc21")[0] == "idDoesNotExist"


def test_a_stray_control_character_in_a_real_record_is_served_as_well_formed_xml(shared_data, settings):
    """A real LoC record has a 0x1F in its 001 (PLATFORM-NOTES): stripped when stored."""
    loc = (shared_data / "marc21_loc_books" / "BooksAll.2016.part01.first26095.utf8.mrc").read_bytes().split(b"\x1d")[23522] + b"\x1d"
    assert pymarc.Record(loc, force_utf8=True)["001"].data == "   00038361\x1f"
    store = RecordStore()
    identifier = store.upsert(loc, "2020-01-01T00:00:00Z")
    with OAIServer(store) as server:
        result = oai.harvest(settings, library(server.url), "run1", policy=FAST)
    assert result.records == 1 and identifier == "oai:unioncat:00038361"
    assert replay(settings)[0] == store.headers()


# ---- full and incremental harvests ---------------------------------------------------------------

def test_full_harvest_lands_exactly_the_server_record_set(shared_server, settings):
    server, headers = shared_server
    result = oai.harvest(settings, library(server.url), "run1", policy=FAST)
    latest, occurrences = replay(settings)
    assert latest == headers
    assert set(occurrences.values()) == {1}
    assert (result.records, result.deleted, result.pages) == (310, 0, len(catalogue_pages(settings, "OAI1")))
    committed = state(settings)
    assert committed["oai"] == {"metadataPrefix": "marc21", "granularity": "seconds", "warnings": []}
    assert "in_progress" not in committed and committed["watermark"] > "2024-06-01T08:00:00Z"
    assert result.pages > math.ceil(310 / PAGE_SIZE)  # more pages than one list needs: the six years were windowed


def test_a_set_from_the_registry_harvests_only_that_set(shared_server, settings):
    server, headers = shared_server
    result = oai.harvest(settings, library(server.url, set="bnu"), "run1", policy=FAST)
    assert result.records == 10
    assert set(replay(settings)[0]) == {i for i, (stamp, _) in headers.items() if stamp == "2024-06-01T08:00:00Z"}


@pytest.mark.parametrize("granularity", ["seconds", "day"])
def test_incremental_harvest_picks_up_exactly_the_added_changed_and_deleted_records(settings, granularity):
    store = province_store()
    with OAIServer(store, page_size=PAGE_SIZE, granularity=granularity) as server:
        first = oai.harvest(settings, library(server.url), "run1", policy=FAST)
        nothing = oai.harvest(settings, library(server.url), "run2", policy=FAST)
        identifiers = sorted(store.headers())
        added = [store.upsert(LOC_RECORDS[n], identifier=f"oai:unioncat:new-{n}") for n in range(3)]
        for identifier, record in zip(identifiers[:2], LOC_RECORDS[:2]):
            store.upsert(record, identifier=identifier)  # changed: a new datestamp
        for identifier in identifiers[2:4]:
            store.delete(identifier)
        catalogue_before = state(settings)["catalogue"]
        result = oai.harvest(settings, library(server.url), "run3", policy=FAST)
    assert first.records == 310 and nothing.pages == 0 and nothing.records == 0
    committed = state(settings)
    new_pages = committed["catalogue"][len(catalogue_before):]
    assert committed["catalogue"][: len(catalogue_before)] == catalogue_before and committed["last_success"]["full"] is False
    in_new_pages = {h.findtext(OAI + "identifier") for page in new_pages for h in etree.parse(str(settings.data_dir / page)).iter(OAI + "header")}
    assert in_new_pages == set(added) | set(identifiers[:4])
    assert (result.records, result.deleted) == (5, 2)
    latest = replay(settings)[0]
    assert {i: deleted for i, (_, deleted) in latest.items()} == {i: deleted for i, (_, deleted) in store.headers().items()}
    assert {i for i, (_, deleted) in latest.items() if deleted} == set(identifiers[2:4])


# ---- crashes and expired tokens ------------------------------------------------------------------

HARVEST_IN_A_SUBPROCESS = """
import sys
from pathlib import Path
from harvesters import oai
from harvesters.http import HttpPolicy
from unioncat.registry import Library
from unioncat.settings import Settings
data = Path(sys.argv[1])
oai.harvest(Settings(data / "sources.toml", data), Library("OAI1", "测试图书馆", "杭州", "city", "oai", sys.argv[2]), "run-killed",
            policy=HttpPolicy(read_timeout=10, attempts=2, backoff=0.01))
"""


def test_kill_9_mid_harvest_then_rerun_loses_and_duplicates_nothing(shared_server, settings):
    server, headers = shared_server
    with FaultyProxy(server.url) as proxy:
        proxy.plan(stall(0.1, match="verb=ListRecords", times=None))  # pace it so it can be killed mid-run
        harvest = subprocess.Popen([sys.executable, "-c", HARVEST_IN_A_SUBPROCESS, str(settings.data_dir), proxy.url], cwd=REPO)
        try:
            deadline = time.monotonic() + 30
            while len((atomic.read_json(settings.state_path("OAI1"), {}) or {}).get("in_progress", {}).get("pages", [])) < 4:
                assert harvest.poll() is None, "the harvest ended before it could be killed"
                assert time.monotonic() < deadline, "the harvest made no progress"
                time.sleep(0.01)
        finally:
            harvest.send_signal(signal.SIGKILL)  # kill -9, mid-run
            harvest.wait()
    assert len(state(settings)["in_progress"]["pages"]) >= 4 and "catalogue" not in state(settings)
    result = oai.harvest(settings, library(server.url), "run-rerun", policy=FAST)
    assert result.resumed and result.records == 310
    latest, occurrences = replay(settings)
    assert latest == headers
    assert set(occurrences.values()) == {1}


def test_an_expired_token_on_resume_restarts_the_window(settings):
    store = province_store()
    with OAIServer(store, page_size=PAGE_SIZE) as server, FaultyProxy(server.url) as proxy:
        proxy.plan(status(503, match="resumptionToken", skip=3, times=None))  # the run dies in its second window
        with pytest.raises(RetryableHarvestError, match="HTTP 503"):
            oai.harvest(settings, library(proxy.url), "run1", policy=FAST)
        interrupted = state(settings)["in_progress"]
        window_pages = interrupted["pages"][interrupted["position"]["window_start"]:]
        assert interrupted["position"]["token"] and window_pages
        server.expire_tokens()
        result = oai.harvest(settings, library(server.url), "run2", policy=FAST)
    assert result.resumed and result.records == 310
    assert any("window restarted" in warning for warning in state(settings)["oai"]["warnings"])
    assert not any((settings.data_dir / page).exists() for page in window_pages)  # dropped, not counted
    latest, occurrences = replay(settings)
    assert latest == store.headers() and set(occurrences.values()) == {1}


def test_tokens_that_always_expire_end_in_bad_resumption_token(settings):
    store = province_store()
    with OAIServer(store, page_size=PAGE_SIZE, token_ttl=0) as server:
        with pytest.raises(oai.BadResumptionToken, match="badResumptionToken"):
            oai.harvest(settings, library(server.url), "run1", policy=FAST)


# ---- faults ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "fault",
    [
        status(503, retry_after="1", match="verb=ListRecords"),
        status(429, retry_after="1", match="resumptionToken", skip=2),
        reset(match="resumptionToken", skip=1),
        stall(3.0, match="resumptionToken"),
        truncate(match="resumptionToken"),
        invalid_chars(match="resumptionToken"),
        status(503, match="verb=Identify", times=2),
    ],
    ids=lambda fault: fault.kind + ("-" + str(fault.options.get("code")) if "code" in fault.options else ""),
)
def test_a_transient_fault_is_retried_and_the_harvest_completes(shared_server, settings, fault, caplog):
    server, headers = shared_server
    with FaultyProxy(server.url) as proxy:
        proxy.plan(fault)
        with caplog.at_level(logging.WARNING, logger="unioncat.harvest"):
            result = oai.harvest(settings, library(proxy.url), "run1", policy=FAST)
    assert [kind for _, kind in proxy.log].count(fault.kind) == fault.times
    assert result.records == 310 and replay(settings)[0] == headers
    assert state(settings)["oai"]["warnings"] == []
    if fault.kind in ("status", "reset", "stall"):  # retried by the HTTP client: the task log says so
        retried = [r.getMessage() for r in caplog.records if r.name == "unioncat.harvest"]
        assert len(retried) == fault.times and all(re.match(r"OAI1: http://\S+: (HTTP 5|HTTP 4|\w+Error|\w+Timeout|[\d.]+ s deadline).*; attempt [12] of 3, next in", m) for m in retried), retried


def test_a_page_that_keeps_its_invalid_characters_is_landed_stripped_with_the_received_bytes_kept(shared_server, settings):
    server, headers = shared_server
    with FaultyProxy(server.url) as proxy:
        proxy.plan(invalid_chars(b"\x0b&#x1F;", match="from=", times=2))  # the first page of the second window, and its refetch
        result = oai.harvest(settings, library(proxy.url), "run1", policy=FAST)
    assert result.records == 310 and replay(settings)[0] == headers
    [warning] = state(settings)["oai"]["warnings"]
    page = settings.data_dir / warning.split(":")[0]
    assert b"\x0b" in page.with_suffix(".received").read_bytes() and b"\x0b" not in page.read_bytes()


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        pytest.param(status(503, retry_after="1", times=None), RetryableHarvestError, r"gave up after 3 attempts \(HTTP 503\)", id="503"),
        pytest.param(status(429, match="resumptionToken", times=None), RetryableHarvestError, r"HTTP 429", id="429"),
        pytest.param(reset(match="verb=ListRecords", times=None), RetryableHarvestError, r"gave up after 3 attempts", id="reset"),
        pytest.param(stall(30, match="verb=ListRecords", times=None), RetryableHarvestError, r"ReadTimeout", id="stall"),
        pytest.param(truncate(match="resumptionToken", times=None), oai.MalformedPage, r"fetched twice, not well-formed XML", id="truncate"),
        pytest.param(status(404, match="verb=ListRecords"), TerminalHarvestError, r"HTTP 404", id="404"),
        pytest.param(repeat_token(match="verb=ListRecords", times=None), oai.RepeatedResumptionToken, r"came twice", id="repeat_token"),
        pytest.param(same_page(match="verb=ListRecords", skip=1, times=None), oai.RepeatedPage, r"looping", id="same_page"),
        pytest.param(oversize(2 << 20, match="resumptionToken"), TerminalHarvestError, r"exceeds the 1,048,576-byte cap", id="oversize"),
    ],
)
def test_a_persistent_fault_ends_in_a_clear_error_for_the_library(shared_server, settings, fault, error, message):
    server, _ = shared_server
    with FaultyProxy(server.url) as proxy:
        proxy.plan(fault)
        with pytest.raises(error, match=message) as raised:
            oai.harvest(settings, library(proxy.url), "run1", policy=FAST)
    assert raised.value.library_id == "OAI1"
    assert "catalogue" not in (state(settings) or {})  # nothing committed


def test_a_server_that_is_down_is_a_clear_retryable_error(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the probe is closed
    with pytest.raises(RetryableHarvestError, match=r"OAI1: .* gave up after 3 attempts \(ConnectionError\)"):
        oai.harvest(settings, library(f"http://127.0.0.1:{port}/oai"), "run1", policy=FAST)


def test_an_oai_error_maps_to_the_class_named_after_its_code(settings):
    store = RecordStore()  # no sets at all
    store.upsert(LOC_RECORDS[0], "2020-01-01T00:00:00Z")
    with OAIServer(store) as server:
        with pytest.raises(oai.NoSetHierarchy, match="noSetHierarchy"):
            oai.harvest(settings, library(server.url, set="zhejiang"), "run1", policy=FAST)
    assert issubclass(oai.NoSetHierarchy, TerminalHarvestError)


def test_the_metadata_prefix_prefers_marcxml_and_falls_back_to_dublin_core():
    marc, dc = "http://www.loc.gov/MARC21/slim", "http://www.openarchives.org/OAI/2.0/oai_dc/"
    offered = {"oai_dc": dc, "MARC21": marc, "cnmarc": marc, "mods": "http://www.loc.gov/mods/v3"}
    assert oai.choose_metadata_prefix(offered, "auto") == "MARC21"
    assert oai.choose_metadata_prefix(offered, "cnmarc") == "cnmarc"
    assert oai.choose_metadata_prefix(offered, "dc") == "oai_dc"
    assert oai.choose_metadata_prefix({"marc_slim": marc, "oai_dc": dc}, "auto") == "marc_slim"
    assert oai.choose_metadata_prefix({"oai_dc": dc}, "auto") == "oai_dc"
    assert oai.choose_metadata_prefix({"oai_marc": "http://www.openarchives.org/OAI/1.1/oai_marc"}, "auto") is None
