"""The snapshot report: a self-contained HTML page with inline SVG charts (checked by its
structure here; look at it in a browser yourself), written at build and by `unioncat report`."""

import re
import xml.etree.ElementTree as ElementTree

import pyarrow.parquet as pq
import pytest

from unioncat.cli import main
from unioncat.pipeline import dedup, registry
from warehouse.report import Bar, _libraries_section, _ticks, bar_chart, heatmap, text_px
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
    assert sorted(t for t in titles if t and t.startswith("records and unique")) == [
        "records and unique holdings: county libraries", "records and unique holdings: province and city libraries"]
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


def _texts(svg: ElementTree.Element, cls: str | None = None):
    return [e for e in svg.iter("{http://www.w3.org/2000/svg}text") if cls is None or e.get("class") == cls] or \
        [e for e in svg.iter("text") if cls is None or e.get("class") == cls]


def test_bar_labels_and_notes_fit_inside_the_chart():
    """Labels are right-aligned against the bars and notes follow the bars: the chart measures
    both, so a long Chinese name or a long note is never cut off at either edge."""
    bars = [Bar("景宁畲族自治县图书馆 ZJ102", 1129, 212, "1,129 records · 212 unique holdings, the most of all"),
            Bar("A 马克思主义、列宁主义、毛泽东思想、邓小平理论", 30, 3), Bar("ZJ001", 0)]
    svg = ElementTree.fromstring(bar_chart(bars, colours=("#aaa", "#333"), width=700, title="t"))
    width = float(svg.get("width"))
    labels = [e for e in _texts(svg) if e.get("text-anchor") == "end"]
    assert [e.text for e in labels] == [b.label for b in bars]
    for label in labels:  # right-aligned at x: starts at x - its width, which must stay >= 0
        assert float(label.get("x")) - text_px(label.text, float(label.get("font-size"))) >= 0
    for note in _texts(svg, "note"):
        assert float(note.get("x")) + text_px(note.text, 10) <= width


def test_many_county_libraries_go_in_two_columns_on_one_scale():
    rows = [{"library_id": f"ZJ{n:03}", "name": f"县馆{n}", "level": "county", "records": 200 - n, "unique_holdings": n % 7,
             "manifestations": 10, "quarantined": 0} for n in range(61)]
    rows.insert(0, {"library_id": "ZJ999", "name": "省馆", "level": "province", "records": 1000, "unique_holdings": 100,
                    "manifestations": 500, "quarantined": 0})
    page = _libraries_section({"libraries": rows})
    titles = [svg.findtext("title") for svg in _svgs(page)]
    assert titles == ["records and unique holdings: province and city libraries",
                      "records and unique holdings: county libraries, 1 of 2", "records and unique holdings: county libraries, 2 of 2"]
    left, right = _svgs(page)[1:]
    assert len([e for e in _texts(left) if e.get("text-anchor") == "end"]) == 31
    assert len([e for e in _texts(right) if e.get("text-anchor") == "end"]) == 30
    ticks = [[e.text for e in _texts(svg, "axis")] for svg in (left, right)]
    assert ticks[0] == ticks[1] == ["0", "50", "100", "150", "200"]  # both halves on the county group's scale


def test_heatmap_numbers_stay_legible_on_dark_cells():
    """The page's CSS sets text fill, which beats an SVG fill attribute: the cell ink must be a style."""
    svg = ElementTree.fromstring(heatmap(["甲馆", "乙馆"], [[None, 0.3], [0.03, None]], title="t"))
    ink = {e.text: e.get("style") for e in _texts(svg) if e.get("text-anchor") == "middle"}  # the cells, not the legend
    assert ink == {"30": "fill:#fff", "3": "fill:#1d2a36"}
