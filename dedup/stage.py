"""The dedup stage: active records of every library → manifestations and works with stable ids.

    features (match_records) → blocking (candidate_pairs) → scoring (accepted pairs, vetoes)
    → clustering (components, split of rule-breaking ones) → golden records, works
    → ids carried from the previous run → files

Reads the staging Parquet of the libraries given; writes to `<data_dir>/dedup/`:
- `record_manifestation.parquet`, `manifestations.parquet`, `works.parquet`, `changes.parquet`
  (schemas in unioncat/schema.py) — what publish consumes — and `record_changes.parquet` (the
  record keys whose `record_manifestation` row is not the previous run's: publish's catalogue
  replaces only those rows when the previous run's table is the parent snapshot's);
- `match_evidence.parquet`: every accepted pair and every pair a hard rule vetoed although it
  scored as a match, with its field levels (answers "why are these together / apart?");
- `match_records.parquet/<library_id>.parquet` (features, fingerprints and each record's place
  in its library, `pos`; a file per library: a run rewrites the files of the libraries whose
  records changed only), `match_nodes.parquet` (each node's rid, keys and blocking
  features: the evidence names its nodes by these rids),
  `twin_scores.parquet` (the score of each twin key's own pair, dedup.nodes), `work_keys.parquet`
  (each manifestation's work keys, dedup.golden.build_works), `id_ledger.parquet`
  (every id ever issued and what became of it) and `state.json` (run number, rules fingerprint,
  the run that wrote each feature file), written last.
An incremental run (the default when the rules, DuckDB, the libraries' levels and the format
of these files are unchanged) computes the features of new and changed records only (the
others keep theirs from `match_records.parquet/`), looks again only at the blocks of new,
changed or deleted records and scores only the pairs a change made (dedup.blocking), and
clusters all accepted pairs again; a cluster it left as it was (`_carry_clusters`) keeps its
golden record, id and strongest links from the previous outputs, the others get new ones, and
a work no change reached keeps its clusters and id. Its
result equals a full rebuild's (tests/test_dedup_ids.py).
"""

from __future__ import annotations

import os
import resource
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dedup import blocking, clustering, golden, ids, merge, nodes, rules
from dedup.features import INPUT_COLUMNS, build_match_records, drop_record_features, sql_strings
from dedup.scoring import evidence_sql, library_veto_sql, rule_sql, score_pairs
from unioncat import atomic, schema
from unioncat.prefetch import prefetched
from unioncat.registry import Library
from unioncat.settings import Settings, duckdb_config

RUN_TAG = b"unioncat.dedup_run"
CACHE_FILES = ("match_nodes.parquet", "match_evidence.parquet", "twin_scores.parquet")
CACHE_FORMAT = 2  # 2: the evidence names its nodes by their rids in match_nodes.parquet
FEATURES = "match_records.parquet"  # a folder: <library_id>.parquet
RECORD_CHANGES = "record_changes.parquet"
# The work keys of each manifestation (dedup.golden.build_works): a run without them places every
# manifestation in its work again, and writes them.
WORK_KEYS = "work_keys.parquet"
OUTPUT_BATCH_ROWS = 256 * 1024
# Up to this many rows of `record_manifestation` computed again (an incremental run's), they are
# held and merged in a thread beside the other outputs; more are streamed (_write_record_manifestation).
THREADED_MERGE_MAX_ROWS = 2_000_000
# What the next run reads of this run's nodes: the rid the evidence names it by, what tells a
# changed node (node key, fingerprint, first record) and what places it in its blocks
# (blocking.BLOCK_KEYS, WINDOW_ORDER).
NODE_CACHE_COLUMNS = ("rid", "node_key", "fingerprint", "record_key", "isbn", "issn", "title_key", "title_pinyin", "publisher_key",
                      "year", "pages", "volume_key", "edition_key", "authors_key", "author1")


@dataclass(frozen=True)
class DedupSummary:
    records: int
    manifestations: int
    merged_records: int
    works: int = 0
    pairs_scored: int = 0
    accepted_pairs: int = 0
    rematched_records: int = 0
    features_computed: int = 0
    incremental: bool = False
    changes: dict = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)  # phase → seconds

    def line(self) -> str:
        mode = (f"incremental, features of {self.features_computed:,} records computed, {self.rematched_records:,} re-matched"
                if self.incremental else "full")
        changed = ", ".join(f"{k} {v:,}" for k, v in sorted(self.changes.items())) or "no changes"
        return (f"dedup: {self.records:,} records → {self.manifestations:,} manifestations, {self.works:,} works "
                f"({self.merged_records:,} records merged; {mode}; {self.pairs_scored:,} pairs scored; {changed})")


def staged_record_files(settings: Settings, libraries: list[Library]) -> dict[str, Path]:
    """library → its staged records, for the libraries that have some."""
    paths = {lib.id: settings.staging_dir(lib.id) / "records.parquet" for lib in libraries}
    return {library_id: path for library_id, path in paths.items() if path.exists()}


def staged_versions(files: dict[str, Path]) -> dict[str, list[int]]:
    """library → [size, mtime_ns] of its staged records: the transform rewrites the file of a
    library whose records changed and leaves the others' alone."""
    stats = {library_id: path.stat() for library_id, path in files.items()}
    return {library_id: [stat.st_size, stat.st_mtime_ns] for library_id, stat in stats.items()}


