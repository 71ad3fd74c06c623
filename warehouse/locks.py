"""Who may touch a published snapshot, and when.

- Builders and `promote` hold `published/.publish.lock` exclusively: one publisher at a time,
  so whatever a killed builder left (`.building-*`, `.current-*`, `.pruning-*`) can be removed.
- Readers that go through unioncat (CLI search and report, `warehouse` helpers) hold a shared
  `flock` on the snapshot's `reader.lock` for as long as they read it; retention takes the
  same lock exclusively and without waiting, and skips a snapshot it cannot lock.
- Published files are read-only (files 0444, folders 0555) so that consumers cannot modify
  them by accident; only retention makes a snapshot writable again, to delete it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from unioncat.settings import Settings

PUBLISH_LOCK = ".publish.lock"
READER_LOCK = "reader.lock"
LEFTOVERS = (".building-*", ".current-*", ".pruning-*")


class SnapshotMissing(FileNotFoundError):
    pass


@contextmanager
def _flock(path: Path, mode: int, flags: int, create_mode: int = 0o444) -> Iterator[bool]:
    fd = os.open(path, mode, create_mode)
    try:
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def publishing(published: Path) -> Iterator[None]:
    with _flock(published / PUBLISH_LOCK, os.O_RDWR | os.O_CREAT, fcntl.LOCK_EX, create_mode=0o644):
        yield


def remove_abandoned(published: Path) -> None:
    """What a killed builder, promote or prune left behind (call with the publish lock held)."""
    for pattern in LEFTOVERS:
        for path in published.glob(pattern):
            if path.is_symlink() or path.is_file():
                path.unlink()
            else:
                remove_tree(path)


def create_reader_lock(snapshot: Path) -> None:
    (snapshot / READER_LOCK).touch()


def freeze(snapshot: Path) -> None:
    """Files 0444, folders 0555, deepest first."""
    for root, dirs, files in os.walk(snapshot, topdown=False):
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)
        os.chmod(root, 0o555)


def remove_tree(path: Path) -> None:
    for root, _, _ in os.walk(path):
        os.chmod(root, 0o755)
    shutil.rmtree(path)


def snapshot_path(settings: Settings, snapshot_id: str | None = None) -> Path:
    """`published/<snapshot_id>`, or the folder `current` points at now."""
    if snapshot_id:
        return settings.published_dir / snapshot_id
    if not settings.current_snapshot.exists():
        raise SnapshotMissing(f"no published snapshot at {settings.current_snapshot}; run `unioncat run` first")
    return settings.current_snapshot.resolve()


def _lock_for_reading(settings: Settings, snapshot_id: str | None) -> tuple[int | None, Path]:
    for _ in range(3):  # current may move on (and its old target be pruned) between resolve and lock
        snapshot = snapshot_path(settings, snapshot_id)
        fd = None
        if (snapshot / READER_LOCK).exists():
            try:
                fd = os.open(snapshot / READER_LOCK, os.O_RDONLY)
                fcntl.flock(fd, fcntl.LOCK_SH)
            except FileNotFoundError:
                pass
        if (snapshot / "manifest.json").is_file():
            return fd, snapshot  # fd None: a snapshot from before reader locks
        if fd is not None:
            os.close(fd)
        if snapshot_id:
            break
    raise SnapshotMissing(f"snapshot {snapshot_id or 'current'} is not (or no longer) in {settings.published_dir}")


@contextmanager
def reading(settings: Settings, snapshot_id: str | None = None) -> Iterator[Path]:
    """The snapshot's folder, kept from retention while the block runs. `current` is resolved
    once, so the whole block reads one snapshot even if a newer one is promoted meanwhile."""
    fd, snapshot = _lock_for_reading(settings, snapshot_id)
    try:
        yield snapshot
    finally:
        if fd is not None:
            os.close(fd)


@contextmanager
def open_catalogue(snapshot: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the snapshot's catalogue.duckdb, closed at the end of the block.
    It reaches no other file: a query cannot read the machine's files (`read_text`), write
    (`COPY ... TO`), attach or install, nor turn that back on."""
    con = duckdb.connect(str(snapshot / "catalogue.duckdb"), read_only=True,
                         config={"enable_external_access": False, "lock_configuration": True})
    try:
        yield con
    finally:
        con.close()


@contextmanager
def catalogue(settings: Settings, snapshot_id: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a snapshot's catalogue (default: current), under the reader lock."""
    with reading(settings, snapshot_id) as snapshot, open_catalogue(snapshot) as con:
        yield con


@contextmanager
def exclusive(snapshot: Path) -> Iterator[bool]:
    """True (and the lock held) when no reader holds the snapshot; never waits."""
    if not (snapshot / READER_LOCK).exists():  # from before reader locks: nobody can hold it
        yield True
        return
    with _flock(snapshot / READER_LOCK, os.O_RDONLY, fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
        yield locked
