"""Every harvester against a misbehaving server: the run ends within a bounded time (small
timeouts, deadlines and retry budgets; pytest-timeout marks, no wall-clock asserts) with either
the complete catalogue or a HarvestError naming the library and the reason, and never with a
partial page in the landing zone. After a failure the same harvest, the fault gone, completes
with every record the server holds: records lost, 0.

Faults already covered by the protocol tests are not repeated here (RELIABILITY.md lists them):
OAI 503/429/reset/stall/truncate/404/repeated token/same page/oversize through
tests/faulty_http.py, SRU cut/truncate/503/diagnostics and Z39.50 cut mid-present through
tests/zebra_fixture.py."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, replace
from typing import Callable

import pytest

from faults.checks import LOC_FILE, assert_landing_whole, catalogue_local_ids, served_local_ids
from faults.conftest import OAI_PAGE_SIZE
from faults.endless_oai import EndlessOAIServer
from faults.proxy import APDU_FAULTS, FaultProxy, TcpFault
from faulty_http import FaultyProxy, oversize, same_page, status
from harvesters import files, oai, sru, z3950
from harvesters.errors import HarvestError, RetryableHarvestError, TerminalHarvestError
from harvesters.http import HttpPolicy
from unioncat.network.zebra import ZebraServer, free_port
from unioncat.registry import Library
from zebra_fixture import TcpProxy

pytestmark = pytest.mark.timeout(40)

QUICK_HTTP = HttpPolicy(connect_timeout=1, read_timeout=1, max_bytes=4 << 20, attempts=2, backoff=0.01, max_wait=0.05, deadline=2)
QUICK_Z3950 = z3950.Z3950Policy(timeout=1, page_records=50, deadline=2)


@dataclass(frozen=True)
class Harvester:
    """One protocol's harvester pointed at a server on `port`."""

    library_id: str
    library: Callable[[int], Library]
    harvest: Callable


def _library(library_id: str, protocol: str, endpoint: str) -> Library:
    return Library(library_id, "故障测试图书馆", "杭州", "city", protocol, endpoint, syntax="marc21")


HARVESTERS = {
    "z3950": Harvester("Z1", lambda port: _library("Z1", "z3950", f"127.0.0.1:{port}/LOC"),
                       lambda settings, library, run_id: z3950.harvest(settings, library, run_id, policy=QUICK_Z3950)),
    "sru": Harvester("S1", lambda port: _library("S1", "sru", f"http://127.0.0.1:{port}/LOC"),
                     lambda settings, library, run_id: sru.harvest(settings, library, run_id, policy=sru.SruPolicy(QUICK_HTTP, 50))),
    "oai": Harvester("O1", lambda port: _library("O1", "oai", f"http://127.0.0.1:{port}/oai"),
                     lambda settings, library, run_id: oai.harvest(settings, library, run_id, policy=QUICK_HTTP)),
}
SERVED = served_local_ids()
RETRYABLE = RetryableHarvestError
COMPLETE = None

