"""A sorted table rewritten from its previous file and the rows that may have changed.

Most rows of an incremental run's `record_manifestation` are the previous run's as they were.
They are read back from the previous file, already sorted and formatted, and only the rows a
run recomputed come from a query. At 11.27M records, the one query that joined every record
with its previous row to write the table took 27–34 s; the merge and the write take 10–11 s.
`manifestations` is merged alike: most clusters of an incremental run are carried as they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def previous_rows(path: Path, table_schema: pa.Schema, batch_rows: int) -> Iterator[pa.Table]:
    """The rows of a previous file in `table_schema` (a column the file lacks, e.g. one added
    since, is null)."""
    if not path.exists():
        return
    found = pq.read_schema(path).names
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=[n for n in table_schema.names if n in found]):
        columns = [batch.column(name) if name in found else pa.nulls(batch.num_rows, table_schema.field(name).type)
                   for name in table_schema.names]
        yield pa.Table.from_arrays(columns, schema=table_schema.remove_metadata())


def merge_rows(previous: Iterable[pa.Table], recomputed: Iterable[pa.RecordBatch], table_schema: pa.Schema, key: str, *,
               updates: pa.Table, gone: pa.Array, changed: list[pa.Array] | None) -> Iterator[pa.RecordBatch]:
    """The table's rows in `key` order: the `previous` rows (sorted by `key`), less the keys
    `gone`, with the rows `recomputed` (sorted by `key`, new or replacing a previous row) and
    with `updates` (`key` and some columns: new values for those columns of previous rows).
    `changed` gains the keys of the rows that are new or differ from their previous row (None:
    not listed, e.g. when there is no previous row to differ from)."""
    table_schema = table_schema.remove_metadata()
    pending = _Pending(recomputed, table_schema, key)
    for rows in previous:
        if rows.num_rows:
            yield from _merged(rows, pending.up_to(rows.column(key)[-1].as_py()), key, updates, gone, changed).to_batches()
    for batch in pending.rest():  # after the last previous row (a first run: all), as they come
        if changed is not None:
            changed.append(batch.column(key))
        yield batch


class _Pending:
    """The recomputed rows not merged yet, read as far as the merge needs."""

    def __init__(self, batches: Iterable[pa.RecordBatch], table_schema: pa.Schema, key: str):
        self._batches = iter(batches)
        self._schema = table_schema
        self._key = key
        self._rows = table_schema.empty_table()
        self._read_all = False

    def up_to(self, last: str) -> pa.Table:
        """The pending rows whose key is at most `last`."""
        while not self._read_all and (not self._rows.num_rows or self._rows.column(self._key)[-1].as_py() <= last):
            batch = next(self._batches, None)
            if batch is None:
                self._read_all = True
            else:
                self._rows = pa.concat_tables([self._rows, self._conformed(batch)])
        count = pc.sum(pc.less_equal(self._rows.column(self._key), last)).as_py() or 0
        head, self._rows = self._rows.slice(0, count), self._rows.slice(count)
        return head

    def rest(self) -> Iterator[pa.RecordBatch]:
        """The rows not taken yet, a batch at a time (never all of them in memory)."""
        yield from self._rows.combine_chunks().to_batches()
        for batch in self._batches:
            yield from self._conformed(batch).to_batches()

    def _conformed(self, batch: pa.RecordBatch) -> pa.Table:
        return pa.Table.from_batches([batch]).select(self._schema.names).cast(self._schema)


def _merged(rows: pa.Table, recomputed: pa.Table, key: str, updates: pa.Table, gone: pa.Array, changed: list[pa.Array] | None) -> pa.Table:
    """Both tables sorted by `key`: every key is placed by binary search on fixed-width bytes (a
    hash set of each batch's 131,072 keys, built per batch, took 3.2 s of the 9.4 s merge at
    11.27M records)."""
    keys, recomputed_keys = _array(rows.column(key)), _array(recomputed.column(key))
    gone = gone.filter(_within(gone, keys))  # a gone key of the range is a key of the batch
    # as wide as the gone keys too: cut to a shorter width, a gone key would stand for its prefix
    width = _width(keys, recomputed_keys, gone)
    sorted_keys, sorted_recomputed = _sortable(keys, width), _sortable(recomputed_keys, width)
    previous_at, known = _positions(sorted_keys, sorted_recomputed)
    if changed is not None:
        differs = _row_distinct(recomputed.filter(pa.array(known)), rows.take(previous_at[known]))
        changed.append(pc.filter(pc.filter(recomputed_keys, pa.array(known)), differs))
        changed.append(pc.filter(recomputed_keys, pa.array(np.logical_not(known))))

    removed = np.zeros(len(keys), bool)
    removed[previous_at[known]] = True
    gone_at, found = _positions(sorted_keys, _sortable(gone, width))
    removed[gone_at[found]] = True
    merged = _interleaved(rows, np.flatnonzero(np.logical_not(removed)), sorted_keys, recomputed, sorted_recomputed)
    # the updated rows are previous rows: a recomputed row's key is not among the updates' (their clusters were carried)
    return _updated(merged, key, updates.filter(_within(updates.column(key), keys)), changed)


def _interleaved(rows: pa.Table, kept: np.ndarray, keys: np.ndarray, recomputed: pa.Table, recomputed_keys: np.ndarray) -> pa.Table:
    """The rows `kept` (positions) of `rows` and the rows of `recomputed`, both sorted by key
    (`keys`, `recomputed_keys`), no key in both, in key order, in one take: where each recomputed
    row goes is found by binary search, so the rows are not sorted again (taking the kept rows
    first copied every previous row once more: 2.6 s of the 11.27M-record merge)."""
    at = np.searchsorted(keys[kept], recomputed_keys)
    recomputed_at = at + np.arange(len(at))  # its place among all the rows
    order = np.empty(len(kept) + recomputed.num_rows, np.int64)
    order[recomputed_at] = np.arange(rows.num_rows, rows.num_rows + recomputed.num_rows)
    kept_at = np.ones(len(order), bool)
    kept_at[recomputed_at] = False
    order[kept_at] = kept
    return pa.concat_tables([rows, recomputed]).take(order)


def _positions(sorted_keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each value is in `sorted_keys`, and whether it is there."""
    at = np.searchsorted(sorted_keys, values)
    found = at < len(sorted_keys)
    found[found] = sorted_keys[at[found]] == values[found]
    return at, found


