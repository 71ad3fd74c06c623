"""Transforms against real data: exact canonical rows for chosen records, the
whole MARC corpus of ../shared/data without an exception, GB18030 CNMARC,
and the replay of incremental OAI pages."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pymarc
import pytest

from conftest import REPO, write_registry
from harvesters.landing import HarvestRun
from transforms.iso2709 import encode_record, split_records
from transforms.readers import Accepted, HoldingsRecord, Rejected, read_file, read_iso2709, record_digest, sniff
from transforms import stage
from transforms.stage import transform_library
from unioncat.registry import load_registry
from unioncat.settings import Settings

GOLDEN = json.loads((REPO / "tests" / "golden" / "canonical_rows.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_real_records_map_to_exact_canonical_rows(shared_data, name):
    case = GOLDEN[name]
    accepted = [r for r in read_file(shared_data / case["file"], library_id="T", run_id="r") if isinstance(r, Accepted)]
    row = accepted[case["index"]].row
    assert {key: row[key] for key in case["row"]} == case["row"]


def _record_count(path: Path) -> int:
    """Records a file offers, counted independently of the reader."""
    data = path.read_bytes()
    kind = sniff(path)
    if kind == "iso2709":
        return sum(1 for _ in split_records(data))
    if kind == "aleph":
        return len({line[:9] for line in data.splitlines() if line[:9].isdigit()})
    return -1  # XML: counted by the reader's own record elements


@pytest.mark.parametrize("folder", ["marc21", "unimarc_cnmarc"])
def test_every_file_goes_through_and_every_record_is_accounted_for(shared_data, folder):
    outcomes = Counter()
    for path in sorted((shared_data / folder).rglob("*")):
        if not path.is_file() or path.name == "PROVENANCE.md":
            continue
        results = list(read_file(path, library_id="T", run_id="r"))  # must not raise
        assert results or sniff(path) == "xml", f"{path} produced nothing and no quarantine"
        for result in results:
            if isinstance(result, Rejected):
                assert result.reason and result.detail, path
        expected = _record_count(path)
        if expected >= 0:
            assert len(results) == expected, path
        outcomes.update(type(r).__name__ for r in results)
    assert outcomes["Accepted"] > {"marc21": 3000, "unimarc_cnmarc": 100}[folder] and outcomes["Rejected"] > 0


def _gb18030_record(title: str, *, charset: str = "0120") -> bytes:
    record = pymarc.Record(leader="00000nam0 2200000   450 ")
    record.add_field(
        pymarc.Field(tag="001", data="GB0001"),
        pymarc.Field(tag="010", indicators=[" ", " "], subfields=[pymarc.Subfield("a", "7-5339-1234-9 (平装)"), pymarc.Subfield("d", "CNY68.00")]),
        pymarc.Field(tag="100", indicators=[" ", " "], subfields=[pymarc.Subfield("a", f"20150301d2015    em y0chiy{charset}    ea")]),
        pymarc.Field(tag="200", indicators=["1", " "], subfields=[
            pymarc.Subfield("a", title), pymarc.Subfield("h", "第１册"), pymarc.Subfield("f", "張三著")]),
        pymarc.Field(tag="205", indicators=[" ", " "], subfields=[pymarc.Subfield("a", "第2版")]),
        pymarc.Field(tag="210", indicators=[" ", " "], subfields=[pymarc.Subfield("a", "杭州"), pymarc.Subfield("c", "浙江文艺出版社有限公司"), pymarc.Subfield("d", "2015.3")]),
        pymarc.Field(tag="215", indicators=[" ", " "], subfields=[pymarc.Subfield("a", "３２０页")]),
        pymarc.Field(tag="690", indicators=[" ", " "], subfields=[pymarc.Subfield("a", "I247.5"), pymarc.Subfield("v", "5")]),
        pymarc.Field(tag="701", indicators=[" ", "0"], subfields=[pymarc.Subfield("a", "張三"), pymarc.Subfield("4", "著")]),
        pymarc.Field(tag="905", indicators=[" ", " "], subfields=[pymarc.Subfield("a", "ZJ001"), pymarc.Subfield("d", "I247.5"), pymarc.Subfield("e", "123"), pymarc.Subfield("f", "3")]),
    )
    return encode_record(record, "gb18030")


def test_gb18030_cnmarc_decodes_and_normalises_chinese_first():
    [result] = list(read_iso2709(_gb18030_record("紅樓夢 研究"), library_id="ZJ001", run_id="r"))
    row = result.row
    assert (row["source_encoding"], row["encoding_confidence"]) == ("gb18030", 1.0)
    assert row["title"] == "紅樓夢 研究" and row["title_key"] == "红楼梦研究" and row["title_pinyin"] == "hongloumengyanjiu"
    assert row["isbn"] == ["9787533912345"] and row["isbn_raw"] == ["7-5339-1234-9 (平装)"]
    assert (row["year"], row["pages"], row["part_number"], row["edition"]) == (2015, 320, "第１册", "第2版")
    assert row["authors"] == ["張三"] and row["author_key"] == "张三"
    assert row["publisher_key"] == "浙江文艺出版社" and row["clc"] == ["I247.5"]
    assert result.holdings[0].copies == 3 and result.holdings[0].call_number == "I247.5/123"


def test_gb18030_declared_as_unicode_is_detected_not_garbled():
    [result] = list(read_iso2709(_gb18030_record("浙江通志", charset="50  "), library_id="ZJ001", run_id="r"))
    assert result.row["source_encoding"] == "gb18030" and result.row["title"] == "浙江通志"
    assert "encoding_detected" in result.row["quality_flags"]


def _serial_and_mfhd() -> tuple[bytes, bytes]:
    """A MARC21 bibliographic record b1 (a copy at BRANCH) and an MFHD holdings record h1 (852 at MAIN, PER 12) linked to it."""
    bib = pymarc.Record(leader="00000nam a2200000 a 4500", force_utf8=True)
    bib.add_field(pymarc.Field(tag="001", data="b1"),
                  pymarc.Field(tag="245", indicators=["0", "0"], subfields=[pymarc.Subfield("a", "Serial title")]),
                  pymarc.Field(tag="852", indicators=[" ", " "], subfields=[pymarc.Subfield("b", "BRANCH"), pymarc.Subfield("h", "PER 7")]))
    mfhd = pymarc.Record(leader="00000ny  a2200000   4500", force_utf8=True)
    mfhd.add_field(pymarc.Field(tag="001", data="h1"), pymarc.Field(tag="004", data="b1"),
                   pymarc.Field(tag="852", indicators=[" ", " "], subfields=[pymarc.Subfield("b", "MAIN"), pymarc.Subfield("h", "PER 12")]))
    return bib.as_marc(), mfhd.as_marc()


def _serial_with_mfhd_holdings() -> bytes:
    return b"".join(_serial_and_mfhd())


def test_mfhd_holdings_attach_to_their_bibliographic_record():
    results = list(read_iso2709(_serial_with_mfhd_holdings(), library_id="L", run_id="r"))
    assert isinstance(results[1], HoldingsRecord) and results[1].bib_local_id == "b1"
    assert results[1].holdings[0].call_number == "PER 12"


OAI_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>{records}</ListRecords></OAI-PMH>"""
OAI_RECORD = """<record><header><identifier>oai:x:{id}</identifier><datestamp>{stamp}</datestamp></header>
<metadata><record xmlns="http://www.loc.gov/MARC21/slim"><leader>00000nam  2200000   450 </leader>
<controlfield tag="001">{id}</controlfield><datafield tag="200" ind1="1" ind2=" "><subfield code="a">{title}</subfield></datafield>
<datafield tag="690" ind1=" " ind2=" "><subfield code="a">I247</subfield></datafield></record></metadata></record>"""
OAI_DELETED = """<record><header status="deleted"><identifier>oai:x:{id}</identifier><datestamp>{stamp}</datestamp></header></record>"""


