"""Stable manifestation ids across dedup runs (add, change, delete, merge, split), their
lineage in changes.parquet, and incremental runs giving exactly a full rebuild's result."""

import json
import random
import shutil
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup import rules, stage
from dedup.datasets import demo_province, rows_table
from dedup.features import build_match_records
from dedup.stage import PUBLISHED, load_rows, run
from test_dedup import book
from warehouse import changes

OUTPUTS = ("record_manifestation", "manifestations", "works", "changes", "match_evidence", "match_records", "id_ledger")


def output_rows(folder: Path, name: str) -> list[tuple]:
    path = folder / f"{name}.parquet"
    files = sorted(str(f) for f in path.glob("*.parquet")) if path.is_dir() else [str(path)]  # match_records: a file per library
    return duckdb.sql("select * from read_parquet(?) order by all", params=[files]).fetchall()


def assert_same_outputs(incremental: Path, full: Path) -> None:
    for name in OUTPUTS:
        assert output_rows(incremental, name) == output_rows(full, name), name
    for name in PUBLISHED:  # publish links these files as they are: the same rows, the same bytes
        assert (incremental / f"{name}.parquet").read_bytes() == (full / f"{name}.parquet").read_bytes(), name


def changed_records(now: Path, before: Path) -> set[str]:
    """The record keys whose `record_manifestation` row differs between two runs' folders."""
    rows = [{r[0]: r for r in output_rows(folder, "record_manifestation")} for folder in (before, now)]
    return {key for key in rows[0].keys() | rows[1].keys() if rows[0].get(key) != rows[1].get(key)}


class Runs:
    """Successive dedup runs over changing catalogues in one output folder."""

    def __init__(self, out):
        self.out = out

    def __call__(self, rows: list[dict], *, full: bool = False, staged: dict | None = None):
        con = duckdb.connect()
        load_rows(con, rows if isinstance(rows, pa.Table) else rows_table(rows))
        self.summary = run(con, self.out, {f"{c}": "city" for c in "ABCDEFGH"}, full=full, staged=staged)
        self.ids = dict(con.sql(f"select record_key, manifestation_id from read_parquet('{self.out / 'record_manifestation.parquet'}')").fetchall())
        self.changes = sorted(con.sql(f"select change, manifestation_id, old_manifestation_id from read_parquet('{self.out / 'changes.parquet'}')").fetchall(),
                              key=str)
        return self


X = dict(title="江南往事", isbn="9787506365437", authors=("王伟",), publisher="作家出版社")
Y = dict(title="宋代经济史", isbn="9787020090006", authors=("李明",), publisher="中华书局")


def test_a_manifestation_keeps_its_id_as_records_join_and_leave(tmp_path):
    runs = Runs(tmp_path)
    first = runs([book("A:1", **X), book("B:1", **X), book("C:1", **Y)]).ids
    x, y = first["A:1"], first["C:1"]
    assert first["B:1"] == x != y and runs.changes == sorted([("added", x, None), ("added", y, None)], key=str)

    runs([book("A:1", **X), book("B:1", **X), book("C:1", **Y), book("D:1", **X)])
    assert runs.ids["D:1"] == x and runs.changes == [("updated", x, x)]
    runs([book("B:1", **X), book("C:1", **Y), book("D:1", **X)])  # the record that named x leaves
    assert runs.ids["B:1"] == x and runs.changes == [("updated", x, x)]
    runs([book("B:1", **X), book("D:1", **X)])
    assert runs.changes == [("deleted", None, y)]
    runs([book("B:1", **X), book("D:1", **X)])
    assert runs.changes == [] and runs.summary.incremental


def test_a_previous_table_without_work_ids_gets_them(tmp_path):
    rows = [book("A:1", **X), book("B:1", **X), book("C:1", **Y)]
    runs = Runs(tmp_path / "runs")
    runs(rows)
    path = tmp_path / "runs" / "record_manifestation.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["work_id"]), path)  # as a version before works wrote it
    runs(rows)
    assert runs.summary.incremental and [change for change, _, _ in runs.changes] == ["updated", "updated"]  # their work ids
    Runs(tmp_path / "fresh")(rows)
    again, fresh = (output_rows(tmp_path / folder, "record_manifestation") for folder in ("runs", "fresh"))
    assert all(row[4] for row in again)  # work ids are issued anew: only the other columns equal a fresh run's
    assert [row[:4] + row[5:] for row in again] == [row[:4] + row[5:] for row in fresh]
    assert sorted(r[0] for r in output_rows(tmp_path / "runs", "record_changes")) == ["A:1", "B:1", "C:1"]


