"""Clustering: connected components of the accepted pairs, then the split of any component
that holds a pair a hard rule forbids.

A component can chain two editions through a record that resembles both, so every component
whose members could break a rule (more than one volume, edition, title or ISBN set, a year
span beyond the tolerance, two records of one library) has all its pairs scored; if any is
vetoed, the component is rebuilt by adding its accepted pairs strongest first, skipping a
pair that would put two vetoed records together (Kruskal with cannot-links). The result
depends only on the accepted pairs and the records' features, never on input order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from dedup import rules
from dedup.scoring import score_pairs


def components(n: int, edges_a: Sequence[int], edges_b: Sequence[int]) -> np.ndarray:
    """Connected components: the smallest member of each node's component, for nodes 0..n-1.

    Vectorised union-find: each round hooks the larger root of every edge whose ends have
    different roots onto the smallest root it meets, then jumps pointers until every node points
    at its root. A node's parent is never larger than the node, so a root is its component's
    smallest member; each round hooks every root that is not a local minimum, so the rounds are
    few (the 3.04M nodes and 1.25M accepted pairs of the 11.27M-record province: 0.93–1.0 s in a
    Python loop, 0.40–0.52 s here)."""
    parent = np.arange(n, dtype=np.int64)
    a, b = np.asarray(edges_a, dtype=np.int64), np.asarray(edges_b, dtype=np.int64)
    while len(a):
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        if not apart.any():
            break
        a, b, root_a, root_b = a[apart], b[apart], root_a[apart], root_b[apart]
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))
        while True:
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent
    return parent


def split_component(members: list[int], edges: list[tuple[float, float, int, int]], forbidden: set[tuple[int, int]]) -> dict[int, int]:
    """Kruskal with cannot-links: accepted edges (weight, closeness, a, b) strongest first (ties:
    the closer title and author lists, then rid), skipping an edge that would join two groups
    holding a forbidden pair. Returns member → smallest member of its group."""
    group = {m: m for m in members}
    parts = {m: [m] for m in members}
    for _, _, a, b in sorted(edges, key=lambda e: (-e[0], -e[1], e[2], e[3])):
        ga, gb = group[a], group[b]
        if ga == gb or any((min(x, y), max(x, y)) in forbidden for x in parts[ga] for y in parts[gb]):
            continue
        keep, gone = min(ga, gb), max(ga, gb)
        for m in parts[gone]:
            group[m] = keep
        parts[keep].extend(parts.pop(gone))
    return group


# "more than one distinct value" as min < max: with distinct counts over every node this took
# 5.8 s at 11.27M records, so 5.0 s
SUSPECT_CLUSTERS = f"""
    select c.cluster
    from node_clusters c join match_nodes m using (rid)
    where c.cluster not in (select cluster from kept_components)
    group by c.cluster
    having count(*) > 1 and (
        min(m.volume_key) < max(m.volume_key)
        or min(m.edition_key) filter (where m.edition_key <> '') < max(m.edition_key) filter (where m.edition_key <> '')
        or max(m.year) - min(m.year) > {rules.YEAR_TOLERANCE}
        or min(m.title_key) < max(m.title_key)
        or min(m.isbn) filter (where len(m.isbn) > 0) < max(m.isbn) filter (where len(m.isbn) > 0)
        or len(list_distinct(flatten(list(m.libraries)))) < sum(len(m.libraries))
    )
"""


def int_column(table: pa.Table, name: str) -> np.ndarray:
    """An integer column as a numpy array (no copy when it has one chunk and no nulls)."""
    return table.column(name).combine_chunks().to_numpy()


def cluster(con: duckdb.DuckDBPyConnection, untouched: str | None = None) -> dict:
    """`node_clusters(rid, cluster)` of `match_nodes` from `accepted_pairs(rid_a, rid_b, weight, …)`
    between nodes; cluster = smallest node rid.

    `untouched(rid, grp)` (an incremental run): the nodes that neither changed nor gained or lost
    an accepted pair, with the cluster each was in before. A component made of such nodes only
    is the one the previous run found, with the same pairs and features: it is split as it was
    then, without scoring its pairs again (at 11.27M records those of every suspect component
    took 5.7 s)."""
    n = con.sql("select count(*) from match_nodes").fetchall()[0][0]
    edges = con.sql("select rid_a, rid_b from accepted_pairs").to_arrow_table()
    roots = components(n, int_column(edges, "rid_a"), int_column(edges, "rid_b"))
    del edges
    _register(con, "node_clusters", pa.table({"rid": pa.array(np.arange(n, dtype=np.int32)), "cluster": pa.array(roots, pa.int32())}))
    if untouched:
        con.execute(f"""
            create or replace temp table kept_components as
            select c.cluster, min(u.grp) < max(u.grp) as was_split
            from node_clusters c left join {untouched} u using (rid)
            group by c.cluster having count(u.rid) = count(*)
        """)
    else:
        con.execute("create or replace temp table kept_components (cluster integer, was_split boolean)")

    con.execute(f"""
        create or replace temp table suspect_pairs as
        with suspects as ({SUSPECT_CLUSTERS}),
        members as (select rid, cluster from node_clusters where cluster in (select cluster from suspects))
        select x.rid as rid_a, y.rid as rid_b from members x join members y on x.cluster = y.cluster and x.rid < y.rid
    """)
    score_pairs(con, "suspect_pairs", "suspect_vetoes", keep="veto is not null")
    forbidden = {(a, b) for a, b in con.sql("select rid_a, rid_b from suspect_vetoes").fetchall()}
    stats = {"components_checked": con.sql("select count(distinct cluster) from node_clusters where rid in "
                                           "(select rid_a from suspect_pairs)").fetchall()[0][0],
             "components_split": 0}
    con.execute("drop table suspect_pairs; drop table suspect_vetoes")
    if forbidden:
        bad = sorted({roots[a] for a, _ in forbidden})
        _register(con, "bad_components", pa.table({"cluster": pa.array(bad, pa.int32())}))
        members: dict[int, list[int]] = defaultdict(list)
        for rid, root in con.sql("select rid, cluster from node_clusters where cluster in (select cluster from bad_components)").fetchall():
            members[root].append(rid)
        inside: dict[int, list[tuple[float, float, int, int]]] = defaultdict(list)
        for a, b, w, closeness, root in con.sql("""
            select p.rid_a, p.rid_b, p.weight, p.title_score + p.authors_score, c.cluster
            from accepted_pairs p join node_clusters c on c.rid = p.rid_a
            where c.cluster in (select cluster from bad_components)
        """).fetchall():
            inside[root].append((w, closeness, a, b))
        for root, rids in members.items():
            for rid, new_root in split_component(rids, inside[root], forbidden).items():
                roots[rid] = new_root
        stats["components_split"] = len(bad)
        con.execute("drop table bad_components")
    kept_splits = con.sql(f"""
        select c.rid, min(c.rid) over (partition by c.cluster, u.grp) as root, c.cluster
        from node_clusters c join {untouched} u using (rid)
        where c.cluster in (select cluster from kept_components where was_split)
    """).fetchall() if untouched else []
    for rid, root, _ in kept_splits:
        roots[rid] = root
    stats["components_kept_split"] = len({component for *_, component in kept_splits})
    con.execute("drop table kept_components")
    if forbidden or kept_splits:
        _register(con, "node_clusters", pa.table({"rid": pa.array(np.arange(n, dtype=np.int32)), "cluster": pa.array(roots, pa.int32())}))
    return stats


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register(f"{name}_arrow", table)
    con.execute(f"create or replace temp table {name} as select * from {name}_arrow")
    con.unregister(f"{name}_arrow")
