"""Retention: after a promote, delete old snapshots, keeping
- `current`,
- the newest `keep` snapshots (by id, which is the build time; unpromoted builds count),
- every snapshot a reader holds (warehouse.locks: its reader lock cannot be taken).
A pruned snapshot is first renamed to `.pruning-<id>` (readers arriving later find it gone),
then deleted; files hard-linked into newer snapshots live on there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from warehouse import locks

DEFAULT_KEEP = 5


def keep_count(keep: int | None = None) -> int:
    """`keep`, else $UNIONCAT_KEEP_SNAPSHOTS, else 5; at least 1."""
    if keep is None:
        keep = int(os.environ.get("UNIONCAT_KEEP_SNAPSHOTS") or DEFAULT_KEEP)
    return max(keep, 1)


_SNAPSHOT_ID = re.compile(r"(?:\.building-|\.pruning-)?(\d{8}T\d{6}Z(?:-\d+)?)")


def age(snapshot_id: str) -> tuple[str, int]:
    """Sort key of a snapshot id: its build time, then its number within that second."""
    stamp, _, n = snapshot_id.partition("-")
    return stamp, int(n or 1)


def snapshot_ids(published: Path) -> list[str]:
    """Complete snapshots, oldest first."""
    ids = [p.name for p in published.iterdir()
           if not p.name.startswith(".") and not p.is_symlink() and (p / "manifest.json").is_file()]
    return sorted(ids, key=age)


def newest_id(published: Path) -> str | None:
    """The newest id in `published`, complete, being built or being pruned."""
    if not published.exists():
        return None
    ids = [m.group(1) for p in published.iterdir() if (m := _SNAPSHOT_ID.fullmatch(p.name))]
    return max(ids, key=age, default=None)


def prune(published: Path, current_id: str, keep: int) -> list[str]:
    """Delete what retention allows (see the module docstring); returns the ids deleted."""
    ids = snapshot_ids(published)
    pruned = []
    for snapshot_id in ids[:-keep]:
        snapshot = published / snapshot_id
        if snapshot_id == current_id:
            continue
        with locks.exclusive(snapshot) as unread:
            if not unread:
                continue
            doomed = published / f".pruning-{snapshot_id}"
            os.replace(snapshot, doomed)
        locks.remove_tree(doomed)
        pruned.append(snapshot_id)
    return pruned
