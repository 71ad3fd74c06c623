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


def candidate_pairs(con: duckdb.DuckDBPyConnection, only_affected: bool = False, *,
                    records: str = "match_records", out: str = "candidate_pairs") -> int:
    """`out(rid_a, rid_b, blocks)`, rid_a < rid_b, over all blocks of `records` or the affected ones."""
    restrict = "where block_id in (select block_id from affected_blocks)" if only_affected else ""
    con.execute(f"""
        create or replace temp table block_members as
        with keys as (select * from ({block_keys_sql(records)}) {restrict}),
        sized as (
            select k.block_id, k.rid, count(*) over (partition by k.block_id) as size,
                   row_number() over (partition by k.block_id order by {', '.join('m.' + c for c in WINDOW_ORDER.split(', '))}) as pos
            from keys k join {records} m using (rid)
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
