"""File drops: ISO 2709 / MARCXML files a library puts in a folder.

Incremental by checksum: a file whose bytes did not change since the last
harvest is not landed again. A file whose size, modification time (ns) and
inode are those it had when last harvested is taken as unchanged without being
read (rsync's quick check: at 11.27M records the drops hold 5.6 GB, which took
~10 s to read and hash on every run); `--full` reads and lands every file. The
catalogue is the latest landed copy of each file currently in the drop, so a
file that disappears from the drop takes its records out of the catalogue.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harvesters.errors import RetryableHarvestError, TerminalHarvestError
from harvesters.landing import HarvestResult, HarvestRun
from unioncat.registry import Library
from unioncat.settings import Settings

CATALOGUE_SUFFIXES = (".mrc", ".marc", ".iso", ".dat", ".xml", ".marcxml")
MAX_FILE_BYTES = 8 << 30  # a drop file is read whole; beyond this it is refused, not read


def drop_files(library: Library) -> list[Path]:
    endpoint = library.endpoint_path()
    if endpoint.is_file():
        return [endpoint]
    if not endpoint.is_dir():
        raise TerminalHarvestError(library.id, f"drop folder {endpoint} does not exist")
    return sorted(p for p in endpoint.iterdir() if p.is_file() and p.suffix.lower() in CATALOGUE_SUFFIXES)


def drop_file_version(library: Library, path: Path) -> list[int]:
    """[size, mtime_ns, inode] of a drop file; a file that vanished is a retryable failure."""
    try:
        stat = path.stat()
    except OSError as error:
        raise RetryableHarvestError(library.id, f"drop file {path.name} cannot be read: {error.strerror or error}") from None
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def read_drop_file(library: Library, path: Path, max_bytes: int) -> bytes:
    """The file's bytes; a file that vanished or cannot be read (being replaced, permissions) is a
    retryable failure of the library, one beyond `max_bytes` a terminal one."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TerminalHarvestError(library.id, f"drop file {path.name}: {size:,} bytes exceeds the {max_bytes:,}-byte cap")
        return path.read_bytes()
    except OSError as error:
        raise RetryableHarvestError(library.id, f"drop file {path.name} cannot be read: {error.strerror or error}") from None


def harvest(settings: Settings, library: Library, run_id: str, *, full: bool = False,
            max_bytes: int = MAX_FILE_BYTES) -> HarvestResult:
    run = HarvestRun(settings, library, run_id, full)
    previous: dict = {} if full else run.state.get("files", {})
    current: dict = {}
    unchanged = 0
    for path in drop_files(library):
        version, known = drop_file_version(library, path), previous.get(path.name, {})
        if known.get("version") == version:
            current[path.name] = known
            unchanged += 1
            continue
        data = read_drop_file(library, path, max_bytes)
        digest = hashlib.sha256(data).hexdigest()
        if known.get("sha256") == digest:
            current[path.name] = {**known, "version": version}
            unchanged += 1
            continue
        current[path.name] = {"sha256": digest, "version": version, "page": run.land(path.name, data)}
    removed = len(set(previous) - set(current))
    run.finish([entry["page"] for _, entry in sorted(current.items())], files=current)
    return HarvestResult(library.id, run_id, pages=len(current) - unchanged, deleted=removed, unchanged=unchanged, bytes=run.bytes_landed)
