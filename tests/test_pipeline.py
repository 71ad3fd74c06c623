"""End to end on real files: harvest → transform → dedup → publish, and the
published snapshot's contract (ARCHITECTURE.md "Published snapshot")."""

import hashlib
import json
import os
import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import write_registry
from unioncat.pipeline import run_all
from unioncat.settings import Settings

CONTRACT_FILES = [
    "manifest.json", "libraries.parquet", "records.parquet", "holdings.parquet", "manifestations.parquet",
    "record_manifestation.parquet", "holdings_distribution.parquet", "changes.parquet", "catalogue.duckdb",
]


@pytest.fixture()
def province(shared_data, tmp_path):
    marc21 = shared_data / "marc21"
    jazz = marc21 / "evergreen_datasets" / "jazz_1k.mrc"
    sources = write_registry(
        tmp_path,
        {
            "P01": ("province", [jazz, shared_data / "unimarc_cnmarc" / "cnmarc_bnu_alma_sru_dp2" / "sample_cnmarcxml.xml"]),
            "C01": ("city", [jazz, marc21 / "marc4j_tests" / "bad_oversize_field_bad_directory.mrc"]),
            "X01": ("county", [marc21 / "pymarc_tests" / "bad_records.mrc", marc21 / "marc4j_tests" / "chabon.xml"]),
        },
    )
    (tmp_path / "drops" / "X01" / "readme.xml").write_text("this is not MARC", encoding="utf-8")
    truncated = jazz.read_bytes()[:-300]
    (tmp_path / "drops" / "X01" / "truncated.mrc").write_bytes(truncated)
    return Settings.resolve(sources, tmp_path / "var")


def _input_records(settings: Settings) -> int:
    """Records offered by the drops: ISO 2709 terminators (+ a truncated tail), MARCXML leaders, unreadable files."""
    total = 0
    for path in (settings.sources_path.parent / "drops").rglob("*"):
        data = path.read_bytes() if path.is_file() else b""
        if path.suffix == ".mrc":
            total += data.count(b"\x1d") + (0 if data.rstrip(b"\r\n \x00").endswith(b"\x1d") else 1)
        elif path.suffix == ".xml":
            total += max(len(re.findall(rb"<(?:\w+:)?leader[\s>]", data)), 1)
    return total


def test_every_input_record_is_in_the_catalogue_or_in_quarantine(province):
    summary = run_all(province, progress=lambda _: None)
    assert not summary.failed
    con = duckdb.connect(str(province.current_snapshot / "catalogue.duckdb"), read_only=True)
    linked, quarantined = con.execute("select (select count(*) from record_manifestation), (select count(*) from quarantine)").fetchall()[0]
    assert linked + quarantined == _input_records(province)
    reasons = {r for (r,) in con.execute("select distinct reason from quarantine").fetchall()}
    assert {"truncated_record", "bad_directory", "not_marc"} <= reasons
    assert con.execute("select count(*) from holdings_distribution").fetchall()[0][0] > 0
    # The same jazz records in P01 and C01 with ISBNs merge; each library holds one copy of each.
    shared = con.execute("select count(*) from manifestations where n_libraries = 3").fetchall()[0][0]
    assert shared > 0


def test_snapshot_follows_the_contract(province):
    run_all(province, progress=lambda _: None)
    current = province.current_snapshot
    assert current.is_symlink() and (current.parent / os.readlink(current)).is_dir()
    for name in CONTRACT_FILES:
        assert (current / name).exists(), name
    manifest = json.loads((current / "manifest.json").read_text())
    assert manifest["snapshot_id"] == current.resolve().name and manifest["parent"] is None
    for name, digest in manifest["checksums"].items():
        assert hashlib.sha256((current / name).read_bytes()).hexdigest() == digest, name
    assert manifest["counts"]["records"] == pq.read_table(current / "records.parquet").num_rows
    assert set(manifest["library_runs"]) == {"P01", "C01", "X01"}
    description = pq.read_schema(current / "manifestations.parquet").field("manifestation_id").metadata[b"description"]
    assert b"stable" in description
    con = duckdb.connect(str(current / "catalogue.duckdb"), read_only=True)
    names = {n for (n,) in con.execute("select table_name from information_schema.tables").fetchall()}
    assert {"libraries", "records", "manifestations", "record_manifestation", "holdings_distribution", "library_stats"} <= names
    stats = con.execute("select library_id, records, manifestations, unique_holdings from library_stats order by 1").fetchall()
    assert [s[0] for s in stats] == ["C01", "P01", "X01"] and all(s[1] > 0 for s in stats)
    assert not list(current.resolve().glob("*.wal"))


def test_rerun_is_incremental_and_publishes_a_child_snapshot(province):
    first = run_all(province, progress=lambda _: None).published
    lines = []
    second = run_all(province, progress=lines.append).published
    assert all("unchanged" in line for line in lines if line.startswith("[transform"))
    assert second.snapshot_id != first.snapshot_id
    manifest = json.loads((second.path / "manifest.json").read_text())
    assert manifest["parent"] == first.snapshot_id
    assert pq.read_table(second.path / "changes.parquet").num_rows == 0
    assert (province.published_dir / first.snapshot_id / "catalogue.duckdb").exists(), "old snapshots stay immutable"


def test_a_library_whose_drop_disappears_fails_alone_and_keeps_its_data(province):
    run_all(province, progress=lambda _: None)
    drop = province.sources_path.parent / "drops" / "C01"
    drop.rename(drop.with_name("C01-gone"))
    summary = run_all(province, progress=lambda _: None)
    assert set(summary.failed) == {"C01"} and "does not exist" in summary.failed["C01"]
    con = duckdb.connect(str(province.current_snapshot / "catalogue.duckdb"), read_only=True)
    assert con.execute("select count(*) from records where library_id = 'C01'").fetchall()[0][0] > 0


def test_search_finds_chinese_titles_and_their_holders(province):
    run_all(province, progress=lambda _: None)
    con = duckdb.connect(str(province.current_snapshot / "catalogue.duckdb"), read_only=True)
    hits = con.execute("select manifestation_id, title from search('中国发展报告')").fetchall()
    assert len(hits) >= 8 and all("中国发展报告" in title for _, title in hits)
    holders = con.execute("select library_id from holders(?)", [hits[0][0]]).fetchall()
    assert holders == [("P01",)]
    for typed in ("978-7-5037-1744-4", "7-5037-1744-0", "7503717440"):
        assert con.execute("select count(*) from find_isbn(?)", [typed]).fetchall()[0][0] == 1, typed
