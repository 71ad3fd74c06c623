"""Stable ids across runs, and the lineage between the previous run's groups and this run's.

The same rule serves manifestations (groups of records) and works (groups of records, via
their manifestations):
- every previous id claims the new group holding most of its records (ties: the group with
  the smallest record key) — on a split the largest part keeps the id;
- a group claimed by several ids keeps the oldest one (first issued run, then the smallest
  id); the others are `merged` into it;
- a group no id claims gets a new id, derived from its smallest record key and never one
  issued before; it is `split` from the ids whose records it took, or `added`;
- an id none of whose records remain is `deleted`; a kept id whose records or golden fields
  changed is `updated`.
The ledger (`id_ledger.parquet`) remembers every id ever issued, when, and what became of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import duckdb


@dataclass
class Lineage:
    ids: dict[str, str]  # group (its smallest item) → id
    changes: list[dict] = field(default_factory=list)  # change, manifestation_id, old_manifestation_id
    new_ledger: list[dict] = field(default_factory=list)  # rows to add or update in the ledger


def new_id(prefix: str, group: str, taken: set[str]) -> str:
    salt = 0
    while True:
        digest = hashlib.sha1(f"{group}#{salt}".encode() if salt else group.encode()).hexdigest()[:16]
        candidate = f"{prefix}{digest}"
        if candidate not in taken:
            return candidate
        salt += 1


def carry_ids(con: duckdb.DuckDBPyConnection, *, groups: str, previous: str, ledger: str, prefix: str, run: int,
              new_signature: str | None = None, old_signature: str | None = None) -> Lineage:
    """Ids for the groups of `groups(item, grp)` (grp = smallest item of the group), carried from
    `previous(item, old_id)` with ages from `ledger(id, first_run, retired_run)`.
    Optional `new_signature(grp, sig)` / `old_signature(old_id, sig)` flag content updates."""
    con.execute(f"""
        create or replace temp table id_overlap as
        select g.grp, p.old_id, count(*) as n from {groups} g join {previous} p using (item) group by all;
        create or replace temp table id_claims as
        select old_id, grp, n from (
            select *, row_number() over (partition by old_id order by n desc, grp) as k from id_overlap
        ) where k = 1;
        create or replace temp table id_winners as
        select grp, old_id from (
            select c.*, row_number() over (partition by c.grp order by coalesce(l.first_run, 0), c.old_id) as k
            from id_claims c left join {ledger} l on l.id = c.old_id
        ) where k = 1;
    """)
    ids = dict(con.sql("select grp, old_id from id_winners").fetchall())
    taken = {i for (i,) in con.sql(f"select id from {ledger} union select old_id from {previous}").fetchall()}
    lineage = Lineage(ids)
    unclaimed = [g for (g,) in con.sql(f"select distinct grp from {groups} where grp not in (select grp from id_winners) order by grp").fetchall()]
    for group in unclaimed:
        ids[group] = new_id(prefix, group, taken)
        taken.add(ids[group])
        lineage.new_ledger.append(dict(id=ids[group], first_run=run, retired_run=None, successor=None))

    changes = lineage.changes
    for old_id, group in con.sql("select old_id, grp from id_claims where (grp, old_id) not in (select (grp, old_id) from id_winners) order by old_id").fetchall():
        changes.append(dict(change="merged", manifestation_id=ids[group], old_manifestation_id=old_id))
        lineage.new_ledger.append(dict(id=old_id, first_run=None, retired_run=run, successor=ids[group]))
    for (old_id,) in con.sql(f"select distinct old_id from {previous} where old_id not in (select old_id from id_overlap) order by 1").fetchall():
        changes.append(dict(change="deleted", manifestation_id=None, old_manifestation_id=old_id))
        lineage.new_ledger.append(dict(id=old_id, first_run=None, retired_run=run, successor=None))
    fresh = set(unclaimed)
    sources: dict[str, list[str]] = {}
    for group, old_id in con.sql("select grp, old_id from id_overlap order by grp, old_id").fetchall():
        if group in fresh:
            sources.setdefault(group, []).append(old_id)
    for group in unclaimed:
        for old_id in sources.get(group, [None]):
            changes.append(dict(change="split" if old_id else "added", manifestation_id=ids[group], old_manifestation_id=old_id))

    signature_check = ""
    if new_signature and old_signature:
        signature_check = f"""
            or (select sig from {new_signature} s where s.grp = w.grp)
               is distinct from (select sig from {old_signature} s where s.old_id = w.old_id)"""
    updated = con.sql(f"""
        with new_members as (select grp, md5(string_agg(item, '|' order by item)) as sig from {groups} group by grp),
             old_members as (select old_id, md5(string_agg(item, '|' order by item)) as sig from {previous} group by old_id)
        select w.old_id from id_winners w join new_members n using (grp) join old_members o using (old_id)
        where n.sig <> o.sig {signature_check}
        order by 1
    """).fetchall()
    changes.extend(dict(change="updated", manifestation_id=i, old_manifestation_id=i) for (i,) in updated)
    return lineage
