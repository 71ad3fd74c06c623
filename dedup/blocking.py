"""Blocking: which pairs of records are compared, in DuckDB SQL.

Records sharing a key value form a block (rules.py lists the keys). Small blocks give every
pair; a block above `BLOCK_ALL_PAIRS_MAX` records is sorted so that records of one
manifestation sit together and each record meets its next `BLOCK_WINDOW` neighbours only,
so the number of pairs grows linearly with the catalogue, never with the square of a
popular title's block.

A block is named by `block_id = hash(kind, key)`. Every candidate pair carries the blocks
that proposed it: an incremental run recomputes only the blocks a new, changed or deleted
record belongs to (`affected_blocks`) and keeps the pairs some untouched block proposed.
"""

from __future__ import annotations

import duckdb

from dedup import rules

# (kind, key expression, condition) over `match_records`
BLOCK_KEYS = (
    ("isbn", "unnest(isbn)", "len(isbn) > 0"),
    ("issn", "unnest(issn)", "len(issn) > 0"),
    ("title_year", "title_key || '|' || year", "year is not null"),
    ("title_author", "title_key || '|' || author1", "author1 <> ''"),
    ("title_publisher", "title_key || '|' || publisher_key", "publisher_key <> ''"),
    ("pinyin_publisher", "title_pinyin || '|' || publisher_key", "title_pinyin <> '' and publisher_key <> ''"),
    ("author_year", "unnest(string_split(authors_key, ' ')) || '|' || year", "authors_key <> '' and year is not null"),
    ("prefix_year", f"left(title_key, {rules.TITLE_PREFIX_CHARS}) || '|' || year",
     f"year is not null and length(title_key) > {rules.TITLE_PREFIX_CHARS}"),
)
# Records of one manifestation sort next to each other inside a block.
WINDOW_ORDER = "volume_key, edition_key, title_key, authors_key, publisher_key, pages, year, record_key"


def block_keys_sql(table: str) -> str:
    """(block_id, rid) for every key of every record of `table` (a match_records-shaped table)."""
    parts = [
        f"select hash('{kind}', key) as block_id, rid from (select {expression} as key, rid from {table} where {condition})"
        for kind, expression, condition in BLOCK_KEYS
    ]
    return " union all ".join(parts)


def affected_blocks(con: duckdb.DuckDBPyConnection, changed_now: str, changed_before: str) -> None:
    """`affected_blocks`: blocks holding a new or changed record now, or a changed or deleted one
    before (`changed_before` has the previous run's features of those records)."""
    con.execute(f"""
        create or replace temp table affected_blocks as
        select distinct block_id from ({block_keys_sql(changed_now)} union all {block_keys_sql(changed_before)})
    """)


def candidate_pairs(con: duckdb.DuckDBPyConnection, *, records: str = "match_records", out: str = "candidate_pairs") -> int:
    """`out(rid_a, rid_b, blocks)`, rid_a < rid_b, over all blocks of `records`."""
    con.execute(f"""
        create or replace temp table block_members as
        with sized as (
            select k.block_id, k.rid, count(*) over (partition by k.block_id) as size,
                   row_number() over (partition by k.block_id order by {_ordered('m')}) as pos
            from ({block_keys_sql(records)}) k join {records} m using (rid)
        )
        select block_id, rid, size, pos::integer as pos from sized where size > 1
    """)
    con.execute(f"""
        create or replace temp table {out} as
        with reach as (
            select block_id, rid, unnest(range(pos + 1, least(size, pos + case when size <= {rules.BLOCK_ALL_PAIRS_MAX}
                                                                    then size else {rules.BLOCK_WINDOW} end) + 1)) as other_pos
            from block_members
        ),
        linked as (
            select r.block_id, (least(r.rid, b.rid)::bigint << 32) | greatest(r.rid, b.rid)::bigint as pair
            from reach r join block_members b on b.block_id = r.block_id and b.pos = r.other_pos
            where r.rid <> b.rid
        ),
        grouped as (select pair, list_sort(list(distinct block_id)) as blocks from linked group by pair)
        select (pair >> 32)::integer as rid_a, (pair & 4294967295)::integer as rid_b, blocks from grouped;
        drop table block_members;
    """)
    return con.sql(f"select count(*) from {out}").fetchall()[0][0]


def _ordered(alias: str) -> str:
    return ", ".join(f"{alias}.{column}" for column in WINDOW_ORDER.split(", "))


