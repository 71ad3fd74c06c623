"""Golden record of each manifestation, and the work each manifestation belongs to.

The golden record is the member catalogued at the highest level (provincial > city > county),
then the most complete one, then the smallest record key. Each golden field falls back to the
next-ranked member that has it; display fields libraries write differently (title, publisher…)
take the form most members wrote, so one library's traditional-character or spaced-out title
does not become the catalogue's.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from dedup.clustering import components, int_column
from dedup.features import mapping, work_title_key
from unioncat import schema

LEVEL_RANK = {"province": 0, "city": 1, "county": 2}
CONSENSUS_FIELDS = ("title", "subtitle", "responsibility", "edition", "publisher", "place")


def _present(column: str, prefix: str = "") -> str:
    column = prefix + column
    if column.endswith(("authors", "clc")):
        return f"len(coalesce({column}, [])) > 0"
    if column.endswith(("year", "pages")):
        return f"{column} is not null"
    return f"coalesce({column}, '') <> ''"


def build_golden(con: duckdb.DuckDBPyConnection, levels: dict[str, str], carried: str | None = None) -> None:
    """`golden(cluster, <golden fields>, isbn, golden_record_key, first_record_key, n_records,
    n_libraries)` from `open_records(rid, cluster)` (the records of the clusters not carried),
    `match_records` and the input rows `dedup_input`. `carried`: a relation of golden rows of
    the clusters kept from the previous run, taken as they are (some of the columns: the others
    are null)."""
    con.register("library_levels_arrow", pa.table({
        "library_id": pa.array(list(levels), pa.string()),
        "level_rank": pa.array([LEVEL_RANK.get(level, 9) for level in levels.values()], pa.int32()),
    }))
    con.execute("create or replace temp table library_levels as select * from library_levels_arrow")
    con.unregister("library_levels_arrow")
    completeness = " + ".join(f"({_present(f, 's.')})::integer" for f in schema.GOLDEN_FIELDS)
    fields = ", ".join(f"s.{f}" for f in schema.GOLDEN_FIELDS)
    con.execute(f"""
        create or replace temp table ranked as
        select c.cluster, s.record_key, s.library_id, s.isbn, {fields},
               row_number() over (partition by c.cluster
                                  order by coalesce(l.level_rank, 9), {completeness} desc, s.record_key) as golden_rank
        from open_records c
        join match_records m using (rid)
        join dedup_input s on s.record_key = m.record_key
        left join library_levels l on l.library_id = s.library_id
    """)
    fallback = ",\n".join(
        f"arg_min({f}, golden_rank) filter (where {_present(f)}) as {f}"
        for f in schema.GOLDEN_FIELDS if f not in CONSENSUS_FIELDS
    )
    consensus_ctes, consensus_joins, consensus_cols = [], [], []
    for f in CONSENSUS_FIELDS:
        consensus_ctes.append(f"""
            c_{f} as (
                select cluster, arg_min({f}, (-n, best)) as {f} from (
                    select cluster, {f}, count(*) as n, min(golden_rank) as best from ranked
                    where {_present(f)} group by all
                ) group by cluster
            )""")
        consensus_joins.append(f"left join c_{f} using (cluster)")
        consensus_cols.append(f"c_{f}.{f}")
    con.execute(f"""
        create or replace temp table golden as
        with base as (
            select cluster, {fallback},
                   arg_min(isbn[1], golden_rank) filter (where len(isbn) > 0) as isbn,
                   arg_min(record_key, golden_rank) as golden_record_key,
                   min(record_key) as first_record_key,
                   count(*)::integer as n_records, count(distinct library_id)::integer as n_libraries
            from ranked group by cluster
        ),
        {', '.join(consensus_ctes)}
        select base.*, {', '.join(consensus_cols)}
        from base {' '.join(consensus_joins)}
    """)
    con.execute("drop table ranked")
    if carried:
        con.execute(f"insert into golden by name select * from {carried}")


def build_works(con: duckdb.DuckDBPyConnection, previous_keys: str | None = None) -> int:
    """`cluster_work(cluster, grp, work_id)`: manifestations with the same title proper that share
    an author (any member record's author surname: an abridgement `West, Clare; Austen, Jane`
    meets `Austen, Jane`) form one work; grp is the smallest record key of the work. A
    manifestation without authors joins the author-less ones of its title. The surnames are read
    from the nodes of each cluster (`cluster_nodes`, dropped here; twins have the same authors), a
    fourth as many rows as records. `work_keys(cluster, work_key)`: the keys of the clusters
    placed, and `kept_work_keys(manifestation_id, work_key)` those of the others, for the next run.

    `previous_keys` (an incremental run): the previous run's work keys by manifestation id. A
    previous work that no change reached (none of its records is gone or in a cluster not
    carried, and no such cluster shares a key with it) is a component again, of the same carried
    clusters: they keep its id (`work_id`; grp null) and are not placed again. The works a change
    reached hold every cluster their components can reach, so those are placed as a full run
    would (at 11.27M records after a 1% change, 365,166 of the 2,207,757 clusters). Returns how many
    clusters were placed."""
    if previous_keys is None:
        con.execute("""
            create or replace temp table work_clusters as select cluster from golden;
            create or replace temp table kept_works (cluster integer, manifestation_id varchar, work_id varchar);
            create or replace temp table kept_work_keys (manifestation_id varchar, work_key varchar);
        """)
        _work_keys(con, "work_clusters")
    else:
        con.execute("create or replace temp table open_clusters as select cluster from golden anti join carried_clusters using (cluster)")
        _work_keys(con, "open_clusters")
        con.execute(f"""
            create or replace temp table previous_work_keys as select * from read_parquet('{previous_keys}');
            -- a carried cluster's records were one manifestation, hence in one work: its first record's
            create or replace temp table carried_works as
            select cc.cluster, cc.manifestation_id, p.work_id from carried_clusters cc join previous_links p on p.rid = cc.cluster;
            create or replace temp table touched_works as
            select work_id from previous_links where work_id is not null and (rid is null or rid in (select rid from open_records))
            union
            select c.work_id from previous_work_keys k semi join work_keys w using (work_key) join carried_works c using (manifestation_id);
            create or replace temp table kept_works as
            select cluster, manifestation_id, work_id from carried_works
            where work_id is not null and work_id not in (select work_id from touched_works where work_id is not null);
            create or replace temp table work_clusters as
            select cluster from open_clusters union all select cluster from carried_works anti join kept_works using (cluster);
            insert into work_keys
            select c.cluster, k.work_key from carried_works c anti join kept_works using (cluster) join previous_work_keys k using (manifestation_id);
            create or replace temp table kept_work_keys as select k.* from previous_work_keys k semi join kept_works using (manifestation_id);
            drop table open_clusters; drop table previous_work_keys; drop table carried_works; drop table touched_works;
        """)
    # A graph of manifestations (nodes 0..n-1) and work keys (title proper|surname, nodes n…).
    con.execute("""
        create or replace temp table work_nodes as
        select cluster, (row_number() over (order by cluster) - 1)::integer as node from work_clusters;
        create or replace temp table work_links as
        -- a key's number only names it in this run's graph: numbered as found, not sorted
        with key_numbers as (select work_key, ((select count(*) from work_nodes) + row_number() over () - 1)::integer as key_node
                             from (select distinct work_key from work_keys))
        select n.node, k.key_node from work_keys join key_numbers k using (work_key) join work_nodes n using (cluster);
    """)
    n = con.sql("select count(*) from work_nodes").fetchall()[0][0]
    keys = con.sql("select count(distinct key_node) from work_links").fetchall()[0][0]
    edges = con.sql("select node, key_node from work_links").to_arrow_table()
    roots = components(n + keys, int_column(edges, "node"), int_column(edges, "key_node"))
    del edges
    con.register("work_roots_arrow", pa.table({"node": pa.array(np.arange(n, dtype=np.int32)),
                                               "root": pa.array(roots[:n], pa.int32())}))
    con.execute("""
        create or replace temp table cluster_work as
        select w.cluster, min(g.first_record_key) over (partition by r.root) as grp, null::varchar as work_id
        from work_roots_arrow r join work_nodes w using (node) join golden g using (cluster)
        union all
        select cluster, null, work_id from kept_works;
        drop table work_links; drop table work_nodes; drop table work_clusters; drop table kept_works; drop table cluster_nodes;
    """)
    con.unregister("work_roots_arrow")
    return n


def _work_keys(con: duckdb.DuckDBPyConnection, clusters: str) -> None:
    """`work_keys(cluster, work_key)` of the clusters of `clusters(cluster)`: title proper|surname."""
    mapping(con, "work_titles", f"select distinct coalesce(title, '') from golden semi join {clusters} using (cluster)",
            lambda t: (work_title_key(t),), ["title", "work_title"])
    con.execute(f"""
        create or replace temp table work_keys as
        select distinct cluster, work_title || '|' || surname as work_key from (
            select g.cluster, t.work_title, unnest(string_split(coalesce(n.authors_key, ''), ' ')) as surname
            from golden g semi join {clusters} using (cluster) join work_titles t on t.title = coalesce(g.title, '')
            join cluster_nodes c using (cluster) join match_nodes n on n.rid = c.node
            where t.work_title <> ''
        );
        drop table work_titles;
    """)
