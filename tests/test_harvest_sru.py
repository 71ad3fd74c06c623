"""SRU harvesting against a real Zebra: versions, full and incremental harvests, crashes and faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
import requests
from lxml import etree

from harvesters import sru
from harvesters.errors import RetryableHarvestError, TerminalHarvestError
from harvesters.http import HttpPolicy
from harvesters.landing import catalogue_pages
from harvesters.sru import SruPolicy
from zebra_fixture import (
    REPO, HttpFaults, TcpProxy, closed_port, landed_marcxml_ids, last_modified, local_id, settings,  # noqa: F401
    wait_for_pages, with_control_fields, zebra,
)

QUICK = HttpPolicy(connect_timeout=2, read_timeout=5, attempts=2, backoff=0.05, max_wait=2)
SMALL_PAGES = SruPolicy(http=QUICK, page_records=25)


def state_of(settings, library_id: str) -> dict:
    return json.loads(settings.state_path(library_id).read_text())


def served_ids(zebra, database: str) -> list[str]:
    return [local_id(record) for record in zebra.records[database]]


@pytest.mark.parametrize("database, version", [("ZJ002", "1.1"), ("ZJ002", "2.0"), ("ZJ001", "1.2"), ("LOC", "1.2")])
def test_full_harvest_lands_every_record_once(zebra, settings, database, version):
    library = zebra.library(database, "sru", endpoint=f"{zebra.server.sru_url(database)}?version={version}")
    result = sru.harvest(settings, library, "run1", policy=SruPolicy(http=QUICK, page_records=100))

    assert Counter(landed_marcxml_ids(settings, database)) == Counter(served_ids(zebra, database))
    assert result.records == len(zebra.records[database]) and result.pages == -(-result.records // 100)
    first_page = etree.fromstring(catalogue_pages(settings, database)[0].read_bytes())
    assert first_page.findtext("{*}version") == (None if version == "2.0" else version)


@pytest.mark.parametrize("database, charset", [("ZJ001", "gb18030"), ("ZJ002", "utf-8")])
def test_chinese_catalogues_arrive_as_utf8_marcxml(zebra, settings, database, charset):
    sru.harvest(settings, zebra.library(database, "sru"), "run1", policy=SruPolicy(http=QUICK, page_records=300))

    first = zebra.records[database][0]
    title = first.split(b"\x1e1 \x1fa", 1)[1].split(b"\x1f", 1)[0].decode(charset)  # 200$a
    assert f">{title}<".encode("utf-8") in catalogue_pages(settings, database)[0].read_bytes()


def test_incremental_harvest_picks_up_additions_and_changes_then_deletions(zebra, settings):
    original = zebra.records["ZJ002"][:60]
    database = zebra.fresh_database(original)
    library = zebra.library(database, "sru")
    sru.harvest(settings, library, "run1", policy=SMALL_PAGES)
    watermark = state_of(settings, database)["watermark"]

    added = [with_control_fields(record, new_id=local_id(record)[:-4] + f"9{n:03d}", stamp="20270101080000")
             for n, record in enumerate(original[:3])]
    changed = [with_control_fields(record, stamp="20270102090000") for record in original[10:12]]
    zebra.server.put_records(database, added + changed)
    result = sru.harvest(settings, library, "run2", policy=SMALL_PAGES)

    state = state_of(settings, database)
    assert not state["last_success"]["full"] and result.deleted == 0
    on_the_watermark = {local_id(r) for r in original if last_modified(r) == watermark}
    assert set(landed_marcxml_ids(settings, database, run_id="run2")) == {local_id(r) for r in added + changed} | on_the_watermark
    assert set(landed_marcxml_ids(settings, database)) == {local_id(r) for r in original + added}

    deleted = [local_id(record) for record in original[20:23]]
    zebra.server.delete_records(database, deleted)
    result = sru.harvest(settings, library, "run3", policy=SMALL_PAGES)

    assert state_of(settings, database)["last_success"]["full"] and result.deleted == 3
    expected = {local_id(r) for r in original + added} - set(deleted)
    assert Counter(landed_marcxml_ids(settings, database)) == Counter(expected)


def test_server_without_date_search_falls_back_to_enumeration(zebra, settings):
    library = zebra.library("ZJ004", "sru")
    sru.harvest(settings, library, "run1", policy=SMALL_PAGES)
    result = sru.harvest(settings, library, "run2", policy=SMALL_PAGES)  # diagnostic 16: unsupported index

    state = state_of(settings, "ZJ004")
    assert state["census"]["date_search"] is False and state["last_success"]["full"]
    assert result.records == len(zebra.records["ZJ004"])


KILLED_HARVEST = """
import sys
from pathlib import Path
from harvesters import sru
from unioncat.registry import Library
from unioncat.settings import Settings
data_dir, endpoint = Path(sys.argv[1]), sys.argv[2]
library = Library("ZJ002", "杭州图书馆", "杭州", "city", "sru", endpoint, syntax="cnmarc")
sru.harvest(Settings(data_dir / "sources.toml", data_dir), library, "killed", policy=sru.SruPolicy(page_records=10))
"""


def test_harvest_killed_mid_way_resumes_without_losing_or_duplicating_records(zebra, settings):
    with TcpProxy(zebra.server.port, delay=0.05) as slow:
        harvest = subprocess.Popen([sys.executable, "-c", KILLED_HARVEST, str(settings.data_dir), f"http://127.0.0.1:{slow.port}/ZJ002"],
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_pages(settings.state_path("ZJ002"), 3, harvest)
        finally:
            os.kill(harvest.pid, signal.SIGKILL)
            harvest.communicate()
    assert 3 <= len(state_of(settings, "ZJ002")["in_progress"]["pages"]) < -(-len(zebra.records["ZJ002"]) // 10)

    result = sru.harvest(settings, zebra.library("ZJ002", "sru"), "rerun", policy=SruPolicy(http=QUICK, page_records=10))

    assert result.resumed and "in_progress" not in state_of(settings, "ZJ002")
    assert Counter(landed_marcxml_ids(settings, "ZJ002")) == Counter(served_ids(zebra, "ZJ002"))


def test_server_down_is_retryable_within_the_retry_budget(zebra, settings):
    library = zebra.library("ZJ002", "sru", endpoint=f"http://127.0.0.1:{closed_port()}/ZJ002")
    with pytest.raises(RetryableHarvestError, match="ZJ002: .*gave up after 2 attempts"):
        sru.harvest(settings, library, "run1", policy=SMALL_PAGES)


def test_connection_cut_mid_transfer_is_retryable(zebra, settings):
    with TcpProxy(zebra.server.port, cut_after=20_000) as cutting:
        library = zebra.library("ZJ002", "sru", endpoint=f"http://127.0.0.1:{cutting.port}/ZJ002")
        with pytest.raises(RetryableHarvestError, match="ZJ002: .*gave up after 2 attempts"):
            sru.harvest(settings, library, "run1", policy=SruPolicy(http=QUICK, page_records=50))


def test_response_cut_off_every_time_is_retryable(zebra, settings):
    with HttpFaults(zebra.server.sru_url(""), {2: "truncate", 3: "truncate"}) as proxy:
        library = zebra.library("ZJ002", "sru", endpoint=f"{proxy.url}/ZJ002")
        with pytest.raises(RetryableHarvestError, match="ZJ002: .*fetched 2 times, the response is not XML"):
            sru.harvest(settings, library, "run1", policy=SMALL_PAGES)


@pytest.mark.parametrize("faults, failed", [({2: "503", 3: "503"}, 2), ({2: "truncate"}, 1)])
def test_overloaded_or_truncating_server_is_asked_again_until_the_harvest_completes(zebra, settings, faults, failed):
    with HttpFaults(zebra.server.sru_url(""), faults) as proxy:  # the first page request(s)
        library = zebra.library("ZJ002", "sru", endpoint=f"{proxy.url}/ZJ002")
        policy = SruPolicy(http=HttpPolicy(attempts=3, backoff=0.05, max_wait=1.5), page_records=50)
        result = sru.harvest(settings, library, "run1", policy=policy)

    assert result.records == len(zebra.records["ZJ002"])
    assert proxy.requests == 1 + failed + result.pages  # the hit count, the failed requests, the pages
    assert Counter(landed_marcxml_ids(settings, "ZJ002")) == Counter(served_ids(zebra, "ZJ002"))


def test_page_with_an_invalid_character_is_landed_mended_beside_the_bytes_received(zebra, settings):
    with HttpFaults(zebra.server.sru_url(""), {2: "corrupt", 3: "corrupt"}) as proxy:  # the first page, twice
        library = zebra.library("ZJ002", "sru", endpoint=f"{proxy.url}/ZJ002")
        sru.harvest(settings, library, "run1", policy=SruPolicy(http=QUICK, page_records=50))

    first = catalogue_pages(settings, "ZJ002")[0]
    received = first.with_suffix(".received").read_bytes()
    assert b"\x0b" in received and received.replace(b"\x0b", b"") == first.read_bytes()
    assert Counter(landed_marcxml_ids(settings, "ZJ002")) == Counter(served_ids(zebra, "ZJ002"))


@pytest.mark.parametrize("code, error", [(10, TerminalHarvestError), (47, TerminalHarvestError), (2, RetryableHarvestError)])
def test_diagnostics_map_to_terminal_or_retryable_errors(zebra, settings, code, error):
    with HttpFaults(zebra.server.sru_url(""), {1: f"diagnostic:{code}"}) as proxy:
        library = zebra.library("ZJ002", "sru", endpoint=f"{proxy.url}/ZJ002")
        with pytest.raises(error, match=f"ZJ002: SRU {proxy.url}/ZJ002 query 'cql.allRecords=1': SRU diagnostic {code}"):
            sru.harvest(settings, library, "run1", policy=SMALL_PAGES)


def test_unknown_database_is_terminal(zebra, settings):
    with pytest.raises(TerminalHarvestError, match="NOSUCH: .*/NOSUCH: HTTP 404"):
        sru.harvest(settings, zebra.library("NOSUCH", "sru"), "run1", policy=SMALL_PAGES)


@pytest.mark.parametrize("packing", ["xml", "string"])
def test_responses_are_read_in_either_record_packing_and_mended_when_not_well_formed(zebra, packing):
    params = {"version": "1.2", "operation": "searchRetrieve", "query": "cql.allRecords=1", "maximumRecords": 5,
              "recordSchema": "marcxml", "recordPacking": packing}
    page = requests.get(zebra.server.sru_url("ZJ002"), params=params, timeout=10).content
    expected = [(local_id(r), last_modified(r)) for r in zebra.records["ZJ002"][:5]]
    assert sru.parse_response(page).stamps == expected

    for broken in (page.replace(b"</zs:recordPosition>", b"\x0b</zs:recordPosition>", 1),  # XML 1.0 forbids U+000B
                   page.replace(b"ZJ002", b"ZJ\xff02", 1)):  # not UTF-8
        with pytest.raises(sru.MalformedResponse):
            sru.parse_response(broken)
        assert sru.parse_response(sru.mend(broken)).stamps == expected
    with pytest.raises(sru.MalformedResponse):
        sru.parse_response(sru.mend(page[: len(page) // 2]))
