"""Write, then rename: every file another stage or a user reads appears whole
or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq


def _temp_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    return Path(name)


def write_bytes(path: Path, data: bytes) -> None:
    temp = _temp_path(path)
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_json(path: Path, value: object) -> None:
    write_bytes(path, json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8") + b"\n")


def read_json(path: Path, default: object = None) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def write_parquet(path: Path, table: pa.Table, **options) -> None:
    temp = _temp_path(path)
    try:
        pq.write_table(table, temp, compression="zstd", **options)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_parquet_batches(path: Path, batches: Iterable[pa.RecordBatch], schema: pa.Schema, *,
                          row_group_size: int, **options) -> int:
    """Write record batches as they come (never the whole table in memory), in row groups of
    `row_group_size` rows, each batch cast to `schema`; returns the number of rows."""
    temp = _temp_path(path)
    rows = 0
    try:
        with pq.ParquetWriter(temp, schema, compression="zstd", **options) as writer:
            pending: list[pa.Table] = []
            size = 0
            for batch in batches:
                pending.append(pa.Table.from_batches([batch]).select(schema.names).cast(schema))
                size += batch.num_rows
                while size >= row_group_size:
                    table = pa.concat_tables(pending)
                    # one chunk per row group: the pages, hence the bytes, do not depend on how the rows came in batches
                    writer.write_table(table.slice(0, row_group_size).combine_chunks(), row_group_size=row_group_size)
                    pending, size = [table.slice(row_group_size)], size - row_group_size
                    rows += row_group_size
            if size or not rows:  # an empty file still has its (empty) row group, as pq.write_table writes it
                writer.write_table(pa.concat_tables(pending).combine_chunks() if pending else schema.empty_table(), row_group_size=row_group_size)
                rows += size
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return rows


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
