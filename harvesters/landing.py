"""The landing zone and the harvest checkpoint every harvester shares.

Pages land as `<data_dir>/landing/<library_id>/<run_id>/<name>`, bytes exactly
as received, written to a temp file and renamed. The library's state file
(`<data_dir>/state/<library_id>.json`) is the only record of what counts:

- `catalogue`: the landed pages that make up the library's current catalogue,
  in the order they must be replayed (later records override earlier ones;
  deletions in a page remove records). A full harvest replaces the list, an
  incremental one appends to it.
- `in_progress`: a run that has not finished: its pages so far and the
  protocol's position (resumption token, next record position, window). A
  crash resumes from here; a page landed but not yet checkpointed is simply
  fetched again, so nothing counts twice and nothing is lost.
- `watermark`: the protocol's committed high-water mark (e.g. OAI `until`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harvesters import state as harvest_state
from unioncat import atomic
from unioncat.registry import Library
from unioncat.settings import Settings


@dataclass(frozen=True)
class HarvestResult:
    library_id: str
    run_id: str
    pages: int
    records: int = 0
    deleted: int = 0
    unchanged: int = 0
    bytes: int = 0
    resumed: bool = False

    def summary(self) -> str:
        return (
            f"{self.library_id}: {self.pages} page(s) landed ({self.bytes:,} bytes, {self.records:,} records, "
            f"{self.deleted:,} deleted), {self.unchanged} unchanged" + (", resumed an interrupted run" if self.resumed else "")
        )


@dataclass
class HarvestRun:
    """One harvest of one library: lands pages, checkpoints, commits."""

    settings: Settings
    library: Library
    run_id: str
    full: bool = False
    state: dict = field(init=False)
    pages: list[str] = field(init=False)
    progress: dict = field(init=False)
    bytes_landed: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.state = harvest_state.load(self.settings, self.library.id)
        interrupted = self.state.get("in_progress")
        if interrupted and interrupted.get("full", False) == self.full:
            self.pages = list(interrupted["pages"])
            self.progress = dict(interrupted.get("position", {}))
        else:
            self.pages, self.progress = [], {}

    @property
    def resumed(self) -> bool:
        return bool(self.progress or self.pages)

    @property
    def watermark(self):
        return self.state.get("watermark")

    def catalogue(self) -> list[str]:
        return list(self.state.get("catalogue", []))

    def land(self, name: str, data: bytes) -> str:
        """Write one page; returns its path relative to the data dir. Not yet counted."""
        relative = Path("landing") / self.library.id / self.run_id / name
        atomic.write_bytes(self.settings.data_dir / relative, data)
        self.bytes_landed += len(data)
        return str(relative)

    def checkpoint(self, page: str | None, **position) -> None:
        """Count a landed page and remember where to go on from."""
        if page is not None:
            self.pages.append(page)
        self.progress = position
        self.state["in_progress"] = {"run_id": self.run_id, "full": self.full, "pages": self.pages, "position": position}
        harvest_state.save(self.settings, self.library.id, self.state)

    def finish(self, catalogue: list[str], *, watermark=None, **extra) -> None:
        """Commit the run: the new catalogue list, the watermark, success."""
        self.state.pop("in_progress", None)
        self.state["catalogue"] = catalogue
        if watermark is not None:
            self.state["watermark"] = watermark
        self.state.update(extra)
        stamp = harvest_state.now_iso()
        self.state["last_success"] = {"run_id": self.run_id, "at": stamp, "full": self.full}
        self.state["last_attempt"] = {"run_id": self.run_id, "status": "ok", "at": stamp}
        harvest_state.save(self.settings, self.library.id, self.state)


def catalogue_pages(settings: Settings, library_id: str) -> list[Path]:
    """The landed pages of the library's current catalogue, in replay order."""
    pages = harvest_state.load(settings, library_id).get("catalogue", [])
    return [settings.data_dir / page for page in pages]