def deduplicate(settings: Settings, libraries: list[Library], con: duckdb.DuckDBPyConnection | None = None,
                *, full: bool = False) -> DedupSummary:
    """Deduplicate the staged records of `libraries` into `<data_dir>/dedup/`."""
    if con is None:
        settings.dedup_dir.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(config=duckdb_config(settings.dedup_dir / ".spill", preserve_insertion_order=False))
    files = staged_record_files(settings, libraries)
    load_files(con, [str(path) for path in files.values()])
    return run(con, settings.dedup_dir, {lib.id: lib.level for lib in libraries}, full=full, staged=staged_versions(files))


def load_files(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """`dedup_input`: the active records of canonical `records` Parquet files, as a view: read
    where needed (each use reads only its columns) rather than held in memory at 11M records."""
    if files:
        con.execute(f"create or replace temp view dedup_input as select {', '.join(INPUT_COLUMNS)} "
                    f"from read_parquet({sql_strings(files)}, union_by_name=true) where status = 'active'")
    else:
        load_rows(con, schema.RECORDS.empty_table())


def load_rows(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
    """`dedup_input` from canonical record rows held in memory (tests, benchmarks, evaluation)."""
    con.register("dedup_rows_arrow", rows)
    con.execute(f"create or replace temp table dedup_input as select {', '.join(INPUT_COLUMNS)} from dedup_rows_arrow")
    con.unregister("dedup_rows_arrow")


class _Phases:
    """Wall seconds of each phase of a run, in order, and the process's peak RSS when it ended
    (kept in state.json and the summary: where the time and the memory go)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, int] = {}
        self._mark = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._mark, 2)
        self.peak_rss_mb[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        self._mark = now


def run(con: duckdb.DuckDBPyConnection, out: Path, levels: dict[str, str], *, full: bool = False,
        staged: dict[str, list[int]] | None = None) -> DedupSummary:
    """Deduplicate `dedup_input` into the folder `out`, carrying ids from the run found there.
    `staged`: the version of each library's staged file (`staged_versions`); the records of a
    library whose file is the one the previous run read are taken as unchanged, unread."""
    started = time.perf_counter()
    phases = _Phases()
    out.mkdir(parents=True, exist_ok=True)
    con.execute("set enable_progress_bar = false")
    state = atomic.read_json(out / "state.json") or {}
    run_number = int(state.get("run", 0)) + 1
    incremental = not full and _cache_valid(out, state, levels)
    staged = staged or {}
    previous_outputs = _previous_outputs(out, state)
    unchanged = sorted(lib for lib, version in staged.items() if incremental and state.get("staged", {}).get(lib) == version)
    feature_files = state.get("feature_files", {}) if incremental else {}
    computed = build_match_records(con, previous={lib: str(_feature_file(out, lib)) for lib in feature_files} if incremental else None,
                                   unchanged_libraries=unchanged)
    records = con.sql("select count(*) from match_records").fetchall()[0][0]
    node_stats = nodes.build_nodes(con, str(out / "twin_scores.parquet") if incremental else None)
    _write_cache(con, out, "twin_scores.parquet", "select * from twin_key_scores", run_number)
    con.execute("drop table twin_key_scores")
    feature_files = _write_features(con, out, run_number, {lib: run for lib, run in feature_files.items() if lib in unchanged})
    drop_record_features(con)
    phases.done("features")
    matched = _match_incrementally(con, out) if incremental else _match_all(con)
    phases.done("matching")
    _previous_links(con, out)
    stats = {**node_stats, **clustering.cluster(con, untouched=_untouched_nodes(con) if incremental else None)}
    _write_node_cache(con, out, run_number)
    nodes.record_clusters(con)
    carried = _carry_clusters(con, out) if incremental else _carry_nothing(con)
    _open_records(con)
    phases.done("clustering")
    golden.build_golden(con, levels, carried="(select * exclude (manifestation_id) from carried_golden)" if incremental else None)
    con.execute("drop table if exists carried_golden")
    stats["works_placed"] = golden.build_works(con, _previous_work_keys(out, state) if incremental else None)
    phases.done("golden_records")
    _assign_ids(con, out, run_number)
    phases.done("ids")
    counts = _write_outputs(con, out, run_number)
    phases.done("outputs")
    atomic.write_json(out / "state.json", {
        "run": run_number, "rules": rules.fingerprint(), "cache_format": CACHE_FORMAT, "duckdb": duckdb.__version__, "levels": levels,
        "staged": staged,
        "feature_files": feature_files, "outputs": _output_versions(out), "previous_outputs": previous_outputs, "records": records,
        "incremental": incremental, "features_computed": computed, "carried_manifestations": carried, **matched, **stats, **counts,
        "phases": phases.seconds,
        "phase_peak_rss_mb": phases.peak_rss_mb,
    })
    return DedupSummary(
        records=records, manifestations=counts["manifestations"], merged_records=records - counts["manifestations"],
        works=counts["works"], pairs_scored=matched["pairs_scored"], accepted_pairs=counts["accepted_pairs"],
        rematched_records=matched["rematched_records"], features_computed=computed, incremental=incremental, changes=counts["changes"],
        seconds=round(time.perf_counter() - started, 3), phases=phases.seconds,
    )


def _write_node_cache(con: duckdb.DuckDBPyConnection, out: Path, run_number: int) -> None:
    """Once clustered, the nodes are written for the next run and keep what the rest of this one
    reads: their keys, first record and authors (works)."""
    _write_cache(con, out, "match_nodes.parquet", f"select {', '.join(NODE_CACHE_COLUMNS)} from match_nodes", run_number)
    con.execute("create or replace temp table match_nodes as select rid, node_key, first_rid, record_key, authors_key from match_nodes")


# ---- matching: full or incremental -------------------------------------------------------------


def _keep() -> str:
    """Pairs kept as evidence: the accepted ones and those a hard rule vetoed although they scored
    as a match (the others need no explaining and are re-derived from features when needed)."""
    return f"weight >= {rules.MATCH_THRESHOLD}"


def _match_all(con: duckdb.DuckDBPyConnection) -> dict:
    candidates = blocking.candidate_pairs(con, records="match_nodes")
    score_pairs(con, "candidate_pairs", "match_pairs", keep=_keep())
    con.execute("drop table candidate_pairs")
    _accepted(con)
    records = con.sql("select count(*) from match_records").fetchall()[0][0]
    return {"rematched_records": records, "pairs_scored": candidates}


def _match_incrementally(con: duckdb.DuckDBPyConnection, out: Path) -> dict:
    """Look again only at the blocks of new, changed and deleted nodes (a node changes with its
    twins' features or its first record) and score only the pairs they propose now and did not
    before (or that involve a changed node); keep the previous run's pairs of unchanged nodes
    (their features, hence scores, are the same) while a block still proposes them. A node whose
    twins now hold other libraries (a twin come or gone in another library) keeps its blocks and
    pairs: only the same-library veto of its pairs is decided again."""
    evidence = out / "match_evidence.parquet"
    con.execute(f"""
        -- the previous run's nodes, by the rids they had then (its evidence names them so)
        create or replace temp table previous_records as select * from read_parquet('{out / 'match_nodes.parquet'}');
        -- a node as it was: the same features and first record (whose key orders the node inside
        -- its blocks, blocking.WINDOW_ORDER); its rid then → its rid now. The key of a node of
        -- twins holds their twin key, hence their features (dedup.nodes): such a node may hold
        -- other libraries (its fingerprint) and be the same node. A node of one record of twins
        -- kept apart is keyed by that record, whose features must then be the same.
        create or replace temp table node_map as
            select p.rid as previous, m.rid, p.fingerprint <> m.fingerprint as relibraried
            from match_nodes m join previous_records p using (node_key, record_key)
            where p.fingerprint = m.fingerprint or m.node_key <> m.record_key;
        -- what places a node in its blocks, as the previous run's nodes have it (not every feature)
        create or replace temp table changed_now as
            select {', '.join(NODE_CACHE_COLUMNS)}, n_records from match_nodes anti join node_map using (rid);
        create or replace temp table changed_before as select p.* from previous_records p anti join node_map n on n.previous = p.rid;
        drop table previous_records;
        -- the nodes clustering cannot take as they were: changed, or holding other records
        create or replace temp table dirty_nodes as select rid from changed_now union all select rid from node_map where relibraried;
    """)
    blocking.affected_blocks(con, "changed_now", "changed_before")
    blocking.block_positions(con, "changed_now", "changed_before")
    blocking.proposed_pairs(con)
    con.execute(f"""
        -- the previous pairs of two unchanged nodes (a changed or deleted node is not in node_map)
        create or replace temp table kept_pairs as
        select x.rid as rid_a, y.rid as rid_b, (x.rid::bigint << 32) | y.rid::bigint as pair,
               e.* exclude (record_key_a, record_key_b, node_key_a, node_key_b, node_a, node_b),
               x.relibraried or y.relibraried as relibraried
        from read_parquet('{evidence}') e
        join node_map x on x.previous = e.node_a
        join node_map y on y.previous = e.node_b;
        -- the kept pairs of a node holding other libraries, their same-library veto decided again
        create or replace temp table revetoed as
        select pair, rid_a, rid_b, veto, veto is null and weight >= {rules.MATCH_THRESHOLD} as accepted, was_accepted from (
            select k.pair, k.rid_a, k.rid_b, k.weight, {library_veto_sql('k', 'x', 'y')} as veto, k.accepted as was_accepted
            from kept_pairs k join match_nodes x on x.rid = k.rid_a join match_nodes y on y.rid = k.rid_b
            where k.relibraried
        );
        update kept_pairs k set veto = r.veto, accepted = r.accepted from revetoed r where k.pair = r.pair;
    """)
    # the pairs of unchanged nodes whose blocks may differ: where a node was removed or came
    # between them, or a block's size crossed BLOCK_ALL_PAIRS_MAX (at 11.27M records after a 1%
    # change, 0.15M kept pairs instead of the 2.27M whose nodes both sit in some affected block)
    blocking.loosened_pairs(con, "kept_pairs")
    con.execute("create or replace temp table looked_at as select rid_a, rid_b from reopened_pairs union select rid_a, rid_b from loosened_pairs")
    blocking.pair_blocks(con, "looked_at")
    con.execute("""
        drop table looked_at; drop table reopened_pairs; drop table loosened_pairs; drop table block_rows;
        create or replace temp table new_pairs as
        select rid_a, rid_b, blocks from changed_pairs
        union all
        select b.rid_a, b.rid_b, b.blocks_now from pair_blocks b
        where len(b.blocks_now) > 0 and not b.before and (b.rid_a::bigint << 32) | b.rid_b::bigint not in (select pair from kept_pairs);
        drop table changed_pairs;
    """)
    scored = con.sql("select count(*) from new_pairs").fetchall()[0][0]
    score_pairs(con, "new_pairs", "scored_pairs", keep=_keep())
    columns = ", ".join(_pair_columns(con))
    con.execute(f"""
        -- a kept pair's blocks: those not affected, and the affected ones that propose it now
        create or replace temp table kept as
        select k.* exclude (blocks, pair),
               if(b.rid_a is null, k.blocks,
                  list_sort(list_filter(k.blocks, lambda block: not list_contains(b.affected, block)) || b.blocks_now)) as blocks
        from kept_pairs k left join pair_blocks b using (rid_a, rid_b);
        create or replace temp table match_pairs as
        select {columns} from kept where len(blocks) > 0
        union all select {columns} from scored_pairs;
        -- nodes that gained or lost an accepted pair: a pair no block proposes any more, a pair
        -- accepted now, a pair whose same-library veto came or went, a pair with a changed or
        -- deleted node (changed nodes are dirty anyway)
        create or replace temp table relinked_nodes as
        with changed as (select rid_a, rid_b from kept where len(blocks) = 0 and accepted
                         union all select rid_a, rid_b from scored_pairs where accepted
                         union all select rid_a, rid_b from revetoed where accepted <> was_accepted),
        -- the unchanged end of an accepted pair whose other end changed or is gone
        unchanged_end as (
            select coalesce(x.rid, y.rid) as rid from read_parquet('{evidence}') e
            left join node_map x on x.previous = e.node_a left join node_map y on y.previous = e.node_b
            where e.accepted and (x.rid is null) <> (y.rid is null)
        )
        select rid_a as rid from changed union select rid_b from changed union select rid from unchanged_end;
        drop table kept_pairs; drop table revetoed; drop table pair_blocks; drop table new_pairs; drop table scored_pairs; drop table kept;
    """)
    _accepted(con)
    rematched = con.sql("select coalesce(sum(n_records), 0) from changed_now").fetchall()[0][0]
    con.execute("drop table changed_now; drop table changed_before; drop table affected_blocks; drop table node_map")
    return {"rematched_records": int(rematched), "pairs_scored": scored}


def _pair_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [c for (c,) in con.sql("select column_name from (describe scored_pairs)").fetchall()]


def _accepted(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create or replace temp view accepted_pairs as select * from match_pairs where accepted")


def _cache_valid(out: Path, state: dict, levels: dict[str, str]) -> bool:
    # a library's level ranks its records for the golden record, which carried clusters keep
    if state.get("rules") != rules.fingerprint() or state.get("duckdb") != duckdb.__version__ or state.get("levels") != levels:
        return False
    if "feature_files" not in state or state.get("cache_format") != CACHE_FORMAT:
        return False
    expected = {out / name: state.get("run") for name in CACHE_FILES} | {_feature_file(out, lib): run for lib, run in state["feature_files"].items()}
    return all(_written_by(path, run) for path, run in expected.items())


def _written_by(path: Path, run) -> bool:
    """Whether the file exists and the run tagged `run` wrote it."""
    return path.exists() and (pq.read_schema(path).metadata or {}).get(RUN_TAG) == str(run).encode()


def _feature_file(out: Path, library_id: str) -> Path:
    return out / FEATURES / f"{library_id}.parquet"


def _write_features(con: duckdb.DuckDBPyConnection, out: Path, run_number: int, kept: dict[str, int]) -> dict[str, int]:
    """Write `written_features` (dedup.features: those of every library but those in `kept`,
    library → the run that wrote its file, left as it is) to
    `match_records.parquet/<library_id>.parquet`, and remove the files of libraries that have no
    active record or are gone. Returns library → run of every file."""
    folder = out / FEATURES
    if folder.is_file():  # a single cache file of an older version
        folder.unlink()
    folder.mkdir(exist_ok=True)
    temp = out / ".match_records.tmp"
    shutil.rmtree(temp, ignore_errors=True)
    con.execute(f"copy (select * from written_features) to '{temp}' "
                f"({_cache_options(run_number)}, partition_by (library_id), write_partition_columns true)")
    written = {}
    for part in temp.glob("library_id=*"):
        library_id = unquote(part.name.removeprefix("library_id="))
        (file,) = part.glob("*.parquet")
        os.replace(file, _feature_file(out, library_id))
        written[library_id] = run_number
    shutil.rmtree(temp, ignore_errors=True)
    for path in folder.glob("*.parquet"):
        if path.stem not in kept and path.stem not in written:
            path.unlink()
    return {**kept, **written}


# ---- carried clusters --------------------------------------------------------------------------


def _previous_links(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """`previous_links`: the previous run's `record_manifestation` rows (empty on a first run):
    their ids and the record's rid in this run (null for a record gone: the joins on it are on
    integers). The rows' match columns stay in the file (held in memory, the evidence strings
    alone took 1.4 GB at 11.27M records): `_write_record_manifestation` reads them back."""
    path = out / "record_manifestation.parquet"
    if path.exists():
        work_id = "p.work_id" if "work_id" in pq.read_schema(path).names else "null::varchar as work_id"
        con.execute(f"""
            create or replace temp table previous_links as
            select m.rid, p.record_key, p.manifestation_id, {work_id}
            from read_parquet('{path}') p left join match_records m using (record_key)
        """)
    else:
        con.execute("create or replace temp table previous_links (rid integer, record_key varchar, manifestation_id varchar, work_id varchar)")


def _untouched_nodes(con: duckdb.DuckDBPyConnection) -> str:
    """`untouched_nodes(rid, grp)`: the nodes that did not change and gained or lost no accepted
    pair, with the manifestation their first record had: the cluster the node was in."""
    con.execute("""
        create or replace temp table untouched_nodes as
        select m.rid, p.manifestation_id as grp
        from match_nodes m join previous_links p on p.rid = m.first_rid
        where m.rid not in (select rid from relinked_nodes) and m.rid not in (select rid from dirty_nodes)
    """)
    return "untouched_nodes"


def _carry_nothing(con: duckdb.DuckDBPyConnection) -> int:
    con.execute("create or replace temp table carried_clusters (cluster integer, first_record_key varchar, manifestation_id varchar)")
    return 0


def _carry_clusters(con: duckdb.DuckDBPyConnection, out: Path) -> int:
    """`carried_clusters(cluster, first_record_key, manifestation_id)`: the clusters an incremental
    run left as they were, and `carried_golden`, their golden rows from the previous run.

    A cluster is carried when its records are exactly a previous manifestation's, none of them
    changed (`recomputed_records`), none of its nodes changed (`dirty_nodes`) and none gained or
    lost an accepted pair (`relinked_nodes`). Its golden record, id and strongest links then come
    out as a full rebuild would compute them, so they are taken from the previous outputs; only
    the other clusters go through golden records, id carrying and strongest links. Returns how
    many clusters were carried."""
    con.execute(f"""
        create or replace temp table touched_clusters as
        with touched_nodes as (
            select rid from relinked_nodes union select rid from dirty_nodes
        )
        select distinct c.cluster from cluster_nodes c semi join touched_nodes t on t.rid = c.node
        union
        select c.cluster from match_records m semi join recomputed_records using (record_key) join clusters c using (rid);
        create or replace temp table carried_golden as
        with unchanged as (
            select c.cluster, min(p.manifestation_id) as manifestation_id, count(*) as n
            from clusters c anti join touched_clusters using (cluster)
            left join previous_links p using (rid)
            group by c.cluster
            having count(p.manifestation_id) = count(*) and min(p.manifestation_id) = max(p.manifestation_id)
        )
        -- a cluster is named by its smallest rid, and rids follow record keys: that is its first
        -- record; of its golden record, what the works and ids read (the rest of its row stays
        -- in the file, from which `_write_manifestations` takes it)
        select u.cluster, m.record_key as first_record_key, u.manifestation_id, pm.title, pm.authors, pm.n_records
        from unchanged u join match_records m on m.rid = u.cluster
        join read_parquet('{out / 'manifestations.parquet'}') pm using (manifestation_id)
        where pm.n_records = u.n;
        create or replace temp table carried_clusters as select cluster, first_record_key, manifestation_id from carried_golden;
        drop table touched_clusters; drop table relinked_nodes; drop table dirty_nodes; drop table recomputed_records; drop table untouched_nodes;
    """)
    return con.sql("select count(*) from carried_clusters").fetchall()[0][0]


def _open_records(con: duckdb.DuckDBPyConnection) -> None:
    """`open_records(rid, cluster)`: the records of the clusters not carried, whose golden
    records, ids and strongest links this run computes (golden, `_assign_ids`, `_write_outputs`)."""
    con.execute("create or replace temp table open_records as select c.rid, c.cluster from clusters c anti join carried_clusters using (cluster)")


def _previous_work_keys(out: Path, state: dict) -> str | None:
    """The previous run's work keys, when that run wrote them (its run tag)."""
    path = out / WORK_KEYS
    return str(path) if _written_by(path, state.get("run")) else None


# ---- ids ---------------------------------------------------------------------------------------

def _assign_ids(con: duckdb.DuckDBPyConnection, out: Path, run_number: int) -> None:
    """`manifestation_ids`, `work_ids`, their changes and ledger updates (dedup.ids)."""
    ledger = out / "id_ledger.parquet"
    if ledger.exists():
        con.execute(f"create or replace temp table id_ledger as select * from read_parquet('{ledger}')")
    else:
        con.execute("create or replace temp table id_ledger (entity varchar, id varchar, first_run integer, "
                    "retired_run integer, successor varchar)")
    # A group's items are its records by rid (a record gone has none): integer joins. In the
    # works a carried cluster is one item of n_records: its records were one manifestation, hence
    # in one work, and are again (3.5M items instead of 11.27M records in the 1% run).
    con.execute("""
        -- carried clusters keep their ids: only the others' are carried here
        create or replace temp table manifestation_groups as
        select o.rid as item, g.first_record_key as grp, 1 as records from open_records o join golden g using (cluster);
        create or replace temp table work_groups as
        select o.rid as item, w.grp, 1 as records from open_records o join cluster_work w using (cluster)
        union all
        select cc.cluster, w.grp, g.n_records from carried_clusters cc join cluster_work w using (cluster) join golden g using (cluster)
        where w.grp is not null;
        -- the records whose previous manifestation was not carried: the records gone and those of
        -- the clusters not carried (a carried cluster holds all of its manifestation's records)
        create or replace temp table previous_manifestation as
            select rid as item, manifestation_id as old_id, 1 as records from previous_links
            where manifestation_id is not null and (rid is null or rid in (select rid from open_records));
        create or replace temp table previous_work as
            select p.rid as item, p.work_id as old_id, 1 as records from previous_links p
            where p.work_id is not null and (p.rid is null or p.rid in (select rid from open_records))
            union all
            select cc.cluster, p.work_id, g.n_records from carried_clusters cc join previous_links p on p.rid = cc.cluster
            join golden g using (cluster) join cluster_work w using (cluster) where p.work_id is not null and w.grp is not null;
        create or replace temp table ledger_manifestation as select * from id_ledger where entity = 'manifestation';
        create or replace temp table ledger_work as select * from id_ledger where entity = 'work';
    """)
    ids.carry_ids(con, "manifestation", groups="manifestation_groups", previous="previous_manifestation",
                  ledger="ledger_manifestation", prefix="M", run=run_number)
    con.execute("insert into manifestation_ids select first_record_key, manifestation_id from carried_clusters")
    ids.carry_ids(con, "work", groups="work_groups", previous="previous_work", ledger="ledger_work",
                  prefix="W", run=run_number, changes=False)
    con.execute("drop table manifestation_groups; drop table work_groups; drop table previous_work; "
                "drop table ledger_manifestation; drop table ledger_work")


# ---- outputs -----------------------------------------------------------------------------------


def _write(con: duckdb.DuckDBPyConnection, out: Path, name: str, query: str, table_schema: pa.Schema | None, run_number: int) -> int:
    """Stream the query's result into `out/name` (the largest outputs have a row per record)."""
    result = con.sql(query).to_arrow_reader(OUTPUT_BATCH_ROWS)
    metadata = {b"unioncat.schema_version": schema.SCHEMA_VERSION.encode(), RUN_TAG: str(run_number).encode()}
    return atomic.write_parquet_batches(out / name, result, (table_schema or result.schema).with_metadata(metadata),
                                        row_group_size=OUTPUT_BATCH_ROWS)


def _cache_options(run_number: int) -> str:
    """COPY options of a file only the next run reads (features, nodes): DuckDB's parallel
    Parquet writer, tagged with the run; LZ4, which writes and reads faster than zstd for a
    third more bytes (BENCHMARKS.md)."""
    return (f"format parquet, compression lz4_raw, row_group_size {OUTPUT_BATCH_ROWS}, kv_metadata "
            f"{{'unioncat.schema_version': '{schema.SCHEMA_VERSION}', '{RUN_TAG.decode()}': '{run_number}'}}")


def _write_cache(con: duckdb.DuckDBPyConnection, out: Path, name: str, query: str, run_number: int) -> None:
    temp = out / f".{name}.tmp"
    con.execute(f"copy ({query}) to '{temp}' ({_cache_options(run_number)})")
    os.replace(temp, out / name)


PUBLISHED = {"record_manifestation": schema.RECORD_MANIFESTATION, "manifestations": schema.MANIFESTATIONS, "works": schema.WORKS,
             "changes": schema.CHANGES}


def _write_published(con: duckdb.DuckDBPyConnection, out: Path, table: str, query: str) -> int:
    """A table publish links into its snapshot as it is: written by `schema.write_table`, in the
    order the query gives (the snapshot's), without a run tag (the same rows, the same bytes)."""
    return schema.write_table(out / f"{table}.parquet", con.sql(query).to_arrow_reader(schema.ROW_GROUP_ROWS), PUBLISHED[table], table)


def _write_record_manifestation(con: duckdb.DuckDBPyConnection, out: Path, changed: list[pa.Array] | None) -> Future:
    """`record_manifestation.parquet` from the previous run's file (dedup.merge): a record of a
    carried cluster keeps its row, with its new work id if it has one; the records of the other
    clusters have their rows computed again (`moved_works`: the carried clusters whose work id
    changed). `changed` gains the keys of the rows that are new, not the previous run's or gone
    (None on a first run). When at most THREADED_MERGE_MAX_ROWS rows are computed again, they are
    computed here and the merge and the write (Arrow alone, one core for the writer) run in a
    thread of their own while the run computes and writes the other outputs (at 11.27M records
    after a 1% change, they took 10 s of the 24 s outputs phase at 1.65 cores); more are merged
    and written here as they stream. Returns the future of the number of rows written."""
    updates = con.sql("""
        select p.record_key, m.work_id from moved_works m join clusters c using (cluster) join previous_links p using (rid)
    """).to_arrow_table()
    gone = con.sql("select record_key from previous_links where rid is null").to_arrow_table().column(0).combine_chunks()
    # local_id is the record key's tail (`<library_id>:<local_id>`, transforms.bibliographic) and
    # rids follow record keys: neither the input nor a string sort is needed. Held in full when
    # merged in a thread: the thread must not read the connection the run goes on using.
    query = con.sql("""
        select m.record_key, m.library_id, substr(m.record_key, length(m.library_id) + 2) as local_id,
               ci.manifestation_id, ci.work_id, coalesce(l.rule, 'singleton') as match_rule, l.weight as match_score,
               l.other as matched_with, l.evidence as match_evidence
        from open_records o join match_records m using (rid) join cluster_ids ci using (cluster)
        left join strongest_link l using (rid)
        order by m.rid
    """)

    def write(recomputed: pa.RecordBatchReader) -> int:
        written = _write_merged(out, "record_manifestation", "record_key", recomputed, updates=updates, gone=gone, changed=changed)
        if changed is not None:
            changed.append(gone)
        return written

    if con.sql("select count(*) from open_records").fetchall()[0][0] > THREADED_MERGE_MAX_ROWS:
        # a full run's rows (all of them): streamed, not held (1.5 GB more at 11.27M records)
        future: Future = Future()
        future.set_result(write(query.to_arrow_reader(schema.ROW_GROUP_ROWS)))
        return future
    recomputed = query.to_arrow_table()
    executor = ThreadPoolExecutor(1, thread_name_prefix="record_manifestation")
    future = executor.submit(write, recomputed.to_reader(schema.ROW_GROUP_ROWS))
    executor.shutdown(wait=False)  # the thread ends with the write
    return future


def _write_manifestations(con: duckdb.DuckDBPyConnection, out: Path) -> int:
    """`manifestations.parquet`: the rows of the clusters not carried from their golden records,
    those of the carried clusters from the previous run's file (dedup.merge; their golden rows
    hold only what the works and ids read), with their new work id if they have one
    (`moved_works`). At 11.27M records after a 1% change, reading every carried row into the
    golden table and writing all rows in one sort took 4.7–5.6 s (`_carry_clusters`) and
    3.3–4.8 s; reading the columns the works and ids need and merging, 3.4–3.9 s and 2.6–3.7 s
    (BENCHMARKS.md)."""
    path = out / "manifestations.parquet"
    recomputed = """
        select ci.manifestation_id, ci.work_id, g.* exclude (cluster, first_record_key)
        from golden g join cluster_ids ci using (cluster) where not ci.carried order by ci.manifestation_id
    """
    if not con.sql("select count(*) from carried_clusters").fetchall()[0][0]:
        return _write_published(con, out, "manifestations", recomputed)
    updates = con.sql("select manifestation_id, work_id from moved_works").to_arrow_table()
    gone = con.sql(f"select manifestation_id from read_parquet('{path}') anti join cluster_ids using (manifestation_id)").to_arrow_table()
    return _write_merged(out, "manifestations", "manifestation_id", con.sql(recomputed).to_arrow_reader(schema.ROW_GROUP_ROWS),
                         updates=updates, gone=gone.column(0).combine_chunks(), changed=None)


def _write_merged(out: Path, table: str, key: str, recomputed: pa.RecordBatchReader, *, updates: pa.Table, gone: pa.Array,
                  changed: list[pa.Array] | None) -> int:
    """A published table rewritten from its previous file and `recomputed` (dedup.merge), the
    merge running ahead in a thread while the rows are written."""
    path = out / f"{table}.parquet"
    previous = merge.previous_rows(path, PUBLISHED[table], schema.ROW_GROUP_ROWS)
    rows = merge.merge_rows(previous, recomputed, PUBLISHED[table], key, updates=updates, gone=gone, changed=changed)
    return schema.write_table(path, prefetched(rows), PUBLISHED[table], table)


def _write_record_changes(con: duckdb.DuckDBPyConnection, out: Path, changed: list[pa.Array] | None, run_number: int) -> None:
    """`record_changes.parquet`: the keys of the records whose `record_manifestation` row is not
    the previous run's (new or changed) or is gone, when there was a previous run. Publish takes
    it for the catalogue's diff when this run's table follows the parent snapshot's
    (warehouse.catalogue)."""
    if changed is None:
        (out / RECORD_CHANGES).unlink(missing_ok=True)
        return
    con.register("changed_records_arrow", pa.table({"record_key": pa.chunked_array(changed, pa.string())}))
    _write(con, out, RECORD_CHANGES, "select record_key from changed_records_arrow", None, run_number)
    con.unregister("changed_records_arrow")


def _output_versions(out: Path) -> dict[str, dict]:
    """sha256, size and mtime of the tables changes are computed from, as this run wrote them."""
    versions = {}
    for table in schema.CHANGES_FROM:
        path = out / f"{table}.parquet"
        stat = path.stat()
        versions[table] = {"sha256": atomic.sha256_file(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return versions


def _previous_outputs(out: Path, state: dict) -> dict[str, str] | None:
    """table → sha256 of the previous run's outputs this run's changes are relative to, when they
    are still the files it wrote (publish then takes this run's changes as the snapshot's)."""
    recorded = state.get("outputs") or {}
    versions = {}
    for table in schema.CHANGES_FROM:
        path, version = out / f"{table}.parquet", recorded.get(table)
        stat = path.stat() if path.exists() else None
        if not version or not stat or (stat.st_size, stat.st_mtime_ns) != (version["size"], version["mtime_ns"]):
            return None
        versions[table] = version["sha256"]
    return versions


def _row_signatures(con: duckdb.DuckDBPyConnection, manifestations: Path, table: str) -> None:
    """`table(manifestation_id, sig)`: a digest of the whole row of each `kept_open` manifestation
    in the file (as warehouse.changes reads a snapshot's)."""
    if manifestations.exists():
        con.execute(f"create or replace temp table {table} as select manifestation_id, md5(m::varchar) as sig "
                    f"from read_parquet('{manifestations}') m semi join kept_open using (manifestation_id)")
    else:
        con.execute(f"create or replace temp table {table} (manifestation_id varchar, sig varchar)")


def _write_outputs(con: duckdb.DuckDBPyConnection, out: Path, run_number: int) -> dict:
    con.execute("""
        create or replace temp table cluster_ids as
        select g.cluster, mi.id as manifestation_id, coalesce(w.work_id, wi.id) as work_id, cc.cluster is not null as carried
        from golden g
        join manifestation_ids mi on mi.grp = g.first_record_key
        join cluster_work w using (cluster)
        left join work_ids wi on wi.grp = w.grp
        left join carried_clusters cc using (cluster)
    """)
    _write_cache(con, out, WORK_KEYS, "select ci.manifestation_id, k.work_key from work_keys k join cluster_ids ci using (cluster) "
                                      "union all select * from kept_work_keys", run_number)
    con.execute("drop table work_keys; drop table kept_work_keys")
    # the strongest link of each record of a cluster not carried (carried ones keep theirs)
    nodes.record_links(con, "open_records")
    con.execute(f"""
        create or replace temp table strongest_link as
        with inside as (
            select p.rid_a, p.rid_b, p.weight, p.title_score + p.authors_score as closeness from record_links p
            join open_records ca on ca.rid = p.rid_a join open_records cb on cb.rid = p.rid_b
            where ca.cluster = cb.cluster
        ),
        links as (
            select rid_a as rid, rid_b as other, weight, closeness from inside
            union all
            select rid_b as rid, rid_a as other, weight, closeness from inside
        ),
        best as (select rid, arg_max(other, (weight, closeness, -other)) as other from links group by rid)
        select b.rid, m.record_key as other, p.weight, {rule_sql('p')} as rule, {evidence_sql('p')} as evidence
        from best b
        join record_links p on p.rid_a = least(b.rid, b.other) and p.rid_b = greatest(b.rid, b.other)
        join match_records m on m.rid = b.other;
        drop table record_links;
    """)
    # carried clusters whose work id changed: the records of a carried cluster had one
    # manifestation, hence one work, and its first record's row says which (comparing every
    # record's, with the records gone, took 2.1 s at 11.27M records)
    con.execute("""
        create or replace temp table moved_works as
        select ci.cluster, ci.manifestation_id, ci.work_id from cluster_ids ci join previous_links p on p.rid = ci.cluster
        where ci.carried and ci.work_id is distinct from p.work_id
    """)
    counts: dict = {}
    # a first run's table has nothing to be compared with: every row would be listed
    changed: list[pa.Array] | None = [] if con.sql("select count(*) from previous_links").fetchall()[0][0] else None
    records = _write_record_manifestation(con, out, changed)
    try:
        con.execute("drop table strongest_link; drop table open_records")
        _write_other_outputs(con, out, run_number, counts)
    finally:  # nothing is written once the run is over, whatever ended it
        counts["records"] = records.result()
    _write_record_changes(con, out, changed, run_number)
    return counts


def _write_other_outputs(con: duckdb.DuckDBPyConnection, out: Path, run_number: int, counts: dict) -> None:
    """Everything but `record_manifestation` and `record_changes`; `counts` gains what they hold."""
    # kept manifestations of clusters not carried: their rows are compared with the previous run's
    con.execute("""create or replace temp table kept_open as select manifestation_id from cluster_ids
                   where not carried and manifestation_id in (select old_id from previous_manifestation)""")
    _row_signatures(con, out / "manifestations.parquet", "previous_signatures")
    counts["manifestations"] = _write_manifestations(con, out)
    _row_signatures(con, out / "manifestations.parquet", "new_signatures")
    con.execute("""
        insert into manifestation_changes
        select 'updated', id, id from (
            select manifestation_id as id from new_signatures n join previous_signatures p using (manifestation_id) where n.sig <> p.sig
            union
            -- a carried manifestation keeps its row but for its work id
            select manifestation_id from moved_works
        ) where id not in (select manifestation_id from manifestation_changes where change = 'updated');
        drop table previous_links; drop table moved_works; drop table kept_open; drop table previous_signatures; drop table new_signatures;
    """)
    counts["works"] = _write_published(con, out, "works", """
        select ci.work_id, arg_min(g.title, (-g.n_records, ci.manifestation_id)) as title,
               arg_min(g.authors[1], (-g.n_records, ci.manifestation_id)) as author,
               count(*)::integer as n_manifestations, sum(g.n_records)::integer as n_records
        from golden g join cluster_ids ci using (cluster) group by ci.work_id order by ci.work_id
    """)
    _write_published(con, out, "changes", "select * from manifestation_changes order by change, "
                     "coalesce(manifestation_id, old_manifestation_id), old_manifestation_id")
    counts["changes"] = dict(con.sql("select change, count(*) from manifestation_changes group by all").fetchall())
    counts["accepted_pairs"] = con.sql("select count(*) from accepted_pairs").fetchall()[0][0]
    _write(con, out, "match_evidence.parquet", """
        select x.record_key as record_key_a, y.record_key as record_key_b, x.node_key as node_key_a, y.node_key as node_key_b,
               p.rid_a as node_a, p.rid_b as node_b,
               p.blocks, p.weight, p.title_score,
               p.authors_score, p.title, p.authors, p.publisher, p.year, p.pages, p.isbn, p.issn, p.edition, p.language,
               p.veto, p.accepted
        from match_pairs p join match_nodes x on x.rid = p.rid_a join match_nodes y on y.rid = p.rid_b
    """, schema.MATCH_EVIDENCE, run_number)
    _write_ledger(con, out, run_number)


def _write_ledger(con: duckdb.DuckDBPyConnection, out: Path, run_number: int) -> None:
    _write(con, out, "id_ledger.parquet", """
        with updates as (
            select 'manifestation' as entity, * from manifestation_ledger_updates
            union all select 'work', * from work_ledger_updates
        )
        select entity, id, coalesce(l.first_run, u.first_run, 0)::integer as first_run,
               coalesce(u.retired_run, l.retired_run)::integer as retired_run, coalesce(u.successor, l.successor) as successor
        from id_ledger l full outer join updates u using (entity, id)
        order by entity, id
    """, None, run_number)
