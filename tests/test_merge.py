"""dedup.merge: a sorted table rewritten from its previous rows and the rows recomputed."""

import random
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


def test_keys_of_any_length_and_script_merge_as_a_sort_would():
    # byte order, as DuckDB sorts the keys: prefixes first, Han characters after ASCII; keys of
    # one batch of many lengths; changes in every batch and across batch edges
    rng = random.Random(7)
    alphabet = ["a", "b", "z", "0", "9", ":", "中", "国", "书", "é"]
    keys = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(400)}, key=str.encode)
    previous_keys = [k for k in keys if rng.random() < 0.7]
    gone = [k for k in previous_keys if rng.random() < 0.1]
    recomputed = [(k, "new" if rng.random() < 0.5 else "old", None) for k in keys if k not in gone and rng.random() < 0.3]
    previous = [(k, "old", None) for k in previous_keys]
    changed = []
    rows = merged([previous[i:i + 37] for i in range(0, len(previous), 37)], recomputed, gone=gone, changed=changed)
    expected = {k: row for k, *_ in previous for row in [(k, "old", None)] if k not in gone} | {row[0]: row for row in recomputed}
    assert rows == [expected[k] for k in sorted(expected, key=str.encode)]
    assert sorted(key for keys in changed for key in keys.to_pylist()) == sorted(
        k for k, value, _ in recomputed if value == "new" or k not in previous_keys)


def test_a_gone_key_longer_than_the_keys_of_its_batch_removes_no_other_row():
    # the keys compare as fixed-width bytes: cut to the batch's width, "ab1" would read "ab"
    rows = merged([[("a", "1", None), ("ab", "2", None), ("b", "3", None)]], [("a", "10", None)], gone=["ab1"])
    assert rows == [("a", "10", None), ("ab", "2", None), ("b", "3", None)]


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
