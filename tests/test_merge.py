"""dedup.merge: a sorted table rewritten from its previous rows and the rows recomputed."""

import threading

import pyarrow as pa
import pytest

from dedup.merge import merge_rows
from unioncat.prefetch import prefetched

SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string()), pa.field("note", pa.string())])


def table(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, row)) for row in rows], schema=SCHEMA)


def merged(previous: list[list[tuple]], recomputed: list[tuple], *, updates=(), gone=(), changed=None) -> list[tuple]:
    batches = merge_rows((table(rows) for rows in previous), table(recomputed).to_batches(max_chunksize=2), SCHEMA, "key",
                         updates=pa.table({"key": [k for k, _ in updates], "note": [n for _, n in updates]},
                                          schema=pa.schema([("key", pa.string()), ("note", pa.string())])),
                         gone=pa.array(list(gone), pa.string()), changed=changed)
    return [tuple(row.values()) for batch in batches for row in pa.Table.from_batches([batch]).to_pylist()]


def test_rows_come_out_in_key_order_with_the_changes_listed():
    previous = [[("a", "1", None), ("c", "3", None), ("e", "5", None)], [("g", "7", None), ("i", "9", "x")]]
    recomputed = [("b", "2", None), ("c", "3", None), ("e", "50", None), ("h", "8", None), ("z", "26", None)]
    changed = []
    rows = merged(previous, recomputed, updates=[("g", "moved"), ("i", "x")], gone=["a"], changed=changed)
    assert rows == [("b", "2", None), ("c", "3", None), ("e", "50", None), ("g", "7", "moved"), ("h", "8", None),
                    ("i", "9", "x"), ("z", "26", None)]
    # new (b, h, z), recomputed otherwise (e), updated (g); c was recomputed as it was, i updated to what it had
    assert sorted(key for keys in changed for key in keys.to_pylist()) == ["b", "e", "g", "h", "z"]


def test_without_previous_rows_the_recomputed_ones_stream_through():
    pulled = []

    def recomputed():
        for n in range(1000):
            pulled.append(n)
            yield table([(f"{n:04d}", "v", None)]).to_batches()[0]

    rows = merge_rows(iter(()), recomputed(), SCHEMA, "key", updates=pa.table({"key": pa.array([], pa.string())}),
                      gone=pa.array([], pa.string()), changed=None)
    first = next(rows)
    assert first.column(0).to_pylist() == ["0000"] and len(pulled) == 1  # not all held in memory first
    assert sum(batch.num_rows for batch in rows) == 999


def test_prefetched_passes_items_and_errors_on():  # dedup writes the merged rows so
    assert list(prefetched(iter(range(10)))) == list(range(10))

    def failing():
        yield 1
        raise ValueError("broken batch")

    with pytest.raises(ValueError, match="broken batch"):
        list(prefetched(failing()))
    before = set(threading.enumerate())
    stopped = prefetched(iter(range(100)))  # a consumer that stops early stops the thread
    assert next(stopped) == 0
    stopped.close()
    producers = set(threading.enumerate()) - before
    for producer in producers:
        producer.join(timeout=10)  # it would wait on its full queue for ever
    assert producers and not any(producer.is_alive() for producer in producers)
