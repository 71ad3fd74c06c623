"""The C speedups (transforms/_speedups.c) against the Python they replace: the same
fields, decoded texts, subfield index and cleaned values, record by record, on the real
corpus of ../shared/data, generated CNMARC and generated strings. The Python path also
runs for every record the C declines, so both must agree wherever both answer."""

from __future__ import annotations

import os
import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import cnmarc, encoding, iso2709, marc21, readers
from transforms import bibliographic
from transforms.bibliographic import python_clean, python_names, python_pick, python_pick_in_field, python_strip_role
from transforms.isbn import python_to_isbn13
from transforms.encoding import (
    _CONTROL_FIELD_CONTROLS, _DATA_FIELD_CONTROLS, CODECS, _decode_fields, decide_encoding, decode_record, python_han_share,
    python_is_utf8, python_unimarc_charset,
)
from transforms.iso2709 import _DIRECTORY, RecordError, _speedups, _well_formed, parse_record, split_records
from transforms.marc import MarcRecord
from transforms.readers import bibliographic_format, read_iso2709
from unioncat.province import DemoLibrary, write_demo_drops

pytestmark = pytest.mark.skipif(_speedups is None and not os.environ.get("CI"), reason="transforms/_speedups.c is not built here")


def test_ci_builds_the_speedups():
    """On CI the extension must be built: otherwise the benchmarked path would go untested."""
    assert _speedups is not None


def _python_split(chunk: bytes):
    directory_end = chunk.find(b"\x1e", 24)
    if directory_end == -1 or (directory_end - 24) % 12 or directory_end == 24 or not _DIRECTORY.fullmatch(chunk, 24, directory_end):
        return None
    return _well_formed(chunk[:24].decode("latin-1"), chunk, directory_end)


def _corpus(shared_data, tmp_path) -> list[bytes]:
    files = [p for folder in ("marc21", "unimarc_cnmarc", "marc21_loc_books") for p in (shared_data / folder).rglob("*")
             if p.is_file() and p.read_bytes()[:5].isdigit()]
    write_demo_drops([DemoLibrary("B001", "图书馆", "杭州", "city")], tmp_path, titles=300, real_records_dir=None)
    files += sorted(tmp_path.glob("*/catalogue.mrc"))
    return [chunk for path in files for _, chunk in split_records(path.read_bytes())]


def test_records_split_decode_and_index_alike(shared_data, tmp_path):
    compared = decoded = 0
    for chunk in _corpus(shared_data, tmp_path):
        fast = _speedups.split_fields(chunk)
        slow = _python_split(chunk)
        assert (fast is None) == (slow is None), chunk[:80]
        if fast is None:
            continue
        compared += 1
        assert fast == (slow.tags, slow.datas)
        assert _speedups.split_record(chunk) in (None, (slow.leader, slow.tags, slow.datas))
        try:
            fmt = bibliographic_format(slow.tags, "auto")
            decision = decide_encoding(slow, fmt)
        except RecordError:
            continue
        if decision.encoding == "marc-8":
            continue
        wanted = cnmarc.TAGS if fmt in ("cnmarc", "unimarc") else marc21.TAGS
        codec = CODECS[decision.encoding]
        try:
            result = _speedups.decode_fields(slow.tags, slow.datas, wanted, codec, decision.errors)
        except UnicodeDecodeError:
            with pytest.raises(UnicodeDecodeError):
                _decode_fields(slow, codec, decision.errors, wanted, dirty=True)
            continue
        python, removed = _decode_fields(slow, codec, decision.errors, wanted, dirty=True)
        if result is None:  # declined: a wanted field holds control characters, which the Python path removes
            assert any(_has_controls(tag, data.decode(codec, decision.errors))
                       for tag, data in zip(slow.tags, slow.datas) if tag in wanted), chunk[:80]
            continue
        fields, index = result
        decoded += 1
        assert not removed  # what the C decodes has nothing to remove: both flag the row alike
        assert fields == python.fields
        assert index == MarcRecord(slow.leader, python.fields)._index()
    assert compared > 25_000 and decoded > 25_000


def _has_controls(tag: str, text: str) -> bool:
    pattern = _CONTROL_FIELD_CONTROLS if tag < "010" and tag.isdigit() else _DATA_FIELD_CONTROLS
    return bool(pattern.search(text))


