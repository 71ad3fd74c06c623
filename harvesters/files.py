"""File drops: ISO 2709 / MARCXML files a library puts in a folder.

Incremental by checksum: a file whose bytes did not change since the last
harvest is not landed again. The committed state maps each current file name
to the run that landed its bytes, so a file that disappears from the drop is
dropped from the library's catalogue too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harvesters import state as harvest_state
from harvesters.errors import TerminalHarvestError
from unioncat import atomic
from unioncat.registry import Library
from unioncat.settings import Settings

CATALOGUE_SUFFIXES = (".mrc", ".marc", ".iso", ".dat", ".xml", ".marcxml")


@dataclass(frozen=True)
class HarvestResult:
    library_id: str
    run_id: str
    files_landed: int
    files_unchanged: int
    files_removed: int
    bytes_landed: int

    def summary(self) -> str:
        return (
            f"{self.library_id}: {self.files_landed} file(s) landed ({self.bytes_landed:,} bytes), "
            f"{self.files_unchanged} unchanged, {self.files_removed} removed"
        )


def drop_files(library: Library) -> list[Path]:
    endpoint = library.endpoint_path()
    if endpoint.is_file():
        return [endpoint]
    if not endpoint.is_dir():
        raise TerminalHarvestError(library.id, f"drop folder {endpoint} does not exist")
    return sorted(p for p in endpoint.iterdir() if p.is_file() and p.suffix.lower() in CATALOGUE_SUFFIXES)


def harvest(settings: Settings, library: Library, run_id: str) -> HarvestResult:
    state = harvest_state.load(settings, library.id)
    previous: dict = state.get("files", {})
    current: dict = {}
    landed = unchanged = bytes_landed = 0
    for path in drop_files(library):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if previous.get(path.name, {}).get("sha256") == digest:
            current[path.name] = previous[path.name]
            unchanged += 1
            continue
        atomic.write_bytes(settings.landing_dir(library.id) / run_id / path.name, data)
        current[path.name] = {"sha256": digest, "run_id": run_id, "bytes": len(data)}
        landed += 1
        bytes_landed += len(data)
    removed = len(set(previous) - set(current))
    state.update(
        files=current,
        last_success={"run_id": run_id, "at": harvest_state.now_iso()},
        last_attempt={"run_id": run_id, "status": "ok", "at": harvest_state.now_iso()},
    )
    harvest_state.save(settings, library.id, state)
    return HarvestResult(library.id, run_id, landed, unchanged, removed, bytes_landed)


def landed_files(settings: Settings, library_id: str) -> list[Path]:
    """The landed copy of every file currently in the library's catalogue."""
    files = harvest_state.load(settings, library_id).get("files", {})
    return [settings.landing_dir(library_id) / entry["run_id"] / name for name, entry in sorted(files.items())]