def test_incremental_oai_pages_replay_to_the_current_catalogue(tmp_path):
    sources = write_registry(tmp_path, {"O01": ("county", [])})
    settings = Settings.resolve(sources, tmp_path / "var")
    library = load_registry(sources).get("O01")
    first = HarvestRun(settings, library, "run1", full=True)
    page = first.land("000001.xml", OAI_PAGE.format(records="".join(
        OAI_RECORD.format(id=n, stamp="2026-01-01", title=title) for n, title in (("1", "西湖志"), ("2", "钱塘记"), ("3", "越绝书")))).encode())
    first.finish([page], watermark="2026-01-01")
    second = HarvestRun(settings, library, "run2")
    update = second.land("000001.xml", OAI_PAGE.format(records=OAI_RECORD.format(id="1", stamp="2026-02-01", title="西湖志（修订）")
                                                        + OAI_DELETED.format(id="2", stamp="2026-02-01")).encode())
    second.finish(second.catalogue() + [update], watermark="2026-02-01")

    summary = transform_library(settings, library)
    assert (summary.records, summary.updated, summary.deleted, summary.quarantined) == (2, 1, 1, 0)
    rows = {r["local_id"]: r for r in pq.read_table(settings.staging_dir("O01") / "records.parquet").to_pylist()}
    assert set(rows) == {"1", "3"} and rows["1"]["title"] == "西湖志（修订）" and rows["1"]["datestamp"] == "2026-02-01"
    assert summary.profile["with_class"] == 1.0 and summary.profile["formats"] == {"cnmarc": 2}


