"""Labelled data sets for measuring dedup, as canonical record rows + truth labels.

Rows are built by the transforms' own row builder (`transforms.bibliographic.to_row`) or
reader, so a benchmark record gets exactly the keys a harvested record would.
- `demo_province`: the generated Chinese province (unioncat.province) run through harvest and
  transform like the real pipeline; truth from its truth.csv.
- `dblp_acm`: the Leipzig DBLP-ACM benchmark; each source is a "library" (so each paper is
  catalogued at most once per library, as in a union catalogue), venue as series.
- `pride_and_prejudice`: marc4j's 383 records around Pride and Prejudice, dealt round-robin to
  `libraries` pseudo-libraries so that only the matching rules (not the one-record-per-library
  rule) keep its editions apart.
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from transforms.bibliographic import description, to_row
from transforms.readers import Accepted, read_iso2709
from unioncat import schema

DBLP_ACM = Path("er_benchmarks/dblp_acm")
PRIDE_AND_PREJUDICE = Path("marc21/marc4j_tests/pride-and-prejudice-fixed.mrc")
_COLUMNS = [f for f in schema.RECORDS.names if f != "raw"]


@dataclass
class Labelled:
    rows: pa.Table  # canonical `records` rows (without raw bytes)
    truth: dict[str, str]  # record_key → manifestation label
    levels: dict[str, str]  # library_id → province / city / county
    work_truth: dict[str, str] | None = None


def rows_table(rows: list[dict]) -> pa.Table:
    target = schema.RECORDS.remove(schema.RECORDS.get_field_index("raw"))
    return pa.Table.from_pylist([{c: r.get(c) for c in _COLUMNS} for r in rows], schema=target)


def dblp_acm(shared_data: Path) -> Labelled:
    folder = shared_data / DBLP_ACM
    rows = []
    for library, name, encoding in (("DBLP", "DBLP2.csv", "cp1252"), ("ACM", "ACM.csv", "utf-8")):
        with open(folder / "leipzig_original" / name, newline="", encoding=encoding) as handle:
            for r in csv.DictReader(handle):
                r = {k: html.unescape(v) for k, v in r.items()}  # ACM.csv writes names as &#228; entities
                described = description(
                    local_id=r["id"].strip(), title=r["title"].strip(), date_text=r["year"],
                    authors=[a.strip() for a in r["authors"].split(",") if a.strip()],
                    series=r["venue"].strip(), material_type="article",
                )
                rows.append({**to_row(described, library_id=library, source_format="csv"), "status": "active"})
    truth = {r["record_key"]: r["record_key"] for r in rows}
    with open(folder / "DBLP-ACM_perfectMapping.derived_from_pyjedai_D4.csv", newline="", encoding="utf-8") as handle:
        for pair in csv.DictReader(handle):
            truth[f"ACM:{pair['idACM']}"] = f"DBLP:{pair['idDBLP']}"
    return Labelled(rows_table(rows), truth, {"DBLP": "province", "ACM": "province"})


def pride_and_prejudice(shared_data: Path, libraries: int = 7) -> Labelled:
    """No manifestation labels exist for this file: `truth` is empty; tests check the rules
    the issue states (shared work, no merge across publisher/year/ISBN)."""
    data = (shared_data / PRIDE_AND_PREJUDICE).read_bytes()
    rows = []
    for n, result in enumerate(r for r in read_iso2709(data, library_id="PP", run_id="bench") if isinstance(r, Accepted)):
        library = f"PP{n % libraries}"
        rows.append({**result.row, "record_key": f"{library}:{n:04d}", "library_id": library, "local_id": f"{n:04d}"})
    return Labelled(rows_table(rows), {}, {f"PP{i}": "city" for i in range(libraries)})


def demo_libraries(sources: Path | None = None) -> list:
    """The libraries of a registry file (default: the repository's sources.toml) as the
    generator's DemoLibrary (id, name, city, level)."""
    import tomllib

    from unioncat.province import DemoLibrary
    from unioncat.settings import REPO_ROOT

    with open(sources or REPO_ROOT / "sources.toml", "rb") as handle:
        tables = tomllib.load(handle)["library"]
    return [DemoLibrary(t["id"], t["name"], t["city"], t["level"]) for t in tables if t.get("enabled", True)]


def demo_province(folder: Path, *, titles: int, seed: int = 20261125, sources: Path | None = None) -> Labelled:
    """The generated province: drops written under `folder`, every file read by the transforms'
    reader (as the transform stage would), truth from its truth.csv (labels of the real
    records, `M-…`, included: callers decide whether to skip them)."""
    from transforms.readers import read_file
    from unioncat.province import write_demo_drops

    libraries = demo_libraries(sources)
    summary = write_demo_drops(libraries, folder / "drops", titles=titles, seed=seed)
    rows = []
    for library in libraries:
        for path in sorted((folder / "drops" / library.id).glob("*")):
            for result in read_file(path, library_id=library.id, run_id="bench"):
                if isinstance(result, Accepted):
                    rows.append(result.row)
    truth, works = {}, {}
    with open(summary.truth_path, newline="", encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            truth[r["record_key"]], works[r["record_key"]] = r["manifestation_label"], r["work_label"]
    return Labelled(rows_table(rows), truth, {lib.id: lib.level for lib in libraries}, works)
