"""Decide a record's character encoding and decode its raw fields.

Declarations are honoured but verified against the bytes: MARC21 leader/09
and CNMARC/UNIMARC 100$a/26-29 lie often enough (Evergreen's FSL.marc is UTF-8
with a blank leader/09). The decision and the evidence for it are returned so
that they land in the record row; nothing is decoded with replacement
characters silently.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import pymarc
from pymarc.marc8 import marc8_to_unicode

from transforms.iso2709 import SUBFIELD_DELIMITER, RawField, RawRecord, RecordError

# Registry names → Python codecs. GB 2312 and GBK are subsets of GB18030.
CODECS = {
    "utf-8": "utf-8",
    "gb18030": "gb18030",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "iso-8859-1": "iso-8859-1",
    "marc-8": "marc-8",
}


@dataclass(frozen=True)
class EncodingDecision:
    encoding: str  # a key of CODECS
    evidence: str


def _unimarc_charset(raw: RawRecord) -> str | None:
    for field in raw.fields:
        if field.tag == "100":
            for chunk in field.data.split(SUBFIELD_DELIMITER)[1:]:
                if chunk[:1] == b"a" and len(chunk) >= 31:
                    return chunk[27:31].decode("ascii", "replace")
    return None


def _declared(raw: RawRecord, bibliographic_format: str) -> EncodingDecision | None:
    if bibliographic_format == "marc21":
        if raw.leader[9] == "a":
            return EncodingDecision("utf-8", "declared leader/09=a")
        return EncodingDecision("marc-8", "declared leader/09 blank (MARC-8)")
    charset = _unimarc_charset(raw)
    if charset is None:
        return None
    if charset.startswith("50"):
        return EncodingDecision("utf-8", f"declared 100$a/26-29={charset!r} (Unicode)")
    if "20" in (charset[:2], charset[2:]):
        return EncodingDecision("gb18030", f"declared 100$a/26-29={charset!r} (GB 2312)")
    return None


def _all_bytes(raw: RawRecord) -> bytes:
    return b"".join(field.data for field in raw.fields)


def _decodes_as(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def decide_encoding(raw: RawRecord, bibliographic_format: str, configured: str = "auto") -> EncodingDecision:
    """Pick the encoding for a record: configured > verified declaration > detection."""
    data = _all_bytes(raw)
    if data.isascii():
        return EncodingDecision("utf-8", "ascii only")
    if configured != "auto":
        codec = CODECS[configured]
        if codec == "marc-8" or _decodes_as(data, codec):
            return EncodingDecision(configured, f"configured {configured} in sources.toml")
    declared = _declared(raw, bibliographic_format)
    if declared and (declared.encoding == "marc-8" or _decodes_as(data, CODECS[declared.encoding])):
        if declared.encoding == "marc-8" and _decodes_as(data, "utf-8"):
            return EncodingDecision("utf-8", "declared MARC-8 but bytes are valid UTF-8 (mislabelled)")
        return declared
    if _decodes_as(data, "utf-8"):
        return EncodingDecision("utf-8", "detected: bytes are valid UTF-8")
    if bibliographic_format == "marc21":
        return EncodingDecision("marc-8", "detected: 8-bit bytes in MARC21, not UTF-8")
    if _decodes_as(data, "gb18030"):
        return EncodingDecision("gb18030", "detected: bytes are valid GB18030")
    raise RecordError("undecodable", "bytes are neither UTF-8, GB18030 nor declared consistently")


def _decoder(encoding: str):
    if encoding == "marc-8":
        return lambda data: unicodedata.normalize("NFC", marc8_to_unicode(data, hide_utf8_warnings=True))
    codec = CODECS[encoding]
    return lambda data: data.decode(codec)


def _to_field(raw_field: RawField, decode) -> pymarc.Field:
    if raw_field.is_control:
        return pymarc.Field(tag=raw_field.tag, data=decode(raw_field.data))
    head, *chunks = raw_field.data.split(SUBFIELD_DELIMITER)
    indicators = (head.decode("ascii", "replace") + "  ")[:2]
    subfields = [
        pymarc.Subfield(code=chunk[:1].decode("ascii", "replace"), value=decode(chunk[1:]))
        for chunk in chunks
        if chunk
    ]
    return pymarc.Field(tag=raw_field.tag, indicators=list(indicators), subfields=subfields)


def decode_record(raw: RawRecord, decision: EncodingDecision) -> pymarc.Record:
    decode = _decoder(decision.encoding)
    record = pymarc.Record(leader=raw.leader)
    try:
        record.add_field(*(_to_field(field, decode) for field in raw.fields))
    except (UnicodeDecodeError, ValueError, KeyError, IndexError) as error:
        raise RecordError("undecodable", f"{decision.encoding}: {error}") from None
    return record
