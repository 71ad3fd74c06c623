"""Nodes: twin records, compared once.

Libraries copy each other's cataloguing, so a province holds far fewer distinct records than
records (the generated province: 270,000 distinct feature sets in 1,000,000 records). Records
equal in every feature the matcher compares (`twin_key`, dedup.features) are twins: any two of
them would score alike against any third record. A node is a set of twins; blocking, scoring
and clustering run over nodes (`match_nodes`, one row per node, in the shape of
`match_records` plus `libraries` and `n_records`), and each record takes its node's
manifestation. The same-library rule holds at node level: two nodes holding a record of one
library are vetoed like two records of it (scoring compares `libraries` lists: the hashes of
the library ids, as integers aggregate faster than strings).

Twins the matcher would keep apart stay apart:
- two twins in one library without an ISBN are two things that library catalogued alike (the
  same-library rule keeps such records apart): the k-th of a library's twins goes to node k, so
  a node holds each library once (twins sharing an ISBN stay together, as the rule allows);
- twins whose own pair would not be accepted (records with too little in them to merge on)
  are one node each.

For the outputs the nodes are unfolded again (`record_links`): every twin is linked to its
node's first record by the score of the twins' own pair, and a link between two nodes joins
their first records.
"""

from __future__ import annotations

import duckdb

from dedup import rules
from dedup.scoring import score_pairs


def build_nodes(con: duckdb.DuckDBPyConnection, previous_twin_scores: str | None = None) -> dict[str, int]:
    """`match_nodes`, `node_members(rid, node)`, `twin_scores` (the twins' own pair of each
    node of several records, and its `twin_key`) and `twin_key_scores` (the same, one row per
    twin key, for the next run) from `match_records` and `record_features`.
    `previous_twin_scores`: a file of the previous run's twin scores by twin key (an incremental
    run; see `_twin_scores`). Returns how many nodes there are and how many twin keys were scored."""
    con.execute("""
        -- numbered over the records without an ISBN only: a window over all of them sorts them all
        create or replace temp table twin_occurrence as
        select rid, hash(library_id) as library, twin_key, 1::bigint as k from match_records where has_isbn
        union all
        select rid, hash(library_id), twin_key, row_number() over (partition by twin_key, library_id order by rid) as k
        from match_records where not has_isbn;
        create or replace temp table twin_groups as
        select twin_key, k, min(rid) as first_rid, count(*) as n, list_sort(list_distinct(list(library))) as libraries
        from twin_occurrence group by twin_key, k;
        create or replace temp table twin_pairs as select first_rid as rid_a, first_rid as rid_b, twin_key from twin_groups where n > 1;
    """)
    scored = _twin_scores(con, previous_twin_scores)
    # A twin group is one node when its twins' own pair is accepted, else one node per twin; the
    # nodes are numbered in the order of their first record's rid (rids follow record keys).
    # Taking them from the twin groups rather than grouping all records again by node (4.4 s at
    # 11.27M records) leaves only the twins of the groups kept apart to be read one by one.
    con.execute(f"""
        create or replace temp table twin_group_keys as
        select g.*, g.n = 1 or s.weight >= {rules.MATCH_THRESHOLD} as together
        from twin_groups g left join twin_scores s on s.rid_a = g.first_rid;
        create or replace temp table node_groups as
        with nodes as (
            select first_rid, n::integer as n_records, twin_key, k, true as together, libraries from twin_group_keys where together
            union all
            select o.rid, 1, o.twin_key, o.k, false, [o.library]
            from twin_occurrence o semi join (select twin_key, k from twin_group_keys where not together) g using (twin_key, k)
        )
        select (row_number() over (order by first_rid) - 1)::integer as rid, * from nodes;
        create or replace temp table node_members as
        select o.rid, n.rid as node from twin_occurrence o join twin_group_keys g using (twin_key, k)
        join node_groups n on n.first_rid = if(g.together, g.first_rid, o.rid);
        create or replace temp table match_nodes as
        select g.rid, if(g.together, g.twin_key::varchar || '.' || g.k, m.record_key) as node_key,
               g.first_rid, g.n_records, g.libraries, hash(m.twin_key, g.libraries) as fingerprint,
               m.* exclude (rid, fingerprint, library_id)
        from node_groups g join record_features m on m.rid = g.first_rid;
        drop table twin_group_keys; drop table node_groups; drop table twin_occurrence; drop table twin_groups; drop table twin_pairs;
    """)
    return {"nodes": con.sql("select count(*) from match_nodes").fetchall()[0][0], "twin_keys_scored": scored}


