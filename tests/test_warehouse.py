"""The published snapshot: layout contract, determinism and content hash, incremental reuse,
changes against the parent, retention and reader locks (warehouse.snapshot, .locks, .retention)."""

import json
import os
import random
import stat
import zlib
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from unioncat import schema
from unioncat.cli import main
from transforms.iso2709 import split_records
from transforms.stage import RECORDS_READ
from unioncat.pipeline import dedup, harvest_library, registry, transform
from unioncat.scale import _modified
from warehouse import catalogue, changes, locks, retention, snapshot
from warehouse.catalogue import CATALOGUE
from warehouse.snapshot import (DEDUP_TABLES, LIBRARY_TABLES, ROW_GROUP_ROWS, SnapshotWriter, build_snapshot, promote, publish,
                                read_manifest, sha256_file, verify, write_table)
from warehouse_demo import LIBRARIES, copy_inputs, published_demo

TOP_FILES = ["manifest.json", "libraries.parquet", "manifestations.parquet", "record_manifestation.parquet", "works.parquet",
             "holdings_distribution.parquet", "changes.parquet", "catalogue.duckdb", "report.html", "reader.lock"]
SORT_KEYS = {"records": ["record_key"], "manifestations": ["manifestation_id"], "record_manifestation": ["record_key"],
             "works": ["work_id"], "holdings_distribution": ["manifestation_id", "library_id"]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return published_demo(tmp_path_factory.getbasetemp())


@pytest.fixture()
def inputs(demo, tmp_path):
    """A private copy of the demo's stage outputs, nothing published yet."""
    return copy_inputs(demo, tmp_path)


def _libraries(settings):
    return list(registry(settings).enabled())


def _is_sorted(table: pa.Table, keys: list[str]) -> bool:
    return table.equals(table.sort_by([(k, "ascending") for k in keys]))


def test_snapshot_layout_follows_the_contract(demo):
    snapshot = demo.current_snapshot.resolve()
    for name in TOP_FILES:
        assert (snapshot / name).is_file(), name
    manifest = read_manifest(snapshot)
    assert {"snapshot_id", "parent", "created_at", "schema_version", "counts", "checksums", "files", "content_hash",
            "library_runs"} <= set(manifest)
    assert manifest["snapshot_id"] == snapshot.name and manifest["schema_version"] == schema.SCHEMA_VERSION
    assert set(manifest["library_runs"]) == set(LIBRARIES)
    for table in LIBRARY_TABLES:
        assert sorted(p.name for p in (snapshot / f"{table}.parquet").iterdir()) == sorted(f"{i}.parquet" for i in LIBRARIES)
        assert pq.read_table(snapshot / f"{table}.parquet").num_rows == manifest["counts"][table]
    assert verify(snapshot) == []
    for name, entry in manifest["files"].items():
        path = snapshot / name
        metadata = pq.read_metadata(path)
        assert metadata.num_rows == entry["rows"], name
        assert metadata.metadata[b"unioncat.schema_version"] == schema.SCHEMA_VERSION.encode()
        assert all(metadata.row_group(g).num_rows <= ROW_GROUP_ROWS for g in range(metadata.num_row_groups))
        assert all(metadata.row_group(0).column(c).compression == "ZSTD" for c in range(metadata.num_columns)) or not entry["rows"]
        table_name = metadata.metadata[b"unioncat.table"].decode()
        if table_name in SORT_KEYS:
            assert _is_sorted(pq.read_table(path), SORT_KEYS[table_name]), name
    description = pq.read_schema(snapshot / "records.parquet" / "ZJ001.parquet").field("title_key").metadata[b"description"]
    assert b"normalised" in description
    assert manifest["counts"]["manifestations"] == pq.read_metadata(snapshot / "manifestations.parquet").num_rows
    # Read-only for consumers.
    for path in [snapshot, *snapshot.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o555 if path.is_dir() else 0o444), path
    assert not list(snapshot.glob("*.wal")) and not list(demo.published_dir.glob(".building-*"))


def test_catalogue_has_every_table_view_and_macro_with_comments(demo):
    con = duckdb.connect(str(demo.current_snapshot / "catalogue.duckdb"), read_only=True)
    objects = dict(con.execute("select table_name, comment from duckdb_tables() union all "
                               "select view_name, comment from duckdb_views() where not internal").fetchall())
    for name in ("libraries", "records", "holdings", "manifestations", "works", "record_manifestation", "holdings_distribution",
                 "changes", "quarantine", "library_stats", "library_pairs", "library_overlap", "city_coverage", "class_coverage", "search_index", "isbn_index"):
        assert objects.get(name), f"{name} missing or without a comment"
    macros = dict(con.execute("select function_name, comment from duckdb_functions() where function_type like '%macro%'").fetchall())
    for name in ("search", "find_isbn", "holders"):
        assert macros.get(name), f"macro {name} missing or without a comment"
    assert con.execute("select count(*) from records").fetchall()[0][0] == read_manifest(demo.current_snapshot)["counts"]["records"]


def test_distribution_views_agree_with_the_holdings(demo):
    con = duckdb.connect(str(demo.current_snapshot / "catalogue.duckdb"), read_only=True)
    held = {}
    for mid, library in con.execute("select manifestation_id, library_id from holdings_distribution").fetchall():
        held.setdefault(library, set()).add(mid)
    overlap = {(a, b): (shared, jaccard, share) for a, b, shared, jaccard, share in con.execute(
        "select library_a, library_b, shared, jaccard, share_of_a_held_by_b from library_overlap").fetchall()}
    assert len(overlap) == len(LIBRARIES) * (len(LIBRARIES) - 1)
    for (a, b), (shared, jaccard, share) in overlap.items():
        both = held.get(a, set()) & held.get(b, set())
        assert shared == len(both) == overlap[b, a][0]
        assert jaccard == pytest.approx(len(both) / len(held[a] | held[b]), abs=1e-4)
        assert share == pytest.approx(len(both) / len(held[a]), abs=1e-4)
    assert any(s for s, _, _ in overlap.values())
    cities = {c: (n, only) for c, n, only in con.execute("select city, manifestations, only_in_city from city_coverage").fetchall()}
    assert set(cities) == {"杭州", "宁波", "温州"}
    city_of = dict(con.execute("select library_id, city from libraries").fetchall())
    by_city = {}
    for library, mids in held.items():
        by_city.setdefault(city_of[library], set()).update(mids)
    for city, (n, only) in cities.items():
        others = set().union(*(m for c, m in by_city.items() if c != city))
        assert n == len(by_city[city]) and only == len(by_city[city] - others)
    classes = con.execute("select class, manifestations from class_coverage").fetchall()
    assert sum(n for _, n in classes) == con.execute("select count(*) from manifestations").fetchall()[0][0]
    assert {"I", "K"} <= {c for c, _ in classes} and all(len(c) == 1 for c, _ in classes)
    stats = con.execute("select sum(unique_holdings) from library_stats").fetchall()[0][0]
    assert stats == con.execute("select count(*) from manifestations where n_libraries = 1").fetchall()[0][0]


def test_distribution_copies_are_the_holdings_copies_or_at_least_one_per_record(inputs):
    # a record held twice (two call numbers) without a count of copies: one copy, not two
    staged = inputs.staging_dir("ZJ001") / "holdings.parquet"
    table = pq.read_table(staged)
    uncounted = table.slice(0, 1).set_column(table.schema.get_field_index("copies"), "copies", pa.nulls(1, table.schema.field("copies").type))
    schema.write_library_table(staged, pa.concat_tables([table.slice(1), uncounted, uncounted]), "holdings")
    snapshot = publish(inputs, _libraries(inputs)).path
    holdings = pq.read_table(snapshot / "holdings.parquet").to_pylist()
    copies, holding_rows = {}, {}
    for h in holdings:
        holding_rows[h["record_key"]] = holding_rows.get(h["record_key"], 0) + 1
        copies[h["record_key"]] = copies.get(h["record_key"], 0) + (h["copies"] or 0)
    expected = {}
    for r in pq.read_table(snapshot / "record_manifestation.parquet").to_pylist():
        held, records = expected.get((r["manifestation_id"], r["library_id"]), (0, 0))
        expected[r["manifestation_id"], r["library_id"]] = (held + copies.get(r["record_key"], 0), records + 1)
    distribution = pq.read_table(snapshot / "holdings_distribution.parquet").to_pylist()
    assert {(d["manifestation_id"], d["library_id"]): d["copies"] for d in distribution} == {
        key: max(held, records) for key, (held, records) in expected.items()}
    # what makes the figure differ from a count of rows is there
    assert max(holding_rows.values()) == 2 and max(records for _, records in expected.values()) > 1
    assert any(held > records for held, records in expected.values()) and any(held < records for held, records in expected.values())


def test_republishing_unchanged_inputs_gives_the_same_content_hash(inputs, tmp_path):
    libraries = _libraries(inputs)
    first = publish(inputs, libraries)
    second = publish(inputs, libraries)
    one, two = read_manifest(first.path), read_manifest(second.path)
    assert two["parent"] == first.snapshot_id and one["created_at"] <= two["created_at"]
    assert one["content_hash"] == two["content_hash"]
    # Nothing changed: every data file but the lineage is the parent's, linked, not rewritten.
    expected = {n for n in one["files"] if n not in ("libraries.parquet", "changes.parquet")}
    assert set(second.reused) == expected
    assert all((first.path / n).stat().st_ino == (second.path / n).stat().st_ino for n in expected)
    # The writer is deterministic: built afresh elsewhere (no parent to link from), the same bytes.
    again = tmp_path / "again"
    again.mkdir()
    fresh = publish(copy_inputs(inputs, again), libraries)
    three = read_manifest(fresh.path)
    assert fresh.reused == () and three["parent"] is None
    assert three["content_hash"] == one["content_hash"]
    assert {n: three["checksums"][n] for n in expected} == {n: one["checksums"][n] for n in expected}


def test_the_same_rows_give_the_same_bytes_however_they_come_in_batches(tmp_path):
    # dedup writes record_manifestation from a query or from a merge with the previous file
    rows = pa.table({"record_key": [f"ZJ001:{i:07d}" for i in range(3 * ROW_GROUP_ROWS // 2)]})
    table_schema = pa.schema([pa.field("record_key", pa.string())])
    write_table(tmp_path / "whole.parquet", rows, table_schema, "keys")
    write_table(tmp_path / "batches.parquet", rows.to_batches(max_chunksize=1000), table_schema, "keys")
    assert (tmp_path / "whole.parquet").read_bytes() == (tmp_path / "batches.parquet").read_bytes()


def test_only_the_columns_of_few_values_are_dictionary_encoded(tmp_path):
    n = 2000
    rows = pa.table({"record_key": [f"ZJ001:{i:07d}" for i in range(n)], "library_id": ["ZJ001"] * n,
                     "clc": [["I247.5", "K820"][i % 2:] for i in range(n)], "isbn": [[f"978{i:010d}"] for i in range(n)],
                     "raw": [b"x"] * n, "place": [{"city": "杭州"}] * n})
    write_table(tmp_path / "t.parquet", rows, rows.schema, "t")
    group = pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(0)
    encoded = {group.column(i).path_in_schema.split(".")[0]: "RLE_DICTIONARY" in group.column(i).encodings
               for i in range(group.num_columns)}
    assert encoded == {"record_key": False, "library_id": True, "clc": True, "isbn": False, "raw": False, "place": False}


def test_a_changed_library_alone_is_rewritten(inputs, tmp_path, monkeypatch):
    libraries = _libraries(inputs)
    first = publish(inputs, libraries)
    staged = inputs.staging_dir("ZJ013") / "records.parquet"
    records = pq.read_table(staged)
    pq.write_table(records.slice(1), staged)  # ZJ013 lost one record
    second = publish(inputs, libraries)
    rewritten = {n for n in read_manifest(second.path)["files"] if n not in second.reused}
    assert rewritten == {"libraries.parquet", "changes.parquet", "records.parquet/ZJ013.parquet"}
    # The transform writes its staging files in snapshot form: linked as they are, with the bytes
    # publish writes from them when it cannot link.
    schema.write_library_table(staged, records.slice(2), "records")
    third = publish(inputs, libraries)
    assert os.path.samefile(staged, third.path / "records.parquet" / "ZJ013.parquet")
    writer = SnapshotWriter(tmp_path, None)
    write_table(tmp_path / "written.parquet", writer.sorted_parquet(staged, ("record_key",), schema.RECORDS)(), schema.RECORDS, "records")
    writer.close()
    assert (tmp_path / "written.parquet").read_bytes() == staged.read_bytes()
    assert read_manifest(second.path)["counts"]["records"] == read_manifest(first.path)["counts"]["records"] - 1
    assert read_manifest(second.path)["content_hash"] != read_manifest(first.path)["content_hash"]
    assert verify(second.path) == []
    # The parent holds every staged file now (the same inodes): none is hashed again.
    hashed = []
    monkeypatch.setattr(snapshot, "sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    fourth = publish(inputs, libraries)
    assert hashed and not [path for path in hashed if inputs.staging_dir("ZJ013").parent in path.parents]
    assert verify(fourth.path) == []  # and the checksums taken from the parent are the files' own


def _change_set(path: Path) -> set[tuple]:
    return {tuple(r.values()) for r in pq.read_table(path).to_pylist()}


def _restage(settings, library_id: str, edit) -> None:
    staged = settings.staging_dir(library_id) / "records.parquet"
    pq.write_table(edit(pq.read_table(staged)), staged)


def _drop_records(settings, library_id: str, keep) -> None:
    _restage(settings, library_id, lambda table: table.filter(pa.array([keep(k) for k in table.column("record_key").to_pylist()])))


def _reharvested(table: pa.Table) -> pa.Table:
    """As a library's file drop harvested again: every record delivered by a new run, one retitled,
    one given another ISBN."""
    titles, isbns = table.column("title").to_pylist(), table.column("isbn").to_pylist()
    titles[0], isbns[1] = f"{titles[0]} (revised)", ["9787000000001"]
    for name, values in (("title", titles), ("isbn", isbns)):
        field = table.schema.field(name)
        table = table.set_column(table.schema.get_field_index(name), field, pa.array(values, field.type))
    return table.set_column(table.schema.get_field_index("run_id"), table.schema.field("run_id"),
                            pa.array(["20991231T000000Z"] * table.num_rows, pa.string()))


def test_changes_are_against_the_parent_snapshot_not_the_last_dedup_run(inputs):
    libraries = _libraries(inputs)
    dedup(inputs, libraries)  # dedup ran again on unchanged input: its own lineage is now empty
    base = publish(inputs, libraries)
    assert {c for c, *_ in _change_set(base.path / "changes.parquet")} == {"added"}
    # One dedup run between two snapshots: our changes are dedup's lineage.
    _drop_records(inputs, "ZJ001", lambda key: zlib.crc32(key.encode()) % 4 != 0)
    dedup(inputs, libraries)
    one_run = publish(inputs, libraries)
    assert os.path.samefile(one_run.path / "changes.parquet", inputs.dedup_dir / "changes.parquet")  # taken from dedup
    computed = changes.against_parent(duckdb.connect(), one_run.path, base.path)  # what publish would compute
    assert {tuple(r.values()) for r in computed.to_pylist()} == _change_set(one_run.path / "changes.parquet")
    assert {c for c, *_ in _change_set(one_run.path / "changes.parquet")} >= {"deleted", "updated"}
    # Two dedup runs between two snapshots: dedup's lineage covers only the last run.
    _drop_records(inputs, "ZJ002", lambda key: zlib.crc32(key.encode()) % 3 != 0)
    dedup(inputs, libraries)
    _drop_records(inputs, "ZJ003", lambda key: zlib.crc32(key.encode()) % 3 != 0)
    dedup(inputs, libraries)
    two_runs = publish(inputs, libraries)
    ours = _change_set(two_runs.path / "changes.parquet")
    assert not ours <= _change_set(inputs.dedup_dir / "changes.parquet")
    old = {r["record_key"]: r["manifestation_id"] for r in pq.read_table(one_run.path / "record_manifestation.parquet").to_pylist()}
    new = {r["record_key"]: r["manifestation_id"] for r in pq.read_table(two_runs.path / "record_manifestation.parquet").to_pylist()}
    gone, fresh = set(old.values()) - set(new.values()), set(new.values()) - set(old.values())
    assert gone and {old_id for change, _, old_id in ours if change in ("merged", "deleted")} == gone
    assert {mid for change, mid, _ in ours if change in ("added", "split")} == fresh
    for change, mid, old_id in ours:
        if change == "updated":
            assert mid == old_id and mid in set(old.values()) & set(new.values())
        if change == "deleted":
            assert not any(old[k] == old_id and k in new for k in old)


def test_a_gone_id_is_merged_into_the_manifestation_holding_most_of_its_records(tmp_path):
    def snapshot(name, links):
        folder = tmp_path / name
        folder.mkdir()
        pq.write_table(pa.table({"record_key": list(links), "manifestation_id": list(links.values())}), folder / "record_manifestation.parquet")
        pq.write_table(pa.table({"manifestation_id": sorted(set(links.values()))}), folder / "manifestations.parquet")
        return folder

    def merged(links):
        now = snapshot(f"now{len(list(tmp_path.iterdir()))}", links)
        rows = changes.against_parent(duckdb.connect(), now, parent).to_pylist()
        return {r["old_manifestation_id"]: r["manifestation_id"] for r in rows if r["change"] == "merged"}

    parent = snapshot("parent", {"A:1": "M1", "B:1": "M1", "B:2": "M1", "C:1": "M0", "D:1": "M3"})
    assert merged({"A:1": "M9", "B:1": "M2", "B:2": "M2", "C:1": "M9", "D:1": "M3"})["M1"] == "M2"  # two of its records
    # a tie: the manifestation with the smallest record key (as dedup.ids), not the smallest id
    assert merged({"A:1": "M9", "B:1": "M2", "C:1": "M9", "D:1": "M2"})["M1"] == "M9"


def _catalogue_content(path: Path) -> dict:
    """Every table's rows (in a total order), comment and columns, and every macro, of a catalogue."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("select table_name, comment from duckdb_tables() order by all").fetchall()
        content = {name: (comment, con.execute(f"describe {name}").fetchall(), con.execute(f"select * from {name} order by all").fetchall())
                   for name, comment in tables}
        content["macros"] = con.execute("select function_name, macro_definition, comment from duckdb_functions() "
                                         "where function_type like '%macro' and not internal order by all").fetchall()
        return content
    finally:
        con.close()


def _catalogue_built_afresh(snapshot_path: Path, folder: Path) -> dict:
    """The content of a catalogue built afresh from the files of a snapshot (linked into `folder`)."""
    for name in read_manifest(snapshot_path)["files"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(snapshot_path / name, folder / name)
    assert catalogue.build(folder)["copies_in_a_row"] == 0
    return _catalogue_content(folder / CATALOGUE)


def test_a_catalogue_brought_up_to_date_from_the_parents_equals_one_built_afresh(inputs, tmp_path, monkeypatch):
    libraries = _libraries(inputs)
    first = publish(inputs, libraries)
    assert read_manifest(first.path)["catalogue"]["copies_in_a_row"] == 0  # no parent: built afresh
    _drop_records(inputs, "ZJ013", lambda key: zlib.crc32(key.encode()) % 3 != 0)
    _restage(inputs, "ZJ026", _reharvested)
    dedup(inputs, libraries)
    compared = []  # whether each keyed table's changed rows came from dedup's lineage
    find = catalogue._find_changed_rows
    monkeypatch.setattr(catalogue, "_find_changed_rows", lambda con, table, keys: (compared.append((table, keys is not None)), find(con, table, keys))[1])
    second = publish(inputs, libraries)
    assert ("record_manifestation", True) in compared and ("manifestations", True) in compared
    manifest = read_manifest(second.path)
    assert manifest["catalogue"] == {"sql": catalogue.sql_fingerprint(), "copies_in_a_row": 1}
    assert "records.parquet/ZJ013.parquet" not in second.reused and "records.parquet/ZJ001.parquet" in second.reused
    assert manifest["counts"]["manifestations"] != read_manifest(first.path)["counts"]["manifestations"]
    assert _catalogue_content(second.path / "catalogue.duckdb") == _catalogue_built_afresh(second.path, tmp_path / "fresh")
    # Copies do not go on for ever: deleted rows leave gaps in the file.
    monkeypatch.setattr(catalogue, "FRESH_EVERY", 2)
    _drop_records(inputs, "ZJ014", lambda key: zlib.crc32(key.encode()) % 3 != 0)
    assert read_manifest(publish(inputs, libraries).path)["catalogue"]["copies_in_a_row"] == 0


def _distribution_afresh(snapshot_path: Path, target: Path) -> bytes:
    """The snapshot's holdings distribution computed from every record, written as publish writes it."""
    con = duckdb.connect()
    con.execute(f"set file_search_path = '{snapshot_path}'")
    query = snapshot._distribution_sql("read_parquet('holdings.parquet/*.parquet')", "read_parquet('record_manifestation.parquet')",
                                       "read_parquet('libraries.parquet')")
    write_table(target, con.sql(query + " order by manifestation_id, library_id").to_arrow_table(),
                schema.HOLDINGS_DISTRIBUTION, "holdings_distribution")
    con.close()
    return target.read_bytes()


def _recopied(settings, library_id: str) -> None:
    """A library's holdings with other copies for some records (its records as they were)."""
    staged = settings.staging_dir(library_id) / "holdings.parquet"
    table = pq.read_table(staged)
    copies = [(c or 0) + 3 if n % 5 == 0 else c for n, c in enumerate(table.column("copies").to_pylist())]
    field = table.schema.field("copies")
    schema.write_library_table(staged, table.set_column(table.schema.get_field_index("copies"), field, pa.array(copies, field.type)),
                               "holdings")


@pytest.mark.parametrize("moved_library", [False, True])
def test_a_holdings_distribution_brought_up_to_date_equals_one_computed_afresh(inputs, tmp_path, monkeypatch, moved_library):
    libraries = _libraries(inputs)
    publish(inputs, libraries)
    _drop_records(inputs, "ZJ013", lambda key: zlib.crc32(key.encode()) % 3 != 0)
    _restage(inputs, "ZJ026", _reharvested)
    _recopied(inputs, "ZJ003")
    dedup(inputs, libraries)
    if moved_library:  # a library in another city: every row of it changes, not only those of changed records
        rows = snapshot._library_rows
        monkeypatch.setattr(snapshot, "_library_rows", lambda *args: (lambda t: t.set_column(
            t.schema.get_field_index("city"), t.schema.field("city"),
            pa.array(["湖州" if lib == "ZJ004" else city for lib, city in zip(t.column("library_id").to_pylist(), t.column("city").to_pylist())])))(rows(*args)))
    compared = []
    find = catalogue._find_changed_rows
    monkeypatch.setattr(catalogue, "_find_changed_rows", lambda con, table, keys: (compared.append((table, keys is not None)), find(con, table, keys))[1])
    second = publish(inputs, libraries)
    assert ("holdings_distribution", not moved_library) in compared
    assert (second.path / "holdings_distribution.parquet").read_bytes() == _distribution_afresh(second.path, tmp_path / "afresh.parquet")
    assert not (second.path / snapshot.TOUCHED_MANIFESTATIONS).exists()
    assert _catalogue_content(second.path / "catalogue.duckdb") == _catalogue_built_afresh(second.path, tmp_path / "fresh")


@pytest.mark.parametrize("case", ["once", "twice", "restaged", "recopied", "recopied_elsewhere", "recopied_both"])
def test_a_file_drop_harvested_again_has_only_the_records_read_replaced(inputs, tmp_path, monkeypatch, case):
    """The transform lists the records of a new drop it read (new or changed); the catalogue
    replaces only their rows and holdings, the others take the new run id, as a fresh build holds
    them. Two transforms since the parent snapshot (the list of the second misses the first's
    changes), or a staged file written since by something else: every row is compared instead;
    its holdings file written since, or another library's holdings changed alone: the holdings of
    the libraries are replaced whole."""
    libraries = _libraries(inputs)
    publish(inputs, libraries)
    library = next(lib for lib in libraries if lib.id == "ZJ014")
    drop = inputs.sources_path.parent / "demo" / "drops" / "ZJ014" / "catalogue.mrc"
    rng = random.Random(1)
    for round in range(2 if case == "twice" else 1):
        chunks = [chunk for _, chunk in split_records(drop.read_bytes())]
        drop.write_bytes(b"".join(_modified(chunk, rng, datetime(2027, 1, 1 + round)) if n % 7 == round and chunk.endswith(b"\x1d") else chunk
                                  for n, chunk in enumerate(chunks) if n % 11 != 5 + round))
        harvest_library(inputs, library, f"2099123{round}T000000Z", progress=lambda _: None)
        summary = transform(inputs, library)
        read = pq.read_table(inputs.staging_dir("ZJ014") / RECORDS_READ).column("record_key").to_pylist()
        assert 0 < len(read) == summary.records - summary.reused < summary.records
    # another library's drop only lost records: none was read
    shrunk = next(lib for lib in libraries if lib.id == "ZJ013")
    drop = inputs.sources_path.parent / "demo" / "drops" / "ZJ013" / "catalogue.mrc"
    drop.write_bytes(b"".join(chunk for n, (_, chunk) in enumerate(split_records(drop.read_bytes())) if n % 5 != 2))
    harvest_library(inputs, shrunk, "20991231T000000Z", progress=lambda _: None)
    assert transform(inputs, shrunk).reused > 0 and pq.read_table(inputs.staging_dir("ZJ013") / RECORDS_READ).num_rows == 0
    if case == "restaged":
        _restage(inputs, "ZJ014", _reharvested)
    for library_id, cases in (("ZJ014", ("recopied", "recopied_both")), ("ZJ004", ("recopied_elsewhere", "recopied_both"))):
        if case in cases:
            _recopied(inputs, library_id)
    dedup(inputs, libraries)
    used = []
    replace = catalogue._replace_changed_library_rows
    monkeypatch.setattr(catalogue, "_replace_changed_library_rows",
                        lambda con, table, names, files, keys: (used.append(keys is not None), replace(con, table, names, files, keys))[1])
    lists = []
    records_read = snapshot._records_read

    def listed(*args):
        keys = records_read(*args)
        lists.append(sorted(keys))
        return keys

    monkeypatch.setattr(snapshot, "_records_read", listed)
    second = publish(inputs, libraries)
    assert used == [case not in ("twice", "restaged")]
    assert lists == [{"once": ["holdings", "records"], "twice": [], "restaged": []}.get(case, ["records"])]
    assert _catalogue_content(second.path / "catalogue.duckdb") == _catalogue_built_afresh(second.path, tmp_path / "fresh")


def test_a_parent_catalogue_of_other_columns_has_its_tables_loaded_again(inputs, tmp_path):
    libraries = _libraries(inputs)
    first = publish(inputs, libraries)
    parent = duckdb.connect(str(first.path / "catalogue.duckdb"))
    parent.execute("alter table manifestations drop column place; delete from search_index")  # as an older version wrote it
    parent.close()
    _drop_records(inputs, "ZJ013", lambda key: zlib.crc32(key.encode()) % 3 != 0)
    dedup(inputs, libraries)
    second = publish(inputs, libraries)
    assert read_manifest(second.path)["catalogue"]["copies_in_a_row"] == 1
    assert _catalogue_content(second.path / "catalogue.duckdb") == _catalogue_built_afresh(second.path, tmp_path / "fresh")


def test_build_does_not_switch_current_until_promoted(inputs):
    libraries = _libraries(inputs)
    first = publish(inputs, libraries)
    built = build_snapshot(inputs, libraries)
    assert inputs.current_snapshot.resolve() == first.path and (built.path / "manifest.json").is_file()
    assert read_manifest(built.path)["parent"] == first.snapshot_id
    promote(inputs, built.snapshot_id)
    assert inputs.current_snapshot.resolve() == built.path
    with pytest.raises(FileNotFoundError):
        promote(inputs, "no-such-snapshot")


def test_retention_keeps_current_the_newest_and_what_readers_hold(inputs, monkeypatch):
    libraries = _libraries(inputs)
    ids = [publish(inputs, libraries, keep=10).snapshot_id for _ in range(3)]
    with locks.reading(inputs, ids[0]):  # a reader holds the oldest
        newest = publish(inputs, libraries, keep=2).snapshot_id
        assert retention.snapshot_ids(inputs.published_dir) == [ids[0], ids[2], newest]
    monkeypatch.setenv("UNIONCAT_KEEP_SNAPSHOTS", "2")
    unpromoted = build_snapshot(inputs, libraries).snapshot_id  # newer than current: it counts as one of the newest
    pruned = promote(inputs, newest)
    assert pruned == [ids[0], ids[2]] and retention.snapshot_ids(inputs.published_dir) == [newest, unpromoted]
    assert inputs.current_snapshot.resolve().name == newest
    assert not list(inputs.published_dir.glob(".pruning-*"))
    with pytest.raises(locks.SnapshotMissing):
        with locks.reading(inputs, ids[0]):
            pass
    common = ["--sources", str(inputs.sources_path), "--data-dir", str(inputs.data_dir)]
    assert main(["publish", "--keep", "1", *common]) == 0
    assert retention.snapshot_ids(inputs.published_dir) == [inputs.current_snapshot.resolve().name]


def test_a_snapshot_id_is_never_given_twice_even_after_a_prune_in_the_same_second(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    import warehouse.snapshot as snapshot

    class Clock:
        now_at = datetime(2026, 12, 4, 22, 25, 19, tzinfo=timezone.utc)

        @classmethod
        def now(cls, tz=None):
            return cls.now_at

    monkeypatch.setattr(snapshot, "datetime", Clock)
    for name in ("20261204T222519Z", "20261204T222519Z-3", ".pruning-20261204T222519Z-4", "current"):
        (tmp_path / name).mkdir()  # -2 was pruned, -4 is being pruned
    assert snapshot._new_snapshot_id(tmp_path) == "20261204T222519Z-5"
    Clock.now_at = datetime(2026, 12, 4, 22, 25, 20, tzinfo=timezone.utc)
    assert snapshot._new_snapshot_id(tmp_path) == "20261204T222520Z"
    Clock.now_at = datetime(2026, 12, 4, 22, 25, 10, tzinfo=timezone.utc)  # the clock went back
    assert snapshot._new_snapshot_id(tmp_path) == "20261204T222519Z-5"


def test_keep_count_reads_the_environment(monkeypatch):
    monkeypatch.delenv("UNIONCAT_KEEP_SNAPSHOTS", raising=False)
    assert retention.keep_count() == retention.DEFAULT_KEEP
    monkeypatch.setenv("UNIONCAT_KEEP_SNAPSHOTS", "3")
    assert retention.keep_count() == 3 and retention.keep_count(7) == 7 and retention.keep_count(0) == 1


def test_per_library_files_read_as_one_table(demo):
    snapshot = demo.current_snapshot.resolve()
    via_arrow = pq.read_table(snapshot / "records.parquet", columns=["record_key"]).column("record_key")
    via_duckdb = duckdb.sql(f"select record_key from read_parquet('{snapshot}/records.parquet/*.parquet')").fetchall()
    assert sorted(via_arrow.to_pylist()) == sorted(k for (k,) in via_duckdb)
    assert pc.count_distinct(via_arrow).as_py() == len(via_arrow)
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert os.path.samefile(demo.current_snapshot, demo.published_dir / manifest["snapshot_id"])


def test_publish_from_the_command_line_stops_at_the_quality_gate(inputs, capsys):
    """`unioncat publish` (and `run`) apply the build DAG's gate: a catalogue that lost most of
    its records is built but not made current; --no-checks publishes it anyway."""
    common = ["--sources", str(inputs.sources_path), "--data-dir", str(inputs.data_dir)]
    assert main(["publish", *common]) == 0
    before = inputs.current_snapshot.resolve()
    assert "ok   row_counts: first snapshot" in capsys.readouterr().out
    for library in ("ZJ001", "ZJ002", "ZJ003"):  # the province library and two cities: most of the catalogue
        staged = inputs.staging_dir(library) / "records.parquet"
        pq.write_table(pq.read_table(staged).slice(0, 0), staged)
    dedup(inputs, _libraries(inputs))
    assert main(["publish", *common]) == 1
    err = capsys.readouterr().err
    assert "FAIL row_counts.records" in err and "published/current not switched" in err
    assert inputs.current_snapshot.resolve() == before
    assert main(["publish", "--no-checks", *common]) == 0
    assert inputs.current_snapshot.resolve() != before