# (protocol, fault, outcome): outcome None means the harvest completes despite the fault.
TCP_FAULTS = [
    ("z3950", TcpFault("drop"), (RETRYABLE, r"Connection lost")),
    ("z3950", TcpFault("drop", after=30_000), (RETRYABLE, r"Decoding failed|Connection lost")),
    ("z3950", TcpFault("reset", after=30_000), (RETRYABLE, r"ZOOM 1000[347]")),
    ("z3950", TcpFault("stall", after=30_000), (RETRYABLE, r"Timeout \(ZOOM 10007\)")),
    ("z3950", TcpFault("garbage"), (RETRYABLE, r"Decoding failed")),
    ("z3950", TcpFault("garbage", after=30_000), (RETRYABLE, r"Decoding failed")),
    ("z3950", TcpFault("trickle", after=30_000), (RETRYABLE, r"within the 2 s deadline")),
    # Zebra's presentResponses replayed: the first page for ever, then pages 1, 2, 1, 2 (which the
    # hit count alone would let "complete" with 100 distinct records out of 300)
    ("z3950", TcpFault("replay_present"), (TerminalHarvestError, r"sent the 50 records of position 1 again at position 51 of 300: it is looping")),
    ("z3950", TcpFault("replay_present", cycle=2), (TerminalHarvestError, r"records of position 1 again at position 101 of 300: it is looping")),
    ("sru", TcpFault("drop"), (RETRYABLE, r"gave up after 2 attempts")),
    ("sru", TcpFault("reset", after=20_000, times=1), COMPLETE),
    ("sru", TcpFault("reset", after=20_000), (RETRYABLE, r"gave up after 2 attempts")),
    ("sru", TcpFault("stall", after=20_000), (RETRYABLE, r"ReadTimeout")),
    ("sru", TcpFault("garbage", after=20_000, times=1), COMPLETE),
    ("sru", TcpFault("garbage", after=20_000, every=40_000), (RETRYABLE, r"fetched 2 times, the response is not XML")),
    ("sru", TcpFault("trickle", after=20_000), (RETRYABLE, r"2 s deadline passed")),
    ("oai", TcpFault("drop", times=1), COMPLETE),
    ("oai", TcpFault("drop"), (RETRYABLE, r"gave up after 2 attempts")),
    ("oai", TcpFault("stall", after=20_000), (RETRYABLE, r"ReadTimeout")),
    ("oai", TcpFault("garbage", after=20_000, times=1), COMPLETE),
    ("oai", TcpFault("garbage", after=20_000), (oai.MalformedPage, r"fetched twice, not well-formed XML")),
    ("oai", TcpFault("trickle", after=20_000), (RETRYABLE, r"2 s deadline passed")),
]

# HTTP-level faults (tests/faulty_http.py) the SRU tests do not have yet; OAI has them all.
HTTP_FAULTS = [
    ("sru", status(503, retry_after="1", times=None), (RETRYABLE, r"gave up after 2 attempts \(HTTP 503\)")),
    ("sru", status(500, match="startRecord=51", times=None), (RETRYABLE, r"HTTP 500")),
    ("sru", oversize(8 << 20, match="startRecord=1&"), (TerminalHarvestError, r"exceeds the 4,194,304-byte cap")),
    ("sru", same_page(match="maximumRecords=50", times=None), (TerminalHarvestError, r"from position 51, the server sent them from 1: it is looping")),
]


@pytest.fixture
def upstream_port(request, loc_zebra, loc_oai) -> Callable[[str], int]:
    return lambda protocol: int(loc_oai.url.split(":")[2].split("/")[0]) if protocol == "oai" else loc_zebra.port


def _state(settings, library_id: str) -> dict:
    path = settings.state_path(library_id)
    return json.loads(path.read_text()) if path.exists() else {}


def check_outcome(settings, harvester: Harvester, library: Library, outcome) -> None:
    """The faulted harvest completes with every record, or fails clearly without committing."""
    if outcome is COMPLETE:
        harvester.harvest(settings, library, "run1")
        assert catalogue_local_ids(settings, harvester.library_id) == SERVED
    else:
        error_class, reason = outcome
        with pytest.raises(error_class, match=reason) as raised:
            harvester.harvest(settings, library, "run1")
        assert isinstance(raised.value, HarvestError) and raised.value.library_id == harvester.library_id
        assert str(raised.value).startswith(f"{harvester.library_id}: ")
        assert "catalogue" not in _state(settings, harvester.library_id), "a failed first harvest committed pages"
    assert_landing_whole(settings)


def rerun_loses_nothing(settings, harvester: Harvester, library: Library) -> None:
    harvester.harvest(settings, library, "run2")
    assert catalogue_local_ids(settings, harvester.library_id) == SERVED
    assert assert_landing_whole(settings) > 0


