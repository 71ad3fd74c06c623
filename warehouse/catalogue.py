"""`catalogue.duckdb`: a snapshot's tables in one DuckDB file, with the figures, search index
and lookups of `sql/*.sql` (run in name order).

Built afresh, every table loaded from the snapshot's Parquet files; or, when the parent
snapshot's catalogue was built by the same SQL and DuckDB, as a copy of the parent's brought
up to date. At 11M records a fresh build loads every record again; a copy changes only:
- the rows of a base table whose snapshot file was rewritten: a changed library's holdings and
  quarantine are deleted and inserted again, and its records compared by key: only those new,
  changed or gone are inserted or deleted, and those changed only in the run that delivered
  them get the new run id (a re-harvested file drop delivers every record anew, most of them
  as they were); a table of keyed rows written whole
  (`KEYED_TABLES`: dedup's, the holdings distribution) loses the rows the file no longer has
  and gains the rows it has anew, compared whole (most rows of a run are the previous run's)
  or, for `record_manifestation` and `manifestations`, as dedup's lineage lists them, and for
  the holdings distribution, by the manifestations whose rows publish computed again;
- the derived tables a copy keeps (`KEPT_DERIVED`): the `search_index` terms of the
  manifestations whose row changed, the `isbn_index` rows of the manifestations whose records
  changed or moved, the `library_pairs` counts of the manifestations whose holders changed;
then the scripts run as in a fresh build: they create the base tables and the kept derived
tables only when absent, and replace every other derived table and macro. The result holds the
same rows as a fresh build; only the order of rows inside a table may differ.

Deleted rows leave gaps in a DuckDB file, so after `FRESH_EVERY` copies in a row the next
catalogue is built afresh.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import duckdb

from unioncat.settings import REPO_ROOT, duckdb_config

SQL_DIR = REPO_ROOT / "sql"
CATALOGUE = "catalogue.duckdb"
BASE_TABLES = "010_tables.sql"  # creates each base table when absent
FRESH_EVERY = 8
# Tables written whole by each snapshot, with the columns that identify a row.
KEYED_TABLES = {"record_manifestation": ("record_key",), "manifestations": ("manifestation_id",), "works": ("work_id",),
                "holdings_distribution": ("manifestation_id", "library_id")}
# Per-library tables whose rows have a key, and the column that says which run delivered a row.
KEYED_LIBRARY_TABLES = {"records": ("record_key", "run_id")}
# Derived tables a copy keeps and brings up to date (the scripts create them only when absent),
# with the base tables they are made of: built again when one of those is reloaded whole.
KEPT_DERIVED = {"search_index": ("manifestations",), "isbn_index": ("records", "record_manifestation"),
                "library_pairs": ("holdings_distribution",)}


def sql_fingerprint() -> str:
    """Changes with any script or the DuckDB version: a parent's catalogue is copied only when equal."""
    digest = hashlib.sha256(duckdb.__version__.encode())
    for script in sorted(SQL_DIR.glob("*.sql")):
        digest.update(script.name.encode() + b"\0" + script.read_bytes())
    return digest.hexdigest()[:16]


def build(snapshot_dir: Path, parent: Path | None = None, parent_catalogue: dict | None = None,
          changed_files: list[str] = (), removed_files: list[str] = (), changed_keys: dict[str, str] | None = None) -> dict:
    """Build `snapshot_dir/catalogue.duckdb`. With `parent` (its manifest's `catalogue` entry in
    `parent_catalogue`), copy the parent's and apply the snapshot files written anew
    (`changed_files`) or gone (`removed_files`), names relative to the snapshot; `changed_keys`:
    keyed table → a SQL relation (paths relative to the snapshot) of the keys of the only rows
    its snapshot file changed from the parent's (dedup's lineage), which spares comparing the
    two. Returns this catalogue's manifest entry: the SQL fingerprint and how many copies in a
    row led to it."""
    path = snapshot_dir / CATALOGUE
    path.unlink(missing_ok=True)
    fingerprint = sql_fingerprint()
    copies = _copies_so_far(parent, parent_catalogue, fingerprint)
    if copies is not None:
        shutil.copyfile(parent / CATALOGUE, path)
        os.chmod(path, 0o644)
    # Row order inside a table means nothing to SQL; not keeping it loads the tables faster.
    con = duckdb.connect(str(path), config=duckdb_config(snapshot_dir.parent / ".spill", preserve_insertion_order=False))
    try:
        con.execute("set enable_progress_bar = false")
        con.execute(f"set file_search_path = '{snapshot_dir}'")
        if copies is not None:
            _bring_up_to_date(con, changed_files, removed_files, changed_keys or {})
        for script in sorted(SQL_DIR.glob("*.sql")):
            con.execute(script.read_text(encoding="utf-8"))
        con.execute("checkpoint")
    finally:
        con.close()
    return {"sql": fingerprint, "copies_in_a_row": 0 if copies is None else copies + 1}