def _twin_scores(con: duckdb.DuckDBPyConnection, previous: str | None) -> int:
    """`twin_scores`: the own pair of each twin group of several records (`twin_pairs`), scored.

    Twins are equal in every feature scoring reads, so their pair's score depends on the twin key
    alone: an incremental run takes the scores of the keys the previous run had from `previous`
    and scores only the new keys, on one of their records whose features it computed (a key
    without such a record either had a group of several records before, or has none now: a
    group of unchanged records only shrinks). At 11.27M records, 1.23M twin groups: reading their
    first records' features and scoring them took ~5 s. Returns how many twin keys were scored."""
    if previous is None:
        con.execute("""
            create or replace temp table twin_records as
            select f.*, [hash(f.library_id)] as libraries from record_features f where f.rid in (select rid_a from twin_pairs);
        """)
        score_pairs(con, "twin_pairs", "twin_scores", table="twin_records")
        con.execute("""
            drop table twin_records;
            create or replace temp table twin_key_scores as select distinct on (twin_key) * exclude (rid_a, rid_b) from twin_scores;
        """)
        return con.sql("select count(*) from twin_key_scores").fetchall()[0][0]
    con.execute(f"""
        create or replace temp table known_twin_scores as select * from read_parquet('{previous}') semi join twin_pairs using (twin_key);
        create or replace temp table twin_records as
        select (row_number() over ())::integer as rid, *, [hash(library_id)] as libraries from (
            select * from computed_features where twin_key in (select twin_key from twin_pairs anti join known_twin_scores using (twin_key))
            qualify row_number() over (partition by twin_key order by record_key) = 1
        );
        create or replace temp table new_twin_pairs as select rid as rid_a, rid as rid_b, twin_key from twin_records;
    """)
    score_pairs(con, "new_twin_pairs", "new_twin_scores", table="twin_records")
    scored = con.sql("select count(*) from new_twin_pairs").fetchall()[0][0]
    con.execute("""
        create or replace temp table twin_key_scores as
        select * from known_twin_scores union all by name select * exclude (rid_a, rid_b) from new_twin_scores;
        create or replace temp table twin_scores as select p.rid_a, p.rid_b, s.* from twin_pairs p join twin_key_scores s using (twin_key);
        drop table known_twin_scores; drop table twin_records; drop table new_twin_pairs; drop table new_twin_scores;
    """)
    return scored


def record_clusters(con: duckdb.DuckDBPyConnection) -> None:
    """`clusters(rid, cluster)` of records and `cluster_nodes(node, cluster)` from
    `node_clusters(rid, cluster)` of nodes; a record cluster is named by its smallest record rid,
    the smallest first record of its nodes (found over the 3M nodes rather than the 11.27M
    records)."""
    con.execute("""
        create or replace temp table cluster_nodes as
        select c.rid as node, (min(n.first_rid) over (partition by c.cluster))::integer as cluster
        from node_clusters c join match_nodes n using (rid);
        create or replace temp table clusters as select m.rid, c.cluster from node_members m join cluster_nodes c using (node);
        drop table node_clusters;
    """)


def record_links(con: duckdb.DuckDBPyConnection, records: str) -> None:
    """`record_links`: accepted links between the records of `records(rid)`, in the shape of the
    scored pairs — each twin to its node's first record (the twins' own score), and the first
    records of two nodes an accepted pair links."""
    con.execute(f"""
        create or replace temp table record_links as
        select least(n.first_rid, m.rid) as rid_a, greatest(n.first_rid, m.rid) as rid_b,
               s.* exclude (rid_a, rid_b, twin_key, veto, accepted), null::varchar as veto, true as accepted
        from node_members m semi join {records} r on r.rid = m.rid join match_nodes n on n.rid = m.node
        join twin_scores s on s.rid_a = n.first_rid
        where m.rid <> n.first_rid
        union all by name
        select least(x.first_rid, y.first_rid) as rid_a, greatest(x.first_rid, y.first_rid) as rid_b, p.* exclude (rid_a, rid_b)
        from accepted_pairs p join match_nodes x on x.rid = p.rid_a join match_nodes y on y.rid = p.rid_b
        where x.first_rid in (select rid from {records}) and y.first_rid in (select rid from {records})
    """)