@pytest.mark.parametrize("chunk", [
    b"0004Xnam  22000000  4500" + b"245001000000\x1e10\x1faTitle\x1e\x1d",  # a record length that is not a number
    b"00045nam \xe9 22000000  4500" + b"245001000000\x1e10\x1faTitle\x1e\x1d",  # a byte past ASCII in the leader
    b"00045nam  22000000  4500" + b"245001000000\x1e10\x1faTitle\x1e" + b"x" * 100_000 + b"\x1d",  # over 99,999 bytes
])
def test_split_record_leaves_bad_leaders_and_sizes_to_the_python(chunk):
    assert _speedups.split_record(chunk) is None
    with pytest.raises(RecordError) as error:
        parse_record(chunk)
    assert error.value.reason in ("bad_leader", "oversized_record")


def test_a_record_the_c_declines_is_cut_by_the_directory():
    """A field missing its terminator: C declines, the Python reads it where the directory says."""
    leader = b"00000nam  22000000  4500"
    chunk = leader + b"001000500000" + b"245001000005" + b"\x1e" + b"ID01 " + b"10\x1faTitle\x1e\x1d"
    assert _speedups.split_fields(chunk) is None
    assert parse_record(chunk).datas == [b"ID01 ", b"10\x1faTitle"]


TEXT = st.text(st.sampled_from(list(" \t\n\r\u3000\xa0/:;,.=aZ中文\x00\x07\x1f\x7f\x88\x89\x9f\u2028\u202e\u2066é")), max_size=24)


@settings(max_examples=3000, deadline=None, database=None)
@given(st.one_of(TEXT, st.text(max_size=40), st.none()))
def test_clean_in_c_equals_clean_in_python(value):
    assert _speedups.clean(value) == python_clean(value)


ROLE_TEXT = st.text(st.sampled_from(list(" \t\u3000,.;张三Smith主编著译校注释纂辑理绘撰等原选整")), max_size=16)


@settings(max_examples=3000, deadline=None, database=None)
@given(st.one_of(ROLE_TEXT, st.text(max_size=30)))
def test_strip_role_in_c_equals_strip_role_in_python(name):
    assert _speedups.strip_role(name) == python_strip_role(name)


ISBN_TEXT = st.text(st.sampled_from(list("0123456789789Xx -\u2010\u2013 \u3000ISBN:()平装０")), max_size=30)


@settings(max_examples=3000, deadline=None, database=None)
@given(st.one_of(ISBN_TEXT, st.text(max_size=20)))
def test_isbn13_in_c_equals_isbn13_in_python(text):
    text = unicodedata.normalize("NFKC", text)  # as to_isbn13 gives it to either
    assert _speedups.isbn13(text) == python_to_isbn13(text)


HAN_TEXT = st.text(st.sampled_from(list("ab 1\x80é\u2fff\u3000、中\u9fff\ua000\uf8ff\uf900\ufaff\ufb00\ufeff\uff00\uffef\ufff0𠀀")), max_size=24)


@settings(max_examples=3000, deadline=None, database=None)
@given(st.one_of(HAN_TEXT, st.text(max_size=30)))
def test_han_share_in_c_equals_han_share_in_python(text):
    assert _speedups.han_share(text) == python_han_share(text)


UTF8_EDGES = [b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xdf\xbf", b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf",
              b"\xed\xa0\x80", b"\xee\x80\x80", b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80",
              b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\xe4\xb8", b"\x80"]


@settings(max_examples=3000, deadline=None, database=None)
@given(st.lists(st.one_of(st.binary(max_size=6), st.sampled_from(UTF8_EDGES), st.text(max_size=4).map(str.encode)), max_size=6))
def test_is_utf8_in_c_answers_as_bytes_decode(parts):
    """Overlong forms, surrogates, code points past U+10FFFF and cut sequences are not UTF-8."""
    data = b"".join(parts)
    assert _speedups.is_utf8(data) == python_is_utf8(data)


@pytest.mark.parametrize("codec", ["gb18030", "cp1251", "koi8-r", "iso-8859-1", "utf-8"])
@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(max_size=40), errors=st.sampled_from(["strict", "replace"]))
def test_decode_fields_decodes_as_bytes_decode_does(codec, data, errors):
    """decode_fields looks each codec's decoder up once: the same text, the same errors."""
    data = data.replace(b"\x1e", b"").replace(b"\x1d", b"")
    try:
        expected = data.decode(codec, errors)
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            _speedups.decode_fields(["245"], [data], frozenset({"245"}), codec, errors)
        return
    result = _speedups.decode_fields(["245"], [data], frozenset({"245"}), codec, errors)
    assert (result is None) == bool(_DATA_FIELD_CONTROLS.search(expected))  # None: control characters, for Python to remove
    assert result is None or result[0] == {"245": [expected]}


