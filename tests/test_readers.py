"""Reading real MARC files from ../shared/data: both syntaxes, encodings, and
broken input quarantined with a reason while the other records still land."""

from collections import Counter
from pathlib import Path

import pytest

from transforms.readers import Accepted, Rejected, read_iso2709, read_xml, sniff


def _read(path: Path):
    if sniff(path) == "xml":
        results = list(read_xml(path, library_id="T", run_id="r"))
    else:
        results = list(read_iso2709(path.read_bytes(), library_id="T", run_id="r"))
    accepted = [r for r in results if isinstance(r, Accepted)]
    rejected = [r for r in results if isinstance(r, Rejected)]
    return accepted, rejected


def test_loc_marc21_books_map_core_fields(shared_data):
    accepted, rejected = _read(shared_data / "marc21_loc_books" / "BooksAll.2016.part01.first26095.utf8.mrc")
    assert len(accepted) == 26095 and not rejected
    rows = [a.row for a in accepted]
    # PROVENANCE.md: 24,223 records have a 020; a few carry only $z (cancelled ISBN).
    assert 24_000 < sum(1 for r in rows if r["isbn_raw"]) <= 24_223
    assert sum(1 for r in rows if r["isbn"]) > 24_000
    assert all(r["source_format"] == "marc21" and r["title_key"] for r in rows)
    assert sum(r["year"] is not None for r in rows) > 0.95 * len(rows)
    assert len({r["record_key"] for r in rows}) == len(rows)


def test_cnmarc_xml_maps_title_authors_isbn_holdings(shared_data):
    accepted, rejected = _read(shared_data / "unimarc_cnmarc" / "cnmarc_bnu_alma_sru_dp2" / "sample_cnmarcxml.xml")
    assert len(accepted) == 10 and not rejected
    first = accepted[0]
    row = first.row
    assert row["source_format"] == "cnmarc"
    assert row["title"] == "'94中国发展报告"
    assert row["isbn_raw"] == ["7-5037-1744-0"] and row["isbn"] == ["9787503717444"]
    assert row["publisher"] == "中国统计出版社" and row["year"] == 1994 and row["pages"] == 320
    assert row["clc"] == ["F124"] and "国家统计局" in row["authors"]
    assert any(h.copies == 1 and h.call_number for h in first.holdings)


def test_marc8_records_decode_to_unicode(shared_data):
    accepted, _ = _read(shared_data / "marc21" / "evergreen_datasets" / "lul_fre_500.mrc")
    marc8 = [a.row for a in accepted if a.row["source_encoding"] == "marc-8"]
    assert marc8, "lul_fre_500 is declared MARC-8"
    text = " ".join(r["title"] or "" for r in marc8)
    assert any(c in text for c in "éèàç") and "\ufffd" not in text


def test_mislabelled_utf8_is_detected_and_said(shared_data):
    accepted, _ = _read(shared_data / "marc21" / "evergreen_datasets" / "FSL.marc")
    assert len(accepted) == 52
    assert all(a.row["source_encoding"] == "utf-8" for a in accepted)
    assert all("mislabelled" in a.row["encoding_evidence"] for a in accepted if not a.row["raw"].isascii())
    assert any("Столпы общества" == a.row["title"] for a in accepted)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bad_oversize_field_bad_directory.mrc", "bad_directory"),
        ("bad_too_long_plus_2.mrc", "oversized_record"),
        ("bad_hathi_records.mrc", "oversized_record"),
    ],
)
def test_broken_marc4j_records_are_rejected_and_the_rest_land(shared_data, name, reason):
    path = shared_data / "marc21" / "marc4j_tests" / name
    accepted, rejected = _read(path)
    assert accepted, "the good records of the file still land"
    assert reason in {r.reason for r in rejected}
    assert all(r.raw and r.detail for r in rejected)
    # Every record terminator in the file is accounted for.
    assert len(accepted) + len(rejected) == path.read_bytes().count(b"\x1d")


def test_truncated_file_rejects_only_its_tail(shared_data, tmp_path):
    data = (shared_data / "marc21" / "evergreen_datasets" / "jazz_1k.mrc").read_bytes()
    truncated = data[: len(data) - 500]
    accepted, rejected = _read_bytes(truncated)
    assert len(accepted) == 999
    assert [r.reason for r in rejected] == ["truncated_record"]


def _read_bytes(data: bytes):
    results = list(read_iso2709(data, library_id="T", run_id="r"))
    return [r for r in results if isinstance(r, Accepted)], [r for r in results if isinstance(r, Rejected)]


def test_non_marc_bytes_are_rejected_not_crashed():
    accepted, rejected = _read_bytes(b"%PDF-1.4 this is not a catalogue\x1d")
    assert not accepted and rejected[0].reason in {"bad_leader", "bad_directory"}


def test_record_without_001_gets_a_stable_content_id(shared_data):
    accepted, _ = _read(shared_data / "marc21" / "pymarc_tests" / "bad_records.mrc")
    no_001 = [a.row for a in accepted if "no_control_number" in a.row["quality_flags"]]
    assert no_001 and all(r["local_id"].startswith("nocn-") for r in no_001)
    again, _ = _read(shared_data / "marc21" / "pymarc_tests" / "bad_records.mrc")
    assert [a.row["local_id"] for a in accepted] == [a.row["local_id"] for a in again]


def test_every_loc_and_jazz_encoding_decision_is_recorded(shared_data):
    accepted, _ = _read(shared_data / "marc21" / "evergreen_datasets" / "jazz_1k.mrc")
    decisions = Counter(a.row["source_encoding"] for a in accepted)
    assert set(decisions) <= {"utf-8", "marc-8"} and decisions["marc-8"] > 0
    assert all(a.row["encoding_evidence"] for a in accepted)
