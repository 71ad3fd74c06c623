"""`changes.parquet`: what changed between the parent snapshot and this one.

Dedup's own lineage is relative to dedup's previous run, which is not the parent snapshot
when dedup ran several times between two publishes (or a built snapshot was never promoted).
So the changes are recomputed here from the two snapshots' `record_manifestation` and
`manifestations`, with the same vocabulary as dedup (dedup.ids):
- `added`: an id new in this snapshot none of whose records were in the parent;
- `split`: an id new in this snapshot that took records of a parent manifestation (one row per
  parent id it took records from);
- `merged`: a parent id that is gone; its records are now mostly in `manifestation_id` (ties:
  the one with the smallest record key, as dedup.ids);
- `deleted`: a parent id that is gone with all of its records;
- `updated`: an id in both whose records or fields (any column of manifestations) changed.
With no parent every manifestation is `added`. When dedup ran once between the two snapshots
the result equals dedup's lineage, and publish takes dedup's file instead (snapshot._dedup_lineage).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

_ABSENT = "(select null::varchar as record_key, null::varchar as manifestation_id where false)"


def _links(snapshot: Path | None) -> str:
    path = snapshot / "record_manifestation.parquet" if snapshot else None
    return f"read_parquet('{path}')" if path and path.exists() else _ABSENT


def _rows(snapshot: Path | None) -> str:
    path = snapshot / "manifestations.parquet" if snapshot else None
    if path and path.exists():
        return f"(select manifestation_id, md5(m::varchar) as sig from read_parquet('{path}') m)"
    return "(select null::varchar as manifestation_id, null::varchar as sig where false)"


def against_parent(con: duckdb.DuckDBPyConnection, snapshot: Path, parent: Path | None) -> pa.Table:
    """Changes from `parent` (None: the first snapshot) to `snapshot`, as CHANGES rows, ordered."""
    return con.sql(f"""
        with old_links as materialized (select record_key, manifestation_id as old_id from {_links(parent)}),
             new_links as materialized (select record_key, manifestation_id as new_id from {_links(snapshot)}),
             old_ids as materialized (select distinct old_id from old_links),
             new_ids as materialized (select distinct new_id from new_links),
             overlap as materialized (select old_id, new_id, count(*) as n from old_links join new_links using (record_key) group by all),
             gone as materialized (select old_id from old_ids where old_id not in (select new_id from new_ids)),
             fresh as (select new_id from new_ids where new_id not in (select old_id from old_ids)),
             merged_into as (select new_id, min(record_key) as first_key from new_links
                             where new_id in (select new_id from overlap where old_id in (select old_id from gone)) group by new_id),
             kept as (select new_id as id from new_ids where new_id in (select old_id from old_ids)),
             -- ids whose record set changed: they lost a record or gained one
             moved as (select o.old_id as id from old_links o anti join new_links n on n.record_key = o.record_key and n.new_id = o.old_id
                       union select n.new_id from new_links n anti join old_links o on o.record_key = n.record_key and o.old_id = n.new_id)
        select 'merged' as change, arg_min(o.new_id, (-o.n, f.first_key)) as manifestation_id, o.old_id as old_manifestation_id
        from overlap o join merged_into f using (new_id) where o.old_id in (select old_id from gone) group by o.old_id
        union all
        select 'deleted', null, old_id from gone where old_id not in (select old_id from overlap)
        union all
        select 'split', new_id, old_id from overlap where new_id in (select new_id from fresh)
        union all
        select 'added', new_id, null from fresh where new_id not in (select new_id from overlap)
        union all
        select 'updated', id, id from kept
        left join {_rows(parent)} r_old on r_old.manifestation_id = id
        left join {_rows(snapshot)} r_new on r_new.manifestation_id = id
        where id in (select id from moved) or r_old.sig is distinct from r_new.sig
        order by change, coalesce(manifestation_id, old_manifestation_id), old_manifestation_id
    """).to_arrow_table()
