"""Per-library harvest state, kept next to the data it describes:
`<data_dir>/state/<library_id>.json`, written atomically."""

from __future__ import annotations

from datetime import datetime, timezone

from unioncat import atomic
from unioncat.settings import Settings


def load(settings: Settings, library_id: str) -> dict:
    return atomic.read_json(settings.state_path(library_id), default={}) or {}


def save(settings: Settings, library_id: str, state: dict) -> None:
    atomic.write_json(settings.state_path(library_id), state)


def record_failure(settings: Settings, library_id: str, run_id: str, error: Exception) -> None:
    state = load(settings, library_id)
    state["last_attempt"] = {"run_id": run_id, "status": "failed", "error": str(error), "at": now_iso()}
    save(settings, library_id, state)


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
