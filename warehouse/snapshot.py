"""Publish immutable snapshots: build one, promote it to `current`, prune old ones.

    build_snapshot(settings, libraries)  →  published/<id>/            (complete, read-only)
    promote(settings, id)                →  published/current → <id>   (atomic), then retention
    publish(settings, libraries)         =  build_snapshot + promote

A quality gate (warehouse.checks) sits between the two halves: a snapshot that fails it stays
in `published/<id>/` for inspection and never becomes `current`.

Layout of `published/<id>/` (ARCHITECTURE.md "Published snapshot"):
- `manifest.json`: id, parent, created_at, schema version, row counts, sha256 of every file,
  what each file was built from and its version (inode, size, time) when built (`files`),
  `content_hash`, per-library run ids;
- `records.parquet/`, `holdings.parquet/`, `quarantine.parquet/`: one `<library_id>.parquet`
  per library (pyarrow `pq.read_table(dir)`, DuckDB `read_parquet('records.parquet/*.parquet')`);
- `libraries.parquet`, `manifestations.parquet`, `record_manifestation.parquet`, `works.parquet`,
  `holdings_distribution.parquet`, `changes.parquet` (against the parent snapshot, see
  warehouse.changes);
- `catalogue.duckdb` (warehouse.catalogue: built by `sql/*.sql`, or the parent's brought up to
  date), `report.html` (warehouse.report), `reader.lock`.

Incremental: each data file records a fingerprint of its inputs (the staging or dedup file's
sha256, the schema and writer versions). When the parent snapshot has the same file with the
same fingerprint, the file is hard-linked from the parent instead of written: an unchanged
library's records, holdings and quarantine are neither re-read nor rewritten, and cost no disk.
Per-library files are what makes that possible (one changed library no longer rewrites the
province); hard links are safe because published files are never modified (mode 0444). A file
already in snapshot form is linked too: a changed library's staging files (the transform writes
them so, schema.LIBRARY_TABLES) and dedup's tables. The holdings distribution, written again
whenever a record or a holding changed, keeps the parent's rows of the manifestations nothing
touched (`_write_holdings_distribution`); the catalogue is the parent's brought up to date
(warehouse.catalogue) with the rows dedup's lineage and the transform's lists name.

Deterministic: every file is written from rows in a total order with the same writer options,
so the same inputs give the same bytes. `content_hash` covers the catalogue's content only:
the checksums of the data files except `changes.parquet` (lineage, relative to the parent) and
`libraries.parquet` (its run ids change with every harvest even when nothing new arrived),
for which the libraries' descriptive columns count instead. `catalogue.duckdb` and
`report.html` are derived and not byte-stable, so they are checksummed but not hashed.

Crash safety: a snapshot is built in `published/.building-<id>/`, frozen, then renamed to
`published/<id>/`; `current` is a symlink replaced atomically. One builder at a time holds
`published/.publish.lock`; it removes what a killed builder left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.features import sql_strings
from dedup.stage import RECORD_CHANGES
from dedup.stage import RUN_TAG as DEDUP_RUN_TAG
from harvesters import state as harvest_state
from transforms.stage import KEPT_TABLES, RECORDS_READ, read_summary
from unioncat import atomic, schema
from unioncat.atomic import file_version, sha256_file
from unioncat.registry import Library
from unioncat.schema import LIBRARY_TABLES, ROW_GROUP_ROWS, write_table
from unioncat.settings import Settings, duckdb_config
from warehouse import catalogue, changes, locks, retention
from warehouse.catalogue import CATALOGUE

MANIFEST = "manifest.json"
# The manifestations whose holdings distribution was computed again, for the catalogue; not a snapshot file.
TOUCHED_MANIFESTATIONS = ".touched_manifestations.parquet"
REPORT = "report.html"
# Bump when the layout or writer options change: files built by another writer are not reused.
WRITER_VERSION = "4"

# Dedup's outputs, sorted by the column lookups filter on (dedup writes them so, with
# schema.write_table: they are linked as they are).
DEDUP_TABLES = {
    "manifestations": (schema.MANIFESTATIONS, ("manifestation_id",)),
    "record_manifestation": (schema.RECORD_MANIFESTATION, ("record_key",)),
    "works": (schema.WORKS, ("work_id",)),
}
# Files outside the content hash (see the module docstring).
LINEAGE_FILES = ("changes.parquet", "libraries.parquet")


@dataclass(frozen=True)
class PublishSummary:
    snapshot_id: str
    path: Path
    counts: dict
    reused: tuple[str, ...] = field(default=(), compare=False)
    checks: tuple[str, ...] = field(default=(), compare=False)  # the quality gate's lines, when it ran

    def line(self) -> str:
        counts = ", ".join(f"{k} {v:,}" for k, v in self.counts.items())
        return f"published {self.snapshot_id}: {counts}"


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\n".join((WRITER_VERSION, schema.SCHEMA_VERSION, *parts)).encode()).hexdigest()


def read_manifest(snapshot: Path) -> dict:
    return json.loads((snapshot / MANIFEST).read_text(encoding="utf-8"))


class SnapshotWriter:
    """Writes the files of one snapshot under construction, reusing the parent's unchanged ones."""

    def __init__(self, folder: Path, parent: Path | None):
        self.folder = folder
        self.parent = parent
        parent_manifest = read_manifest(parent) if parent else {}
        self.parent_files: dict = parent_manifest.get("files", {})
        self.parent_checksums: dict = parent_manifest.get("checksums", {})
        self.files: dict[str, dict] = {}
        self.checksums: dict[str, str] = {}
        self.reused: list[str] = []
        self._digests: dict[tuple[int, ...], str] = _linked_digests(self.parent_files, self.parent_checksums)
        self.con = duckdb.connect(config=duckdb_config(folder.parent / ".spill"))

    def write(self, name: str, inputs: str | None, produce: Callable[[], pa.Table | pa.RecordBatchReader], table_schema: pa.Schema,
              table_name: str, *, ready: Path | None = None) -> int:
        """Write `name` from `produce()`, or link the parent's file built from the same `inputs`
        (None: never reuse, e.g. files that depend on the parent itself), or link `ready`, a file
        of the same rows already written by `schema.write_table` (dedup's tables)."""
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        previous = self.parent_files.get(name)
        if inputs and previous and previous["inputs"] == inputs and self._link_from_parent(name):
            rows = previous["rows"]
            self.checksums[name] = self.parent_checksums[name]
            self.reused.append(name)
        elif ready is not None and _written_as(ready, table_schema, table_name) and _link(ready, target):
            rows = pq.read_metadata(target).num_rows
            self.checksums[name] = self.digest(target)
        else:
            rows = write_table(target, produce(), table_schema, table_name)
            self.checksums[name] = self.digest(target)
        self.files[name] = {"rows": rows, "inputs": inputs, "version": list(file_version(target))}
        return rows

    def digest(self, path: Path) -> str:
        """sha256 of a file ("absent" when missing), once per file version: a file linked from
        staging or dedup is hashed for its inputs fingerprint and not again for its checksum,
        and a file the parent snapshot linked, still the version it linked, not at all."""
        if not path.exists():
            return "absent"
        version = file_version(path)
        if version not in self._digests:
            self._digests[version] = sha256_file(path)
        return self._digests[version]

    def _link_from_parent(self, name: str) -> bool:
        source = self.parent / name
        return name in self.parent_checksums and source.is_file() and _link(source, self.folder / name)

    def query(self, sql: str, params: list) -> pa.RecordBatchReader:
        return self.con.sql(sql, params=params).to_arrow_reader(ROW_GROUP_ROWS)

    def sorted_parquet(self, path: Path, order: tuple[str, ...], table_schema: pa.Schema) -> Callable[[], pa.RecordBatchReader | pa.Table]:
        if not path.exists():
            return table_schema.empty_table
        return lambda: self.query(f"select * from read_parquet(?) order by {', '.join(order)}", [str(path)])

    def close(self) -> None:
        self.con.close()


