"""The demo province generator: deterministic, readable, and honest about its truth."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import opencc
import pymarc
import pytest

from transforms.iso2709 import RecordError, parse_record, split_records
from transforms.isbn import isbn10_check_digit, isbn13_check_digit
from unioncat.province import DemoLibrary, locality_name, write_demo_drops

LIBRARIES = [
    DemoLibrary("ZJ001", "浙江图书馆", "杭州", "province"),
    DemoLibrary("ZJ002", "杭州图书馆", "杭州", "city"),
    DemoLibrary("ZJ003", "宁波图书馆", "宁波", "city"),
    DemoLibrary("ZJ004", "温州市图书馆", "温州", "city"),
    DemoLibrary("ZJ017", "杭州市萧山区图书馆", "杭州", "county"),
    DemoLibrary("ZJ018", "杭州市余杭区图书馆", "杭州", "county"),
    DemoLibrary("ZJ023", "桐庐县图书馆", "杭州", "county"),
    DemoLibrary("ZJ024", "淳安县图书馆", "杭州", "county"),
    DemoLibrary("ZJ030", "宁波市鄞州区图书馆", "宁波", "county"),
    DemoLibrary("ZJ034", "余姚市图书馆", "宁波", "county"),
    DemoLibrary("ZJ044", "瑞安市图书馆", "温州", "county"),
    DemoLibrary("ZJ045", "乐清市图书馆", "温州", "county"),
]
LEVELS = {lib.id: lib.level for lib in LIBRARIES}
TITLES = 600
ENCODINGS = {"0120": "gb18030", "50  ": "utf-8"}
VOLUME = {"上": 1, "上册": 1, "中": 2, "中册": 2, "下": 3, "下册": 3} | {f"第{n}册": n for n in range(1, 10)}


@dataclass
class ReadRecord:
    library: str
    file: str
    charset: str  # 100$a/26-29 of a CNMARC ISO record, "xml" for MARCXML, "" for MARC21
    leader: str
    fields: dict[str, list[str]]  # tag -> data (indicators + subfields, "\x1f"-separated)

    @property
    def key(self) -> str:
        return f"{self.library}:{self.fields['001'][0]}"

    def subfields(self, tag: str, code: str) -> list[str]:
        return [chunk[1:] for data in self.fields.get(tag, []) for chunk in data.split("\x1f")[1:] if chunk[:1] == code]


@dataclass
class Province:
    root: Path
    summary: object
    records: list[ReadRecord]
    broken: list[tuple[str, str, bytes]]  # library, file, chunk
    truth: dict[str, dict[str, str]]


def read_iso(library: str, path: Path, records: list[ReadRecord], broken: list) -> None:
    for _, chunk in split_records(path.read_bytes()):
        try:
            raw = parse_record(chunk)
        except RecordError:
            broken.append((library, path.name, chunk))
            continue
        charset = ""
        if path.name == "catalogue.mrc":
            fixed = next(f.data for f in raw.fields if f.tag == "100").decode("ascii")
            charset = fixed.split("\x1fa")[1][26:30]
        fields = defaultdict(list)
        for f in raw.fields:
            fields[f.tag].append(f.data.decode(ENCODINGS.get(charset, "utf-8")))  # strict: fails if mislabelled
        records.append(ReadRecord(library, path.name, charset, raw.leader, fields))


def read_xml(library: str, path: Path, records: list[ReadRecord]) -> None:
    for rec in pymarc.parse_xml_to_array(str(path), strict=True):
        fields = defaultdict(list)
        for f in rec.fields:
            text = f.data if f.is_control_field() else "".join(f.indicators) + "".join(
                f"\x1f{s.code}{s.value}" for s in f.subfields)
            fields[f.tag].append(text)
        records.append(ReadRecord(library, path.name, "xml", str(rec.leader), fields))


@pytest.fixture(scope="module")
def province(tmp_path_factory) -> Province:
    root = tmp_path_factory.mktemp("province")
    summary = write_demo_drops(LIBRARIES, root, titles=TITLES)
    records, broken = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix == ".mrc":
                read_iso(folder.name, path, records, broken)
            else:
                read_xml(folder.name, path, records)
    with open(root / "truth.csv", newline="", encoding="utf-8") as handle:
        truth = {row["record_key"]: row for row in csv.DictReader(handle)}
    return Province(root, summary, records, broken, truth)


def isbn_digits(written: str) -> str:
    return re.sub(r"[^0-9X]", "", unicodedata.normalize("NFKC", written).split("(")[0].upper())


def as_isbn13(digits: str) -> str:
    return digits if len(digits) == 13 else "978" + digits[:9] + isbn13_check_digit("978" + digits[:9])


def volume(part: str) -> int | str:
    return VOLUME.get(unicodedata.normalize("NFKC", part).replace("冊", "册").replace(" ", ""), part)


def test_same_seed_gives_identical_bytes(province, tmp_path):
    write_demo_drops(LIBRARIES, tmp_path, titles=TITLES)
    first = sorted(p.relative_to(province.root) for p in province.root.rglob("*") if p.is_file())
    second = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert first == second
    assert all((province.root / rel).read_bytes() == (tmp_path / rel).read_bytes() for rel in first)
    assert not [p for p in first if p.name.endswith(".tmp")]


def test_every_record_parses_except_one_truncated_county_tail(province):
    assert len(province.broken) == 1
    library, file_name, chunk = province.broken[0]
    assert library == province.summary.truncated_library and LEVELS[library] == "county"
    assert file_name == "catalogue.mrc" and not chunk.endswith(b"\x1d")
    assert (province.root / library / file_name).read_bytes().endswith(chunk)
    assert len(province.records) == province.summary.records > TITLES


def test_encodings_match_the_100_character_set(province):
    charsets = defaultdict(set)
    for rec in province.records:
        charsets[(rec.library, rec.file)].add(rec.charset)
        if rec.file.startswith("catalogue"):
            fixed = rec.subfields("100", "a")[0]
            assert len(fixed) == 36 and fixed[8] == "d" and fixed[9:13].isdigit()
            assert fixed[26:30] == ("0120" if rec.charset == "0120" else "50  ")
            assert rec.leader[5:10] == "nam0 " and rec.leader[20:] == "450 "
    assert all(len(found) == 1 for found in charsets.values())
    catalogues = {library: found.pop() for (library, name), found in charsets.items() if name.startswith("catalogue")}
    kinds = list(catalogues.values())
    assert kinds.count("0120") >= 2 and kinds.count("50  ") >= 4 and kinds.count("xml") >= 1
    for library, charset in catalogues.items():
        if charset != "xml":
            data = (province.root / library / "catalogue.mrc").read_bytes()
            complete = data[: data.rindex(b"\x1d") + 1]
            complete.decode(ENCODINGS[charset])
            if charset == "0120":
                with pytest.raises(UnicodeDecodeError):
                    complete.decode("utf-8")


def test_truth_has_one_row_per_record_and_unique_keys(province):
    keys = [rec.key for rec in province.records]
    assert len(keys) == len(set(keys)) == len(province.truth) == province.summary.records
    assert set(keys) == set(province.truth)
    labels = {row["manifestation_label"] for row in province.truth.values()}
    assert province.summary.manifestations == len(labels)


def test_isbn_check_digits_are_valid_except_the_deliberate_typos(province):
    checked = 0
    for rec in province.records:
        if rec.file.startswith("catalogue"):
            for written in rec.subfields("010", "a"):
                digits = isbn_digits(written)
                check = isbn13_check_digit(digits[:12]) if len(digits) == 13 else isbn10_check_digit(digits[:9])
                valid = len(digits) in (10, 13) and check == digits[-1]
                assert valid != (rec.key in province.summary.isbn_typo_keys), (rec.key, written)
                checked += 1
    assert checked > TITLES


def test_set_volumes_share_an_isbn_but_not_a_manifestation(province):
    volumes_by_isbn = defaultdict(set)
    for rec in province.records:
        if rec.file.startswith("catalogue") and rec.key not in province.summary.isbn_typo_keys:
            label = province.truth[rec.key]["manifestation_label"]
            for written in rec.subfields("010", "a"):
                volumes_by_isbn[as_isbn13(isbn_digits(written))].add((label, volume("".join(rec.subfields("200", "h")))))
    sets = [found for found in volumes_by_isbn.values() if len(found) > 1 and all(part for _, part in found)]
    assert sets
    for found in sets:  # one manifestation per volume, one volume per manifestation
        assert len({label for label, _ in found}) == len({part for _, part in found}) == len(found)


def test_holdings_are_skewed_and_local(province):
    holders = defaultdict(set)
    for rec in province.records:
        holders[province.truth[rec.key]["manifestation_label"]].add(rec.library)
        assert rec.subfields("852" if rec.file == "real-marc21.mrc" else "905", "a") == [rec.library]
    counts = sorted(len(libraries) for libraries in holders.values())
    assert counts[-1] >= 5 and counts[len(counts) // 2] <= 3
    held = defaultdict(int)
    for rec in province.records:
        held[rec.library] += 1
    assert held["ZJ001"] > max(n for library, n in held.items() if LEVELS[library] == "county")
    places = {locality_name(lib): lib.id for lib in LIBRARIES}
    simplified = opencc.OpenCC("t2s").convert  # a few libraries catalogue in traditional characters
    gazetteers = [rec for rec in province.records if simplified("".join(rec.subfields("606", "a"))) == "地方志"]
    assert gazetteers
    for rec in gazetteers:  # a book about a place is held by that place's library
        place = simplified(rec.subfields("606", "x")[0])
        assert places[place] in holders[province.truth[rec.key]["manifestation_label"]], place


def test_works_group_editions_translations_and_classics(province):
    works = defaultdict(set)
    for row in province.truth.values():
        works[row["work_label"]].add(row["manifestation_label"])
    assert sum(len(manifestations) > 1 for manifestations in works.values()) >= 10


def test_real_records_go_to_provincial_and_city_libraries(province):
    real = [p for p in province.root.rglob("real-*") if p.is_file()]
    assert {p.name for p in real} == {"real-marc21.mrc", "real-cnmarc.xml"}
    assert all(LEVELS[p.parent.name] in ("province", "city") for p in real)
    originals = defaultdict(set)
    for rec in province.records:
        if rec.file.startswith("real-"):
            (original,) = [a for a in rec.subfields("035", "a") if a.startswith("(orig)")]
            originals[rec.file].add(original)
            assert province.truth[rec.key]["manifestation_label"].startswith(("M-LOC-", "M-CNMARC-"))
    assert len(originals["real-marc21.mrc"]) == 300 and len(originals["real-cnmarc.xml"]) == 10