@pytest.mark.parametrize("protocol, fault, outcome", TCP_FAULTS, ids=[f"{p}-{f}" for p, f, _ in TCP_FAULTS])
def test_tcp_fault_ends_complete_or_in_a_clear_failure_and_the_rerun_loses_nothing(settings, upstream_port, protocol, fault, outcome):
    harvester = HARVESTERS[protocol]
    with FaultProxy(upstream_port(protocol)) as proxy:
        library = harvester.library(proxy.port)
        proxy.plan(fault)
        check_outcome(settings, harvester, library, outcome)
        assert proxy.faulted >= 1, "the fault never happened"
        assert fault.kind not in APDU_FAULTS or proxy.rewritten >= 1, "no APDU was rewritten"
        proxy.plan(None)
        rerun_loses_nothing(settings, harvester, library)


@pytest.mark.parametrize("protocol, fault, outcome", HTTP_FAULTS, ids=[f"{p}-{f.kind}" for p, f, _ in HTTP_FAULTS])
def test_http_fault_ends_complete_or_in_a_clear_failure_and_the_rerun_loses_nothing(settings, loc_zebra, protocol, fault, outcome):
    harvester = HARVESTERS[protocol]
    with FaultyProxy(f"http://127.0.0.1:{loc_zebra.port}/LOC") as proxy:
        proxy.plan(fault)
        library = harvester.library(int(proxy.url.split(":")[2].split("/")[0]))
        check_outcome(settings, harvester, library, outcome)
        assert fault.applied >= 1
        fault.times = fault.applied  # the fault is over
        rerun_loses_nothing(settings, harvester, library)


def _z3950_with(policy: z3950.Z3950Policy) -> Harvester:
    return Harvester("Z1", HARVESTERS["z3950"].library, lambda settings, library, run_id: z3950.harvest(settings, library, run_id, policy=policy))


def test_zebrasrv_killed_mid_present_is_retryable_and_the_restarted_server_gives_every_record(settings, tmp_path):
    """Pages of 10 (30 presents): once two are checkpointed the proxy holds both directions, so no
    present asked after that reaches zebrasrv before it is killed, and the harvest cannot finish."""
    port = free_port()
    server = ZebraServer(tmp_path / "zebra", {"LOC": [LOC_FILE]}, port=port).start()
    harvester = _z3950_with(replace(QUICK_Z3950, page_records=10))
    try:
        with TcpProxy(port, delay=0.02) as slow:
            library = harvester.library(slow.port)
            outcome: list = []
            harvest = threading.Thread(target=lambda: outcome.append(_attempt(harvester, settings, library)))
            harvest.start()
            _wait_for_pages(settings, harvester.library_id, 2, harvest)
            slow.hold()
            server.stop()  # SIGTERM then SIGKILL to zebrasrv's process group, mid-present
            slow.release()
            harvest.join(30)
        [error] = outcome
        assert isinstance(error, RetryableHarvestError) and error.library_id == "Z1", error
        assert 2 <= len(_state(settings, "Z1")["in_progress"]["pages"]) < len(SERVED) // 10
        assert_landing_whole(settings)
        server.start()
        rerun_loses_nothing(settings, harvester, harvester.library(port))
    finally:
        server.stop()


# ---- Z39.50 size cap -----------------------------------------------------------------------------


def test_z3950_a_record_beyond_the_negotiated_cap_is_a_clear_failure_and_a_cap_that_fits_loses_nothing(settings, loc_zebra):
    """The cap is negotiated at Init: asked for records of at most 400 bytes (every LoC record is
    longer), Zebra sends diagnostic 17 instead of the record. With a cap of 16,000 bytes and
    pages of 5 (at most 14,080 bytes), Zebra keeps its messages under the cap and every record comes."""
    capped = _z3950_with(replace(QUICK_Z3950, max_bytes=400))
    library = capped.library(loc_zebra.port)
    check_outcome(settings, capped, library, (TerminalHarvestError, r"a record beyond the 400-byte cap, which the server refused to send "
                                                                     r"\(record 1: .*\(Bib-1 17\)\)"))
    assert not (settings.data_dir / "landing").exists(), "a page was landed"
    rerun_loses_nothing(settings, _z3950_with(replace(QUICK_Z3950, page_records=5, max_bytes=16_000)), library)