def _python_mappings(monkeypatch) -> None:
    """The mappings (`describe`), their helpers (`pick`, `pick_in_field`, `names`) and the row
    builder in Python."""
    for module in (bibliographic, marc21, cnmarc):
        for name, python in (("pick", python_pick), ("pick_in_field", python_pick_in_field), ("names", python_names),
                             ("describe", getattr(module, "python_describe", None))):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, python)
    monkeypatch.setattr(readers, "to_row", bibliographic.python_to_row)


def test_mappings_describe_alike_with_the_c_and_the_python_helpers(shared_data, tmp_path, monkeypatch):
    """Every record of the corpus gives the same canonical row and holdings whether the mappings
    (`describe`), what they take their fields with (`pick`, `pick_in_field`, `names`) and the row
    builder (`to_row`) run in C or in Python."""
    chunks = _corpus(shared_data, tmp_path)
    data = b"".join(chunks)
    fast = list(read_iso2709(data, library_id="B", run_id="r"))
    _python_mappings(monkeypatch)
    slow = list(read_iso2709(data, library_id="B", run_id="r"))
    assert len(fast) == len(slow) > 25_000
    assert sum(hasattr(result, "row") for result in fast) > 25_000
    assert fast == slow


def _described_in_c(record: MarcRecord, mapping) -> dict | None:
    c_describe = _speedups.describe_unimarc if mapping is cnmarc else _speedups.describe_marc21
    return c_describe(record.fields, record.subfield_index(), record.leader, mapping._C_SPEC)


def test_c_mappings_describe_the_corpus_as_the_python_ones(shared_data, tmp_path):
    """Record by record: the C description equals the Python one, or the C declines (and then
    only for what it leaves to the Python: other digits, non-sorting markers)."""
    described = declined = 0
    for chunk in _corpus(shared_data, tmp_path):
        try:
            raw = parse_record(chunk)
            fmt = bibliographic_format(raw.tags, "auto")
            record, _ = decode_record(raw, decide_encoding(raw, fmt), cnmarc.TAGS if fmt in ("cnmarc", "unimarc") else marc21.TAGS)
        except RecordError:
            continue
        mapping = cnmarc if fmt in ("cnmarc", "unimarc") else marc21
        fast = _described_in_c(record, mapping)
        if fast is None:
            declined += 1
            continue
        described += 1
        assert fast == mapping.python_describe(record), chunk[:80]
    assert described > 25_000 and declined < described / 1000


@pytest.mark.parametrize("mapping, fields, declined", [
    (cnmarc, {"200": ["1 \x1fa\x88The \x89Title"]}, True),  # non-sorting markers: the Python cuts them
    (cnmarc, {"200": ["1 \x1faT"], "905": ["  \x1fdI247\x1ff\uff13册"]}, True),  # full-width digit in the copies
    (cnmarc, {"200": ["1 \x1faT"], "905": ["  \x1fdI247\x1ff3册"], "100": ["  \x1fa20150101d18"]}, False),
    (cnmarc, {"200": ["1 \x1fa\x1fe", "1 \x1fa上海志\x1ffA\x1fgB"], "690": ["  \x1faK295"]}, False),
    (cnmarc, {"100": ["  \x1fa20150101d1\u0663"]}, True),  # Arabic-Indic digit in the year
    (marc21, {"245": ["04\x1faThe title /\x1fcby X."], "008": ["short"], "041": ["  \x1fa  \x1fafre"]}, False),
    (marc21, {"245": ["0\u0663\x1faThe title"]}, True),  # an indicator that is a digit to str.isdigit only
    (marc21, {"245": ["09\x1faAbc"], "852": ["  \x1fhQA\x1fiX\x1faMain\x1fbStacks"]}, False),
    (marc21, {"001": ["\x1fabad control"], "245": ["1"], "008": ["  " * 20 + "o"]}, False),
])
def test_c_mappings_on_edge_records(mapping, fields, declined):
    leader = "00000nam  2200000   4500" if mapping is marc21 else "00000nam0 2200000   450 "
    record = MarcRecord(leader, fields)
    fast = _described_in_c(record, mapping)
    assert (fast is None) == declined
    assert fast is None or fast == mapping.python_describe(record)
    assert mapping.describe(record) == mapping.python_describe(record)