def _linked_digests(files: dict, checksums: dict[str, str]) -> dict[tuple[int, ...], str]:
    """The parent snapshot's checksums by the version its files had when it was built: the
    staging and dedup files it linked are those files (the same inodes, sizes and times) until a
    stage replaces them, and are not hashed again (3.4 s of the 11.27M publish went to hashing
    the unchanged libraries' files). A file modified in place has another time: hashed."""
    return {tuple(entry["version"]): checksums[name] for name, entry in files.items() if entry.get("version") and name in checksums}


def _link(source: Path, target: Path) -> bool:
    """Hard-link a file into the snapshot (safe: no published or dedup file is ever modified in
    place, they are replaced)."""
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: write it instead
        return False
    return True


def _written_as(path: Path, table_schema: pa.Schema, table_name: str) -> bool:
    """Whether `path` is a `schema.write_table` file of this table (dedup writes its tables so)."""
    if not path.is_file():
        return False
    found = pq.read_schema(path)
    metadata = found.metadata or {}
    return (metadata.get(b"unioncat.table") == table_name.encode()
            and metadata.get(b"unioncat.schema_version") == schema.SCHEMA_VERSION.encode()
            and found.remove_metadata().equals(table_schema.remove_metadata()))


def _library_rows(settings: Settings, libraries: list[Library]) -> pa.Table:
    rows = [
        dict(
            library_id=lib.id, name=lib.name, city=lib.city, level=lib.level, protocol=lib.protocol,
            run_id=harvest_state.load(settings, lib.id).get("last_success", {}).get("run_id"),
        )
        for lib in sorted(libraries, key=lambda lib: lib.id)
    ]
    return pa.Table.from_pylist(rows, schema=schema.LIBRARIES)


