"""Read a published snapshot for comparison, whatever its layout: each table may be one Parquet
file (`records.parquet`) or a folder of them (`records.parquet/K01.parquet`, `records/...`),
read through DuckDB `read_parquet` on a glob. Snapshot ids, run ids and timestamps are left
out: two runs over the same input publish equal contents under different names."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

COMPARED_TABLES = ("records", "holdings", "quarantine", "manifestations", "record_manifestation", "works",
                   "holdings_distribution", "libraries")
RUN_SPECIFIC_COLUMNS = ("run_id", "snapshot_id", "created_at")
# What `search`, `find_isbn` and the distribution queries read in catalogue.duckdb, besides the
# tables it loads from the Parquet files above.
CATALOGUE_TABLES = ("search_index", "isbn_index", "library_stats", "library_pairs", "library_overlap", "city_coverage", "class_coverage")


def table_glob(snapshot: Path, table: str) -> str | None:
    for candidate in (snapshot / f"{table}.parquet", snapshot / table):
        if candidate.is_dir():
            return str(candidate / "**" / "*.parquet")
        if candidate.is_file():
            return str(candidate)
    return None


def table_rows(snapshot: Path, table: str) -> list[tuple]:
    """The table's rows, sorted, without run-specific columns; a quarantined record's source path
    keeps only its file name (the landing path holds the run id)."""
    pattern = table_glob(snapshot, table)
    assert pattern is not None, f"{snapshot} has no {table} table"
    con = duckdb.connect()
    try:
        columns = [name for name, *_ in con.execute("describe select * from read_parquet(?, union_by_name=true)", [pattern]).fetchall()]
        kept = [f'"{c}"' if c != "source" else "regexp_replace(source, '^.*/', '') as source"
                for c in columns if c not in RUN_SPECIFIC_COLUMNS]
        return con.execute(f"select {', '.join(kept)} from read_parquet(?, union_by_name=true) order by all", [pattern]).fetchall()
    finally:
        con.close()


def catalogue_rows(snapshot: Path, table: str) -> list[tuple]:
    """A table of the snapshot's catalogue.duckdb, sorted, without run-specific columns."""
    con = duckdb.connect(str(snapshot / "catalogue.duckdb"), read_only=True)
    try:
        columns = ", ".join(f'"{name}"' for name, *_ in con.execute(f"describe {table}").fetchall() if name not in RUN_SPECIFIC_COLUMNS)
        return con.execute(f"select {columns} from {table} order by all").fetchall()
    finally:
        con.close()


def snapshot_contents(snapshot: Path) -> dict:
    """Manifest counts, every compared table's sorted rows and the catalogue's own tables."""
    manifest = json.loads((snapshot / "manifest.json").read_text())
    return {"counts": manifest["counts"], **{table: table_rows(snapshot, table) for table in COMPARED_TABLES},
            **{f"catalogue.duckdb {table}": catalogue_rows(snapshot, table) for table in CATALOGUE_TABLES}}


def assert_same_catalogue(published: Path, expected: Path) -> None:
    got, want = snapshot_contents(published), snapshot_contents(expected)
    for key in want:
        assert got[key] == want[key], f"{key} differs from the uninterrupted run's"
