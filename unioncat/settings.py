"""Where the registry and the data live: read once, passed down explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCES = REPO_ROOT / "sources.toml"
DEFAULT_DATA_DIR = REPO_ROOT / "var"


@dataclass(frozen=True)
class Settings:
    sources_path: Path
    data_dir: Path

    @classmethod
    def resolve(cls, sources: str | Path | None = None, data_dir: str | Path | None = None) -> "Settings":
        """Explicit argument > UNIONCAT_SOURCES / UNIONCAT_DATA_DIR > the repo defaults."""
        sources_path = Path(sources or os.environ.get("UNIONCAT_SOURCES") or DEFAULT_SOURCES)
        data = Path(data_dir or os.environ.get("UNIONCAT_DATA_DIR") or DEFAULT_DATA_DIR)
        return cls(sources_path.resolve(), data.resolve())

    def landing_dir(self, library_id: str) -> Path:
        return self.data_dir / "landing" / library_id

    def state_path(self, library_id: str) -> Path:
        return self.data_dir / "state" / f"{library_id}.json"

    def staging_dir(self, library_id: str) -> Path:
        return self.data_dir / "staging" / library_id

    @property
    def dedup_dir(self) -> Path:
        return self.data_dir / "dedup"

    @property
    def published_dir(self) -> Path:
        return self.data_dir / "published"

    @property
    def current_snapshot(self) -> Path:
        return self.published_dir / "current"


def duckdb_config(spill_dir: Path, **extra) -> dict:
    """How a stage's DuckDB uses the machine: at most $UNIONCAT_DUCKDB_MEMORY (default 6GB) of
    memory, spilling beyond that to `spill_dir`, on $UNIONCAT_DUCKDB_THREADS threads (default:
    every core). Without a limit DuckDB takes 80% of the RAM it sees, whatever else runs."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    config = {"memory_limit": os.environ.get("UNIONCAT_DUCKDB_MEMORY", "6GB"), "temp_directory": str(spill_dir), **extra}
    if os.environ.get("UNIONCAT_DUCKDB_THREADS"):
        config["threads"] = int(os.environ["UNIONCAT_DUCKDB_THREADS"])
    return config
