"""Hypothesis fuzzing of the ISO 2709 and MARCXML readers, bounded by example counts (no
deadline per example, a pytest-timeout for the whole test): whatever the bytes, a reader yields
only its documented outcomes (Accepted, Rejected with a reason, HoldingsRecord, Tombstone),
never raises and never hangs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from faults.checks import LOC_FILE
from transforms.iso2709 import split_records
from transforms.readers import Accepted, HoldingsRecord, Rejected, Tombstone, read_iso2709, read_xml

pytestmark = pytest.mark.timeout(120)

OUTCOMES = (Accepted, Rejected, HoldingsRecord, Tombstone)
FUZZ = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [record for _, record in split_records(LOC_FILE.read_bytes())][:40]
CNMARC_SEED = (LOC_FILE.parent / "sample_cnmarcxml.xml").read_bytes()
# What a MARC record is made of, to build records that get past the first checks.
MARC_BYTES = st.sampled_from([b"\x1d", b"\x1e", b"\x1f", b"\x1fa", b"0", b"9", b"00", b"245", b"200", b"001", b"\x1b(B",
                              b"\xe4\xb8\xad", b"\xd6\xd0", b"\x80", b"\xff", b"\x00", b"\x07", b"a", b" "])


def assert_documented_outcomes(results: list) -> None:
    for result in results:
        assert isinstance(result, OUTCOMES), result
        if isinstance(result, Rejected):
            assert result.reason and isinstance(result.detail, str)
        if isinstance(result, Accepted):
            assert result.row["record_key"].startswith("F:") and result.row["title_key"] is not None


@st.composite
def mutated_records(draw) -> bytes:
    """A real LoC record with bytes flipped, inserted, deleted and the tail cut."""
    record = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(record) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            record[at] = draw(st.integers(0, 255))
        elif action == "insert":
            record[at:at] = draw(MARC_BYTES)
        else:
            del record[at : at + draw(st.integers(1, 16))]
    return bytes(record[: draw(st.integers(0, len(record)))]) if draw(st.booleans()) else bytes(record)


@st.composite
def built_records(draw) -> bytes:
    """A leader and directory whose lengths and offsets may lie, over fields of MARC-ish bytes."""
    fields = draw(st.lists(st.tuples(st.sampled_from([b"001", b"005", b"008", b"020", b"100", b"200", b"245", b"260", b"690",
                                                      b"852", b"9\x1e9", b"XYZ"]),
                                     st.lists(MARC_BYTES, max_size=12).map(b"".join)), max_size=8))
    directory, body = b"", b""
    for tag, data in fields:
        length = len(data) + 1 + draw(st.sampled_from([0, 0, 0, 1, -1, 5000]))
        offset = len(body) + draw(st.sampled_from([0, 0, 0, 3, 99999]))
        directory += tag[:3] + b"%04d%05d" % (max(length, 0) % 10000, offset % 100000)
        body += data + b"\x1e"
    leader = b"%05d" % draw(st.integers(0, 99999)) + draw(st.sampled_from([b"nam a2200000   4500"[:19], b"cam  2200000 i 4500"[:19],
                                                                         b"nxy  22\x00\x00\x00\x00\x00   4500"[:19]]))
    return leader + directory + b"\x1e" + body + b"\x1d"


@FUZZ
@given(st.one_of(mutated_records(), built_records(), st.binary(max_size=600)), st.sampled_from(["auto", "marc21", "cnmarc"]),
       st.sampled_from(["auto", "utf-8", "gb18030", "marc-8"]))
def test_iso2709_reader_only_accepts_or_rejects(data, syntax, encoding):
    assert_documented_outcomes(list(read_iso2709(data, library_id="F", run_id="fuzz", syntax=syntax, encoding=encoding)))


MARCXML_TEMPLATE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<collection xmlns="http://www.loc.gov/MARC21/slim"><record>'
    "<leader>{leader}</leader><controlfield tag=\"001\">{id}</controlfield>"
    '<datafield tag="{tag}" ind1="{ind}" ind2="0"><subfield code="{code}">{title}</subfield></datafield>'
    '<datafield tag="020" ind1=" " ind2=" "><subfield code="a">{isbn}</subfield></datafield></record></collection>'
)
XML_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@st.composite
def marcxml_documents(draw) -> bytes:
    fields = {name: draw(XML_TEXT) for name in ("leader", "id", "title", "isbn", "ind", "code")}
    fields["tag"] = draw(st.sampled_from(["245", "200", "852", "24", "", "2450", draw(XML_TEXT)]))
    document = MARCXML_TEMPLATE.format(**fields).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # break it: cut, or bytes spliced in
        at = draw(st.integers(0, len(document)))
        document = document[:at] + draw(st.one_of(st.just(b""), st.binary(max_size=8), MARC_BYTES)) + document[at + draw(st.integers(0, 4)):]
    return document


@FUZZ
@given(st.one_of(marcxml_documents(), st.binary(max_size=400).map(lambda b: b"<" + b)), st.sampled_from(["auto", "cnmarc", "marc21"]))
# found by this test: "²" is a digit to str.isdigit() but not a number to int() (a 245 nonfiling indicator)
@example(
    document=b'<?xml version="1.0" encoding="UTF-8"?>\n<collection xmlns="http://www.loc.gov/MARC21/slim"><record><leader></leader>'
             b'<controlfield tag="001"></controlfield><datafield tag="245" ind1="0\xc2\xb2" ind2="0"><subfield code=""></subfield>'
             b'</datafield><datafield tag="020" ind1=" " ind2=" "><subfield code="a"></subfield></datafield></record></collection>',
    syntax="auto",
)
def test_marcxml_reader_only_accepts_or_rejects(document, syntax):
    with tempfile.NamedTemporaryFile(suffix=".xml") as handle:
        handle.write(document)
        handle.flush()
        assert_documented_outcomes(list(read_xml(Path(handle.name), library_id="F", run_id="fuzz", syntax=syntax)))


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(0, len(CNMARC_SEED) - 1), st.binary(min_size=1, max_size=6))
def test_real_cnmarcxml_with_bytes_spliced_in_is_read_or_rejected(at, junk):
    with tempfile.NamedTemporaryFile(suffix=".xml") as handle:
        handle.write(CNMARC_SEED[:at] + junk + CNMARC_SEED[at:])
        handle.flush()
        assert_documented_outcomes(list(read_xml(Path(handle.name), library_id="F", run_id="fuzz")))