def test_z3950_a_response_far_beyond_the_cap_from_a_server_ignoring_it_is_refused_unlanded(settings, loc_zebra):
    """The proxy tells Zebra the client takes 64 MiB messages: Zebra answers the first present
    of 50 records in one message more than ten times the 2,000-byte cap. The harvester refuses
    the page before landing it; the rerun, the fault gone, gets every record."""
    capped = _z3950_with(replace(QUICK_Z3950, max_bytes=2000))
    with FaultProxy(loc_zebra.port) as proxy:
        library = capped.library(proxy.port)
        proxy.plan(TcpFault("uncapped_init"))
        with pytest.raises(TerminalHarvestError, match=r"^Z1: Z39.50 .*: records 1-50 came to ([\d,]+) bytes, beyond the 2,000-byte cap$") as raised:
            capped.harvest(settings, library, "run1")
        assert int(re.search(r"came to ([\d,]+) bytes", str(raised.value))[1].replace(",", "")) > 10 * 2000
        assert proxy.rewritten == 1, "the initRequest was not rewritten"
        assert not (settings.data_dir / "landing").exists() and "catalogue" not in _state(settings, "Z1")
        proxy.plan(None)
        rerun_loses_nothing(settings, HARVESTERS["z3950"], library)


# ---- OAI-PMH: a list that never ends ---------------------------------------------------------------

# (mode, completeListSize announced, max_window_pages, outcome); the first window holds the 100
# records stamped 2019: four pages of 25 a lap (tests/faults/endless_oai.py), so the 12th page
# hands out the token of lap 3.
ENDLESS_LISTS = [
    ("fresh", None, 12, (oai.EndlessList, r"window None\.\.\S+ took 12 pages, the most a window may \(max_window_pages\), "
                                          r"and the server still sent resumptionToken 'lap3-0-[0-9a-f]{8}': its list does not end")),
    ("restamped", None, oai.MAX_WINDOW_PAGES, (oai.RepeatedPage, r"records already received came again in 3 pages")),
    ("fresh", 100, oai.MAX_WINDOW_PAGES, (TerminalHarvestError, r"ListRecords: 3\d\d records received, 100 announced")),
]


@pytest.mark.parametrize("mode, announce, max_window_pages, outcome", ENDLESS_LISTS,
                         ids=[f"{mode}-{'announced' if announce else 'unannounced'}" for mode, announce, *_ in ENDLESS_LISTS])
def test_oai_a_list_of_ever_new_tokens_is_stopped_and_the_rerun_loses_nothing(settings, loc_store, mode, announce, max_window_pages, outcome):
    """Ever-new resumption tokens that start the list again and again: over new identifiers with
    no completeListSize, only max_window_pages can stop it; over the same identifiers restamped,
    the repeated-page guard does, whatever the bound; an announced size bounds it too. Then the
    list ends (the fault is over): the rerun's checkpointed token is refused, the window restarts,
    and every record comes."""
    harvester = Harvester("O1", HARVESTERS["oai"].library, lambda settings, library, run_id: oai.harvest(
        settings, library, run_id, policy=QUICK_HTTP, max_window_pages=max_window_pages))
    with EndlessOAIServer(loc_store, page_size=OAI_PAGE_SIZE, mode=mode, announce=announce) as server:
        library = _library("O1", "oai", server.url)
        check_outcome(settings, harvester, library, outcome)
        checkpointed = len(_state(settings, "O1")["in_progress"]["pages"])
        # bounded: the pages counted, the one refused, and what the fetch-ahead and the two prefetch queues held
        assert checkpointed < server.list_requests <= checkpointed + 8, (checkpointed, server.list_requests)
        server.laps = 1
        rerun_loses_nothing(settings, harvester, library)
    assert any("resumptionToken refused, window restarted" in warning for warning in _state(settings, "O1")["oai"]["warnings"])


def _attempt(harvester: Harvester, settings, library: Library):
    try:
        return harvester.harvest(settings, library, "run1")
    except HarvestError as error:
        return error