@pytest.mark.parametrize("fields", [
    {},
    {"local_id": "1", "title": "红楼梦", "sort_title": "红楼梦", "isbn_raw": ["7-02-000220-X", "978-7-02-000220-7", "12345"],
     "issn_raw": ["0317-8471", "bad"], "authors": ["曹雪芹", "高鹗"], "publisher": "人民文学出版社有限公司", "date_text": "1982.3",
     "extent": "1606页", "subtitle": "校注本"},
    {"local_id": None, "title": None, "sort_title": "", "date_text": "n.d.", "extent": "1 v.", "isbn_raw": ["bad", "bad"]},
    {"local_id": "x", "title": "The Title", "sort_title": "Title", "authors": ["Smith, John"], "date_text": "c2015"},
    {"local_id": "y", "title": "!!!", "material_type": "serial", "holdings": ["kept as they are"]},
])
def test_row_in_c_equals_the_python_row(fields):
    flags = ("encoding_detected",)
    python = bibliographic.python_to_row(bibliographic.description(**fields), library_id="L1", source_format="cnmarc", flags=flags)
    fast = _speedups.row(bibliographic.description(**fields), "L1", "cnmarc", flags, bibliographic._ROW_FUNCTIONS)
    assert fast == python and list(fast) == list(python)


FIXED_FIELD = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([b"a20150101d2015    em y0chiy0120    ea", b"a", b"b" + b"9" * 40])),
                       max_size=4).map(lambda parts: b"  " + b"".join(b"\x1f" + part for part in parts))


@settings(max_examples=3000, deadline=None, database=None)
@given(st.one_of(FIXED_FIELD, st.binary(max_size=60)))
def test_unimarc_charset_in_c_equals_the_python(field):
    assert _speedups.unimarc_charset(field) == python_unimarc_charset(field)


@pytest.mark.parametrize("field_999, flagged", [(b"  \x1faNot read\x07", False), (None, True)])
def test_control_characters_are_flagged_alike_with_and_without_the_c(field_999, flagged, monkeypatch):
    """The flag says a field that was read lost control characters: one only in a field no
    mapping reads (999) flags nothing, with the C decoding or the Python."""
    fields = [(b"001", b"c1"), (b"245", b"10\x1faTitle" + (b"" if field_999 else b"\x07")), (b"999", field_999 or b"  \x1fax")]
    directory = body = b""
    for tag, data in fields:
        directory += tag + b"%04d%05d" % (len(data) + 1, len(body))
        body += data + b"\x1e"
    head = b"nam a22%05d   4500" % (24 + len(directory) + 1)
    chunk = b"%05d" % (24 + len(directory) + 1 + len(body) + 1) + head + directory + b"\x1e" + body + b"\x1d"
    [fast] = read_iso2709(chunk, library_id="B", run_id="r")
    monkeypatch.setattr(encoding, "_speedups", None)
    [slow] = read_iso2709(chunk, library_id="B", run_id="r")
    assert fast == slow
    assert ("control_characters_removed" in fast.row["quality_flags"]) == flagged


def _mutated(chunks: list[bytes], count: int, seed: int) -> bytes:
    """`count` records of `chunks`, each with 1-4 bytes replaced, inserted or deleted (delimiters,
    terminators, digits, C1 and lead bytes among the replacements)."""
    rng = random.Random(seed)
    pieces = [b"\x1f", b"\x1e", b"\x88", b"\xef\xbc\x91", b"\xd9\xa3", b"0", b"9", b" ", b"\xc2\x85", b"\x00", b"a", b"\x81", b"\xe4\xb8"]
    mutants = []
    for _ in range(count):
        record = bytearray(rng.choice(chunks))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(record))
            roll = rng.random()
            if roll < 0.5:
                record[at:at + 1] = rng.choice(pieces)
            elif roll < 0.8:
                record[at] = rng.randrange(256)
            else:
                del record[at]
        mutants.append(bytes(record).rstrip(b"\x1d") + b"\x1d")
    return b"".join(mutants)


def test_mutated_records_read_alike_with_and_without_the_c(shared_data, tmp_path, monkeypatch):
    """Broken and hostile records take every path the C declines: the results (rows, holdings,
    quarantine reasons) are the same with all the speedups as with the Python alone."""
    data = _mutated(_corpus(shared_data, tmp_path), 4_000, seed=11)
    fast = list(read_iso2709(data, library_id="B", run_id="r"))
    _python_mappings(monkeypatch)
    monkeypatch.setattr(bibliographic, "clean", python_clean)
    for module in (iso2709, encoding):
        monkeypatch.setattr(module, "_speedups", None)
    monkeypatch.setattr(encoding, "_is_utf8", python_is_utf8)
    monkeypatch.setattr(encoding, "_charset_of", python_unimarc_charset)
    monkeypatch.setattr(encoding, "_han_share", python_han_share)
    slow = list(read_iso2709(data, library_id="B", run_id="r"))
    assert len(fast) == len(slow) > 4_000
    assert sum(hasattr(result, "row") for result in fast) > 1_000
    assert fast == slow