# Incremental blocking. A node's block keys follow from its features, so an unchanged node sits
# in the same blocks as before, in the same order relative to the other unchanged nodes; only the
# new, changed and deleted nodes between them move the positions. The affected blocks are sorted
# once with the nodes each run saw (`block_rows`), and a pair is looked at only where a change can
# have made or unmade it: around a changed node (`changed_pairs`: its pairs are all new), across
# the gap a removed node left, or in a block that fell to BLOCK_ALL_PAIRS_MAX nodes
# (`reopened_pairs`); a kept pair, where a new node came between its two or a block grew past
# that size (`loosened_pairs`).

def _proposes(x: str, y: str, run: str) -> str:
    """Whether the block of rows `x` and `y` proposed their pair in `run` ('now' or 'before')."""
    return f"({x}.size_{run} <= {rules.BLOCK_ALL_PAIRS_MAX} or abs({x}.pos_{run} - {y}.pos_{run}) <= {rules.BLOCK_WINDOW})"


def block_positions(con: duckdb.DuckDBPyConnection, changed_now: str, changed_before: str) -> None:
    """`block_rows(block_id, rid, side, pos_now, size_now, pos_before, size_before)`: the members of
    the affected blocks in one order — the nodes of `match_nodes` (side 0 unchanged, 1 new or
    changed) and the previous run's changed or deleted nodes (side 2, rid null). pos_now and
    pos_before count the rows the current and the previous run saw up to the row (those of
    `candidate_pairs`); a side-2 row's pos_now counts the current rows before it."""
    # Every node is ranked once in WINDOW_ORDER, so the blocks sort on an integer: sorting the
    # block rows on the order's eight columns took 21 s at 11.27M records, this 8 s.
    con.execute(f"""
        create or replace temp table node_order as
        select rid, side, (row_number() over (order by {WINDOW_ORDER}))::integer as rank from (
            select m.rid, if(c.rid is null, 0, 1)::tinyint as side, {_ordered('m')} from match_nodes m left join {changed_now} c using (rid)
            union all
            select b.rid, 2::tinyint, {_ordered('b')} from {changed_before} b
        );
        create or replace temp table block_rows as
        with memberships as (
            select k.block_id, k.rid, o.side, o.rank
            from ({block_keys_sql('match_nodes')}) k join node_order o on o.rid = k.rid and o.side <> 2
            where k.block_id in (select block_id from affected_blocks)
            union all
            select k.block_id, null, 2::tinyint, o.rank
            from ({block_keys_sql(changed_before)}) k join node_order o on o.rid = k.rid and o.side = 2
        ),
        counted as (
            select block_id, rid, side,
                   sum((side <> 2)::integer) over run as pos_now, sum((side <> 1)::integer) over run as pos_before,
                   sum((side <> 2)::integer) over (partition by block_id) as size_now,
                   sum((side <> 1)::integer) over (partition by block_id) as size_before
            from memberships
            window run as (partition by block_id order by rank rows between unbounded preceding and current row)
        )
        select block_id, rid, side, pos_now::integer as pos_now, pos_before::integer as pos_before,
               size_now::integer as size_now, size_before::integer as size_before
        from counted;
        drop table node_order;
    """)


def proposed_pairs(con: duckdb.DuckDBPyConnection) -> None:
    """From `block_rows`: `changed_pairs(rid_a, rid_b, blocks)`, the pairs of a new or changed node
    and the blocks proposing them now (all its blocks are affected; such a pair is new), and
    `reopened_pairs(rid_a, rid_b)`, pairs of unchanged nodes the affected blocks may propose now
    and not before (a superset: `pair_blocks` decides)."""
    window, small = rules.BLOCK_WINDOW, rules.BLOCK_ALL_PAIRS_MAX
    con.execute(f"""
        create or replace temp table changed_pairs as
        with now_rows as (select block_id, rid, pos_now from block_rows where side <> 2),
        -- a new or changed node and the nodes it meets now
        around_changed as (
            select block_id, rid, unnest(if(size_now <= {small}, range(1, size_now + 1),
                                            range(greatest(1, pos_now - {window}), least(size_now, pos_now + {window}) + 1))) as other_pos
            from block_rows where side = 1 and size_now > 1
        )
        select least(r.rid, o.rid) as rid_a, greatest(r.rid, o.rid) as rid_b, list_sort(list(distinct r.block_id)) as blocks
        from around_changed r join now_rows o on o.block_id = r.block_id and o.pos_now = r.other_pos
        where r.rid <> o.rid
        group by all;
        create or replace temp table reopened_pairs as
        with unchanged_rows as (select block_id, rid, pos_now from block_rows where side = 0),
        -- unchanged nodes now within the window across the gap a removed node left
        gap_left as (
            select block_id, pos_now as gap, unnest(range(greatest(1, pos_now - {window} + 1), pos_now + 1)) as left_pos, size_now
            from block_rows where side = 2 and size_now > {small} and size_before > {small}
        ),
        across_gap as (
            select g.block_id, l.rid, unnest(range(g.gap + 1, least(g.size_now, g.left_pos + {window}) + 1)) as other_pos
            from gap_left g join unchanged_rows l on l.block_id = g.block_id and l.pos_now = g.left_pos
        ),
        -- every pair of a block that was windowed before and compares all its pairs now
        regrouped as (
            select x.rid as rid_a, y.rid as rid_b
            from block_rows x join block_rows y on y.block_id = x.block_id and x.rid < y.rid and y.side = 0
            where x.side = 0 and x.size_now <= {small} and x.size_before > {small}
        )
        select distinct least(r.rid, o.rid) as rid_a, greatest(r.rid, o.rid) as rid_b
        from across_gap r join unchanged_rows o on o.block_id = r.block_id and o.pos_now = r.other_pos
        union
        select rid_a, rid_b from regrouped
    """)


