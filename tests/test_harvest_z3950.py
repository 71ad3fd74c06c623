"""Z39.50 harvesting against a real Zebra: full and incremental harvests, crashes and faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from harvesters import z3950
from harvesters.errors import RetryableHarvestError, TerminalHarvestError
from harvesters.z3950 import Z3950Policy
from unioncat.network.zebra import ZebraServer
from zebra_fixture import (
    REPO, TcpProxy, closed_port, landed_marc, last_modified, local_id, marc_records, replayed, settings,  # noqa: F401
    silent_port, wait_for_pages, with_control_fields, zebra,
)

SMALL_PAGES = Z3950Policy(page_records=20)


def state_of(settings, library_id: str) -> dict:
    return json.loads(settings.state_path(library_id).read_text())


@pytest.mark.parametrize("database", ["ZJ001", "ZJ002", "LOC"])  # GB18030 CNMARC, UTF-8 CNMARC, MARC21
def test_full_harvest_lands_the_servers_records_byte_for_byte(zebra, settings, database):
    library = zebra.library(database, "z3950")
    result = z3950.harvest(settings, library, "run1", policy=Z3950Policy(page_records=100))

    served = zebra.records[database]
    assert Counter(landed_marc(settings, database)) == Counter(served)
    assert result.records == len(served) and result.pages == -(-len(served) // 100)
    census = state_of(settings, database)["census"]
    ids = (settings.state_path(database).parent / census["ids"]).read_text().split("\n")
    assert set(ids) == {local_id(record) for record in served} and census["records"] == len(served)


def test_incremental_harvest_picks_up_additions_and_changes_then_deletions(zebra, settings):
    original = zebra.records["ZJ001"][:60]
    database = zebra.fresh_database(original)
    library = zebra.library(database, "z3950")
    z3950.harvest(settings, library, "run1", policy=SMALL_PAGES)
    watermark = state_of(settings, database)["watermark"]
    assert watermark == max(last_modified(record) for record in original)

    added = [with_control_fields(record, new_id=local_id(record)[:-4] + f"9{n:03d}", stamp="20270101080000")
             for n, record in enumerate(original[:3])]
    changed = [with_control_fields(record, stamp="20270102090000") for record in original[10:12]]
    zebra.server.put_records(database, added + changed)
    result = z3950.harvest(settings, library, "run2", policy=SMALL_PAGES)

    server = replayed(original) | replayed(added + changed)
    assert not state_of(settings, database)["last_success"]["full"], "a date window, not an enumeration"
    this_run = [r for p in state_of(settings, database)["catalogue"] if "/run2/" in p for r in marc_records(settings.data_dir / p)]
    on_the_watermark = {local_id(r) for r in original if last_modified(r) == watermark}
    assert {local_id(r) for r in this_run} == {local_id(r) for r in added + changed} | on_the_watermark
    assert replayed(landed_marc(settings, database)) == server
    assert result.deleted == 0

    deleted = [local_id(record) for record in original[20:22]]
    zebra.server.delete_records(database, deleted)
    result = z3950.harvest(settings, library, "run3", policy=SMALL_PAGES)

    for local in deleted:
        del server[local]
    assert state_of(settings, database)["last_success"]["full"], "deletions need an enumeration"
    assert result.deleted == 2
    assert Counter(landed_marc(settings, database)) == Counter(server.values())


def test_server_without_date_search_is_probed_once_then_enumerated(zebra, settings):
    library = zebra.library("ZJ004", "z3950")
    z3950.harvest(settings, library, "run1")
    assert state_of(settings, "ZJ004")["census"]["date_search"] is None

    result = z3950.harvest(settings, library, "run2")  # probes 1012: diagnostic 114, so it enumerates

    state = state_of(settings, "ZJ004")
    assert state["census"]["date_search"] is False and state["last_success"]["full"]
    assert result.records == len(zebra.records["ZJ004"])
    assert Counter(landed_marc(settings, "ZJ004")) == Counter(zebra.records["ZJ004"])

    z3950.harvest(settings, library, "run3")
    assert date_searches(zebra, "ZJ004") == 1, "the probe is not repeated"


def date_searches(zebra, database: str) -> int:
    log = (zebra.server.workdir / "zebrasrv.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if f"Search {database} " in line and "@attr 1=1012" in line)


KILLED_HARVEST = """
import sys
from pathlib import Path
from harvesters import z3950
from unioncat.registry import Library
from unioncat.settings import Settings
data_dir, endpoint = Path(sys.argv[1]), sys.argv[2]
library = Library("ZJ001", "浙江图书馆", "杭州", "province", "z3950", endpoint, syntax="cnmarc")
z3950.harvest(Settings(data_dir / "sources.toml", data_dir), library, "killed", policy=z3950.Z3950Policy(page_records=20))
"""


def test_harvest_killed_mid_way_resumes_without_losing_or_duplicating_records(zebra, settings):
    served = zebra.records["ZJ001"]
    with TcpProxy(zebra.server.port, delay=0.05) as slow:
        harvest = subprocess.Popen([sys.executable, "-c", KILLED_HARVEST, str(settings.data_dir), f"127.0.0.1:{slow.port}/ZJ001"],
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_pages(settings.state_path("ZJ001"), 3, harvest)
        finally:
            os.kill(harvest.pid, signal.SIGKILL)
            harvest.communicate()
    interrupted = state_of(settings, "ZJ001")["in_progress"]
    assert 3 <= len(interrupted["pages"]) < -(-len(served) // 20)

    result = z3950.harvest(settings, zebra.library("ZJ001", "z3950"), "rerun", policy=SMALL_PAGES)

    assert result.resumed and "in_progress" not in state_of(settings, "ZJ001")
    assert Counter(landed_marc(settings, "ZJ001")) == Counter(served)


def test_connection_cut_mid_present_is_retryable_and_a_changed_catalogue_restarts_the_enumeration(zebra, settings):
    original = zebra.records["ZJ002"]
    database = zebra.fresh_database(original)
    with TcpProxy(zebra.server.port, cut_after=40_000) as cutting:
        library = zebra.library(database, "z3950", endpoint=f"127.0.0.1:{cutting.port}/{database}")
        with pytest.raises(RetryableHarvestError, match=f"{database}: Z39.50 127.0.0.1:{cutting.port}/{database}"):
            z3950.harvest(settings, library, "run1", policy=Z3950Policy(page_records=20, timeout=10))
    assert state_of(settings, database)["in_progress"]["pages"], "pages before the cut are kept"

    added = with_control_fields(original[0], new_id=local_id(original[0])[:-4] + "9999", stamp="20270101080000")
    zebra.server.put_records(database, [added])
    z3950.harvest(settings, zebra.library(database, "z3950"), "run2", policy=SMALL_PAGES)

    assert Counter(landed_marc(settings, database)) == Counter(original + [added])


def test_unavailable_database_is_terminal_and_names_library_and_endpoint(zebra, settings):
    library = zebra.library("NOSUCH", "z3950")
    with pytest.raises(TerminalHarvestError, match=rf"NOSUCH: Z39.50 {library.endpoint}: database 'NOSUCH' is unavailable"):
        z3950.harvest(settings, library, "run1")


def test_server_down_is_retryable(zebra, settings):
    library = zebra.library("ZJ002", "z3950", endpoint=f"127.0.0.1:{closed_port()}/ZJ002")
    with pytest.raises(RetryableHarvestError, match="Connect failed"):
        z3950.harvest(settings, library, "run1")


def test_server_that_never_answers_times_out_as_retryable(zebra, settings):
    with silent_port() as port:
        library = zebra.library("ZJ002", "z3950", endpoint=f"127.0.0.1:{port}/ZJ002")
        with pytest.raises(RetryableHarvestError, match="ZOOM 10007"):
            z3950.harvest(settings, library, "run1", policy=Z3950Policy(timeout=1))


def test_rejected_credentials_are_terminal_and_never_shown(zebra, settings, tmp_path, monkeypatch):
    records = zebra.records["ZJ002"][:5]
    (tmp_path / "five.mrc").write_bytes(b"".join(records))
    with ZebraServer(tmp_path / "guarded", {"ZJ002": [tmp_path / "five.mrc"]}, accounts={"harvester": "s3cret"}) as guarded:
        library = zebra.library("ZJ002", "z3950", endpoint=guarded.z3950_endpoint("ZJ002"), conn_id="zj002_z3950")
        monkeypatch.setenv("UNIONCAT_CONN_ZJ002_Z3950", "harvester:wrong-password")
        with pytest.raises(TerminalHarvestError, match="refused the session.*conn_id 'zj002_z3950'") as refused:
            z3950.harvest(settings, library, "run1")
        assert "wrong-password" not in str(refused.value)

        monkeypatch.setenv("UNIONCAT_CONN_ZJ002_Z3950", "harvester:s3cret")
        assert z3950.harvest(settings, library, "run2").records == 5