def test_a_library_whose_staged_file_is_unchanged_keeps_its_features_unread(tmp_path):
    before = [book("A:1", **X), book("A:2", **Y), book("B:1", **X), book("C:1", **Y)]
    after = [book("A:1", **X), book("A:2", **Y), book("B:1", **{**X, "edition": "第2版", "year": "2015"}), book("C:1", **Y)]
    versions = {"A": [10, 1], "B": [10, 1], "C": [10, 1]}
    incremental = Runs(tmp_path / "incremental")
    incremental(before, staged=versions)
    shutil.copytree(tmp_path / "incremental", tmp_path / "full")
    incremental(after, staged={**versions, "B": [12, 2]})  # only B's file was written again
    assert incremental.summary.incremental and incremental.summary.features_computed == 1
    # only B's feature file is written again; A's and C's are those of the first run
    assert json.loads((tmp_path / "incremental" / "state.json").read_text())["feature_files"] == {"A": 1, "B": 2, "C": 1}
    Runs(tmp_path / "full")(after, full=True, staged={**versions, "B": [12, 2]})
    assert_same_outputs(tmp_path / "incremental", tmp_path / "full")
    # The version is believed: a record of A changed under A's unchanged version is not read,
    # and is read once A's version changes.
    later = [book("A:1", **{**X, "year": "2016"}), *after[1:]]
    incremental(later, staged={**versions, "B": [12, 2]})
    assert incremental.summary.incremental and incremental.summary.features_computed == 0
    incremental(later, staged={**versions, "A": [11, 3], "B": [12, 2]})
    assert incremental.summary.features_computed == 1


def test_rids_follow_record_keys_when_library_ids_prefix_each_other(tmp_path):
    """A record's rid is its library's offset plus its place in the library (dedup.features): the
    libraries are ordered as their keys sort (`A0:` before `A:`), the unchanged ones' places read
    from their feature files."""
    libraries = ("A", "A0", "A-", "AB", "B")
    rows = [book(f"{lib}:{n}", f"第{n}卷", isbn=None) for lib in libraries for n in (10, 2, 7)]
    versions = {lib: [10, 1] for lib in libraries}
    runs = Runs(tmp_path / "dedup")
    runs(rows, staged=versions)
    for changed in ("A0", "AB"):
        rows.append(book(f"{changed}:5", "第5卷", isbn=None))
        con = duckdb.connect()
        load_rows(con, rows_table(rows))
        state = json.loads((tmp_path / "dedup" / "state.json").read_text())
        files = {lib: str(tmp_path / "dedup" / "match_records.parquet" / f"{lib}.parquet") for lib in state["feature_files"]}
        build_match_records(con, previous=files, unchanged_libraries=[lib for lib in libraries if lib != changed])
        keys = [key for (key,) in con.sql("select record_key from match_records order by rid").fetchall()]
        assert keys == sorted(r["record_key"] for r in rows)
        assert [rid for (rid,) in con.sql("select rid from match_records order by rid").fetchall()] == list(range(len(rows)))
        runs(rows, staged={**versions, changed: [11, len(rows)]})
        versions[changed] = [11, len(rows)]
    assert runs.summary.incremental


def test_a_record_key_that_is_not_library_id_and_local_id_is_refused():
    con = duckdb.connect()
    load_rows(con, rows_table([book("A:1", **X), {**book("A:2", **Y), "record_key": "B:2"}]))
    with pytest.raises(ValueError, match="record 'B:2' of library 'A': a record key must be '<library_id>:<local_id>'"):
        build_match_records(con)


def test_a_merge_keeps_the_oldest_id_and_records_the_other_as_merged(tmp_path):
    runs = Runs(tmp_path)
    old = runs([book("B:1", **X)]).ids["B:1"]
    young = runs([book("B:1", **X), book("A:1", **{**X, "year": "2014"})]).ids["A:1"]  # a typo in the year: apart
    assert young != old
    runs([book("B:1", **X), book("A:1", **X)])  # corrected: one manifestation, whose smallest key is A:1
    assert runs.ids["A:1"] == runs.ids["B:1"] == old
    assert ("merged", old, young) in runs.changes


