"""Read landed files and pages into canonical rows.

Formats: ISO 2709, MARCXML (namespace-agnostic, also inside SRU responses),
OAI-PMH ListRecords/GetRecord pages (MARCXML or oai_dc metadata, deleted
headers as tombstones) and Aleph sequential. Every record either becomes a
`records` row (`Accepted`), a deletion (`Tombstone`) or a `quarantine` row
(`Rejected`) naming the position and reason: one bad record never stops the
others, one unreadable file never stops the library.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lxml import etree

from transforms import cnmarc, dublin_core, marc21
from transforms.bibliographic import Holding, to_row
from transforms.encoding import EncodingDecision, decide_encoding, decode_record
from transforms.iso2709 import RecordError, parse_record, split_records
from transforms.marc import SUBFIELD, MarcRecord, data_field

UNIMARC_FAMILY = ("cnmarc", "unimarc")
_XML_DECISION = EncodingDecision("utf-8", "xml document encoding")
_XML_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_MFHD_TYPES = "uvxy"  # leader/06 of MARC21 holdings records
_CNMARC_TAGS = frozenset({"690", "905", "906", "AVA"})  # CLC class, local holdings: China's profile of UNIMARC
_MFHD_TAGS = frozenset({"852", "863", "866"})


@dataclass
class Rejected:
    position: int | None
    reason: str
    detail: str
    raw: bytes


@dataclass
class Accepted:
    row: dict
    holdings: list[Holding]
    oai_identifier: str | None = None


@dataclass
class Tombstone:
    """A record the source says is deleted (OAI `status="deleted"`)."""

    oai_identifier: str
    datestamp: str | None


@dataclass
class HoldingsRecord:
    """A MARC21 holdings (MFHD) record: holdings of the bibliographic record `bib_local_id`."""

    bib_local_id: str
    holdings: list[Holding]


@dataclass
class Known:
    """Consecutive records whose bytes the previous transform of the library read: their rows
    there, in order (one result for a run of them: most of a file sent again is known)."""

    rows: list[int]


Result = Accepted | Rejected | Tombstone | HoldingsRecord | Known


DIGEST_BYTES = 16


def record_digest(raw: bytes) -> bytes:
    """What identifies a record's bytes between two transforms of a library."""
    return hashlib.blake2b(raw, digest_size=DIGEST_BYTES).digest()


def bibliographic_format(tags, configured: str) -> str:
    """cnmarc / unimarc / marc21, from the registry or from the tags present."""
    if configured in ("cnmarc", "unimarc", "marc21"):
        return configured
    if "245" in tags:
        return "marc21"
    if "200" in tags:
        return "unimarc" if _CNMARC_TAGS.isdisjoint(tags) else "cnmarc"
    if not _MFHD_TAGS.isdisjoint(tags):
        return "marc21"  # a holdings (MFHD) record
    raise RecordError("not_bibliographic", f"neither a 245 (MARC21) nor a 200 (UNIMARC) title field; tags {sorted(set(tags))[:12]}")


def _wanted(fmt: str) -> frozenset[str]:
    return cnmarc.TAGS if fmt in UNIMARC_FAMILY else marc21.TAGS


def _describe(record: MarcRecord, fmt: str) -> dict:
    return cnmarc.describe(record) if fmt in UNIMARC_FAMILY else marc21.describe(record)


def _result(record: MarcRecord, fmt: str, raw: bytes, decision: EncodingDecision, library_id: str, run_id: str,
            *, local_id: str | None = None, datestamp: str | None = None) -> Accepted | HoldingsRecord:
    if fmt == "marc21" and record.leader[6] in _MFHD_TYPES:
        if not record.control("004"):
            raise RecordError("orphan_holdings", "holdings (MFHD) record without a 004 link to its bibliographic record")
        return HoldingsRecord(record.control("004"), marc21.holdings(record))
    if "245" not in record.fields and "200" not in record.fields:
        raise RecordError("not_bibliographic", f"no title field (245/200); leader/06={record.leader[6]!r}")
    return accept(_describe(record, fmt), fmt, raw, decision, library_id, run_id, local_id=local_id, datestamp=datestamp)


def accept(description: dict, fmt: str, raw: bytes, decision: EncodingDecision, library_id: str, run_id: str,
           *, local_id: str | None = None, datestamp: str | None = None) -> Accepted:
    flags = []
    if not description["local_id"]:
        description["local_id"] = local_id or "nocn-" + hashlib.sha1(raw).hexdigest()[:16]
        flags.append("no_control_number")
    if decision.errors != "strict":
        flags.append("encoding_errors_replaced")
    if decision.confidence < 1.0:
        flags.append("encoding_detected")
    row = to_row(description, library_id=library_id, source_format=fmt, flags=flags)
    row["source_encoding"] = decision.encoding
    row["encoding_evidence"] = decision.evidence
    row["encoding_confidence"] = decision.confidence
    row["run_id"] = run_id
    row["raw"] = raw
    if datestamp:
        row["datestamp"] = datestamp
    return Accepted(row, description["holdings"])


