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


def build_works(con: duckdb.DuckDBPyConnection) -> None:
    """`cluster_work(cluster, grp)`: manifestations with the same title proper that share an author
    (any member record's author surname: an abridgement `West, Clare; Austen, Jane` meets
    `Austen, Jane`) form one work; grp is the smallest record key of the work. A manifestation
    without authors joins the author-less ones of its title. The surnames are read from the
    nodes of each cluster (`cluster_nodes`, dropped here; twins have the same authors), a
    fourth as many rows as records."""
    mapping(con, "work_titles", "select distinct coalesce(title, '') from golden", lambda t: (work_title_key(t),),
            ["title", "work_title"])
    # A graph of manifestations (nodes 0..n-1) and work keys (title proper|surname, nodes n…).
    con.execute("""
        create or replace temp table work_nodes as
        select cluster, (row_number() over (order by cluster) - 1)::integer as node from golden;
        create or replace temp table work_links as
        with keys as (
            select distinct g.cluster, t.work_title || '|' || coalesce(a.surname, '') as work_key
            from golden g join work_titles t on t.title = coalesce(g.title, '')
            join cluster_nodes c using (cluster) join match_nodes n on n.rid = c.node
            left join (select rid, unnest(string_split(authors_key, ' ')) as surname from match_nodes where authors_key <> '') a on a.rid = n.rid
            where t.work_title <> ''
        ),
        -- a key's number only names it in this run's graph: numbered as found, not sorted
        key_numbers as (select work_key, ((select count(*) from work_nodes) + row_number() over () - 1)::integer as key_node
                        from (select distinct work_key from keys))
        select n.node, k.key_node from keys join key_numbers k using (work_key) join work_nodes n using (cluster);
        drop table work_titles;
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
        select w.cluster, min(g.first_record_key) over (partition by r.root) as grp
        from work_roots_arrow r join work_nodes w using (node) join golden g using (cluster);
        drop table work_links; drop table work_nodes; drop table cluster_nodes;
    """)
    con.unregister("work_roots_arrow")