def _copies_so_far(parent: Path | None, entry: dict | None, fingerprint: str) -> int | None:
    """How many copies in a row led to the parent's catalogue, or None to build afresh."""
    if parent is None or not entry or entry.get("sql") != fingerprint or not (parent / CATALOGUE).is_file():
        return None
    copies = int(entry.get("copies_in_a_row", 0))
    return copies if copies + 1 < FRESH_EVERY else None


def _table(file_name: str) -> tuple[str, str | None]:
    """`records.parquet/ZJ001.parquet` → ('records', 'ZJ001'); `works.parquet` → ('works', None)."""
    first, _, rest = file_name.partition("/")
    return first.removesuffix(".parquet"), (rest.removesuffix(".parquet") or None)


def _bring_up_to_date(con: duckdb.DuckDBPyConnection, changed_files: list[str], removed_files: list[str],
                      changed_keys: dict[str, str]) -> None:
    tables = {name for (name,) in con.execute("select table_name from duckdb_tables() where schema_name = 'main'").fetchall()}
    deleted: dict[str, list[str]] = {}  # per-library table → libraries whose rows go
    inserted: dict[str, list[str]] = {}  # per-library table → files whose rows come in
    dropped: set[str] = set()  # whole-table files rewritten: loaded again by sql/010_tables.sql
    updated: set[str] = set()  # keyed whole-table files rewritten: their changed rows replaced
    for name in [*changed_files, *removed_files]:
        table, library_id = _table(name)
        if table not in tables:
            continue
        if library_id is None:
            (updated if name in changed_files and _same_columns(con, table, name) else dropped).add(table)
            continue
        deleted.setdefault(table, []).append(library_id)
        if name in changed_files:
            inserted.setdefault(table, []).append(name)
    # the scripts build a kept derived table again when one of its base tables is reloaded
    kept = {table for table, sources in KEPT_DERIVED.items() if table in tables and not dropped & set(sources)}
    con.execute("begin")
    for table in dropped | (KEPT_DERIVED.keys() & tables) - kept:
        con.execute(f"drop table {table}")
    con.execute("create temp table touched_records (record_key varchar)")
    for table, libraries in sorted(deleted.items(), key=lambda item: item[0] not in KEYED_LIBRARY_TABLES):
        if table in KEYED_LIBRARY_TABLES:
            _replace_changed_library_rows(con, table, libraries, inserted.pop(table, []), changed_keys.get(table))
            con.execute(f"insert into touched_records select {KEYED_LIBRARY_TABLES[table][0]} from {table}_gone")
        elif table in changed_keys:  # holdings, with the records' list (warehouse.snapshot._records_read)
            # the rows of the records replaced (records_gone), no others: the transform kept the rest
            con.execute(f"delete from {table} where record_key in (select record_key from records_gone)")
            files = inserted.pop(table, [])
            if files:
                con.execute(f"insert into {table} by name select {', '.join(_columns(con, table))} from read_parquet(?::varchar[]) n "
                            f"semi join {changed_keys[table]} r using (record_key)", [files])
        else:
            con.execute(f"delete from {table} where library_id in (select unnest(?::varchar[]))", [libraries])
    for table, files in inserted.items():
        con.execute(f"insert into {table} by name select {', '.join(_columns(con, table))} from read_parquet(?::varchar[])", [files])
    for table in updated:
        _find_changed_rows(con, table, changed_keys.get(table))
    if "record_manifestation" in updated:
        con.execute("insert into touched_records select record_key from record_manifestation_gone")
    _touched_manifestations(con, kept, updated, before=True)
    for table in updated:
        _apply_changed_rows(con, table)
    _touched_manifestations(con, kept, updated, before=False)
    con.execute((SQL_DIR / BASE_TABLES).read_text(encoding="utf-8"))
    _update_kept_derived(con, kept)
    if "search_index" in kept and "manifestations" in updated:
        con.execute("""
            delete from search_index where manifestation_id in (select manifestation_id from manifestations_gone);
            insert into search_index
            select distinct unnest(manifestation_terms(title, subtitle, part_name, authors, title_key)) as term, manifestation_id
            from manifestations_fresh
            order by term, manifestation_id;
        """)
    con.execute("commit")