def test_a_split_leaves_the_id_with_the_larger_part(tmp_path):
    runs = Runs(tmp_path)
    x = runs([book("A:1", **X), book("B:1", **X), book("C:1", **X)]).ids["A:1"]
    runs([book("A:1", **{**X, "edition": "第2版", "year": "2015", "isbn": None}), book("B:1", **X), book("C:1", **X)])
    assert runs.ids["B:1"] == runs.ids["C:1"] == x != runs.ids["A:1"]
    assert sorted(runs.changes, key=str) == sorted([("split", runs.ids["A:1"], x), ("updated", x, x)], key=str)


def test_a_work_split_leaves_its_id_with_the_part_holding_more_records(tmp_path):
    def work_ids() -> dict[str, str]:
        return {row[0]: row[4] for row in output_rows(tmp_path, "record_manifestation")}

    runs = Runs(tmp_path)
    second_edition = {**X, "edition": "第2版", "year": "2015", "isbn": None}
    runs([book("A:1", **second_edition), book("B:1", **X), book("C:1", **X), book("D:1", **X)])
    before = work_ids()
    assert before["A:1"] == before["B:1"] and runs.ids["A:1"] != runs.ids["B:1"]  # two editions, one work
    runs([book("A:1", **{**second_edition, "authors": ("李明",)}), book("B:1", **X), book("C:1", **X), book("D:1", **X)])
    after = work_ids()
    # B:1–D:1, a manifestation the run kept as it was, count as three records against A:1's one
    assert json.loads((tmp_path / "state.json").read_text())["carried_manifestations"] == 1
    assert after["B:1"] == after["C:1"] == after["D:1"] == before["B:1"] != after["A:1"]


def test_a_carried_manifestation_takes_the_new_id_of_the_work_it_was_left_in(tmp_path):
    # B:1–D:1 take another author: the work splits, its id stays with their three records and
    # A:1's manifestation, carried as it was, is the part that takes a new work id
    second_edition = {**X, "edition": "第2版", "year": "2015", "isbn": None}
    before = [book("A:1", **second_edition), book("B:1", **X), book("C:1", **X), book("D:1", **X)]
    after = [before[0], *(book(key, **{**X, "authors": ("李明",)}) for key in ("B:1", "C:1", "D:1"))]
    incremental = Runs(tmp_path / "incremental")
    incremental(before)
    shutil.copytree(tmp_path / "incremental", tmp_path / "full")
    work_before = {row[0]: row[1] for row in output_rows(tmp_path / "incremental", "manifestations")}
    incremental(after)
    Runs(tmp_path / "full")(after, full=True)
    assert json.loads((tmp_path / "incremental" / "state.json").read_text())["carried_manifestations"] == 1
    work_after = {row[0]: row[1] for row in output_rows(tmp_path / "incremental", "manifestations")}
    a, b = incremental.ids["A:1"], incremental.ids["B:1"]
    assert work_before[a] == work_before[b] == work_after[b] != work_after[a]
    assert_same_outputs(tmp_path / "incremental", tmp_path / "full")


def test_a_new_edition_joins_the_work_of_a_manifestation_carried_as_it_was(tmp_path):
    # B:1–C:1, one manifestation carried as it was, meet D:1, a second edition new in this run,
    # through a work key only (title proper and author): their work is placed again, and E:1's,
    # which no change reached, is kept; without the previous run's keys every work is placed
    before = [book("B:1", **X), book("C:1", **X), book("E:1", **Y)]
    after = [*before, book("D:1", **{**X, "edition": "第2版", "year": "2015", "isbn": None})]
    incremental = Runs(tmp_path / "incremental")
    incremental(before)
    for copy in ("full", "without_keys"):
        shutil.copytree(tmp_path / "incremental", tmp_path / copy)
    (tmp_path / "without_keys" / stage.WORK_KEYS).unlink()
    incremental(after)
    Runs(tmp_path / "full")(after, full=True)
    Runs(tmp_path / "without_keys")(after)
    states = {folder: json.loads((tmp_path / folder / "state.json").read_text()) for folder in ("incremental", "without_keys")}
    assert states["incremental"]["carried_manifestations"] == states["without_keys"]["carried_manifestations"] == 2
    assert (states["incremental"]["works_placed"], states["without_keys"]["works_placed"]) == (2, 3)
    work = {row[0]: row[4] for row in output_rows(tmp_path / "incremental", "record_manifestation")}
    assert work["D:1"] == work["B:1"] != work["E:1"] and incremental.ids["D:1"] != incremental.ids["B:1"]
    for folder in ("incremental", "without_keys"):
        assert_same_outputs(tmp_path / folder, tmp_path / "full")


