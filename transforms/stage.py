"""The transform stage for one library: its landed catalogue → staging Parquet.

Replays the library's catalogue pages in order (harvesters.landing): a later
version of a record replaces the earlier one, a tombstone removes it, MFHD
holdings attach to their bibliographic record. Writes
`<data_dir>/staging/<library_id>/{records,holdings,quarantine}.parquet` and
`summary.json` (counts and the library's data-quality profile). Skips the
work when the catalogue pages are the ones the staging was built from.

A library that sends its whole catalogue again (a new file drop) changes a few
records in it: a record whose bytes the staging already holds, read by the same
code, keeps its row from there (with this run's run id) instead of being read
again, so the work is proportional to what changed. The result is the same as
reading every record (`full=True` does). `records_read.parquet` then lists the
records that were read (new or changed), and the summary which versions of
`records.parquet` and `holdings.parquet` the others' rows came from: publish
replaces only those records' rows in a catalogue built from those versions
(warehouse.catalogue). `record_digests.parquet` keeps the digest of each staged
record's bytes, so that the next transform does not hash them again.
"""

from __future__ import annotations

import gc
import hashlib
from array import array
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harvesters.landing import catalogue_pages
from transforms import normalise
from transforms.readers import DIGEST_BYTES, Accepted, HoldingsRecord, Known, Rejected, Tombstone, read_file, record_digest
from unioncat import atomic, schema
from unioncat.registry import Library
from unioncat.settings import Settings

SUMMARY = "summary.json"
RECORDS_READ = "records_read.parquet"  # the keys of the records read, not kept from the staging
DIGESTS = "record_digests.parquet"  # record_digest of each staged record's raw bytes, row by row
KEPT_TABLES = ("records", "holdings")  # the staged tables whose rows a transform keeps (their versions: the summary)
_TRANSFORMS = Path(__file__).parent
_HOLDING_COLUMNS = ("call_number", "location", "copies", "available")  # of a holding row, after record_key


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
    reused: int = 0  # records whose row was kept from the previous staging
    rows_fingerprint: str = ""  # what the rows were read with (_rows_fingerprint)
    holdings_records: int = 0  # MFHD records whose holdings went to other records' rows
    kept_from: dict | None = None  # records, holdings → version (atomic.file_version) of the staged file rows were kept from
    written: dict = field(default_factory=dict)  # records, holdings → version of the staged file this transform wrote
    skipped: bool = False

    def line(self) -> str:
        state = "unchanged" if self.skipped else "transformed"
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.quarantine_reasons.items()))
        if self.reused and not self.skipped:
            state += f" ({self.reused:,} unchanged records kept)"
        return (
            f"{self.library_id}: {state}, {self.records:,} records, {self.holdings:,} holdings, "
            f"{self.quarantined} quarantined" + (f" ({reasons})" if reasons else "")
        )


def _reading(library: Library) -> str:
    """What a library's records are read with besides the code: its settings, schema and keys."""
    return f"{library.syntax}|{library.encoding}|{schema.SCHEMA_VERSION}|{normalise.KEYS_VERSION}"


def _fingerprint(paths: list[Path], library: Library) -> str:
    digest = hashlib.sha256(_reading(library).encode())
    for path in paths:
        digest.update(str(path).encode())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _transforms_code() -> str:
    """A digest of the code that reads records into rows (this package)."""
    digest = hashlib.sha256()
    for source in sorted((*_TRANSFORMS.glob("*.py"), *_TRANSFORMS.glob("*.c"))):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _rows_fingerprint(library: Library) -> str:
    """Changes with anything besides a record's bytes that its row depends on: the library's
    syntax and encoding, the schema, the keys and the code of `transforms`."""
    return hashlib.sha256(f"{library.id}|{_reading(library)}|{_transforms_code()}".encode()).hexdigest()


@dataclass
class _Previous:
    """The staging a library's last transform wrote, when its rows can be reused."""

    records: pa.Table
    digests: pa.FixedSizeBinaryArray  # record_digest of each row's raw bytes
    known: dict[bytes, int]  # record_digest(raw) → row
    holdings: pa.Table
    versions: dict[str, list[int]]  # records, holdings → version of the staged file read

    @classmethod
    def load(cls, staging: Path, summary: dict | None, rows_fingerprint: str) -> _Previous | None:
        if not summary or summary.get("rows_fingerprint") != rows_fingerprint or summary.get("holdings_records", 1):
            return None  # other code or settings; or holdings of MFHD records are mixed with the rows' own
        try:
            versions = _versions(staging)
            records = pq.read_table(staging / "records.parquet", schema=schema.RECORDS)
            holdings = pq.read_table(staging / "holdings.parquet", schema=schema.HOLDINGS)
            digests = _staged_digests(staging, summary, versions["records"], records.num_rows)
        except (OSError, pa.ArrowException):
            return None
        if digests is None:
            digests = raw_digests(records.column("raw"))
        return cls(records, digests, dict(zip(digests.to_pylist(), range(len(digests)))), holdings, versions)

    def holdings_of(self, keys: list[str]) -> pa.Table:
        return self.holdings.filter(pc.is_in(self.holdings.column("record_key"), value_set=pa.array(keys, pa.string())))


