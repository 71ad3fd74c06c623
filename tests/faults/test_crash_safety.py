"""kill -9 at points of harvest, transform, dedup and publish; the rerun (that stage and the
ones after it) publishes the catalogue an uninterrupted run publishes: same manifest counts, same
records, holdings, quarantine, manifestations, record → manifestation links, works and holdings
distribution (snapshot and run ids aside).

Each stage runs as `unioncat <stage> --sources ... --data-dir ...` in a process that SIGKILLs
itself at the chosen point (tests/faults/crash_runner.py): before or after the n-th rename (a
whole temp file on disk, not yet or just counted), or at the n-th DuckDB query (mid-computation).
A negative n counts from the end of the uninterrupted stage. The province is four file libraries
of the demo generator (Chinese variants, duplicates across libraries, one truncated export).
Harvest crashes of the network protocols are in tests/test_harvest_{oai,sru,z3950}.py."""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass

import pytest

from faults.snapshots import assert_same_catalogue
from faults.stages import STAGES

pytestmark = pytest.mark.timeout(240)



@dataclass(frozen=True)
class CrashPoint:
    stage: str
    hook: str  # before-replace | after-replace | duckdb-call
    at: int  # 1-based; negative: from the end of the uninterrupted stage

    def __str__(self) -> str:
        return f"{self.stage}-{self.hook}-{self.at}"


CRASH_POINTS = [
    CrashPoint("harvest", "before-replace", 2),  # a library's second file landed as a temp file
    CrashPoint("harvest", "after-replace", -3),  # pages landed, the library's state not committed
    CrashPoint("transform", "after-replace", 6),  # a library staged, the next one's records and holdings only
    CrashPoint("dedup", "duckdb-call", 5),  # mid-matching
    CrashPoint("dedup", "before-replace", 2),  # record_manifestation written, the rest not
    CrashPoint("dedup", "before-replace", -1),  # everything but the state written
    CrashPoint("publish", "before-replace", 2),  # building the snapshot's Parquet
    CrashPoint("publish", "duckdb-call", -2),  # building catalogue.duckdb
    CrashPoint("publish", "before-replace", -2),  # the snapshot built, not renamed into place
    CrashPoint("publish", "before-replace", -1),  # the snapshot in place, `current` not switched
]


@pytest.mark.parametrize("point", CRASH_POINTS, ids=str)
def test_kill_9_then_rerun_publishes_the_uninterrupted_catalogue(province_baseline, tmp_path, point):
    baseline = province_baseline
    data = tmp_path / "data"
    shutil.copytree(baseline.data_before(point.stage), data, symlinks=True)
    total = baseline.counts[point.stage]["replaces" if point.hook.endswith("replace") else "duckdb_calls"]
    at = point.at if point.at > 0 else total + 1 + point.at
    assert 0 < at <= total, f"{point}: the uninterrupted {point.stage} makes {total}"

    killed = baseline.runner.run(point.stage, data, baseline.sources, point.hook, at)
    assert killed == {"signal": signal.SIGKILL}, f"{point} was not reached: {killed}"

    for stage in STAGES[STAGES.index(point.stage):]:
        answer = baseline.runner.run(stage, data, baseline.sources)
        assert answer.get("exit") == 0, f"rerun of {stage} after {point}: {answer}"
    current = (data / "published" / "current").resolve()
    assert_same_catalogue(current, baseline.published)
    assert not list(current.rglob("*.tmp")), "a temp file in the published snapshot"
