"""The Airflow side: DAG factories for `dags/`.

DAG files stay thin and cheap to parse: this module imports only the Airflow
SDK at module level; the stage code is imported inside the tasks, which call
the same stage functions as the CLI (`unioncat.pipeline`).

- `harvest_libraries`: one mapped task per protocol (`harvest_oai`, `harvest_sru`,
  `harvest_z3950`, `harvest_file`), each instance one library labelled by its id,
  each protocol in its own pool (`unioncat_<protocol>`) and every harvest holding
  one of its server's slots (`unioncat.host_limits`); every success emits an event
  on the `unioncat://landing` Asset; `summary` says who succeeded, failed, was skipped.
- `build_catalogue`: scheduled on that Asset: transform (mapped) → dedup →
  build_snapshot → quality_checks → promote (switches `current`) → summary.
  One run at a time (`max_active_runs=1`): events that arrive while a build runs
  are kept by the scheduler and start the next build, over all of them.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import Asset, Param, dag, get_current_context, task

from unioncat.settings import Settings

HARVEST_ASSET = Asset("unioncat://landing")
CATALOGUE_ASSET = Asset("unioncat://published/current")
PROTOCOLS = ("oai", "sru", "z3950", "file")
# Default slots of each protocol's pool (`unioncat airflow init` / `standalone` create missing pools; an
# existing pool keeps the size an operator gave it): concurrent harvests per protocol.
POOL_SLOTS = {"oai": 4, "sru": 4, "z3950": 4, "file": 2}
HARVEST_TIMEOUT = timedelta(hours=6)  # a first full harvest of a 1M-record library over SRU
STAGE_TIMEOUT = timedelta(hours=2)


def pool_name(protocol: str) -> str:
    return f"unioncat_{protocol}"


def notify_failure(context) -> None:
    """Failure callback: one clear line in the task log, and a POST to
    `UNIONCAT_ALERT_WEBHOOK` (e-mail/IM bridge) when that is set."""
    from unioncat.alerts import alert_task_failure

    alert_task_failure(context)


_DEFAULT_ARGS = {
    "owner": "unioncat",
    "retries": 2,
    # A library server's hiccup passes in minutes; tests shorten the wait with UNIONCAT_RETRY_DELAY_SECONDS.
    "retry_delay": timedelta(seconds=float(os.environ.get("UNIONCAT_RETRY_DELAY_SECONDS", 60))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": STAGE_TIMEOUT,
    "on_failure_callback": notify_failure,
}


def _settings() -> Settings:
    return Settings.resolve()


def _label_map_index(library_id: str) -> None:
    get_current_context()["library_id"] = library_id


def _run_id() -> str:
    """The Airflow run id (`manual__2026-11-25T09:00:00+00:00`) as a folder name."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in get_current_context()["run_id"])


def _wanted(settings: Settings, params: dict) -> list:
    """The enabled libraries, or the one the `library` param names (an error if it is unknown)."""
    from unioncat.pipeline import registry

    libraries = registry(settings).enabled()
    wanted = (params.get("library") or "").strip()
    if wanted and wanted not in {lib.id for lib in libraries}:
        raise ValueError(f"no enabled library has the id {wanted!r} in {settings.sources_path}")
    return [lib for lib in libraries if not wanted or lib.id == wanted]


# Deterministic steps (planning, checks, summaries) are not retried: a retry would fail the same way.
@task(retries=0)
def plan_harvest(protocol: str, params: dict | None = None) -> list[str]:
    """The libraries of `protocol` to harvest (one: the `library` param, or all enabled)."""
    _since(params or {})  # a bad date fails here, once, not in every library's harvest and its retries
    ids = [lib.id for lib in _wanted(_settings(), params or {}) if lib.protocol == protocol]
    print(f"{len(ids)} {protocol} libraries to harvest: {', '.join(ids)}")
    return ids


@task(retries=0)
def plan_libraries(params: dict | None = None) -> list[str]:
    """Ids of the libraries to work on: one (the `library` param) or all enabled."""
    return [lib.id for lib in _wanted(_settings(), params or {})]


