"""The dedup stage: staging records of every library → manifestations.

Writes `<data_dir>/dedup/record_manifestation.parquet` and
`manifestations.parquet`. The golden record of a manifestation is the most
complete record, preferring provincial over city over county cataloguing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from dedup.isbn_title import candidate, cluster, title_similarity
from unioncat import atomic, schema
from unioncat.registry import Library
from unioncat.settings import Settings

LEVEL_RANK = {"province": 0, "city": 1, "county": 2}
_CONSENSUS_FIELDS = ("title", "subtitle", "responsibility", "edition", "publisher", "place")


@dataclass(frozen=True)
class DedupSummary:
    records: int
    manifestations: int
    merged_records: int

    def line(self) -> str:
        return f"dedup: {self.records:,} records → {self.manifestations:,} manifestations ({self.merged_records:,} records merged)"


def manifestation_id(representative_key: str) -> str:
    """Deterministic id of the cluster whose smallest record key is given."""
    return "M" + hashlib.sha1(representative_key.encode("utf-8")).hexdigest()[:16]


def staged_record_files(settings: Settings, libraries: list[Library]) -> list[str]:
    paths = [settings.staging_dir(lib.id) / "records.parquet" for lib in libraries]
    return [str(p) for p in paths if p.exists()]


def _completeness(row: dict) -> int:
    return sum(1 for name in schema.GOLDEN_FIELDS if row.get(name) not in (None, "", []))


def _golden(members: list[dict], levels: dict[str, str]) -> dict:
    return min(members, key=lambda r: (LEVEL_RANK.get(levels.get(r["library_id"], ""), 9), -_completeness(r), r["record_key"]))


def _consensus(members: list[dict], golden: dict, name: str):
    """The form most member libraries wrote (a traditional-character or spaced-out
    title in the golden record loses to the common form); ties keep the golden's."""
    counts = Counter(row[name] for row in members if row.get(name) not in (None, ""))
    if not counts:
        return golden.get(name)
    return max(counts, key=lambda value: (counts[value], value == golden.get(name)))


def deduplicate(settings: Settings, libraries: list[Library], con: duckdb.DuckDBPyConnection | None = None) -> DedupSummary:
    files = staged_record_files(settings, libraries)
    con = con or duckdb.connect()
    if files:
        rows = con.sql(
            f"select {', '.join(schema.GOLDEN_FIELDS)}, isbn, record_key, library_id, local_id "
            "from read_parquet(?, union_by_name=true) where status = 'active' order by record_key",
            params=[files],
        ).to_arrow_table().to_pylist()
    else:
        rows = []
    representative = cluster([candidate(r) for r in rows])
    members: dict[str, list[dict]] = {}
    for row in rows:
        members.setdefault(representative[row["record_key"]], []).append(row)

    levels = {lib.id: lib.level for lib in libraries}
    links, manifestations = [], []
    for rep_key, group in members.items():
        mid = manifestation_id(rep_key)
        golden = _golden(group, levels)
        for row in group:
            links.append(
                dict(
                    record_key=row["record_key"], library_id=row["library_id"], local_id=row["local_id"], manifestation_id=mid,
                    match_rule="isbn+title" if len(group) > 1 else "singleton",
                    match_score=title_similarity(row["title_key"], golden["title_key"]),
                )
            )
        manifestations.append(
            {
                **{name: golden.get(name) for name in schema.GOLDEN_FIELDS},
                **{name: _consensus(group, golden, name) for name in _CONSENSUS_FIELDS},
                "manifestation_id": mid,
                "isbn": (golden["isbn"] or [None])[0],
                "golden_record_key": golden["record_key"],
                "n_records": len(group),
                "n_libraries": len({r["library_id"] for r in group}),
            }
        )
    manifestations.sort(key=lambda m: m["manifestation_id"])
    atomic.write_parquet(settings.dedup_dir / "record_manifestation.parquet", pa.Table.from_pylist(links, schema=schema.RECORD_MANIFESTATION))
    atomic.write_parquet(settings.dedup_dir / "manifestations.parquet", pa.Table.from_pylist(manifestations, schema=schema.MANIFESTATIONS))
    return DedupSummary(records=len(rows), manifestations=len(manifestations), merged_records=len(rows) - len(manifestations))