def loosened_pairs(con: duckdb.DuckDBPyConnection, kept: str, out: str = "loosened_pairs") -> None:
    """`out(rid_a, rid_b)`: the pairs of `kept(rid_a, rid_b)` (of unchanged nodes) an affected
    block may propose no more (a superset: `pair_blocks` decides). In a block windowed before and
    now, only a new or changed node coming between two nodes moves them apart: the first such node
    after the pair's first node is then within the window of it, the last one before its second
    node within the window of that one. A block that grew past BLOCK_ALL_PAIRS_MAX may drop any
    of its pairs. Needs `block_rows`."""
    window, small = rules.BLOCK_WINDOW, rules.BLOCK_ALL_PAIRS_MAX
    con.execute(f"""
        create or replace temp table {out} as
        with inserted as (select block_id, pos_now from block_rows where side = 1 and size_now > {small} and size_before > {small}),
        -- unchanged nodes within the window before (near_left) or after an inserted node
        near as (
            select distinct r.block_id, r.rid, r.pos_before, i.at < i.pos_now as near_left
            from (select block_id, pos_now, unnest(range(pos_now - {window}, pos_now + {window} + 1)) as at from inserted) i
            join block_rows r on r.block_id = i.block_id and r.pos_now = i.at and r.side = 0
        ),
        straddling as (
            select x.rid as a, y.rid as b
            from (select block_id, rid, unnest(range(pos_before + 1, pos_before + {window} + 1)) as at from near where near_left) x
            join near y on y.block_id = x.block_id and y.pos_before = x.at and not y.near_left
        ),
        grown as (
            select x.rid as a, y.rid as b
            from block_rows x join block_rows y on y.block_id = x.block_id and x.rid < y.rid and y.side = 0
            where x.side = 0 and x.size_before <= {small} and x.size_now > {small}
        ),
        candidates as (select least(a, b) as rid_a, greatest(a, b) as rid_b from (select * from straddling union all select * from grown))
        select rid_a, rid_b from {kept} semi join candidates using (rid_a, rid_b)
    """)


def pair_blocks(con: duckdb.DuckDBPyConnection, pairs: str, out: str = "pair_blocks") -> None:
    """`out(rid_a, rid_b, blocks_now, affected, before)` for the pairs of `pairs(rid_a, rid_b)`
    that share an affected block: the affected blocks proposing the pair now, all the affected
    blocks holding both, and whether one of them proposed it before (both nodes unchanged).
    A node is in a block once (its keys of one kind are distinct: `BLOCK_KEYS` unnests sets), so
    each shared block is one row of the join: grouped once by pair (grouping by block first, to
    merge repeated memberships, took 5.0–5.9 s at 11.27M records, this 4.0–4.5 s)."""
    con.execute(f"""
        create or replace temp table {out} as
        select p.rid_a, p.rid_b, coalesce(list_sort(list(x.block_id) filter (where {_proposes('x', 'y', 'now')})), []) as blocks_now,
               list(x.block_id) as affected, bool_or(x.side = 0 and y.side = 0 and {_proposes('x', 'y', 'before')}) as before
        from {pairs} p
        join block_rows x on x.rid = p.rid_a join block_rows y on y.block_id = x.block_id and y.rid = p.rid_b
        group by p.rid_a, p.rid_b
    """)
