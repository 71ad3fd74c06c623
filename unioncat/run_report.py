"""What a DAG run did, per library: the `summary` task at the end of each DAG.

Task states come from Airflow (a mapped instance is `<task_id>_<map index>`,
in the order of the planned library list); details (errors, records,
quarantine) from the stage's own files. The table goes to the task log; the
summary fails the run when something failed, so the run's colour in the UI
tells the truth even though every library was allowed to finish.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from harvesters import state as harvest_state
from transforms.stage import read_summary
from unioncat import atomic
from unioncat.settings import Settings

STATUS = {"success": "succeeded", "failed": "failed", "upstream_failed": "failed"}  # anything else: skipped
BUILD_STEPS = ("dedup", "build_snapshot", "quality_checks", "promote")


@dataclass
class Outcomes:
    stage: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # library id, status, detail
    problems: list[str] = field(default_factory=list)  # run-level: a step that failed and why

    def counts(self) -> dict[str, int]:
        counts = Counter(status for _, status, _ in self.rows)
        return {status: counts.get(status, 0) for status in ("succeeded", "failed", "skipped")} | {"problems": len(self.problems)}

    def table(self) -> str:
        counts = self.counts()
        lines = [f"{self.stage} summary: {counts['succeeded']} succeeded, {counts['failed']} failed, {counts['skipped']} skipped"]
        lines += [f"  {library_id:<10} {status:<9} {detail}".rstrip() for library_id, status, detail in self.rows]
        lines += [f"  PROBLEM {problem}" for problem in self.problems]
        return "\n".join(lines)


class RunFailed(Exception):
    pass


def task_states(context) -> dict[str, str]:
    ti = context["ti"]
    return ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})


def _status(state: str | None) -> str:
    return STATUS.get(state or "", "skipped")


def harvest_outcomes(settings: Settings, planned: dict[str, list[str]], states: dict[str, str]) -> Outcomes:
    outcomes = Outcomes("harvest")
    for protocol, library_ids in sorted(planned.items()):
        if _status(states.get(f"plan_{protocol}")) == "failed":
            outcomes.problems.append(f"plan_{protocol} failed: no {protocol} library was harvested (see its log)")
        for index, library_id in enumerate(library_ids or []):  # None: its planner failed
            status = _status(states.get(f"harvest_{protocol}_{index}"))
            attempt = harvest_state.load(settings, library_id).get("last_attempt", {})
            detail = f"{protocol}: {attempt.get('error', 'no error recorded (timeout or crash: see the task log)')}" if status == "failed" else protocol
            outcomes.rows.append((library_id, status, detail))
    outcomes.rows.sort()
    return outcomes


def build_outcomes(settings: Settings, library_ids: list[str], states: dict[str, str]) -> Outcomes:
    outcomes = Outcomes("build")
    for index, library_id in enumerate(library_ids):
        attempt = harvest_state.load(settings, library_id).get("last_attempt", {})
        summary = read_summary(settings, library_id) or {}
        detail = f"{summary.get('records', 0):,} records, {summary.get('quarantined', 0):,} quarantined"
        if attempt.get("status") == "failed":
            detail += f"; last harvest failed, previous data kept: {attempt.get('error')}"
        outcomes.rows.append((library_id, _status(states.get(f"transform_{index}")), detail))
    for step in BUILD_STEPS:
        if _status(states.get(step)) != "succeeded":
            outcomes.problems.append(f"{step} {states.get(step) or 'did not run'}" + _check_failures(settings, step))
            break  # the steps after the first failed one did not run because of it
    return outcomes


def _check_failures(settings: Settings, step: str) -> str:
    if step != "quality_checks":
        return ""
    report = latest_check_report(settings)
    failed = [line for line in (report or {}).get("results", []) if line.startswith("FAIL")]
    return f" for {report['snapshot_id']} (current not switched): " + "; ".join(failed) if failed else ""


def write_check_report(settings: Settings, snapshot_id: str, lines: list[str]) -> None:
    """The quality checks' verdict on a snapshot, kept beside (not in) the read-only snapshot."""
    folder = settings.data_dir / "checks"
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_json(folder / f"{snapshot_id}.json", {"snapshot_id": snapshot_id, "results": lines})


def latest_check_report(settings: Settings) -> dict | None:
    reports = sorted((settings.data_dir / "checks").glob("*.json"))
    return json.loads(reports[-1].read_text(encoding="utf-8")) if reports else None


def raise_on_failures(outcomes: Outcomes) -> None:
    print(outcomes.table())
    counts = outcomes.counts()
    if counts["failed"] or counts["problems"]:
        raise RunFailed(f"{outcomes.stage}: {counts['failed']} library(ies) failed, {counts['problems']} problem(s); see the summary above")
