"""Stage entry points shared by the CLI, the Airflow DAGs and the tests.

Each stage reads what the previous one wrote to disk, so each can be run and
retried on its own. A library that fails to harvest keeps its last good data
in the catalogue; its failure is recorded in its state and shown by `status`.
"""

from __future__ import annotations

import importlib
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from dedup.stage import DedupSummary, deduplicate
from harvesters import state as harvest_state
from harvesters.errors import HarvestError
from harvesters.landing import HarvestResult
from transforms.stage import TransformSummary, transform_library
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


def harvest_library(settings: Settings, library: Library, run_id: str, *, full: bool = False) -> HarvestResult:
    """Harvest one library into the landing zone; failures are recorded, then raised."""
    try:
        return HARVESTERS[library.protocol]().harvest(settings, library, run_id, full=full)
    except HarvestError as error:
        harvest_state.record_failure(settings, library.id, run_id, error)
        raise


def transform(settings: Settings, library: Library, *, full: bool = False) -> TransformSummary:
    return transform_library(settings, library, full=full)


def dedup(settings: Settings, libraries: list[Library], *, full: bool = False) -> DedupSummary:
    return deduplicate(settings, libraries, full=full)


def publish_snapshot(settings: Settings, libraries: list[Library]) -> PublishSummary:
    return publish(settings, libraries)


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
    for n, library in enumerate(libraries, 1):
        try:
            result = harvest_library(settings, library, summary.run_id, full=full)
            summary.harvested.append(library.id)
            progress(f"[harvest {n}/{len(libraries)}] {result.summary()}")
        except HarvestError as error:
            summary.failed[library.id] = str(error)
            progress(f"[harvest {n}/{len(libraries)}] FAILED {error}")
    # Libraries transform independently: one process per core.
    with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, len(libraries) or 1)) as pool:
        futures = [pool.submit(transform, settings, library, full=full) for library in libraries]
        for n, future in enumerate(as_completed(futures), 1):
            result = future.result()
            summary.transforms.append(result)
            progress(f"[transform {n}/{len(libraries)}] {result.line()}")
    summary.dedup = dedup(settings, libraries, full=full)
    progress(summary.dedup.line())
    summary.published = publish_snapshot(settings, libraries)
    progress(summary.published.line())
    return summary
