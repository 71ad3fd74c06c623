"""Stable ids across runs, and the lineage between the previous run's groups and this run's.

The same rule serves manifestations (groups of records) and works (groups of records, via
their manifestations):
- every previous id claims the new group holding most of its records (ties: the group with
  the smallest record key) — on a split the largest part keeps the id;
- a group claimed by several ids keeps the oldest one (first issued run, then the smallest
  id); the others are `merged` into it;
- a group no id claims gets a new id, derived from its smallest record key and never one
  issued before; it is `split` from the ids whose records it took, or `added`;
- an id none of whose records remain is `deleted`; a kept id whose records changed is
  `updated` (dedup.stage adds the kept manifestations whose row changed otherwise).
The ledger (`id_ledger.parquet`) remembers every id ever issued, when, and what became of it.
All of it is SQL over the run's tables: at 11M records a run issues millions of ids.
"""

from __future__ import annotations

import hashlib

import duckdb


def new_id(prefix: str, group: str, salt: int = 0) -> str:
    """The id a group is given: prefix + 16 hex digits of sha1(group), salted while taken."""
    return prefix + hashlib.sha1(f"{group}#{salt}".encode() if salt else group.encode()).hexdigest()[:16]


def carry_ids(con: duckdb.DuckDBPyConnection, name: str, *, groups: str, previous: str, ledger: str, prefix: str,
              run: int, changes: bool = True) -> None:
    """Ids for the groups of `groups(item, grp, records)` (grp names the group: its smallest
    record key), carried from `previous(item, old_id, records)` (a null item, e.g. a record
    gone, is in no group) with ages from `ledger(id, first_run, retired_run)`. An item is a
    record, or records that were and are together (`records` of them, the same on both sides):
    the rule counts records either way. Creates `{name}_ids(grp, id)`,
    `{name}_ledger_updates(id, first_run, retired_run, successor)` and, with `changes`,
    `{name}_changes(change, manifestation_id, old_manifestation_id)` (what changes.parquet lists)."""
    con.execute(f"""
        create or replace temp table id_overlap as
        select g.grp, p.old_id, sum(g.records) as n from {groups} g join {previous} p using (item) group by all;
        create or replace temp table id_claims as
        select old_id, grp, n from (
            select *, row_number() over (partition by old_id order by n desc, grp) as k from id_overlap
        ) where k = 1;
        create or replace temp table id_winners as
        select grp, old_id from (
            select c.*, row_number() over (partition by c.grp order by coalesce(l.first_run, 0), c.old_id) as k
            from id_claims c left join {ledger} l on l.id = c.old_id
        ) where k = 1;
        create or replace temp table id_fresh as
        select grp, '{prefix}' || left(sha1(grp), 16) as id
        from (select distinct grp from {groups}) where grp not in (select grp from id_winners);
        create or replace temp view id_taken as select id from {ledger} union all select old_id from {previous};
    """)
    _resolve_collisions(con, prefix)
    con.execute(f"""
        create or replace temp table {name}_ids as
        select grp, old_id as id from id_winners union all select grp, id from id_fresh;
        create or replace temp table {name}_merged as
        select c.old_id, i.id from id_claims c join {name}_ids i using (grp)
        where (c.grp, c.old_id) not in (select (grp, old_id) from id_winners);
        create or replace temp table {name}_deleted as
        select distinct old_id from {previous} where old_id not in (select old_id from id_overlap);
        create or replace temp table {name}_ledger_updates as
        select id, {run}::integer as first_run, null::integer as retired_run, null::varchar as successor from id_fresh
        union all
        select old_id, null, {run}, id from {name}_merged
        union all
        select old_id, null, {run}, null from {name}_deleted;
    """)
    if changes:
        con.execute(f"""
            create or replace temp table {name}_changes as
            -- a kept id's records are the same iff the group shares all of them and has no other
            with new_size as (select grp, sum(records) as n from {groups} group by grp),
                 old_size as (select old_id, sum(records) as n from {previous} group by old_id)
            select 'merged' as change, id as manifestation_id, old_id as old_manifestation_id from {name}_merged
            union all
            select 'deleted', null, old_id from {name}_deleted
            union all
            select case when o.old_id is null then 'added' else 'split' end, f.id, o.old_id
            from id_fresh f left join id_overlap o using (grp)
            union all
            select 'updated', w.old_id, w.old_id
            from id_winners w join id_overlap v using (grp, old_id) join new_size n using (grp) join old_size o using (old_id)
            where v.n <> n.n or v.n <> o.n;
        """)
    con.execute("drop view id_taken; drop table id_overlap; drop table id_claims; drop table id_winners; drop table id_fresh")


def _resolve_collisions(con: duckdb.DuckDBPyConnection, prefix: str) -> None:
    """Salt the fresh ids that were issued before (a deleted group that comes back) or that two
    groups share, in group order, until free."""
    clashes = [grp for (grp,) in con.sql("""
        select grp from (select grp, id, row_number() over (partition by id order by grp) as k from id_fresh)
        where k > 1 or id in (select id from id_taken) order by grp
    """).fetchall()]
    for grp in clashes:
        salt = 1
        while con.execute("select count(*) from (select id from id_taken union all select id from id_fresh) where id = ?",
                          [new_id(prefix, grp, salt)]).fetchone()[0]:
            salt += 1
        con.execute("update id_fresh set id = ? where grp = ?", [new_id(prefix, grp, salt), grp])
