"""Read landed catalogue files (ISO 2709 or MARCXML) into canonical rows.

Every record either becomes a `records` row (with its holdings) or a
`quarantine` row naming the file, position and reason; one bad record never
stops the others, one unreadable file never stops the library.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pymarc
from lxml import etree

from transforms import cnmarc, marc21
from transforms.bibliographic import Holding, to_row
from transforms.encoding import EncodingDecision, decide_encoding, decode_record
from transforms.iso2709 import RawRecord, RecordError, parse_record, split_records

UNIMARC_FAMILY = ("cnmarc", "unimarc")


@dataclass
class Rejected:
    position: int
    reason: str
    detail: str
    raw: bytes


@dataclass
class Accepted:
    row: dict
    holdings: list[Holding]


def bibliographic_format(tags: set[str], configured: str) -> str:
    """cnmarc / unimarc / marc21, from the registry or from the tags present."""
    if configured in ("cnmarc", "unimarc", "marc21"):
        return configured
    if "245" in tags:
        return "marc21"
    if "200" in tags:
        return "cnmarc" if tags & {"690", "905", "906", "AVA"} else "unimarc"
    raise RecordError("not_marc", f"neither a 245 (MARC21) nor a 200 (UNIMARC) title field; tags {sorted(tags)[:12]}")


def _describe(record: pymarc.Record, fmt: str):
    return cnmarc.describe(record) if fmt in UNIMARC_FAMILY else marc21.describe(record)


def _accept(record: pymarc.Record, fmt: str, raw: bytes, decision: EncodingDecision, library_id: str, run_id: str) -> Accepted:
    description = _describe(record, fmt)
    flags = []
    if not description.local_id:
        description.local_id = "nocn-" + hashlib.sha1(raw).hexdigest()[:16]
        flags.append("no_control_number")
    row = to_row(description, library_id=library_id, source_format=fmt)
    row["quality_flags"] = sorted(set(row["quality_flags"] + flags))
    row.update(source_encoding=decision.encoding, encoding_evidence=decision.evidence, run_id=run_id, raw=raw)
    return Accepted(row, description.holdings)


def read_iso2709(data: bytes, *, library_id: str, run_id: str, syntax: str = "auto", encoding: str = "auto") -> Iterator[Accepted | Rejected]:
    for position, chunk in split_records(data):
        try:
            raw: RawRecord = parse_record(chunk)
            fmt = bibliographic_format({f.tag for f in raw.fields}, syntax)
            decision = decide_encoding(raw, fmt, encoding)
            record = decode_record(raw, decision)
            yield _accept(record, fmt, chunk, decision, library_id, run_id)
        except RecordError as error:
            yield Rejected(position, error.reason, error.detail, chunk)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_record(element: etree._Element) -> pymarc.Record:
    record = pymarc.Record()
    for child in element:
        name = _local(child.tag) if isinstance(child.tag, str) else ""
        if name == "leader":
            leader = (child.text or "").replace("-", " ")
            record.leader = pymarc.Leader((leader + " " * 24)[:24])
        elif name == "controlfield":
            record.add_field(pymarc.Field(tag=child.get("tag", ""), data=child.text or ""))
        elif name == "datafield":
            subfields = [
                pymarc.Subfield(code=sub.get("code", ""), value=sub.text or "")
                for sub in child
                if isinstance(sub.tag, str) and _local(sub.tag) == "subfield"
            ]
            indicators = [child.get("ind1", " ") or " ", child.get("ind2", " ") or " "]
            record.add_field(pymarc.Field(tag=child.get("tag", ""), indicators=indicators, subfields=subfields))
    return record


def _is_marc_record(element: etree._Element) -> bool:
    return any(isinstance(c.tag, str) and _local(c.tag) in ("leader", "controlfield", "datafield") for c in element)


def read_marcxml(path: Path, *, library_id: str, run_id: str, syntax: str = "auto") -> Iterator[Accepted | Rejected]:
    """Namespace-agnostic MARCXML (also CNMARC-XML inside SRU responses).

    The parser never resolves entities or touches the network."""
    decision = EncodingDecision("utf-8", "xml document encoding")
    index = 0
    parser_options = dict(events=("end",), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        for _, element in etree.iterparse(str(path), **parser_options):
            if not isinstance(element.tag, str) or _local(element.tag) != "record" or not _is_marc_record(element):
                continue
            raw = etree.tostring(element, encoding="utf-8")
            try:
                record = _xml_record(element)
                fmt = bibliographic_format({f.tag for f in record.fields}, syntax)
                yield _accept(record, fmt, raw, decision, library_id, run_id)
            except (RecordError, ValueError) as error:
                reason = getattr(error, "reason", "bad_record")
                yield Rejected(index, reason, str(error), raw)
            index += 1
            element.clear(keep_tail=True)
    except etree.XMLSyntaxError as error:
        yield Rejected(index, "bad_xml", f"XML syntax error after {index} records: {error}", path.read_bytes()[:65536])


def sniff(path: Path) -> str:
    """`iso2709`, `marcxml` or `unknown`, from the first bytes of a file."""
    with path.open("rb") as handle:
        head = handle.read(512).lstrip(b"\xef\xbb\xbf\r\n\t ")
    if head.startswith(b"<"):
        return "marcxml"
    if len(head) >= 24 and head[:5].isdigit() and head[12:17].isdigit():
        return "iso2709"
    return "unknown"