def _wait_for_pages(settings, library_id: str, pages: int, harvest: threading.Thread) -> None:
    while len((_state(settings, library_id).get("in_progress") or {}).get("pages", [])) < pages:
        assert harvest.is_alive(), "the harvest ended before the server could be killed"
        harvest.join(0.01)


# ---- file drops ------------------------------------------------------------------------------------


def _file_library(tmp_path) -> Library:
    drop = tmp_path / "drop"
    drop.mkdir(exist_ok=True)
    return Library("F1", "文件图书馆", "杭州", "county", "file", str(drop), syntax="marc21")


def test_a_drop_file_that_vanishes_while_harvested_is_a_retryable_failure_of_the_library(settings, tmp_path, monkeypatch):
    library = _file_library(tmp_path)
    (tmp_path / "drop" / "catalogue.mrc").write_bytes(LOC_FILE.read_bytes())
    listed = files.drop_files(library) + [tmp_path / "drop" / "gone.mrc"]  # listed, then removed by the library
    monkeypatch.setattr(files, "drop_files", lambda _: listed)
    with pytest.raises(RetryableHarvestError, match=r"^F1: drop file gone.mrc cannot be read: No such file"):
        files.harvest(settings, library, "run1")
    assert "catalogue" not in _state(settings, "F1")
    monkeypatch.undo()
    files.harvest(settings, library, "run2")
    assert catalogue_local_ids(settings, "F1") == SERVED


def test_a_drop_file_beyond_the_size_cap_is_refused_unread(settings, tmp_path):
    library = _file_library(tmp_path)
    (tmp_path / "drop" / "catalogue.mrc").write_bytes(LOC_FILE.read_bytes())
    with pytest.raises(TerminalHarvestError, match=r"^F1: drop file catalogue.mrc: [\d,]+ bytes exceeds the 1,000-byte cap"):
        files.harvest(settings, library, "run1", max_bytes=1000)
    assert not (settings.data_dir / "landing").exists()


def test_a_drop_file_caught_half_written_is_quarantined_then_complete_on_the_next_harvest(settings, tmp_path):
    from transforms.stage import transform_library

    library = _file_library(tmp_path)
    whole = LOC_FILE.read_bytes()
    (tmp_path / "drop" / "catalogue.mrc").write_bytes(whole[: len(whole) // 2])
    files.harvest(settings, library, "run1")
    half = transform_library(settings, library)
    assert half.quarantine_reasons == {"truncated_record": 1} and 0 < half.records < len(SERVED)
    (tmp_path / "drop" / "catalogue.mrc").write_bytes(whole)
    files.harvest(settings, library, "run2")
    complete = transform_library(settings, library)
    assert complete.records == len(SERVED) and complete.quarantined == 0


def test_a_drop_file_unchanged_on_disk_is_not_read_again_and_a_rewritten_one_is(settings, tmp_path, monkeypatch):
    library = _file_library(tmp_path)
    drop = tmp_path / "drop" / "catalogue.mrc"
    drop.write_bytes(LOC_FILE.read_bytes())
    files.harvest(settings, library, "run1")
    read = []
    real_read = files.read_drop_file
    monkeypatch.setattr(files, "read_drop_file", lambda *args: read.append(args[1].name) or real_read(*args))
    quiet = files.harvest(settings, library, "run2")
    assert (read, quiet.pages, quiet.unchanged) == ([], 0, 1)
    drop.write_bytes(LOC_FILE.read_bytes())  # the same bytes again: read, found equal, not landed
    again = files.harvest(settings, library, "run3")
    assert (read, again.pages, again.unchanged) == (["catalogue.mrc"], 0, 1)
    changed = bytearray(LOC_FILE.read_bytes())
    changed[-2] ^= 1  # same size, another byte
    drop.write_bytes(bytes(changed))
    landed = files.harvest(settings, library, "run4")
    assert (read, landed.pages) == (["catalogue.mrc", "catalogue.mrc"], 1)
    assert files.harvest(settings, library, "run5", full=True).pages == 1  # --full reads and lands every file
