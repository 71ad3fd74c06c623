"""Publish an immutable snapshot: Parquet files + manifest + DuckDB catalogue.

The snapshot is built in a hidden temp folder under `published/`, renamed to
`published/<snapshot_id>/` when complete, and only then is the
`published/current` symlink switched (an atomic rename). A reader therefore
sees the previous snapshot or the new one, never a half-written one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from harvesters import state as harvest_state
from unioncat import atomic, schema
from unioncat.registry import Library
from unioncat.settings import REPO_ROOT, Settings

SQL_DIR = REPO_ROOT / "sql"
CATALOGUE = "catalogue.duckdb"
MANIFEST = "manifest.json"
DATA_FILES = (
    "libraries.parquet",
    "records.parquet",
    "holdings.parquet",
    "quarantine.parquet",
    "manifestations.parquet",
    "record_manifestation.parquet",
    "holdings_distribution.parquet",
    "changes.parquet",
    "works.parquet",
)


@dataclass(frozen=True)
class PublishSummary:
    snapshot_id: str
    path: Path
    counts: dict

    def line(self) -> str:
        counts = ", ".join(f"{k} {v:,}" for k, v in self.counts.items())
        return f"published {self.snapshot_id}: {counts}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _new_snapshot_id(published: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    snapshot_id, n = stamp, 1
    while (published / snapshot_id).exists():
        n += 1
        snapshot_id = f"{stamp}-{n}"
    return snapshot_id


def _write(con: duckdb.DuckDBPyConnection, query: str, params: list, target: Path, table_schema: pa.Schema) -> int:
    table = con.sql(query, params=params).to_arrow_table()
    table = table.select(table_schema.names).cast(table_schema)
    atomic.write_parquet(target, table.replace_schema_metadata({"unioncat.schema_version": schema.SCHEMA_VERSION}))
    return table.num_rows


def _staged(settings: Settings, libraries: list[Library], name: str) -> list[str]:
    return [str(p) for p in (settings.staging_dir(lib.id) / name for lib in libraries) if p.exists()]


def _library_rows(settings: Settings, libraries: list[Library]) -> pa.Table:
    rows = [
        dict(
            library_id=lib.id, name=lib.name, city=lib.city, level=lib.level, protocol=lib.protocol,
            run_id=harvest_state.load(settings, lib.id).get("last_success", {}).get("run_id"),
        )
        for lib in libraries
    ]
    return pa.Table.from_pylist(rows, schema=schema.LIBRARIES)


def _write_staged(con, settings, libraries, name: str, target: Path, table_schema: pa.Schema, order: str) -> int:
    files = _staged(settings, libraries, name)
    if not files:
        atomic.write_parquet(target, table_schema.empty_table())
        return 0
    return _write(con, f"select * from read_parquet(?, union_by_name=true) order by {order}", [files], target, table_schema)


def build_catalogue(snapshot_dir: Path) -> None:
    """Run `sql/*.sql` in order on a fresh DuckDB file inside the snapshot."""
    path = snapshot_dir / CATALOGUE
    con = duckdb.connect(str(path))
    try:
        con.execute(f"set file_search_path = '{snapshot_dir}'")
        for script in sorted(SQL_DIR.glob("*.sql")):
            con.execute(script.read_text(encoding="utf-8"))
        con.execute("checkpoint")
    finally:
        con.close()


def publish(settings: Settings, libraries: list[Library]) -> PublishSummary:
    published = settings.published_dir
    published.mkdir(parents=True, exist_ok=True)
    parent = settings.current_snapshot.resolve() if settings.current_snapshot.exists() else None
    snapshot_id = _new_snapshot_id(published)
    build = published / f".building-{snapshot_id}"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    con = duckdb.connect()
    counts = {"libraries": len(libraries)}
    atomic.write_parquet(build / "libraries.parquet", _library_rows(settings, libraries))
    counts["records"] = _write_staged(con, settings, libraries, "records.parquet", build / "records.parquet", schema.RECORDS, "record_key")
    counts["holdings"] = _write_staged(con, settings, libraries, "holdings.parquet", build / "holdings.parquet", schema.HOLDINGS, "record_key")
    counts["quarantine"] = _write_staged(con, settings, libraries, "quarantine.parquet", build / "quarantine.parquet", schema.QUARANTINE, "library_id, source, position")
    # Dedup's outputs, with the lineage (added, updated, merged, split, deleted) against its previous run.
    for name, table_schema in (
        ("manifestations.parquet", schema.MANIFESTATIONS),
        ("record_manifestation.parquet", schema.RECORD_MANIFESTATION),
        ("works.parquet", schema.WORKS),
        ("changes.parquet", schema.CHANGES),
    ):
        counts[name.removesuffix(".parquet")] = _write(con, "select * from read_parquet(?)", [str(settings.dedup_dir / name)], build / name, table_schema)
    counts["holdings_distribution"] = _write(
        con,
        """
        select rm.manifestation_id, rm.library_id, l.city, l.level,
               greatest(coalesce(sum(h.copies), 0), count(distinct rm.record_key))::integer as copies
        from read_parquet(?) rm
        join read_parquet(?) l using (library_id)
        left join read_parquet(?) h using (record_key)
        group by all order by 1, 2
        """,
        [str(build / "record_manifestation.parquet"), str(build / "libraries.parquet"), str(build / "holdings.parquet")],
        build / "holdings_distribution.parquet",
        schema.HOLDINGS_DISTRIBUTION,
    )
    con.close()
    build_catalogue(build)
    checksums = {name: _sha256(build / name) for name in DATA_FILES}
    atomic.write_json(
        build / MANIFEST,
        {
            "snapshot_id": snapshot_id,
            "parent": parent.name if parent else None,
            "created_at": harvest_state.now_iso(),
            "schema_version": schema.SCHEMA_VERSION,
            "counts": counts,
            "checksums": {**checksums, CATALOGUE: _sha256(build / CATALOGUE)},
            "content_hash": hashlib.sha256("".join(checksums[n] for n in DATA_FILES).encode()).hexdigest(),
            "library_runs": {lib.id: harvest_state.load(settings, lib.id).get("last_success", {}).get("run_id") for lib in libraries},
        },
    )
    final = published / snapshot_id
    os.replace(build, final)
    switch_current(settings, snapshot_id)
    return PublishSummary(snapshot_id, final, counts)


def switch_current(settings: Settings, snapshot_id: str) -> None:
    link = settings.current_snapshot
    temp = link.with_name(f".current-{snapshot_id}")
    temp.unlink(missing_ok=True)
    os.symlink(snapshot_id, temp)
    os.replace(temp, link)