def _within(values: pa.Array | pa.ChunkedArray, keys: pa.Array) -> pa.Array:
    """Which values lie between the first and the last of `keys` (sorted)."""
    return pc.and_(pc.greater_equal(values, keys[0]), pc.less_equal(values, keys[-1]))


def _width(*arrays: pa.Array) -> int:
    return max([1, *(pc.max(pc.binary_length(array)).as_py() or 0 for array in arrays if len(array))])


def _sortable(keys: pa.Array, width: int) -> np.ndarray:
    """Keys as fixed-width bytes (NUL-padded, `width` at least the longest), which numpy
    compares in C as DuckDB and Arrow order strings: byte by byte."""
    if not len(keys):
        return np.empty(0, f"S{width}")
    array = pc.cast(keys, pa.large_binary())
    offsets = np.frombuffer(array.buffers()[1], np.int64, len(array) + 1, array.offset * 8)
    data = np.frombuffer(array.buffers()[2] or b"", np.uint8)[offsets[0]:offsets[-1]]  # no buffer: every key empty
    # `width` bytes from each key's start, then the bytes past its end zeroed
    windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([data, np.zeros(width, np.uint8)]), width)
    matrix = windows[offsets[:-1] - offsets[0]]
    matrix[np.arange(width) >= np.diff(offsets)[:, None]] = 0
    return matrix.view(f"S{width}").ravel()


def _updated(rows: pa.Table, key: str, updates: pa.Table, changed: list[pa.Array] | None) -> pa.Table:
    if not updates.num_rows:
        return rows
    at = pc.index_in(rows.column(key), value_set=updates.column(key).combine_chunks())
    found = pc.is_valid(at)
    if not pc.any(found).as_py():
        return rows
    before = rows
    for name in updates.column_names:
        if name != key:
            position = rows.schema.get_field_index(name)
            new = pc.if_else(found, pc.take(updates.column(name), at), rows.column(name)).cast(rows.schema.field(name).type)
            rows = rows.set_column(position, rows.schema.field(name), new)
    if changed is not None:
        changed.append(_array(pc.filter(rows.column(key), _row_distinct(rows, before))))
    return rows


def _row_distinct(a: pa.Table, b: pa.Table) -> pa.Array:
    """Per row, whether any column of `a` is distinct from `b`'s (null equals null)."""
    differs = pa.array([False] * a.num_rows, pa.bool_())
    for name in a.column_names:
        x, y = a.column(name), b.column(name)
        same = pc.or_(pc.fill_null(pc.equal(x, y), False), pc.and_(pc.is_null(x), pc.is_null(y)))
        differs = pc.or_(differs, pc.invert(same))
    return _array(differs)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