def read_iso2709(data: bytes, *, library_id: str, run_id: str, syntax: str = "auto", encoding: str = "auto",
                 known: dict[bytes, int] | None = None) -> Iterator[Result]:
    """`known`: digest (record_digest) → row of the records read before, which come as `Known`
    without being read again."""
    rows: list[int] = []
    for position, chunk in split_records(data):
        if known is not None:
            row = known.get(record_digest(chunk))
            if row is not None:
                rows.append(row)
                continue
            if rows:
                yield Known(rows)
                rows = []
        try:
            raw = parse_record(chunk)
            fmt = bibliographic_format(raw.tags, syntax)
            decision = decide_encoding(raw, fmt, encoding)
            record, controls_removed = decode_record(raw, decision, _wanted(fmt))
            result = _result(record, fmt, chunk, decision, library_id, run_id)
            if isinstance(result, Accepted) and controls_removed:
                result.row["quality_flags"] = sorted({*result.row["quality_flags"], "control_characters_removed"})
            yield result
        except RecordError as error:
            yield Rejected(position, error.reason, error.detail, chunk)
    if rows:
        yield Known(rows)


# ---- XML: MARCXML, SRU and OAI-PMH pages -----------------------------------------------------

def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _is_marc_record(element) -> bool:
    return _local(element.tag) == "record" and any(_local(c.tag) in ("leader", "controlfield", "datafield") for c in element)


def _xml_record(element) -> MarcRecord:
    record = MarcRecord(" " * 24)
    for child in element:
        name = _local(child.tag)
        if name == "leader":
            record.leader = ((child.text or "").replace("-", " ") + " " * 24)[:24]
        elif name == "controlfield":
            record.add(child.get("tag", ""), (child.text or "").replace(SUBFIELD, ""))
        elif name == "datafield":
            subfields = [(sub.get("code") or " ", sub.text or "") for sub in child if _local(sub.tag) == "subfield"]
            indicators = (child.get("ind1") or " ") + (child.get("ind2") or " ")
            record.add(child.get("tag", ""), data_field(indicators, subfields))
    return record


def _marcxml_result(element, library_id: str, run_id: str, syntax: str, **oai) -> Accepted | HoldingsRecord:
    record = _xml_record(element)
    fmt = bibliographic_format(record.tags, syntax)
    return _result(record, fmt, etree.tostring(element, encoding="utf-8"), _XML_DECISION, library_id, run_id, **oai)


def _payload_result(payload, identifier: str | None, library_id: str, run_id: str, syntax: str, datestamp: str | None = None):
    """The record inside an OAI `<metadata>` or an SRU `<recordData>`: MARCXML or Dublin Core."""
    if _is_marc_record(payload) or _local(payload.tag) == "collection":
        marc = payload if _is_marc_record(payload) else next((c for c in payload if _is_marc_record(c)), None)
        if marc is None:
            raise RecordError("bad_record", f"{identifier or 'record'}: empty MARCXML collection")
        return _marcxml_result(marc, library_id, run_id, syntax, local_id=identifier, datestamp=datestamp)
    if _local(payload.tag) == "dc" and identifier:
        description = dublin_core.describe(payload, identifier)
        return accept(description, "dc", etree.tostring(payload, encoding="utf-8"), _XML_DECISION, library_id, run_id, datestamp=datestamp)
    raise RecordError("unsupported_metadata", f"{identifier or 'record'}: metadata <{_local(payload.tag)}> is not MARCXML or oai_dc with an identifier")


def _sru_result(element, library_id: str, run_id: str, syntax: str) -> Result:
    payload = next((c for c in element if isinstance(c.tag, str)), None)
    if payload is None:
        raise RecordError("bad_record", "empty SRU recordData")
    return _payload_result(payload, None, library_id, run_id, syntax)


def _oai_result(element, library_id: str, run_id: str, syntax: str) -> Result:
    header = next((c for c in element if _local(c.tag) == "header"), None)
    if header is None:
        raise RecordError("bad_oai_record", "OAI record without a header")
    identifier = next((c.text for c in header if _local(c.tag) == "identifier"), None) or ""
    datestamp = next((c.text for c in header if _local(c.tag) == "datestamp"), None)
    if header.get("status") == "deleted":
        return Tombstone(identifier, datestamp)
    metadata = next((c for c in element if _local(c.tag) == "metadata"), None)
    payload = next((c for c in metadata if isinstance(c.tag, str)), None) if metadata is not None else None
    if payload is None:
        raise RecordError("bad_oai_record", f"{identifier}: no metadata")
    result = _payload_result(payload, identifier, library_id, run_id, syntax, datestamp)
    if isinstance(result, Accepted):
        result.oai_identifier = identifier
    return result