def _one_harvested_library(tmp_path):
    """Settings and a county library with one landed OAI-PMH page of one record."""
    sources = write_registry(tmp_path, {"O01": ("county", [])})
    settings = Settings.resolve(sources, tmp_path / "var")
    library = load_registry(sources).get("O01")
    run = HarvestRun(settings, library, "run1", full=True)
    run.finish([run.land("000001.xml", OAI_PAGE.format(records=OAI_RECORD.format(id="1", stamp="2026-01-01", title="西湖志")).encode())],
               watermark="2026-01-01")
    return settings, library


def test_staging_is_kept_for_the_same_pages_and_rebuilt_when_the_key_definitions_change(tmp_path, monkeypatch):
    settings, library = _one_harvested_library(tmp_path)
    assert not transform_library(settings, library).skipped
    assert transform_library(settings, library).skipped
    monkeypatch.setattr("transforms.normalise.KEYS_VERSION", "next")
    assert not transform_library(settings, library).skipped


def test_the_cyclic_collector_is_paused_for_a_library_and_left_as_it_was(tmp_path, monkeypatch):
    import gc

    settings, library = _one_harvested_library(tmp_path)
    seen = []
    apply = stage._Replay.apply
    monkeypatch.setattr(stage._Replay, "apply", lambda self, *args: (seen.append(gc.isenabled()), apply(self, *args)))
    assert gc.isenabled()
    transform_library(settings, library, full=True)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        transform_library(settings, library, full=True)
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def _cnmarc(local_id: str, title: str, encoding: str, copies: int) -> bytes:
    record = pymarc.Record(leader="00000nam0 2200000   450 ")
    record.add_field(
        pymarc.Field(tag="001", data=local_id),
        pymarc.Field(tag="100", indicators=[" ", " "], subfields=[pymarc.Subfield("a", "20150301d2015    em y0chiy0120    ea")]),
        pymarc.Field(tag="200", indicators=["1", " "], subfields=[pymarc.Subfield("a", title), pymarc.Subfield("f", "王伟著")]),
        pymarc.Field(tag="210", indicators=[" ", " "], subfields=[pymarc.Subfield("c", "中华书局"), pymarc.Subfield("d", "2015")]),
        pymarc.Field(tag="905", indicators=[" ", " "], subfields=[pymarc.Subfield("d", "K29"), pymarc.Subfield("f", str(copies))]),
    )
    return encode_record(record, encoding)


