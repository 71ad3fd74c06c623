"""The transform stage for one library: landed files → staging Parquet.

Writes `<data_dir>/staging/<library_id>/{records,holdings,quarantine}.parquet`
and `summary.json`. Skips the work when the landed inputs are the ones the
current staging was built from, unless `full` is asked for.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from harvesters.landing import catalogue_pages
from transforms.readers import Accepted, Rejected, read_iso2709, read_marcxml, sniff
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
    holdings: int = 0
    quarantined: int = 0
    quarantine_reasons: dict = field(default_factory=dict)
    encodings: dict = field(default_factory=dict)
    formats: dict = field(default_factory=dict)
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


def _read_file(path: Path, library: Library, run_id: str):
    kind = sniff(path)
    if kind == "iso2709":
        return read_iso2709(path.read_bytes(), library_id=library.id, run_id=run_id, syntax=library.syntax, encoding=library.encoding)
    if kind == "marcxml":
        return read_marcxml(path, library_id=library.id, run_id=run_id, syntax=library.syntax)
    with path.open("rb") as handle:
        head = handle.read(65536)
    return [Rejected(0, "not_marc", f"{path.name} is neither ISO 2709 nor XML (starts with {head[:16]!r})", head)]


def read_summary(settings: Settings, library_id: str) -> dict | None:
    return atomic.read_json(settings.staging_dir(library_id) / SUMMARY)


def transform_library(settings: Settings, library: Library, *, full: bool = False) -> TransformSummary:
    paths = catalogue_pages(settings, library.id)
    fingerprint = _fingerprint(paths, library)
    staging = settings.staging_dir(library.id)
    previous = read_summary(settings, library.id)
    if not full and previous and previous["inputs_fingerprint"] == fingerprint:
        return TransformSummary(**{**previous, "skipped": True})

    records: dict[str, dict] = {}
    holdings: dict[str, list[dict]] = {}
    quarantine: list[dict] = []
    summary = TransformSummary(library.id, fingerprint, files=len(paths))
    encodings: Counter = Counter()
    formats: Counter = Counter()
    for path in paths:
        run_id = path.parent.name
        for result in _read_file(path, library, run_id):
            if isinstance(result, Rejected):
                quarantine.append(
                    dict(library_id=library.id, source=str(path), position=result.position, reason=result.reason, detail=result.detail, run_id=run_id, raw=result.raw)
                )
                continue
            row = result.row
            replaced = records.get(row["record_key"])
            if replaced is not None:
                quarantine.append(
                    dict(library_id=library.id, source=str(path), position=None, reason="duplicate_local_id",
                         detail=f"{row['record_key']} appears again; the later record replaces this one", run_id=run_id, raw=replaced["raw"])
                )
            records[row["record_key"]] = row
            holdings[row["record_key"]] = [
                dict(record_key=row["record_key"], library_id=library.id, **asdict(h)) for h in result.holdings
            ]
            encodings[row["source_encoding"]] += 1
            formats[row["source_format"]] += 1

    holding_rows = [h for key in records for h in holdings[key]]
    atomic.write_parquet(staging / "records.parquet", pa.Table.from_pylist(list(records.values()), schema=schema.RECORDS))
    atomic.write_parquet(staging / "holdings.parquet", pa.Table.from_pylist(holding_rows, schema=schema.HOLDINGS))
    atomic.write_parquet(staging / "quarantine.parquet", pa.Table.from_pylist(quarantine, schema=schema.QUARANTINE))
    summary.records = len(records)
    summary.holdings = len(holding_rows)
    summary.quarantined = len(quarantine)
    summary.quarantine_reasons = dict(Counter(q["reason"] for q in quarantine))
    summary.encodings = dict(encodings)
    summary.formats = dict(formats)
    atomic.write_json(staging / SUMMARY, {k: v for k, v in asdict(summary).items() if k != "skipped"})
    return summary