def test_a_run_that_fails_while_writing_leaves_no_write_behind(tmp_path, monkeypatch):
    # record_manifestation is merged and written in a thread while the other outputs are written
    runs = Runs(tmp_path)
    runs([book("A:1", **X), book("B:1", **X)])
    merged = stage._write_merged

    def slow_merge(*args, **kwargs):
        time.sleep(0.5)
        return merged(*args, **kwargs)

    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stage, "_write_merged", slow_merge)
    monkeypatch.setattr(stage, "_write_other_outputs", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        runs([book("A:1", **X), book("B:1", **X), book("C:1", **Y)])
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("record_manifestation")]
    assert json.loads((tmp_path / "state.json").read_text())["run"] == 1


def test_record_manifestation_is_the_same_merged_in_a_thread_or_as_it_streams(tmp_path, monkeypatch):
    # a run that computes more than THREADED_MERGE_MAX_ROWS rows again (a full run at scale)
    # merges them as they stream, in the run's own thread
    before = [book("A:1", **X), book("B:1", **X), book("C:1", **Y)]
    after = [book("A:1", **X), book("C:1", **Y), book("D:1", **Y)]
    threaded = Runs(tmp_path / "threaded")
    threaded(before)
    shutil.copytree(tmp_path / "threaded", tmp_path / "streamed")
    threaded(after)
    monkeypatch.setattr(stage, "THREADED_MERGE_MAX_ROWS", 0)
    Runs(tmp_path / "streamed")(after)
    assert_same_outputs(tmp_path / "streamed", tmp_path / "threaded")
    assert output_rows(tmp_path / "streamed", "record_changes") == output_rows(tmp_path / "threaded", "record_changes")


def test_a_component_split_before_and_untouched_is_split_as_it_was(tmp_path):
    # C:1 (no edition) scores as a match with both editions: one component, split by the veto
    editions = [book("A:1", "宋代史", edition="第2版", isbn=None), book("B:1", "宋代史", edition="第3版", isbn=None),
                book("C:1", "宋代史", isbn=None)]
    before = [*editions, book("D:1", **X), book("E:1", **Y)]
    incremental = Runs(tmp_path / "incremental")
    incremental(before)
    split = incremental.ids
    assert split["A:1"] != split["B:1"]
    for after in ([*before, book("F:1", **Y)],  # the component untouched: its pairs are not scored again
                  [*before, book("F:1", **Y), book("F:2", "宋代史", edition="第3版", isbn=None)]):  # touched: checked again
        shutil.copytree(tmp_path / "incremental", tmp_path / "full", dirs_exist_ok=True)
        incremental(after)
        full = Runs(tmp_path / "full")(after, full=True)
        assert_same_outputs(tmp_path / "incremental", tmp_path / "full")
        assert incremental.summary.incremental and all(incremental.ids[k] == split[k] for k in ("A:1", "B:1", "C:1"))
        states = [json.loads((tmp_path / run / "state.json").read_text()) for run in ("incremental", "full")]
        assert states[1]["components_checked"] == 1 and states[1]["components_split"] == 1
        touched = len(after) > len(before) + 1
        assert (states[0]["components_checked"], states[0]["components_kept_split"]) == ((1, 0) if touched else (0, 1))


def test_a_component_that_lost_the_record_that_split_it_is_checked_again(tmp_path):
    # B:1 (no edition) goes with A:1 (3rd edition), which keeps C:1 (2nd) apart; with A:1 gone,
    # nothing keeps B:1 and C:1 apart, though neither changed
    third, plain, second = (book("A:1", "宋代史", edition="第3版", isbn=None), book("B:1", "宋代史", isbn=None),
                            book("C:1", "宋代史", edition="第2版", isbn=None))
    incremental = Runs(tmp_path / "incremental")
    before = incremental([third, plain, second]).ids
    assert before["A:1"] == before["B:1"] != before["C:1"]
    shutil.copytree(tmp_path / "incremental", tmp_path / "full")
    after = incremental([plain, second]).ids
    Runs(tmp_path / "full")([plain, second], full=True)
    assert_same_outputs(tmp_path / "incremental", tmp_path / "full")
    assert incremental.summary.incremental and after["B:1"] == after["C:1"]