def _land(settings, library, run_id: str, files: dict[str, bytes]) -> None:
    run = HarvestRun(settings, library, run_id, full=True)
    run.finish([run.land(name, data) for name, data in files.items()])


def test_a_new_drop_reads_only_its_changed_records_and_stages_what_reading_all_would(tmp_path, monkeypatch):
    """A library sends its whole catalogue again with a few records changed: unchanged records
    keep their rows (with the new run id), and the staging equals a full transform's."""
    sources = write_registry(tmp_path, {"F01": ("county", [])})
    settings = Settings.resolve(sources, tmp_path / "var")
    library = load_registry(sources).get("F01")
    books = {f"b{n}": (f"杭州史话第{n}卷", "gb18030" if n % 3 == 0 else "utf-8", n % 4) for n in range(120)}

    def drop(catalogue: dict) -> dict[str, bytes]:
        records = [_cnmarc(key, *book) for key, book in catalogue.items()]
        return {"part1.mrc": b"".join(records[:60]), "part2.mrc": b"".join(records[60:]) + b"00026nam0 22broken\x1e\x1d"}

    _land(settings, library, "run1", drop(books))
    assert transform_library(settings, library).reused == 0

    later = dict(books)
    for n in range(0, 120, 12):
        later[f"b{n}"] = (later[f"b{n}"][0] + "（修订本）", later[f"b{n}"][1], 9)  # changed
    for n in range(5, 120, 24):
        del later[f"b{n}"]  # withdrawn
    later |= {f"new{n}": (f"西湖游记{n}", "utf-8", 1) for n in range(7)}  # added
    files = drop(later)
    files["part1.mrc"] += _cnmarc("b1", *books["b1"])  # the same record twice in one file
    _land(settings, library, "run2", files)
    shutil.copytree(settings.data_dir, tmp_path / "full")

    summary = transform_library(settings, library)
    full = transform_library(Settings.resolve(sources, tmp_path / "full"), library, full=True)
    assert summary.records == full.records == len(later)
    assert summary.reused == len(later) - 10 - 7 + 1 and full.reused == 0  # +1: b1 twice
    assert summary.quarantine_reasons == full.quarantine_reasons == {"duplicate_local_id": 1, "truncated_record": 1}
    for name in ("records", "holdings", "quarantine"):
        ours = pq.read_table(settings.staging_dir("F01") / f"{name}.parquet")
        theirs = pq.read_table(tmp_path / "full" / "staging" / "F01" / f"{name}.parquet")
        if name == "quarantine":  # names the landed file, in another data folder
            ours, theirs = ours.drop_columns(["source"]), theirs.drop_columns(["source"])
        assert ours.equals(theirs), name
    assert set(pq.read_table(settings.staging_dir("F01") / "records.parquet").column("run_id").to_pylist()) == {"run2"}
    assert f"transformed ({summary.reused} unchanged records kept), {len(later)} records" in summary.line()
    monkeypatch.setattr("transforms.normalise.KEYS_VERSION", "next")  # rows of other keys are never reused
    assert transform_library(settings, library).reused == 0


def _staged_digests_match(staging) -> None:
    """The digests file holds record_digest of each staged record's bytes, row by row."""
    raws = pq.read_table(staging / "records.parquet").column("raw").to_pylist()
    assert pq.read_table(staging / "record_digests.parquet").column("digest").to_pylist() == [record_digest(raw) for raw in raws]