def _touched_manifestations(con: duckdb.DuckDBPyConnection, kept: set[str], updated: set[str], *, before: bool) -> None:
    """Called before the changed rows of the keyed tables are replaced and after (a record that
    moved touches both its manifestations): `isbn_touched` gains the manifestations the
    touched records belong to, and `pair_changes` the library pairs made by the manifestations
    whose holders changed, taken back before and counted after."""
    con.execute("""
        create temp table if not exists isbn_touched (manifestation_id varchar);
        create temp table if not exists pair_changes (library_a varchar, library_b varchar, shared bigint);
    """)
    if "isbn_index" in kept:
        con.execute("insert into isbn_touched select manifestation_id from record_manifestation semi join touched_records using (record_key)")
    if "library_pairs" in kept and "holdings_distribution" in updated:
        con.execute(f"""
            insert into pair_changes
            with holders as (
                select manifestation_id, library_id from holdings_distribution
                where manifestation_id in (select manifestation_id from holdings_distribution_gone
                                           union select manifestation_id from holdings_distribution_fresh)
            )
            select a.library_id, b.library_id, {-1 if before else 1} * count(*)
            from holders a join holders b on a.manifestation_id = b.manifestation_id and a.library_id <> b.library_id
            group by all
        """)


def _update_kept_derived(con: duckdb.DuckDBPyConnection, kept: set[str]) -> None:
    """Bring the derived tables a copy keeps (`KEPT_DERIVED`) up to date with the rows replaced."""
    if "isbn_index" in kept:
        con.execute("""
            delete from isbn_index where manifestation_id in (select manifestation_id from isbn_touched);
            insert into isbn_index
            select distinct unnest(r.isbn) as isbn, rm.manifestation_id
            from records r join record_manifestation rm using (record_key)
            where rm.manifestation_id in (select manifestation_id from isbn_touched)
            order by isbn, manifestation_id;
        """)
    if "library_pairs" in kept:
        con.execute("""
            create temp table pair_totals as
            select library_a, library_b, sum(shared) as shared from pair_changes group by all having sum(shared) <> 0;
            update library_pairs p set shared = p.shared + t.shared from pair_totals t
            where p.library_a = t.library_a and p.library_b = t.library_b;
            insert into library_pairs select t.* from pair_totals t anti join library_pairs using (library_a, library_b);
            delete from library_pairs where shared = 0;
        """)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [c for (c,) in con.execute(
        "select column_name from duckdb_columns() where schema_name = 'main' and table_name = ? order by column_index", [table]).fetchall()]


def _same_columns(con: duckdb.DuckDBPyConnection, table: str, file_name: str) -> bool:
    """Whether `table` is keyed and its snapshot file has the columns it has (else it is loaded again)."""
    if table not in KEYED_TABLES:
        return False
    file_columns = [c for (c, *_) in con.execute(f"describe select * from read_parquet('{file_name}')").fetchall()]
    return file_columns == _columns(con, table)