_DIGEST_BATCH = 65_536


def raw_digests(raws: pa.ChunkedArray | pa.Array) -> pa.FixedSizeBinaryArray:
    """record_digest of each raw record, in order."""
    digests = []
    for start in range(0, len(raws), _DIGEST_BATCH):  # not every record's bytes as Python objects at once
        digests.extend(map(record_digest, raws.slice(start, _DIGEST_BATCH).to_pylist()))
    return pa.array(digests, pa.binary(DIGEST_BYTES))


def _staged_digests(staging: Path, summary: dict, records_version: list[int], rows: int) -> pa.FixedSizeBinaryArray | None:
    """The digests the last transform wrote beside the staged records, when the records are the
    ones it wrote (hashing a 287,940-record library's raw bytes again took ~0.5 s)."""
    path = staging / DIGESTS
    if (summary.get("written") or {}).get("records") != records_version or not path.is_file():
        return None
    digests = pq.read_table(path).column("digest").combine_chunks()
    return digests if len(digests) == rows and digests.type == pa.binary(DIGEST_BYTES) else None


def _versions(staging: Path) -> dict[str, list[int]]:
    return {table: list(atomic.file_version(staging / f"{table}.parquet")) for table in KEPT_TABLES}


def read_summary(settings: Settings, library_id: str) -> dict | None:
    return atomic.read_json(settings.staging_dir(library_id) / SUMMARY)