def test_drops_sent_again_keep_the_digests_of_the_records_and_distrust_stale_ones(tmp_path, monkeypatch):
    """Each transform writes its records' digests; the next takes them instead of hashing every
    staged record again, unless the staged records are no longer the file it wrote them for."""
    hashed = []
    monkeypatch.setattr(stage, "raw_digests", lambda raws, digests=stage.raw_digests: hashed.append(len(raws)) or digests(raws))
    sources = write_registry(tmp_path, {"F01": ("county", [])})
    settings = Settings.resolve(sources, tmp_path / "var")
    library = load_registry(sources).get("F01")
    staging = settings.staging_dir("F01")
    catalogue = {f"b{n}": (f"西湖志第{n}卷", "utf-8", 1) for n in range(40)}
    for run in range(1, 5):
        if run > 1:  # some changed, one withdrawn, one added: the kept rows move
            catalogue = {**{k: v for k, v in catalogue.items() if k != f"b{run}"}, f"b{run * 7}": (f"湖山{run}", "utf-8", 2),
                         f"new{run}": (f"新书{run}", "utf-8", 1)}
        _land(settings, library, f"run{run}", {"all.mrc": b"".join(_cnmarc(key, *book) for key, book in sorted(catalogue.items()))})
        if run == 4:  # the staged records rewritten since (same rows, another file), the digests not theirs
            records = pq.read_table(staging / "records.parquet")
            pq.write_table(records, staging / "records.parquet")
            digests = pq.read_table(staging / "record_digests.parquet")
            pq.write_table(digests.take(list(reversed(range(digests.num_rows)))), staging / "record_digests.parquet")
        shutil.rmtree(tmp_path / "full", ignore_errors=True)
        shutil.copytree(settings.data_dir, tmp_path / "full")
        hashed.clear()
        summary = transform_library(settings, library)
        # the records read (all, then the changed and the new one), and the staged ones when stale
        assert sum(hashed) == {1: len(catalogue), 4: 2 + len(catalogue)}.get(run, 2), run
        transform_library(Settings.resolve(sources, tmp_path / "full"), library, full=True)
        assert summary.reused == (0 if run == 1 else len(catalogue) - 2), run
        for name in ("records", "holdings", "record_digests"):
            assert pq.read_table(staging / f"{name}.parquet").equals(pq.read_table(tmp_path / "full" / "staging" / "F01" / f"{name}.parquet")), (run, name)
        _staged_digests_match(staging)


def test_a_holdings_record_adds_to_the_holdings_of_a_kept_record(tmp_path):
    """A drop sent again with an MFHD holdings record for a record whose bytes did not change:
    the record's row is kept, and its holdings are the ones it had plus the MFHD's, as reading
    every record gives."""
    sources = write_registry(tmp_path, {"F01": ("county", [])})
    settings = Settings.resolve(sources, tmp_path / "var")
    library = load_registry(sources).get("F01")
    bib, mfhd = _serial_and_mfhd()
    _land(settings, library, "run1", {"all.mrc": bib + _cnmarc("b2", "西湖志", "utf-8", 1)})
    transform_library(settings, library)
    _land(settings, library, "run2", {"all.mrc": bib + mfhd + _cnmarc("b2", "西湖志", "utf-8", 1)})
    shutil.copytree(settings.data_dir, tmp_path / "full")

    summary = transform_library(settings, library)
    transform_library(Settings.resolve(sources, tmp_path / "full"), library, full=True)
    assert (summary.reused, summary.holdings_records) == (2, 1)
    ours = pq.read_table(settings.staging_dir("F01") / "holdings.parquet")
    assert ours.equals(pq.read_table(tmp_path / "full" / "staging" / "F01" / "holdings.parquet"))
    assert ours.filter(pc.equal(ours["record_key"], "F01:b1"))["call_number"].to_pylist() == ["PER 12", "PER 7"]


def test_a_library_with_holdings_records_is_read_whole_again(tmp_path):
    """MFHD holdings land on their bibliographic record's row: its staged holdings are not its
    own alone, so such a library's records are never kept from the staging."""
    sources = write_registry(tmp_path, {"F01": ("county", [])})
    settings = Settings.resolve(sources, tmp_path / "var")
    library = load_registry(sources).get("F01")
    _land(settings, library, "run1", {"all.mrc": _serial_with_mfhd_holdings()})
    assert transform_library(settings, library).holdings_records == 1
    _land(settings, library, "run2", {"all.mrc": _serial_with_mfhd_holdings() + _cnmarc("b2", "西湖志", "utf-8", 1)})
    summary = transform_library(settings, library)
    assert (summary.reused, summary.records, summary.holdings) == (0, 2, 3)
