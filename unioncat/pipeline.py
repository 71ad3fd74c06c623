"""Stage entry points shared by the CLI, the Airflow DAGs and the tests.

Each stage reads what the previous one wrote to disk, so each can be run and
retried on its own. A library that fails to harvest keeps its last good data
in the catalogue; its failure is recorded in its state and shown by `status`.
"""

from __future__ import annotations

import importlib
import os
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from dedup.stage import DedupSummary, deduplicate
from harvesters import state as harvest_state
from harvesters.errors import HarvestError
from harvesters.landing import HarvestResult
from transforms.stage import TransformSummary, transform_library
from unioncat.host_limits import host_slot
from unioncat.processes import process_pool
from unioncat.registry import Library, Registry, load_registry
from unioncat.settings import Settings
from warehouse.snapshot import PublishSummary, publish

Progress = Callable[[str], None]


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def registry(settings: Settings) -> Registry:
    return load_registry(settings.sources_path)


# Imported when used: each protocol's client (e.g. libyaz for Z39.50) loads only where needed.
HARVESTERS = {
    "file": lambda: importlib.import_module("harvesters.files"),
    "oai": lambda: importlib.import_module("harvesters.oai"),
    "sru": lambda: importlib.import_module("harvesters.sru"),
    "z3950": lambda: importlib.import_module("harvesters.z3950"),
}


def harvest_library(settings: Settings, library: Library, run_id: str, *, full: bool = False,
                    since: datetime | None = None, progress: Progress = print) -> HarvestResult:
    """Harvest one library into the landing zone; failures are recorded, then raised.

    `since` re-harvests what changed from that moment on (the watermark is moved back to it);
    file drops are compared by checksum and have no watermark. At most `UNIONCAT_HOST_SLOTS`
    harvests talk to one server at once (`unioncat.host_limits`)."""
    if since is not None:
        rewind_watermark(settings, library, since)
    run_id = landing_run_id(settings, library, run_id)
    try:
        with host_slot(settings, library, progress=progress):
            return HARVESTERS[library.protocol]().harvest(settings, library, run_id, full=full)
    except HarvestError as error:
        harvest_state.record_failure(settings, library.id, run_id, error)
        raise


def landing_run_id(settings: Settings, library: Library, run_id: str) -> str:
    """`run_id`, or `run_id.N` if its landing folder already exists and it is not the run being resumed.

    Airflow keeps a run id when a task is cleared or a logical date is re-run; landing into the
    folder of a committed run would overwrite pages its catalogue still replays."""
    if (harvest_state.load(settings, library.id).get("in_progress") or {}).get("run_id") == run_id:
        return run_id
    candidate, attempt = run_id, 1
    while (settings.landing_dir(library.id) / candidate).exists():
        attempt += 1
        candidate = f"{run_id}.{attempt}"
    return candidate


# How each protocol writes its watermark: OAI datestamps; Z39.50/SRU compare 005 (yyyymmddhhmmss).
WATERMARK_FORMATS = {"oai": "%Y-%m-%dT%H:%M:%SZ", "sru": "%Y%m%d%H%M%S", "z3950": "%Y%m%d%H%M%S"}


def rewind_watermark(settings: Settings, library: Library, since: datetime) -> None:
    """Move the library's watermark back to `since` (never forward)."""
    pattern = WATERMARK_FORMATS.get(library.protocol)
    state = harvest_state.load(settings, library.id)
    if pattern is None or state.get("watermark") is None:
        return  # file drops have no watermark; a library never harvested gets everything anyway
    wanted = since.astimezone(timezone.utc).strftime(pattern)
    if wanted < state["watermark"]:
        state["watermark"] = wanted
        harvest_state.save(settings, library.id, state)


def transform(settings: Settings, library: Library, *, full: bool = False) -> TransformSummary:
    return transform_library(settings, library, full=full)


def dedup(settings: Settings, libraries: list[Library], *, full: bool = False) -> DedupSummary:
    return deduplicate(settings, libraries, full=full)


def publish_snapshot(settings: Settings, libraries: list[Library], *, gate: bool = True) -> PublishSummary:
    """Build, check (the quality gate of warehouse.checks) and promote a snapshot."""
    return publish(settings, libraries, gate=gate)


@dataclass
class RunSummary:
    run_id: str
    harvested: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    transforms: list[TransformSummary] = field(default_factory=list)
    dedup: DedupSummary | None = None
    published: PublishSummary | None = None


def run_all(settings: Settings, *, full: bool = False, run_id: str | None = None, progress: Progress = print) -> RunSummary:
    """harvest → transform → dedup → publish for every enabled library."""
    libraries = list(registry(settings).enabled())
    summary = RunSummary(run_id or new_run_id())
    # Libraries harvest and transform independently: one process per core (at most
    # UNIONCAT_HOST_SLOTS of them talk to one server at once, unioncat.host_limits).
    with process_pool(min(os.cpu_count() or 1, len(libraries))) as pool:
        harvests = {pool.submit(harvest_library, settings, library, summary.run_id, full=full): library for library in libraries}
        for n, future in enumerate(as_completed(harvests), 1):
            try:
                progress(f"[harvest {n}/{len(libraries)}] {future.result().summary()}")
            except HarvestError as error:
                summary.failed[harvests[future].id] = str(error)
                progress(f"[harvest {n}/{len(libraries)}] FAILED {error}")
        summary.harvested = [library.id for library in libraries if library.id not in summary.failed]
        futures = [pool.submit(transform, settings, library, full=full) for library in libraries]
        for n, future in enumerate(as_completed(futures), 1):
            result = future.result()
            summary.transforms.append(result)
            progress(f"[transform {n}/{len(libraries)}] {result.line()}")
    summary.dedup = dedup(settings, libraries, full=full)
    progress(summary.dedup.line())
    summary.published = publish_snapshot(settings, libraries)
    for line in summary.published.checks:
        progress(line)
    progress(summary.published.line())
    return summary