def _find_changed_rows(con: duckdb.DuckDBPyConnection, table: str, changed_keys: str | None) -> None:
    """`{table}_fresh`: the rows of the table's snapshot file that the table lacks or holds
    otherwise, and `{table}_gone`: the keys of the rows the file no longer has as they are
    (`_apply_changed_rows` deletes the second, inserts the first). Given the keys of the rows
    that changed (`changed_keys`; for `holdings_distribution` its manifestations, the first of
    its key columns, whose rows all go and come again), those rows; else found by comparing the
    file and the table (at 11.27M records, timed alone, the changed rows of
    `record_manifestation` were found in 8–12 s, where grouping both sides' whole rows took 20 s
    and loading the table again 12 s)."""
    key_columns = KEYED_TABLES[table]
    if changed_keys is not None:
        con.execute(f"create temp table {table}_gone as select distinct * from {changed_keys}")
        con.execute(f"create temp table {table}_fresh as select n.* from read_parquet('{table}.parquet') n "
                    f"semi join {table}_gone using ({', '.join(_gone_columns(con, table))})")
        return
    keys = ", ".join(key_columns)
    differs = " or ".join(f"n.{c} is distinct from o.{c}" for c in _columns(con, table) if c not in key_columns)
    con.execute(f"""
        create temp table {table}_fresh as
        select n.* from read_parquet('{table}.parquet') n left join {table} o using ({keys})
        where o.{key_columns[0]} is null or {differs};
        create temp table {table}_gone as
        select {keys} from {table} anti join read_parquet('{table}.parquet') using ({keys})
        union all select {keys} from {table}_fresh;
    """)


def _gone_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [c for (c, *_) in con.execute(f"describe {table}_gone").fetchall()]


def _apply_changed_rows(con: duckdb.DuckDBPyConnection, table: str) -> None:
    keys = ", ".join(_gone_columns(con, table))
    con.execute(f"""
        delete from {table} where ({keys}) in (select ({keys}) from {table}_gone);
        insert into {table} by name select * from {table}_fresh;
    """)


def _replace_changed_library_rows(con: duckdb.DuckDBPyConnection, table: str, libraries: list[str], files: list[str],
                                  read: str | None) -> None:
    """The rows of `libraries` in `table` made those of `files` (their snapshot files, none for a
    library gone): rows new or changed but for the run column are inserted, rows gone or changed
    deleted (their keys: `{table}_gone`), and the others only take the new run. The rows new or
    changed are those whose keys the transform read (`read`, a SQL relation, from the files the
    table holds: warehouse.snapshot), else found by comparing every column. (At 11.27M records,
    20 libraries holding 1.7M records re-harvested with 112,700 changed: found in 0.6 s from the
    transform's list against 3.7 s by comparing; the whole replacement 8.1 s by comparing,
    against 11.4 s to delete and insert every row.)"""
    key, run = KEYED_LIBRARY_TABLES[table]
    columns = _columns(con, table)
    source = "read_parquet(?::varchar[])" if files else f"(select * from {table} where false)"
    params = [files] if files else []
    if read is not None:
        con.execute(f"create temp table {table}_new as select {key}, {run} from {source}", params)
        con.execute(f"create temp table {table}_fresh as select {', '.join(columns)} from {source} n semi join {read} r using ({key})", params)
    else:
        same = " and ".join(f"n.{c} is not distinct from o.{c}" for c in columns if c not in (key, run))
        con.execute(f"create temp table {table}_new as select {', '.join(columns)} from {source}", params)
        con.execute(f"""
            create temp table {table}_fresh as
            select n.* from {table}_new n
            left join (select * from {table} where library_id in (select unnest(?::varchar[]))) o using ({key})
            where o.{key} is null or not ({same})
        """, [libraries])
    con.execute(f"""
        create temp table {table}_gone as
        select {key} from {table} where library_id in (select unnest(?::varchar[])) and {key} not in (select {key} from {table}_new)
        union all select {key} from {table}_fresh
    """, [libraries])
    con.execute(f"""
        delete from {table} where {key} in (select {key} from {table}_gone);
        update {table} t set {run} = n.{run} from {table}_new n where t.{key} = n.{key} and t.{run} is distinct from n.{run};
        insert into {table} by name select * from {table}_fresh;
        drop table {table}_new;
    """)
