"""The transform stage for one library: its landed catalogue → staging Parquet.

Replays the library's catalogue pages in order (harvesters.landing): a later
version of a record replaces the earlier one, a tombstone removes it, MFHD
holdings attach to their bibliographic record. Writes
`<data_dir>/staging/<library_id>/{records,holdings,quarantine}.parquet` and
`summary.json` (counts and the library's data-quality profile). Skips the
work when the catalogue pages are the ones the staging was built from.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from harvesters.landing import catalogue_pages
from transforms.readers import Accepted, HoldingsRecord, Rejected, Tombstone, read_file
from unioncat import atomic, schema
from unioncat.registry import Library
from unioncat.settings import Settings

SUMMARY = "summary.json"


@dataclass
class TransformSummary:
    library_id: str
    inputs_fingerprint: str
    files: int = 0
    records: int = 0
    updated: int = 0
    deleted: int = 0
    holdings: int = 0
    quarantined: int = 0
    quarantine_reasons: dict = field(default_factory=dict)
    profile: dict = field(default_factory=dict)
    skipped: bool = False

    def line(self) -> str:
        state = "unchanged" if self.skipped else "transformed"
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.quarantine_reasons.items()))
        return (
            f"{self.library_id}: {state}, {self.records:,} records, {self.holdings:,} holdings, "
            f"{self.quarantined} quarantined" + (f" ({reasons})" if reasons else "")
        )


def _fingerprint(paths: list[Path], library: Library) -> str:
    digest = hashlib.sha256(f"{library.syntax}|{library.encoding}|{schema.SCHEMA_VERSION}".encode())
    for path in paths:
        digest.update(str(path).encode())
    return digest.hexdigest()


def read_summary(settings: Settings, library_id: str) -> dict | None:
    return atomic.read_json(settings.staging_dir(library_id) / SUMMARY)


class _Replay:
    """The library's catalogue as its pages are replayed in order."""

    def __init__(self, library_id: str) -> None:
        self.library_id = library_id
        self.records: dict[str, dict] = {}
        self.holdings: dict[str, list[dict]] = {}
        self.origin: dict[str, Path] = {}
        self.by_oai_identifier: dict[str, str] = {}
        self.quarantine: list[dict] = []
        self.updated = self.deleted = 0

    def reject(self, path: Path, run_id: str, position, reason: str, detail: str, raw: bytes) -> None:
        self.quarantine.append(dict(library_id=self.library_id, source=str(path), position=position, reason=reason, detail=detail, run_id=run_id, raw=raw))

    def apply(self, path: Path, run_id: str, result) -> None:
        if isinstance(result, Rejected):
            self.reject(path, run_id, result.position, result.reason, result.detail, result.raw)
        elif isinstance(result, Tombstone):
            key = self.by_oai_identifier.pop(result.oai_identifier, None)
            if key is not None and self.records.pop(key, None) is not None:
                self.holdings.pop(key, None)
                self.deleted += 1
        elif isinstance(result, HoldingsRecord):
            key = f"{self.library_id}:{result.bib_local_id}"
            self.holdings.setdefault(key, []).extend(self._holding_rows(key, result.holdings))
        else:
            self._accept(path, run_id, result)

    def _holding_rows(self, key: str, holdings) -> list[dict]:
        return [dict(record_key=key, library_id=self.library_id, **asdict(h)) for h in holdings]

    def _accept(self, path: Path, run_id: str, result: Accepted) -> None:
        row = result.row
        key = row["record_key"]
        previous = self.records.get(key)
        if previous is not None:
            if self.origin[key] == path:  # the same id twice in one file: a real duplicate
                self.reject(path, run_id, None, "duplicate_local_id", f"{key} appears again in {path.name}; the later record replaces this one", previous["raw"])
            else:
                self.updated += 1
        self.records[key] = row
        self.origin[key] = path
        self.holdings[key] = self._holding_rows(key, result.holdings)
        if result.oai_identifier:
            self.by_oai_identifier[result.oai_identifier] = key

    def holding_rows(self) -> list[dict]:
        return [h for key, rows in self.holdings.items() for h in rows]


def quality_profile(records: list[dict], quarantine: list[dict]) -> dict:
    """Per-library data quality, written with every transform."""
    total = len(records) or 1

    def share(predicate) -> float:
        return round(sum(1 for r in records if predicate(r)) / total, 4)

    return {
        "with_isbn": share(lambda r: r["isbn_raw"]),
        "with_valid_isbn": share(lambda r: r["isbn"]),
        "with_year": share(lambda r: r["year"] is not None),
        "with_class": share(lambda r: r["clc"]),
        "formats": dict(Counter(r["source_format"] for r in records)),
        "encodings": dict(Counter(f"{r['source_encoding']}: {r['encoding_evidence']}" for r in records)),
        "material_types": dict(Counter(r["material_type"] for r in records)),
        "quality_flags": dict(Counter(flag for r in records for flag in r["quality_flags"])),
        "quarantine_by_reason": dict(Counter(q["reason"] for q in quarantine)),
    }


def transform_library(settings: Settings, library: Library, *, full: bool = False) -> TransformSummary:
    paths = catalogue_pages(settings, library.id)
    fingerprint = _fingerprint(paths, library)
    staging = settings.staging_dir(library.id)
    previous = read_summary(settings, library.id)
    if not full and previous and previous["inputs_fingerprint"] == fingerprint:
        return TransformSummary(**{**previous, "skipped": True})

    replay = _Replay(library.id)
    for path in paths:
        run_id = path.parent.name
        if not path.exists():
            replay.reject(path, run_id, None, "missing_page", f"landed page {path} is gone from the landing zone", b"")
            continue
        for result in read_file(path, library_id=library.id, run_id=run_id, syntax=library.syntax, encoding=library.encoding):
            replay.apply(path, run_id, result)

    records = list(replay.records.values())
    holding_rows = replay.holding_rows()
    atomic.write_parquet(staging / "records.parquet", pa.Table.from_pylist(records, schema=schema.RECORDS))
    atomic.write_parquet(staging / "holdings.parquet", pa.Table.from_pylist(holding_rows, schema=schema.HOLDINGS))
    atomic.write_parquet(staging / "quarantine.parquet", pa.Table.from_pylist(replay.quarantine, schema=schema.QUARANTINE))
    summary = TransformSummary(
        library.id, fingerprint, files=len(paths), records=len(records), updated=replay.updated, deleted=replay.deleted,
        holdings=len(holding_rows), quarantined=len(replay.quarantine),
        quarantine_reasons=dict(Counter(q["reason"] for q in replay.quarantine)),
        profile=quality_profile(records, replay.quarantine),
    )
    atomic.write_json(staging / SUMMARY, {k: v for k, v in asdict(summary).items() if k != "skipped"})
    return summary
