"""Decide a record's character encoding and decode the fields we map.

Declarations are honoured but verified against the bytes: MARC21 leader/09
and CNMARC/UNIMARC 100$a/26-29 lie often enough (Evergreen's FSL.marc is UTF-8
with a blank leader/09; GB-declared records re-encoded to UTF-8 by a server
keep saying `0120`). GB18030 decodes almost any byte string, so a
successful decode proves nothing: valid multi-byte UTF-8 is checked first,
because GBK text is practically never valid UTF-8. The decision, the
evidence and a confidence go into the row; nothing is decoded with
replacement characters silently.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from pymarc.marc8 import marc8_to_unicode

from transforms.iso2709 import SUBFIELD_DELIMITER, RawRecord, RecordError, _speedups
from transforms.marc import SUBFIELD, MarcRecord, data_field

# Registry names → Python codecs. GB 2312 and GBK are subsets of GB18030.
CODECS = {
    "utf-8": "utf-8",
    "gb18030": "gb18030",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "iso-8859-1": "iso-8859-1",
    "marc-8": "marc-8",
    "cp1251": "cp1251",
    "koi8-r": "koi8-r",
    "cp866": "cp866",
}
_MARC8_ESCAPE = b"\x1b"
# Declared UTF-8 with a stray bad byte or two is kept (flagged); more is not UTF-8.
MAX_REPLACED_BYTES = 3
# Control characters are never catalogue text: a stray one makes the XML we publish invalid, an
# ESC sequence in a title rewrites the terminal that prints it. Decoded fields lose them (the raw
# record keeps them; the row is flagged). TAB/LF/CR stay; data fields keep 0x1F until split; the
# non-sorting markers (U+0088/U+0089, U+0098/U+009C) stay for the title keys.
_C1_CONTROLS = "\x7f-\x87\x8a-\x97\x99-\x9b\x9d-\x9f"
_DATA_FIELD_CONTROLS = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1e{_C1_CONTROLS}]")
_CONTROL_FIELD_CONTROLS = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f{_C1_CONTROLS}]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c\x7f]")  # in field bytes, besides 0x1B (MARC-8 escape)
_UTF8_C1_CONTROLS = re.compile(rb"\xc2[\x80-\x87\x8a-\x97\x99-\x9b\x9d-\x9f]")


def has_control_characters(raw: RawRecord, decision: EncodingDecision) -> bool:
    """Whether decoding drops control characters from this record (a stray 0x1F
    in a control field aside). Exact for UTF-8 and ASCII-compatible codecs but
    for C1 controls, which only UTF-8 bytes show; `decode_record` looks for
    those in the text of any other encoding."""
    body = raw.data[24:-1]
    if _CONTROL_BYTES.search(body) or (decision.encoding != "marc-8" and b"\x1b" in body):
        return True
    return decision.encoding == "utf-8" and bool(_UTF8_C1_CONTROLS.search(body))


@dataclass(frozen=True)
class EncodingDecision:
    encoding: str  # a key of CODECS
    evidence: str
    confidence: float = 1.0
    errors: str = "strict"  # "replace" only for a few bad bytes in declared UTF-8, flagged in the row


# The decisions a catalogue's records get are few (an encoding, the declaration's evidence):
# made once each, shared by the records (they are frozen).
_decision = lru_cache(maxsize=4096)(EncodingDecision)


def python_unimarc_charset(fixed_data: bytes) -> str | None:
    """The character sets a UNIMARC 100 field declares: $a/26-29 (of the first $a that has them)."""
    for chunk in fixed_data.split(SUBFIELD_DELIMITER)[1:]:
        if chunk[:1] == b"a" and len(chunk) >= 31:
            return chunk[27:31].decode("latin-1")
    return None


_charset_of = python_unimarc_charset if _speedups is None else _speedups.unimarc_charset


def _unimarc_charset(raw: RawRecord) -> str | None:
    fixed_data = raw.first("100")
    return None if fixed_data is None else _charset_of(fixed_data)


def _declared(raw: RawRecord, bibliographic_format: str) -> tuple[str | None, str]:
    if bibliographic_format == "marc21":
        return ("utf-8", "leader/09=a") if raw.leader[9] == "a" else ("marc-8", "leader/09 blank")
    return _declared_charset(_unimarc_charset(raw))


@lru_cache(maxsize=1024)  # a catalogue's records declare the same few character sets
def _declared_charset(charset: str | None) -> tuple[str | None, str]:
    if charset is None:
        return None, "no 100$a/26-29"
    if charset.startswith("50"):
        return "utf-8", f"100$a/26-29={charset!r}"
    if "20" in (charset[:2], charset[2:]):
        return "gb18030", f"100$a/26-29={charset!r} (GB 2312)"
    return None, f"100$a/26-29={charset!r}"


def _decoded(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _valid(data: bytes, codec: str) -> bool:
    return _decoded(data, codec) is not None


def python_is_utf8(data: bytes) -> bool:
    return _valid(data, "utf-8")


_is_utf8 = python_is_utf8 if _speedups is None else _speedups.is_utf8


_HAN_OR_CJK_PUNCTUATION = re.compile(r"[\u3000-\u9fff\uff00-\uffef\uf900-\ufaff]+")


def python_han_share(text: str) -> float:
    """Share of non-ASCII characters that are CJK ideographs or CJK punctuation:
    GB18030 text decoded right is almost all Han; decoded wrong it is not."""
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    if not non_ascii:
        return 1.0
    return (len(text) - len(_HAN_OR_CJK_PUNCTUATION.sub("", text))) / non_ascii


_han_share = python_han_share if _speedups is None else _speedups.han_share


def decide_encoding(raw: RawRecord, bibliographic_format: str, configured: str = "auto") -> EncodingDecision:
    """Pick the encoding: verified configuration or declaration, else detection."""
    data = raw.data
    if data.isascii():
        return _decision("utf-8", "ascii only")
    declared, declaration = _declared(raw, bibliographic_format)
    if configured != "auto":
        declared, declaration = configured, f"configured {configured} in sources.toml"
    if _is_utf8(data):
        return _utf8_decision(declared, declaration)
    if declared == "marc-8" or (declared is None and bibliographic_format == "marc21"):
        confidence = 1.0 if _MARC8_ESCAPE in data or declared else 0.8
        return _decision("marc-8", f"declared {declaration}; bytes are not UTF-8", confidence)
    if declared not in (None, "utf-8", "gb18030") and _valid(data, CODECS[declared]):
        return _decision(declared, f"declared {declaration}")
    if declared == "utf-8":
        bad = data.decode("utf-8", "replace").count("\ufffd")
        if bad <= MAX_REPLACED_BYTES:
            return _decision("utf-8", f"declared {declaration}; {bad} invalid UTF-8 sequence(s) replaced by U+FFFD", 0.5, "replace")
    gb_text = _decoded(data, "gb18030")
    if gb_text is not None:
        share = _han_share(gb_text)
        if share < 0.5:
            raise RecordError("undecodable", f"bytes decode as GB18030 but only {share:.0%} of non-ASCII characters are Han; {declaration}")
        evidence = f"declared {declaration}" if declared == "gb18030" else f"{declaration}; detected: valid GB18030, {share:.0%} Han"
        return _decision("gb18030", evidence, 1.0 if declared == "gb18030" else round(share * 0.9, 2))
    if declared == "gb18030":  # a GB record with broken bytes is not Cyrillic: guessing would garble it
        raise RecordError("undecodable", f"declared {declaration} but the bytes are neither valid GB18030 nor UTF-8")
    cyrillic = _single_byte_cyrillic(data)
    if cyrillic:
        return cyrillic
    raise RecordError("undecodable", f"bytes are neither UTF-8, GB18030 nor single-byte Cyrillic ({declaration})")


@lru_cache(maxsize=1024)
def _utf8_decision(declared: str | None, declaration: str) -> EncodingDecision:
    """The decision for bytes that are valid UTF-8, given what the record declares."""
    if declared in (None, "utf-8"):
        return _decision("utf-8", f"declared {declaration}; bytes are valid UTF-8" if declared else "detected: valid UTF-8")
    return _decision("utf-8", f"declared {declaration} ({declared}) but bytes are valid UTF-8 (mislabelled)", 0.95)


def _single_byte_cyrillic(data: bytes) -> EncodingDecision | None:
    """RUSMARC and other UNIMARC exports in KOI8-R, cp1251 or cp866: the codec
    whose non-ASCII characters are (nearly) all Cyrillic letters."""
    best = None
    for codec in ("cp1251", "koi8-r", "cp866"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        non_ascii = [c for c in text if ord(c) > 127]
        share = sum(1 for c in non_ascii if "\u0400" <= c <= "\u04ff") / max(len(non_ascii), 1)
        # KOI8-R puts lower case where cp1251 puts upper case: prefer mostly lower-case readings.
        lower = sum(1 for c in non_ascii if c.islower()) / max(len(non_ascii), 1)
        score = share + 0.1 * lower
        if share >= 0.9 and (best is None or score > best[0]):
            best = (score, codec, share)
    if best is None:
        return None
    _, codec, share = best
    return _decision(codec, f"detected: single-byte Cyrillic {codec}, {share:.0%} Cyrillic", round(0.8 * share, 2))


def _decoder(decision: EncodingDecision):
    return lambda data: _CONTROL_FIELD_CONTROLS.sub("", unicodedata.normalize("NFC", marc8_to_unicode(data, hide_utf8_warnings=True)))


def decode_record(raw: RawRecord, decision: EncodingDecision, wanted: frozenset[str] | None = None) -> tuple[MarcRecord, bool]:
    """Decode the fields whose tags are `wanted` (all when None); control
    characters are removed from them. Returns the record and whether any were
    (from the fields decoded: one only in a field no mapping reads is not flagged)."""
    try:
        if decision.encoding == "marc-8":  # escape state is per subfield: decode piece by piece
            decode = _decoder(decision)
            record = MarcRecord(raw.leader)
            for tag, data in zip(raw.tags, raw.datas):
                if wanted is None or tag in wanted:
                    record.add(tag, _marc8_field(tag, data, decode))
            return record, has_control_characters(raw, decision)
        codec, errors = CODECS[decision.encoding], decision.errors
        if _speedups is not None and wanted is not None:
            decoded = _speedups.decode_fields(raw.tags, raw.datas, wanted, codec, errors)
            if decoded is not None:  # None: a field holds control characters, removed below
                return MarcRecord(raw.leader, *decoded), False
        return _decode_fields(raw, codec, errors, wanted, dirty=decision.encoding != "utf-8" or has_control_characters(raw, decision))
    except (UnicodeDecodeError, ValueError, IndexError) as error:
        raise RecordError("undecodable", f"{decision.encoding}: {error}") from None


def _decode_fields(raw: RawRecord, codec: str, errors: str, wanted: frozenset[str] | None, *,
                   dirty: bool) -> tuple[MarcRecord, bool]:
    """`decode_fields` of transforms/_speedups.c, in Python; `dirty`: search the fields for control
    characters. Returns the record and whether a field read lost any (a stray 0x1F in a control
    field aside): what the row flags, whichever of the two decoded it."""
    record = MarcRecord(raw.leader)
    fields = record.fields
    removed = False
    for tag, data in zip(raw.tags, raw.datas):
        if wanted is not None and tag not in wanted:
            continue
        # 0x1F never occurs inside a UTF-8, GB18030 or single-byte character: split after decoding.
        text = data.decode(codec, errors)
        if tag < "010" and tag.isdigit():
            if dirty or SUBFIELD in text:
                kept = _CONTROL_FIELD_CONTROLS.sub("", text)
                removed = removed or len(kept) != len(text) - text.count(SUBFIELD)
                text = kept
        elif dirty:
            kept = _DATA_FIELD_CONTROLS.sub("", text)
            removed = removed or len(kept) != len(text)
            text = kept
        if tag in fields:
            fields[tag].append(text)
        else:
            fields[tag] = [text]
    return record, removed


def _marc8_field(tag: str, data: bytes, decode) -> str:
    if tag < "010" and tag.isdigit():
        return decode(data)
    head, *chunks = data.split(SUBFIELD_DELIMITER)
    return data_field(head.decode("latin-1"), [(chunk[:1].decode("latin-1"), decode(chunk[1:])) for chunk in chunks if chunk])