def _since(params: dict) -> datetime | None:
    """The `since` param as an aware datetime (a date alone is midnight UTC); None when empty."""
    text = (params.get("since") or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"the since param must be a date or time in ISO 8601 (2026-11-01, 2026-11-01T08:00:00+08:00), not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@task(outlets=[HARVEST_ASSET], map_index_template="{{ library_id }}", execution_timeout=HARVEST_TIMEOUT)
def harvest(library_id: str, params: dict | None = None) -> dict:
    from unioncat.pipeline import harvest_library, registry

    _label_map_index(library_id)
    params = params or {}
    settings = _settings()
    result = harvest_library(settings, registry(settings).get(library_id), _run_id(),
                             full=bool(params.get("full")), since=_since(params))
    print(result.summary())
    outcome = {"library_id": library_id, "pages": result.pages, "records": result.records}
    get_current_context()["outlet_events"][HARVEST_ASSET].extra = outcome
    return outcome


@task(trigger_rule="all_done", retries=0)
def harvest_summary(planned: dict[str, list[str]]) -> dict:
    """Which libraries succeeded, failed or were skipped in this run; fails the run if any failed."""
    from unioncat.run_report import harvest_outcomes, raise_on_failures, task_states

    outcomes = harvest_outcomes(_settings(), planned, task_states(get_current_context()))
    raise_on_failures(outcomes)
    return outcomes.counts()


def harvest_libraries_dag():
    @dag(
        dag_id="harvest_libraries",
        schedule=None,
        catchup=False,
        # Two runs would harvest the same libraries into the same checkpoints at once.
        max_active_runs=1,
        default_args=_DEFAULT_ARGS,
        tags=["unioncat"],
        params={
            "library": Param("", type="string", description="harvest only this library id (empty: every enabled library)"),
            "full": Param(False, type="boolean",
                          description="full re-harvest: enumerate the whole catalogue and replace the library's data (finds "
                                      "deletions on Z39.50/SRU; lands every drop file again, changed or not)"),
            # No `until`: no harvester takes an upper bound. Each commits its watermark at the
            # server's "now" (OAI responseDate, the newest 005 seen), so a window ending earlier
            # would either move the watermark past records nobody fetched or need a second,
            # uncommitted watermark. A date window is therefore [since, now].
            "since": Param("", type="string",
                           description="re-harvest everything changed on or after this date (ISO 8601, e.g. 2026-11-01; a date "
                                       "alone is 00:00 UTC) up to now: the library's watermark is moved back to it, never "
                                       "forward. OAI-PMH harvests from/until windows from it, SRU and Z39.50 search 005 >= it "
                                       "where the server supports date search (else they enumerate); file drops ignore it "
                                       "(compared by checksum). Empty: since the last harvest."),
        },
        doc_md=__doc__,
    )
    def harvest_libraries():
        planned = {protocol: plan_harvest.override(task_id=f"plan_{protocol}")(protocol) for protocol in PROTOCOLS}
        harvests = [
            harvest.override(task_id=f"harvest_{protocol}", pool=pool_name(protocol)).expand(library_id=planned[protocol])
            for protocol in PROTOCOLS
        ]
        harvests >> harvest_summary(planned)

    return harvest_libraries()


@task(map_index_template="{{ library_id }}")
def transform(library_id: str, params: dict | None = None) -> dict:
    from unioncat.pipeline import registry, transform

    _label_map_index(library_id)
    settings = _settings()
    summary = transform(settings, registry(settings).get(library_id), full=bool((params or {}).get("full")))
    print(summary.line())
    return {"library_id": library_id, "records": summary.records, "quarantined": summary.quarantined}


# A library whose transform failed keeps its previous staging files: build the catalogue with them.
@task(trigger_rule="all_done")
def dedup(params: dict | None = None) -> dict:
    from unioncat.pipeline import dedup, registry

    settings = _settings()
    summary = dedup(settings, list(registry(settings).enabled()), full=bool((params or {}).get("full")))
    print(summary.line())
    return {"records": summary.records, "manifestations": summary.manifestations}


@task
def build_snapshot() -> dict:
    from unioncat.pipeline import registry
    from warehouse.snapshot import build_snapshot

    settings = _settings()
    summary = build_snapshot(settings, list(registry(settings).enabled()))
    print(summary.line())
    return {"snapshot_id": summary.snapshot_id, "path": str(summary.path), **summary.counts}


@task(retries=0)
def quality_checks(built: dict, params: dict | None = None) -> list[str]:
    """Stops the swap (`promote` does not run) when a check fails, saying why."""
    from pathlib import Path

    from unioncat.run_report import write_check_report
    from warehouse.checks import Thresholds, check_snapshot, enforce

    params = params or {}
    settings = _settings()
    parent = settings.current_snapshot.resolve() if settings.current_snapshot.exists() else None
    thresholds = Thresholds.from_env(max_shrink=params.get("max_shrink"), max_quarantine_rate=params.get("max_quarantine_rate"))
    results = check_snapshot(Path(built["path"]), parent, thresholds)
    lines = [result.line() for result in results]
    print("\n".join(lines))
    write_check_report(settings, built["snapshot_id"], lines)
    enforce(built["snapshot_id"], results)
    return lines


@task(outlets=[CATALOGUE_ASSET])
def promote(built: dict) -> str:
    from warehouse.snapshot import promote

    promote(_settings(), built["snapshot_id"])
    print(f"published/current → {built['snapshot_id']}")
    return built["snapshot_id"]


@task(trigger_rule="all_done", retries=0)
def build_summary(libraries: list[str] | None = None) -> dict:
    """Per library: last harvest, records, quarantine; and whether the snapshot went live."""
    from unioncat.run_report import build_outcomes, raise_on_failures, task_states

    outcomes = build_outcomes(_settings(), libraries or [], task_states(get_current_context()))
    raise_on_failures(outcomes)
    return outcomes.counts()


def build_catalogue_dag():
    @dag(
        dag_id="build_catalogue",
        schedule=[HARVEST_ASSET],
        catchup=False,
        # Every harvested library emits an event, so a build can start mid-harvest. One build at a
        # time: a run triggered by hand while another runs waits in `queued`, and Asset events that
        # arrive meanwhile stay queued and start one more build (over all of them) when it ends.
        max_active_runs=1,
        default_args=_DEFAULT_ARGS,
        tags=["unioncat"],
        params={
            "library": Param("", type="string", description="transform only this library id (empty: every enabled library)"),
            "full": Param(False, type="boolean", description="re-transform every library and rebuild dedup from scratch"),
            "max_shrink": Param(None, type=["null", "number"], description="quality gate: largest allowed drop in rows against the current snapshot (default 0.2)"),
            "max_quarantine_rate": Param(None, type=["null", "number"], description="quality gate: largest share of a library's records in quarantine (default 0.05)"),
        },
        doc_md=__doc__,
    )
    def build_catalogue():
        libraries = plan_libraries()
        transformed = transform.expand(library_id=libraries)
        built = build_snapshot()
        checked = quality_checks(built)
        promoted = promote(built)
        transformed >> dedup() >> built
        checked >> promoted >> build_summary(libraries)

    return build_catalogue()
