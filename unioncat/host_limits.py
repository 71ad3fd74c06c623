"""At most N harvests talk to one server at a time, wherever they run.

Airflow pools cap harvests per protocol, but a pool cannot differ between the
mapped instances of one task, and one vendor's server often hosts several
libraries (the demo's Zebra serves 52). So each harvest first takes one of its
host's slots: an exclusive `flock` on `<data_dir>/locks/<host>.<slot>.lock`.
Workers that share the data dir (the scale-out setup) share the slots; a
crashed worker's lock dies with its process. Slots per host:
`UNIONCAT_HOST_SLOTS` (default 2).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from unioncat.registry import Library
from unioncat.settings import Settings

DEFAULT_SLOTS = 2
POLL_SECONDS = 0.5


def host_of(library: Library) -> str | None:
    """`host:port` of the library's server; None for file drops."""
    if library.protocol == "file":
        return None
    endpoint = library.endpoint if "://" in library.endpoint else f"tcp://{library.endpoint}"
    parts = urlsplit(endpoint)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname


def slots_per_host() -> int:
    return max(1, int(os.environ.get("UNIONCAT_HOST_SLOTS", DEFAULT_SLOTS)))


@contextmanager
def host_slot(settings: Settings, library: Library, *, slots: int | None = None, progress=print) -> Iterator[int | None]:
    """Hold one of the library's host's slots for the duration; yields the slot number."""
    host = host_of(library)
    if host is None:
        yield None
        return
    folder = settings.data_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9.-]", "_", host)
    handles = [_open(folder / f"{name}.{n}.lock") for n in range(slots or slots_per_host())]
    try:
        slot, waited = _acquire(handles), 0.0
        while slot is None:
            if waited == 0.0:
                progress(f"{library.id}: all {len(handles)} slots of {host} busy, waiting")
            time.sleep(POLL_SECONDS)
            waited += POLL_SECONDS
            slot = _acquire(handles)
        yield slot
    finally:
        for handle in handles:
            handle.close()  # closing releases the lock


def _open(path: Path):
    return path.open("a+")


def _acquire(handles) -> int | None:
    for n, handle in enumerate(handles):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return n
        except BlockingIOError:
            continue
    return None