def _write_library_tables(writer: SnapshotWriter, settings: Settings, libraries: list[Library]) -> dict[str, int]:
    counts = dict.fromkeys(LIBRARY_TABLES, 0)
    for library in sorted(libraries, key=lambda lib: lib.id):
        for table, (table_schema, order) in LIBRARY_TABLES.items():
            staged = settings.staging_dir(library.id) / f"{table}.parquet"
            counts[table] += writer.write(
                f"{table}.parquet/{library.id}.parquet", _fingerprint(table, writer.digest(staged)),
                writer.sorted_parquet(staged, order, table_schema), table_schema, table, ready=staged,
            )
    return counts


def _write_dedup_tables(writer: SnapshotWriter, settings: Settings) -> dict[str, int]:
    counts = {}
    for table, (table_schema, order) in DEDUP_TABLES.items():
        source = settings.dedup_dir / f"{table}.parquet"
        counts[table] = writer.write(
            f"{table}.parquet", _fingerprint(table, writer.digest(source)),
            writer.sorted_parquet(source, order, table_schema), table_schema, table, ready=source,
        )
    return counts


def _write_holdings_distribution(writer: SnapshotWriter, libraries: pa.Table, libraries_fingerprint: str,
                                 changed_keys: dict[str, str]) -> int:
    """`holdings_distribution.parquet`: computed from every record, or, when the parent's can be
    brought up to date (`_changed_records`), as the parent's rows but for the manifestations
    whose records changed, moved or hold other copies, which are computed again (at 11.27M
    records after a 1% change: 79,339 manifestations, the file written in 6.5 s against 8.7 s).
    `changed_keys` then gains them: the catalogue replaces only their rows instead of comparing
    the whole table with the file (2.6 s)."""
    folder = writer.folder
    holdings = sorted(name for name in writer.files if name.startswith("holdings.parquet/"))
    inputs = _fingerprint("holdings_distribution", libraries_fingerprint, writer.files["record_manifestation.parquet"]["inputs"],
                          *(writer.files[name]["inputs"] for name in holdings))
    record_manifestation = _parquet(folder / "record_manifestation.parquet")
    all_holdings = _parquet(folder / "holdings.parquet" / "*.parquet")
    libraries_file = _parquet(folder / "libraries.parquet")

    def produce() -> pa.RecordBatchReader:
        changed_records = _changed_records(writer, libraries, holdings, changed_keys)
        if changed_records is None:
            return writer.query(_distribution_sql(all_holdings, record_manifestation, libraries_file)
                                + " order by manifestation_id, library_id", [])
        writer.con.execute(f"""
            create or replace temp table changed_records as {changed_records};
            create or replace temp table touched_manifestations as
            select manifestation_id from {record_manifestation} semi join changed_records using (record_key)
            union select manifestation_id from {_parquet(writer.parent / 'record_manifestation.parquet')}
            semi join changed_records using (record_key);
            copy touched_manifestations to {sql_strings([str(folder / TOUCHED_MANIFESTATIONS)])[1:-1]} (format parquet);
        """)
        changed_keys["holdings_distribution"] = f"read_parquet('{TOUCHED_MANIFESTATIONS}')"  # relative to the snapshot
        touched_rows = f"(select * from {record_manifestation} semi join touched_manifestations using (manifestation_id))"
        touched_holdings = f"(select * from {all_holdings} semi join {touched_rows} using (record_key))"
        return writer.query(f"""
            select * from {_parquet(writer.parent / 'holdings_distribution.parquet')} anti join touched_manifestations using (manifestation_id)
            union all select * from ({_distribution_sql(touched_holdings, touched_rows, libraries_file)})
            order by manifestation_id, library_id
        """, [])

    return writer.write("holdings_distribution.parquet", inputs, produce, schema.HOLDINGS_DISTRIBUTION, "holdings_distribution")