class _Replay:
    """The library's catalogue as its pages are replayed in order.

    Rows are kept in columns, converted to Arrow every `BATCH_ROWS` rows, so a
    library of a million records costs Arrow's bytes, not a million dicts; a
    replaced or deleted row is dropped from `position` (each key's live row) and left out when
    the table is cut.
    """

    BATCH_ROWS = 50_000

    def __init__(self, library_id: str, previous: _Previous | None = None) -> None:
        self.library_id = library_id
        self.previous = previous
        self.previous_keys = previous.records.column("record_key").to_pylist() if previous else []
        self.batches: list[pa.RecordBatch] = []
        self.columns: dict[str, list] = {name: [] for name in schema.RECORDS.names}
        self.rows = 0
        self.read_rows = 0  # rows read this time, in self.batches and self.columns
        self.source = array("q")  # row → its read row, or -1 - its row in previous.records
        self.run_ids: list[str] = []  # the run ids of the pages replayed, in order
        self.run_of = array("i")  # row → its run id's place in run_ids
        self.reused = 0  # rows kept from previous.records
        self.position: dict[str, int] = {}  # record_key → row number of its live version
        self.origin: dict[str, Path] = {}
        # record_key → holding rows (_HOLDING_COLUMNS), or None: the previous staging's rows of the key
        self.holdings: dict[str, list[tuple] | None] = {}
        self.by_oai_identifier: dict[str, str] = {}
        self.quarantine: list[dict] = []
        self.updated = self.deleted = self.holdings_records = 0

    def reject(self, path: Path, run_id: str, position, reason: str, detail: str, raw: bytes) -> None:
        self.quarantine.append(dict(library_id=self.library_id, source=str(path), position=position, reason=reason, detail=detail, run_id=run_id, raw=raw))

    def apply(self, path: Path, run_id: str, result) -> None:
        if isinstance(result, Rejected):
            self.reject(path, run_id, result.position, result.reason, result.detail, result.raw)
        elif isinstance(result, Tombstone):
            key = self.by_oai_identifier.pop(result.oai_identifier, None)
            if key is not None and key in self.position:
                del self.position[key]
                self.holdings.pop(key, None)
                self.deleted += 1
        elif isinstance(result, HoldingsRecord):
            key = f"{self.library_id}:{result.bib_local_id}"
            self._own_holdings(key).extend(self._holding_rows(result.holdings))
            self.holdings_records += 1
        elif isinstance(result, Known):
            self._keep(path, run_id, result.rows)
        else:
            self._accept(path, run_id, result)

    def _keep(self, path: Path, run_id: str, rows: list[int]) -> None:
        """The previous staging's `rows` live again (most of a file sent again): placed as `_place`
        places a row, with the work of a key not seen yet in this replay done inline."""
        keys, position, origin, holdings = self.previous_keys, self.position, self.origin, self.holdings
        for row in rows:
            key = keys[row]
            if key in position:
                self._place(path, run_id, key)
            else:
                origin[key] = path
                position[key] = self.rows
                self.rows += 1
            holdings[key] = None
        self.source.extend([-1 - row for row in rows])
        self.run_of.extend([self._run(run_id)] * len(rows))
        self.reused += len(rows)

    def _run(self, run_id: str) -> int:
        if not self.run_ids or self.run_ids[-1] != run_id:
            self.run_ids.append(run_id)
        return len(self.run_ids) - 1

    def _own_holdings(self, key: str) -> list[tuple]:
        """The holding rows of `key`, to be added to (a kept key's taken from the previous staging)."""
        rows = self.holdings.get(key, [])
        if rows is None:
            kept = self.previous.holdings_of([key])
            rows = list(zip(*(kept.column(name).to_pylist() for name in _HOLDING_COLUMNS)))
        self.holdings[key] = rows
        return rows

    @staticmethod
    def _holding_rows(holdings) -> list[tuple]:
        return [(h.call_number, h.location, h.copies, h.available) for h in holdings]

    def _accept(self, path: Path, run_id: str, result: Accepted) -> None:
        row = result.row
        key = row["record_key"]
        self._place(path, run_id, key)
        self.source.append(self.read_rows)
        self.run_of.append(self._run(run_id))
        for name, column in self.columns.items():
            column.append(row[name])
        self.read_rows += 1
        if len(self.columns["raw"]) == self.BATCH_ROWS:
            self._cut_batch()
        self.holdings[key] = self._holding_rows(result.holdings)
        if result.oai_identifier:
            self.by_oai_identifier[result.oai_identifier] = key

    def _place(self, path: Path, run_id: str, key: str) -> None:
        """Make the next row the live version of `key`."""
        previous = self.position.get(key)
        if previous is not None:
            if self.origin[key] == path:  # the same id twice in one file: a real duplicate
                self.reject(path, run_id, None, "duplicate_local_id", f"{key} appears again in {path.name}; the later record replaces this one", self._raw(previous))
            else:
                self.updated += 1
        if self.origin.get(key) != path:
            self.origin[key] = path
        self.position[key] = self.rows
        self.rows += 1

    def _raw(self, row: int) -> bytes:
        source = self.source[row]
        if source < 0:
            return self.previous.records.column("raw")[-1 - source].as_py()
        batch, index = divmod(source, self.BATCH_ROWS)
        if batch < len(self.batches):
            return self.batches[batch].column("raw")[index].as_py()
        return self.columns["raw"][index]

    def _cut_batch(self) -> None:
        self.batches.append(pa.RecordBatch.from_pydict(self.columns, schema=schema.RECORDS))
        for column in self.columns.values():
            column.clear()

    def records(self) -> tuple[pa.Table, pa.FixedSizeBinaryArray]:
        """The live rows in record key order, as the staging file is written (schema.LIBRARY_TABLES):
        one take of the wide rows out of the read ones and the previous ones (three takes, the
        reused rows out, every row in replay order, then in key order to write them: 5.4 s
        against 4.4 s for a 287,940-record library whose rows were all reused, median of 5);
        and their digests (those of the rows read computed, the others' kept)."""
        self._cut_batch()
        table = pa.Table.from_batches(self.batches, schema=schema.RECORDS)
        self.batches = []
        live = np.array([self.position[key] for key in sorted(self.position)], np.int64)  # str order is UTF-8 byte order, as Arrow's
        sources = np.frombuffer(self.source, np.int64)[live]
        digests = raw_digests(table.column("raw"))
        if not self.reused:
            indices = pa.array(sources)
            return table.take(indices), digests.take(indices)
        order = pa.array(np.where(sources >= 0, sources, self.read_rows - 1 - sources))
        table = pa.concat_tables([table, self.previous.records]).take(order)
        run_ids = pa.array(self.run_ids, pa.string()).take(pa.array(np.frombuffer(self.run_of, np.int32)[live]))
        run_id = schema.RECORDS.get_field_index("run_id")
        return table.set_column(run_id, schema.RECORDS.field(run_id), run_ids), pa.concat_arrays([digests, self.previous.digests]).take(order)

    def read_keys(self) -> pa.Table:
        """The keys of the live rows read this time (not kept from the previous staging), in order."""
        return pa.table({"record_key": pa.array(sorted(key for key, row in self.position.items() if self.source[row] >= 0), pa.string())})

    def holdings_table(self) -> pa.Table:
        """The holding rows, in no order (written sorted on every column): the kept keys' taken
        from the previous staging at once."""
        read = {key: rows for key, rows in self.holdings.items() if rows is not None}
        keys = [key for key, rows in read.items() for _ in rows]
        rows = [row for rows in read.values() for row in rows]
        columns = dict(zip(_HOLDING_COLUMNS, zip(*rows))) if rows else {}
        table = pa.table({"record_key": keys, "library_id": [self.library_id] * len(keys),
                          **{name: columns.get(name, ()) for name in _HOLDING_COLUMNS}},
                         schema=schema.HOLDINGS)
        kept = [key for key, rows in self.holdings.items() if rows is None]
        return pa.concat_tables([self.previous.holdings_of(kept), table]) if kept else table