def test_a_twin_in_another_library_decides_the_same_library_veto_again_without_rematching(tmp_path):
    # C:2 is B:1's twin (one ISBN'd node); with it, that node and C:1 (a year apart, one ISBN) hold
    # a record of library C each: the same-library veto parts them; with C:2 gone, they merge again
    one, other, twin = book("C:1", **X, year="2010"), book("B:1", **X, year="2011"), book("C:2", **X, year="2011")
    incremental = Runs(tmp_path / "incremental")
    assert incremental([one, other]).ids["B:1"] == incremental.ids["C:1"]
    for after, together in (([one, other, twin], False), ([one, other], True)):
        shutil.copytree(tmp_path / "incremental", tmp_path / "full", dirs_exist_ok=True)
        incremental(after)
        Runs(tmp_path / "full")(after, full=True)
        assert_same_outputs(tmp_path / "incremental", tmp_path / "full")
        assert (incremental.ids["B:1"] == incremental.ids["C:1"]) is together
        # the node kept its blocks and pairs: nothing was matched again
        assert incremental.summary.incremental and incremental.summary.rematched_records == 0 and incremental.summary.pairs_scored == 0


def test_a_twin_taking_its_library_s_place_in_a_node_is_matched_again(tmp_path):
    # C:1 and C:2 are twins of one library (no ISBN): C:1 is in A:1's node, C:2 in a node of its
    # own (the same-library rule parts it from C:1). With C:1 gone, C:2 takes its place: A:1's node
    # then holds the same libraries and as many records as before, but not the same records
    plain = {**X, "isbn": None}
    before = [book("A:1", **plain), book("C:1", **plain), book("C:2", **plain)]
    incremental = Runs(tmp_path / "incremental")
    ids = incremental(before).ids
    assert ids["A:1"] == ids["C:1"] != ids["C:2"]
    shutil.copytree(tmp_path / "incremental", tmp_path / "full")
    after = [before[0], before[2]]
    assert incremental(after).ids["A:1"] == incremental.ids["C:2"]
    Runs(tmp_path / "full")(after, full=True)
    assert_same_outputs(tmp_path / "incremental", tmp_path / "full")


def test_a_retired_id_is_never_issued_again(tmp_path):
    runs = Runs(tmp_path)
    gone = runs([book("A:1", **X), book("C:1", **Y)]).ids["A:1"]
    runs([book("C:1", **Y)])
    assert runs.changes == [("deleted", None, gone)]
    back = runs([book("A:1", **X), book("C:1", **Y)]).ids["A:1"]
    assert back != gone and runs.changes == [("added", back, None)]


def test_changed_rules_rematch_everything(tmp_path, monkeypatch):
    runs = Runs(tmp_path)
    runs([book("A:1", **X), book("B:1", **X)])
    assert runs([book("A:1", **X), book("B:1", **X)]).summary.incremental
    monkeypatch.setattr(rules, "fingerprint", lambda: "other rules")
    assert not runs([book("A:1", **X), book("B:1", **X)]).summary.incremental


def test_caches_of_an_older_format_rematch_everything(tmp_path, monkeypatch):
    runs = Runs(tmp_path)
    runs([book("A:1", **X), book("B:1", **X)])
    monkeypatch.setattr(stage, "CACHE_FORMAT", stage.CACHE_FORMAT + 1)  # evidence written by an older version names nodes otherwise
    assert not runs([book("A:1", **X), book("B:1", **X)]).summary.incremental
    assert runs([book("A:1", **X), book("B:1", **X)]).summary.incremental


@pytest.fixture(scope="module")
def province(tmp_path_factory):
    return demo_province(tmp_path_factory.mktemp("province"), titles=400, seed=11)