def _parquet(*paths: Path) -> str:
    return f"read_parquet({sql_strings(str(path) for path in paths)})"


def _distribution_sql(holdings: str, record_manifestation: str, libraries: str) -> str:
    """The holdings distribution of the records of `record_manifestation` (SQL relations): per
    manifestation and library, the copies of its records, at least one per record."""
    # copies summed per record first: a distinct count of records per (manifestation, library) over
    # the joined holdings took 18.4 s at 11.27M records, this 13.6 s
    return f"""
        with record_copies as (select record_key, sum(copies) as copies from {holdings} group by record_key)
        select rm.manifestation_id, rm.library_id, l.city, l.level, greatest(coalesce(sum(c.copies), 0), count(*))::integer as copies
        from {record_manifestation} rm
        join {libraries} l using (library_id)
        left join record_copies c using (record_key)
        group by all
    """


def _changed_records(writer: SnapshotWriter, libraries: pa.Table, holdings: list[str], changed_keys: dict[str, str]) -> str | None:
    """A SQL relation of the records whose holdings distribution may differ from the parent
    snapshot's: those whose `record_manifestation` row changed (none when the parent's file is
    linked, else dedup's lineage must list them: `changed_keys`) and those whose copies differ
    in a holdings file the parent did not have as it is. None when the parent's distribution
    cannot be brought up to date: no parent distribution of this schema, a library come, gone,
    moved to another city or level, or `record_manifestation` changed without a list."""
    parent = writer.parent
    if parent is None or not _written_as(parent / "holdings_distribution.parquet", schema.HOLDINGS_DISTRIBUTION, "holdings_distribution"):
        return None
    places = ["library_id", "city", "level"]
    if not (parent / "libraries.parquet").is_file() or not pq.read_table(parent / "libraries.parquet", columns=places).equals(libraries.select(places)):
        return None
    if "record_manifestation.parquet" in writer.reused:
        moved = "select null::varchar as record_key where false"
    elif "record_manifestation" in changed_keys:
        moved = f"select record_key from {changed_keys['record_manifestation']}"
    else:
        return None
    rewritten = [name for name in holdings if name not in writer.reused]
    copies = {side: f"(select record_key, sum(copies) as copies from {_parquet(*files)} group by all)"
              if files else "(select null::varchar as record_key, null::hugeint as copies where false)"
              for side, files in (("new", [writer.folder / name for name in rewritten]),
                                  ("old", [parent / name for name in rewritten if (parent / name).is_file()]))}
    return f"""{moved}
        union all select record_key from {copies['new']} n full join {copies['old']} o using (record_key)
        where n.copies is distinct from o.copies"""


def _dedup_lineage(state: dict, writer: SnapshotWriter) -> bool:
    """Whether the one dedup run that wrote this snapshot's dedup tables carried its ids from the
    parent snapshot's: its `changes.parquet` is then this snapshot's (warehouse.changes would
    compute the same rows, reading every record of both), which with its `record_changes.parquet`
    lists the rows the catalogue must replace (`_changed_keys`). `state`: dedup's state.json."""
    previous, outputs = state.get("previous_outputs"), state.get("outputs")
    if not previous or not outputs:
        return False
    for table in schema.CHANGES_FROM:
        name = f"{table}.parquet"
        if previous.get(table) != writer.parent_checksums.get(name) or (outputs.get(table) or {}).get("sha256") != writer.checksums.get(name):
            return False
    return True