def read_xml(path: Path, *, library_id: str, run_id: str, syntax: str = "auto") -> Iterator[Result]:
    """MARCXML collections, SRU responses and OAI-PMH pages; the parser never
    resolves entities or touches the network."""
    index = 0
    root = None
    try:
        for event, element in etree.iterparse(str(path), events=("start", "end"), **_XML_OPTIONS):
            if event == "start":
                root = element if root is None else root
                continue
            in_oai = _local(root.tag) == "OAI-PMH"  # some servers omit the OAI namespace
            in_sru = _local(root.tag) == "searchRetrieveResponse"
            if in_oai and _local(element.tag) == "record" and any(_local(c.tag) == "header" for c in element):
                handler = _oai_result
            elif in_sru and _local(element.tag) == "recordData":
                handler = _sru_result
            elif not in_oai and not in_sru and _is_marc_record(element):
                handler = _marcxml_result
            else:
                continue
            try:
                yield handler(element, library_id, run_id, syntax)
            except RecordError as error:
                yield Rejected(index, error.reason, error.detail, etree.tostring(element, encoding="utf-8"))
            index += 1
            element.clear(keep_tail=True)
    except etree.XMLSyntaxError as error:
        yield Rejected(index, "bad_xml", f"XML syntax error after {index} records: {error}", path.read_bytes()[:65536])
        return
    if index == 0 and root is not None and _local(root.tag) not in ("OAI-PMH", "searchRetrieveResponse"):
        yield Rejected(0, "not_marc", f"XML document <{_local(root.tag)}> holds no MARC records", path.read_bytes()[:65536])


# ---- Aleph sequential ----------------------------------------------------------------------------

_ALEPH_LINE = re.compile(r"^(\d{9}) (\w{3})(.)(.) L (.*)$")


def read_aleph_sequential(data: bytes, *, library_id: str, run_id: str, syntax: str = "auto") -> Iterator[Result]:
    """Aleph sequential: `SYSNO TAGii L data`, one field per line, `$$a` subfields."""
    records: dict[str, tuple[int, MarcRecord, list[bytes]]] = {}
    for number, line in enumerate(data.splitlines(), 1):
        match = _ALEPH_LINE.match(line.decode("utf-8", "replace"))
        if not match:
            if line.strip():
                yield Rejected(number, "bad_aleph_line", f"line {number} is not `SYSNO TAG L data`", line)
            continue
        sysno, tag, ind1, ind2, value = match.groups()
        _, record, lines = records.setdefault(sysno, (number, MarcRecord(" " * 24), []))
        lines.append(line)
        if tag == "LDR":
            record.leader = (value.replace("^", " ") + " " * 24)[:24]
        elif tag.isdigit() and tag < "010":
            record.add(tag, value.replace("^", " ").replace(SUBFIELD, ""))
        elif tag.isdigit():
            subfields = [(chunk[:1], chunk[1:]) for chunk in value.split("$$")[1:] if chunk]
            record.add(tag, data_field((ind1 + ind2).replace("^", " "), subfields))
    decision = EncodingDecision("utf-8", "aleph sequential as UTF-8")
    for sysno, (number, record, lines) in records.items():
        raw = b"\n".join(lines)
        try:
            fmt = bibliographic_format(record.tags, syntax)
            yield _result(record, fmt, raw, decision, library_id, run_id, local_id=sysno)
        except RecordError as error:
            yield Rejected(number, error.reason, error.detail, raw)


def sniff(path: Path) -> str:
    """`iso2709`, `xml`, `aleph` or `unknown`, from the first bytes of a file."""
    with path.open("rb") as handle:
        head = handle.read(512).lstrip(b"\xef\xbb\xbf\r\n\t ")
    if head.startswith(b"<"):
        return "xml"
    if len(head) >= 24 and head[:5].isdigit() and head[12:17].isdigit():
        return "iso2709"
    if _ALEPH_LINE.match(head.split(b"\n", 1)[0].decode("utf-8", "replace")):
        return "aleph"
    return "unknown"


def read_file(path: Path, *, library_id: str, run_id: str, syntax: str = "auto", encoding: str = "auto",
              known: dict[bytes, int] | None = None) -> Iterator[Result]:
    """The results of a landed file's records; `known` as in read_iso2709 (ISO 2709 files only)."""
    kind = sniff(path)
    if kind == "iso2709":
        return read_iso2709(path.read_bytes(), library_id=library_id, run_id=run_id, syntax=syntax, encoding=encoding, known=known)
    if kind == "xml":
        return read_xml(path, library_id=library_id, run_id=run_id, syntax=syntax)
    if kind == "aleph":
        return read_aleph_sequential(path.read_bytes(), library_id=library_id, run_id=run_id, syntax=syntax)
    with path.open("rb") as handle:
        head = handle.read(65536)
    return iter([Rejected(0, "not_marc", f"{path.name} is neither ISO 2709, XML nor Aleph sequential (starts with {head[:16]!r})", head)])
