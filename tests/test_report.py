"""The snapshot report: a self-contained HTML page with inline SVG charts (checked by its
structure here; look at it in a browser yourself), written at build and by `unioncat report`."""

import re
import xml.etree.ElementTree as ElementTree

import pyarrow.parquet as pq
import pytest

from unioncat.cli import main
from unioncat.pipeline import dedup, registry
from warehouse.report import _ticks
from warehouse.snapshot import publish, read_manifest, sha256_file
from warehouse_demo import LIBRARIES, copy_inputs, published_demo

SECTIONS = ("libraries", "overlap", "cities", "classes", "quarantine", "changes")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return published_demo(tmp_path_factory.getbasetemp())


def _svgs(page: str) -> list[ElementTree.Element]:
    return [ElementTree.fromstring(svg) for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S)]


def test_the_build_writes_a_self_contained_report_into_the_snapshot(demo):
    snapshot = demo.current_snapshot.resolve()
    page = (snapshot / "report.html").read_text(encoding="utf-8")
    assert read_manifest(snapshot)["checksums"]["report.html"] == sha256_file(snapshot / "report.html")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<script" not in page and not re.search(r"(src|href)=|https?://|@import|url\(", page)
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    svgs = _svgs(page)  # every chart is well-formed SVG
    assert len(svgs) >= 6
    titles = [t.text for svg in svgs for t in svg.iter("title")]
    assert len([t for t in titles if t and t.startswith("records and unique")]) == 1
    for library_id in LIBRARIES:
        assert sum(1 for t in titles if t and re.match(rf".* {library_id}: \d", t)) == 2  # records and unique bars
    assert sum(1 for t in titles if t and "Jaccard" in t and " × " in t) == len(LIBRARIES) * (len(LIBRARIES) - 1)
    for city in ("杭州", "宁波", "温州"):
        assert f"<title>{city}: " in page
    assert "truncated_record" in page or "not_marc" in page
    assert "first snapshot" in page.lower()


def test_report_command_regenerates_it_for_any_snapshot(inputs_published, tmp_path, capsys):
    settings, first, second = inputs_published
    common = ["--sources", str(settings.sources_path), "--data-dir", str(settings.data_dir)]
    assert main(["report", "--snapshot", first.snapshot_id, "--output", str(tmp_path / "first.html"), *common]) == 0
    assert "first.html" in capsys.readouterr().out
    assert f"snapshot {first.snapshot_id}" in (tmp_path / "first.html").read_text(encoding="utf-8")
    assert main(["report", *common]) == 0
    page = (settings.data_dir / "reports" / f"{second.snapshot_id}.html").read_text(encoding="utf-8")
    assert f"since snapshot {first.snapshot_id}" in page
    counts = read_manifest(second.path)["counts"], read_manifest(first.path)["counts"]
    row = re.search(r"<tr><td>records</td><td>([\d,]+)</td><td>([\d,]+)</td><td>(-?[\d,]+)</td></tr>", page)
    assert row and [int(v.replace(",", "")) for v in row.groups()] == [
        counts[1]["records"], counts[0]["records"], counts[0]["records"] - counts[1]["records"]]
    deleted = pq.read_table(second.path / "changes.parquet").to_pylist()
    assert any(c["change"] == "deleted" for c in deleted) and "<title>deleted: " in page
    with pytest.raises(SystemExit, match="no-such"):
        main(["report", "--snapshot", "no-such", *common])


@pytest.fixture()
def inputs_published(demo, tmp_path):
    settings = copy_inputs(demo, tmp_path)
    libraries = list(registry(settings).enabled())
    first = publish(settings, libraries)
    staged = settings.staging_dir("ZJ001") / "records.parquet"
    pq.write_table(pq.read_table(staged).slice(20), staged)
    dedup(settings, libraries)
    return settings, first, publish(settings, libraries)


def test_axis_ticks_are_round_and_cover_the_range():
    assert _ticks(1129) == [0, 200, 400, 600, 800, 1000]
    assert _ticks(7) == [0, 2, 4, 6] and _ticks(1) == [0, 1] and _ticks(0.5) == [0]
    assert _ticks(2310)[-1] <= 2310 < _ticks(2310)[-1] + _ticks(2310)[1]