def _changed_keys(settings: Settings, state: dict) -> dict[str, str]:
    """Keyed table → a SQL relation of the keys of the only rows dedup's last run (`state`)
    changed in it, given the lineage (`_dedup_lineage`): the manifestations' from this
    snapshot's changes (their new ids, and the old ids gone or updated), `record_manifestation`'s
    from the run's `record_changes.parquet` when that run wrote it."""
    keys = {"manifestations": "(select manifestation_id from read_parquet('changes.parquet') where manifestation_id is not null "
                              "union select old_manifestation_id from read_parquet('changes.parquet') where old_manifestation_id is not null)"}
    path = settings.dedup_dir / RECORD_CHANGES
    if path.is_file() and (pq.read_schema(path).metadata or {}).get(DEDUP_RUN_TAG) == str(state.get("run")).encode():
        keys["record_manifestation"] = f"read_parquet('{path}')"
    return keys


def _records_read(settings: Settings, writer: SnapshotWriter, libraries: list[Library]) -> dict[str, str]:
    """{"records": a SQL relation of the records the transform read (new or changed) in the
    libraries whose records file the parent snapshot did not have, "holdings": the same}: every
    other record of those libraries has the parent's rows but for its run id. Empty unless each
    such library's last transform kept its rows from the very files the parent holds (its
    summary names their versions, and those of the files it wrote, which are still the staged
    ones); without "holdings" when only the records files are so."""
    files, tables, checked = [], list(KEPT_TABLES), set()
    for library in libraries:
        name = f"records.parquet/{library.id}.parquet"
        if name in writer.reused or name not in writer.files:
            continue
        summary = read_summary(settings, library.id) or {}
        staging = settings.staging_dir(library.id)
        kept_from, written = summary.get("kept_from") or {}, summary.get("written") or {}
        for table in list(tables):
            parent_version = writer.parent_files.get(f"{table}.parquet/{library.id}.parquet", {}).get("version")
            if (parent_version is None or kept_from.get(table) != parent_version
                    or written.get(table) != list(file_version(staging / f"{table}.parquet"))):
                tables.remove(table)
        if "records" not in tables or not (staging / RECORDS_READ).is_file():
            return {}
        files.append(staging / RECORDS_READ)
        checked.add(f"holdings.parquet/{library.id}.parquet")
    if "holdings" in tables and any(name.startswith("holdings.parquet/") and name not in writer.reused and name not in checked
                                    for name in writer.files):
        tables.remove("holdings")  # a library's holdings changed without its records: replaced whole
    return dict.fromkeys(tables, _parquet(*files)) if files else {}


def _libraries_fingerprint(libraries: pa.Table) -> str:
    """The libraries as the catalogue describes them, without the run ids that change every harvest."""
    rows = libraries.drop_columns(["run_id"]).to_pylist()
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def content_hash(checksums: dict[str, str], libraries_fingerprint: str) -> str:
    covered = {name: digest for name, digest in checksums.items()
               if name.endswith(".parquet") and name.split("/")[0] not in LINEAGE_FILES}
    covered["libraries"] = libraries_fingerprint
    return hashlib.sha256(json.dumps(covered, sort_keys=True).encode()).hexdigest()