def quality_profile(records: pa.Table, quarantine: list[dict]) -> dict:
    """Per-library data quality, written with every transform."""
    total = records.num_rows or 1

    def share(mask) -> float:
        return round(pc.sum(mask).as_py() / total, 4) if records.num_rows else 0.0

    def counts(array) -> dict:
        return {item["values"]: item["counts"] for item in pc.value_counts(array).to_pylist()}

    encodings = pc.binary_join_element_wise(records["source_encoding"], records["encoding_evidence"], ": ", null_handling="replace", null_replacement="None")
    return {
        "with_isbn": share(pc.greater(pc.list_value_length(records["isbn_raw"]), 0)),
        "with_valid_isbn": share(pc.greater(pc.list_value_length(records["isbn"]), 0)),
        "with_year": share(pc.is_valid(records["year"])),
        "with_class": share(pc.greater(pc.list_value_length(records["clc"]), 0)),
        "formats": counts(records["source_format"]),
        "encodings": counts(encodings),
        "material_types": counts(records["material_type"]),
        "quality_flags": counts(pc.list_flatten(records["quality_flags"])),
        "quarantine_by_reason": dict(Counter(q["reason"] for q in quarantine)),
    }


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The replay keeps a library's rows alive until its table is cut, and Python's cyclic
    collector would walk them all again and again to find no cycle (rows are dicts, lists,
    tuples and strings): a quarter of the time of a 130,000-record library. Reference counting
    still frees everything as usual; the collector is back on when the library is done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def transform_library(settings: Settings, library: Library, *, full: bool = False) -> TransformSummary:
    paths = catalogue_pages(settings, library.id)
    fingerprint = _fingerprint(paths, library)
    staging = settings.staging_dir(library.id)
    previous = read_summary(settings, library.id)
    if not full and previous and previous["inputs_fingerprint"] == fingerprint:
        return TransformSummary(**{**previous, "skipped": True})

    rows_fingerprint = _rows_fingerprint(library)
    with _cyclic_gc_paused():
        replay = _Replay(library.id, None if full else _Previous.load(staging, previous, rows_fingerprint))
        known = replay.previous.known if replay.previous else None
        for path in paths:
            run_id = path.parent.name
            if not path.exists():
                replay.reject(path, run_id, None, "missing_page", f"landed page {path} is gone from the landing zone", b"")
                continue
            for result in read_file(path, library_id=library.id, run_id=run_id, syntax=library.syntax, encoding=library.encoding,
                                    known=known):
                replay.apply(path, run_id, result)
        records, digests = replay.records()
        holdings = replay.holdings_table()
    # in snapshot form: publish links a changed library's files instead of writing them again
    schema.write_library_table(staging / "records.parquet", records, "records")
    atomic.write_parquet(staging / DIGESTS, pa.table({"digest": digests}))
    schema.write_library_table(staging / "holdings.parquet", holdings, "holdings")
    schema.write_library_table(staging / "quarantine.parquet", pa.Table.from_pylist(replay.quarantine, schema=schema.QUARANTINE), "quarantine")
    if replay.previous is not None:
        atomic.write_parquet(staging / RECORDS_READ, replay.read_keys())
    else:
        (staging / RECORDS_READ).unlink(missing_ok=True)
    summary = TransformSummary(
        library.id, fingerprint, files=len(paths), records=records.num_rows, updated=replay.updated, deleted=replay.deleted,
        holdings=holdings.num_rows, quarantined=len(replay.quarantine),
        quarantine_reasons=dict(Counter(q["reason"] for q in replay.quarantine)),
        profile=quality_profile(records, replay.quarantine), reused=replay.reused,
        rows_fingerprint=rows_fingerprint, holdings_records=replay.holdings_records,
        kept_from=replay.previous.versions if replay.previous else None, written=_versions(staging),
    )
    atomic.write_json(staging / SUMMARY, {k: v for k, v in asdict(summary).items() if k != "skipped"})
    return summary
