"""What `unioncat status` and the end of a run print: per-library state and
a summary of the published catalogue."""

from __future__ import annotations

from harvesters import state as harvest_state
from transforms.stage import read_summary
from unioncat.registry import Library
from unioncat.settings import Settings
from warehouse import locks


def library_status_rows(settings: Settings, libraries: list[Library]) -> list[dict]:
    rows = []
    for library in libraries:
        state = harvest_state.load(settings, library.id)
        attempt = state.get("last_attempt", {})
        summary = read_summary(settings, library.id) or {}
        problems = []
        if attempt.get("status") == "failed":
            problems.append(f"harvest failed in {attempt['run_id']}: {attempt['error']}")
        problems += [f"{count} record(s) quarantined: {reason}" for reason, count in sorted(summary.get("quarantine_reasons", {}).items())]
        rows.append(
            dict(
                library_id=library.id, name=library.name, harvest=attempt.get("status", "never"),
                last_run=state.get("last_success", {}).get("run_id"), records=summary.get("records", 0),
                quarantined=summary.get("quarantined", 0), problems=problems,
            )
        )
    return rows


def catalogue_summary(settings: Settings, top: int = 5) -> str:
    """Where the catalogue is and how holdings are spread, as printable text."""
    try:
        with locks.reading(settings) as snapshot, locks.open_catalogue(snapshot) as con:
            records, manifestations, shared, libraries, quarantined = con.execute(
                """select (select count(*) from records), (select count(*) from manifestations),
                          (select count(*) from manifestations where n_libraries > 1),
                          (select count(*) from libraries), (select count(*) from quarantine)"""
            ).fetchall()[0]
            widest = con.execute(
                "select title, coalesce(part_number, ''), n_libraries from manifestations order by n_libraries desc, manifestation_id limit ?", [top]
            ).fetchall()
            by_level = con.execute(
                "select level, count(*), sum(manifestations), sum(unique_holdings) from library_stats group by level order by min(library_id)"
            ).fetchall()
    except locks.SnapshotMissing:
        return "no catalogue published yet"
    catalogue = snapshot / "catalogue.duckdb"
    lines = [
        f"catalogue: {catalogue}",
        f"snapshot:  {snapshot}",
        f"{libraries} libraries, {records:,} records → {manifestations:,} manifestations; "
        f"{shared:,} held by more than one library; {quarantined:,} quarantined (see `unioncat status`)",
        "holdings by library level (libraries, manifestations held, unique holdings):",
        *(f"  {level:<9} {n:>4} {held:>9,} {unique:>9,}" for level, n, held, unique in by_level),
        "most widely held:",
        *(f"  {n:>3} libraries  {title} {part}".rstrip() for title, part, n in widest),
    ]
    return "\n".join(lines)