def _crash_point(name: str) -> None:
    """Fault injection for the crash tests: SIGKILL this process at the named step when
    $UNIONCAT_PUBLISH_CRASH_AT names it (library_files, catalogue, renamed, symlink)."""
    if os.environ.get("UNIONCAT_PUBLISH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _new_snapshot_id(published: Path) -> str:
    """The build time, after the newest id in `published`: within one second `-2`, `-3`… Retention
    never prunes the newest snapshot, so the id of a snapshot once published is never given again."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    newest = retention.newest_id(published)
    if newest is not None:
        newest_stamp, n = retention.age(newest)
        if newest_stamp >= stamp:
            return f"{newest_stamp}-{n + 1}"
    return stamp


def current_snapshot(settings: Settings) -> Path | None:
    """The folder `published/current` points at, or None before the first promote."""
    link = settings.current_snapshot
    return link.resolve() if link.exists() else None


def build_snapshot(settings: Settings, libraries: list[Library]) -> PublishSummary:
    """Write a complete, read-only `published/<id>/` against the current snapshot; `current` is not switched."""
    from warehouse.report import write_report

    published = settings.published_dir
    published.mkdir(parents=True, exist_ok=True)
    with locks.publishing(published):
        locks.remove_abandoned(published)
        parent = current_snapshot(settings)
        snapshot_id = _new_snapshot_id(published)
        build = published / f".building-{snapshot_id}"
        build.mkdir()
        writer = SnapshotWriter(build, parent)
        try:
            libraries_table = _library_rows(settings, libraries)
            libraries_fingerprint = _libraries_fingerprint(libraries_table)
            counts = {"libraries": writer.write("libraries.parquet", None, lambda: libraries_table, schema.LIBRARIES, "libraries")}
            counts |= _write_library_tables(writer, settings, libraries)
            _crash_point("library_files")
            counts |= _write_dedup_tables(writer, settings)
            dedup_state = atomic.read_json(settings.dedup_dir / "state.json") or {}
            lineage = _dedup_lineage(dedup_state, writer)
            changed_keys = _changed_keys(settings, dedup_state) if lineage else {}
            changed_keys |= _records_read(settings, writer, libraries)
            counts["holdings_distribution"] = _write_holdings_distribution(writer, libraries_table, libraries_fingerprint, changed_keys)
            counts["changes"] = writer.write("changes.parquet", None, lambda: changes.against_parent(writer.con, build, parent),
                                             schema.CHANGES, "changes", ready=settings.dedup_dir / "changes.parquet" if lineage else None)
        finally:
            writer.close()
        parent_manifest = read_manifest(parent) if parent else {}
        catalogue_entry = catalogue.build(
            build, parent, parent_manifest.get("catalogue"),
            changed_files=[name for name in writer.files if name not in writer.reused],
            removed_files=[name for name in parent_manifest.get("files", {}) if name not in writer.files],
            changed_keys=changed_keys)
        (build / TOUCHED_MANIFESTATIONS).unlink(missing_ok=True)
        _crash_point("catalogue")
        write_report(build, snapshot_id, parent)
        created_at = harvest_state.now_iso()
        atomic.write_json(build / MANIFEST, {
            "snapshot_id": snapshot_id,
            "parent": parent.name if parent else None,
            "created_at": created_at,
            "schema_version": schema.SCHEMA_VERSION,
            "counts": counts,
            "files": writer.files,
            "checksums": {**writer.checksums, CATALOGUE: sha256_file(build / CATALOGUE), REPORT: sha256_file(build / REPORT)},
            "content_hash": content_hash(writer.checksums, libraries_fingerprint),
            "catalogue": catalogue_entry,
            "library_runs": {row["library_id"]: row["run_id"] for row in libraries_table.to_pylist()},
        })
        locks.create_reader_lock(build)
        locks.freeze(build)
        final = published / snapshot_id
        os.replace(build, final)
        _crash_point("renamed")
    return PublishSummary(snapshot_id, final, counts, tuple(writer.reused))


def promote(settings: Settings, snapshot_id: str, *, keep: int | None = None) -> list[str]:
    """Switch `published/current` to a built snapshot atomically, then prune old snapshots
    (keeping `keep`, default $UNIONCAT_KEEP_SNAPSHOTS or 5). Returns the ids pruned."""
    published = settings.published_dir
    target = published / snapshot_id
    if not (target / MANIFEST).is_file():
        raise FileNotFoundError(f"no complete snapshot {snapshot_id} in {published}")
    with locks.publishing(published):
        link = settings.current_snapshot
        temp = link.with_name(f".current-{snapshot_id}")
        temp.unlink(missing_ok=True)
        os.symlink(snapshot_id, temp)
        _crash_point("symlink")
        os.replace(temp, link)
        return retention.prune(published, snapshot_id, retention.keep_count(keep))


def publish(settings: Settings, libraries: list[Library], *, keep: int | None = None, gate: bool = True,
            thresholds=None) -> PublishSummary:
    """Build a snapshot, pass it through the quality gate (warehouse.checks; `gate=False` skips
    it) and make it current. A snapshot that fails stays unpromoted and QualityCheckFailed says
    why; the build DAG runs the same three steps as separate tasks."""
    from warehouse.checks import check_snapshot, enforce

    parent = current_snapshot(settings)
    summary = build_snapshot(settings, libraries)
    checks = check_snapshot(summary.path, parent, thresholds) if gate else []
    enforce(summary.snapshot_id, checks)
    promote(settings, summary.snapshot_id, keep=keep)
    return replace(summary, checks=tuple(check.line() for check in checks))


def verify(snapshot: Path) -> list[str]:
    """Files whose sha256 differs from the manifest's (or are missing): empty when the snapshot is intact."""
    manifest = read_manifest(snapshot)
    return [name for name, digest in sorted(manifest["checksums"].items())
            if not (snapshot / name).is_file() or sha256_file(snapshot / name) != digest]