def test_an_incremental_run_equals_a_full_rebuild(province, tmp_path):
    rows = province.rows.to_pylist()
    rng = random.Random(3)
    rng.shuffle(rows)
    later, before = rows[: len(rows) // 20], rows[len(rows) // 20:]
    changed = []
    for row in rng.sample(before, 60):  # a new year (another edition) or a longer title
        changed.append({**row, "year": (row["year"] or 2000) + 3} if rng.random() < 0.5
                       else {**row, "title": row["title"] + "续编", "title_key": row["title_key"] + "续编"})
    gone = {r["record_key"] for r in rng.sample(before, 60)} | {r["record_key"] for r in changed}
    after = [r for r in before if r["record_key"] not in gone] + changed + later

    incremental = Runs(tmp_path / "incremental")
    incremental(before)
    assert not (tmp_path / "incremental" / "record_changes.parquet").exists()  # a first run: nothing to compare with
    shutil.copytree(tmp_path / "incremental", tmp_path / "full")
    shutil.copytree(tmp_path / "incremental", tmp_path / "previous")
    incremental(after)
    full = Runs(tmp_path / "full")(after, full=True)
    # dedup's lineage is what publish computes between the two runs' tables (and then takes)
    computed = changes.against_parent(duckdb.connect(), tmp_path / "incremental", tmp_path / "previous")
    assert sorted(map(str, computed.to_pylist())) == sorted(map(str, pq.read_table(tmp_path / "incremental" / "changes.parquet").to_pylist()))
    assert incremental.summary.incremental and not full.summary.incremental
    assert 0 < incremental.summary.pairs_scored < full.summary.pairs_scored
    assert incremental.summary.features_computed == len(changed) + len(later)  # the others' are kept
    state = json.loads((tmp_path / "incremental" / "state.json").read_text())
    assert 0 < state["carried_manifestations"] < incremental.summary.manifestations  # most clusters are carried
    # the twins' own pairs: only the twin keys new to this run are scored
    full_state = json.loads((tmp_path / "full" / "state.json").read_text())
    assert 0 < state["twin_keys_scored"] < full_state["twin_keys_scored"], (state["twin_keys_scored"], full_state["twin_keys_scored"])
    # the works no change reached are kept as they were
    assert 0 < state["works_placed"] < incremental.summary.manifestations == full_state["works_placed"]
    assert full.summary.features_computed == len(after)
    assert_same_outputs(tmp_path / "incremental", tmp_path / "full")
    # the rows publish replaces in the catalogue: exactly those that changed, however the run ran
    changed = changed_records(tmp_path / "incremental", tmp_path / "previous")
    assert 0 < len(changed) < len(after)
    for folder in ("incremental", "full"):
        assert sorted(r[0] for r in output_rows(tmp_path / folder, "record_changes")) == sorted(changed)
    fresh = Runs(tmp_path / "fresh")(after)

    def partition(ids):
        groups = {}
        for key, mid in ids.items():
            groups.setdefault(mid, set()).add(key)
        return sorted(map(sorted, groups.values()))

    assert partition(incremental.ids) == partition(fresh.ids)
    assert {kind for kind, _, _ in incremental.changes} >= {"added", "updated", "split"}


@pytest.mark.parametrize("all_pairs_max, window", [(2, 1), (3, 2)])
def test_incremental_blocking_equals_a_full_rebuild_when_windows_slide(province, tmp_path, monkeypatch, all_pairs_max, window):
    """Narrow windows make most blocks windowed: removed, moved and new nodes shift the positions
    of unchanged ones, opening and closing pairs an incremental run must find without re-blocking
    (dedup.blocking.proposed_pairs). Some records list their ISBN twice (the canonical rows of
    other sources may): each is in its ISBN block once, so its pairs' blocks are listed once."""
    monkeypatch.setattr(rules, "BLOCK_ALL_PAIRS_MAX", all_pairs_max)
    monkeypatch.setattr(rules, "BLOCK_WINDOW", window)
    rng = random.Random(all_pairs_max)
    rows = [{**row, "isbn": row["isbn"] * 2} if row["isbn"] and i % 5 == 0 else row for i, row in enumerate(province.rows.to_pylist())]
    current = rows[: len(rows) * 9 // 10]
    incremental = Runs(tmp_path / "incremental")
    incremental(current)
    for round_ in range(3):
        gone = {r["record_key"] for r in rng.sample(current, 40)}
        moved = [{**row, "pages": (row["pages"] or 100) + rng.choice([-90, 90]), "year": (row["year"] or 2000) + rng.choice([-1, 1])}
                 for row in rng.sample([r for r in current if r["record_key"] not in gone], 40)]
        moved_keys = {r["record_key"] for r in moved}
        added = [{**row, "record_key": f"{row['library_id']}:new{round_}-{row['record_key']}"} for row in rng.sample(rows, 40)]
        current = [r for r in current if r["record_key"] not in gone | moved_keys] + moved + added
        shutil.copytree(tmp_path / "incremental", tmp_path / f"full{round_}")  # the same ids to carry
        incremental(current)
        full = Runs(tmp_path / f"full{round_}")(current, full=True)
        assert incremental.summary.incremental and incremental.summary.pairs_scored < full.summary.pairs_scored
        assert_same_outputs(tmp_path / "incremental", tmp_path / f"full{round_}")
