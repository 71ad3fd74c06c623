"""MARC21 → a description: 020, 245 $a$b$n$p$c, 250, 260/264, 300,
100/110/111/700/710/711, 050/082 classes, 650 subjects, 852 holdings."""

from __future__ import annotations

from transforms.bibliographic import (
    CLEANED, FIRST, JOIN, RAW, description, Holding, clean, first, names, pick, pick_in_field, pick_spec, sorting_title,
)
from transforms.iso2709 import _speedups
from transforms.marc import MarcRecord, described_in_c, indicators, subfield

_NAME_CODES = "ab"  # a name field's parts
_NAME_TAGS = ("100", "110", "111", "700", "710", "711")
TAGS = frozenset({
    "001", "004", "005", "008", "020", "022", "041", "050", "082", "245", "250", "260", "264", "300", "490", "650",
    "830", "852", "866", *_NAME_TAGS,
})
_MATERIAL_BY_LEADER = {"m": "monograph", "s": "serial", "i": "serial", "a": "monograph", "c": "monograph"}


def _material_type(leader: str, fixed: str) -> str:
    form = fixed[23:24]
    if leader[6] == "m" or (leader[6] in "at" and form in ("o", "s", "q")):
        return "electronic"
    if leader[6] in "at":
        return _MATERIAL_BY_LEADER.get(leader[7], "other")
    return "other"


_SHELF = pick_spec([("call_number", JOIN, "hikj", " "), ("location", JOIN, "abc", " / ")])


def holdings(record: MarcRecord) -> list[Holding]:
    """852 locations of a bibliographic record or of an MFHD holdings record."""
    return [Holding(**pick_in_field(text, _SHELF)) for text in record.get_fields("852")]


def _nonfiling(title_field: str) -> int:
    indicator = indicators(title_field)[1:2]
    return int(indicator) if indicator.isdecimal() else 0  # isdigit() also takes "²", which int() refuses


def _language(record: MarcRecord, fixed: str) -> str | None:
    code = fixed[35:38].strip()
    return code or first(record.values("041", "a"))


# What is taken as it is from subfields: (field, how, subfields in order[, separator]).
_PICKED = pick_spec([
    ("isbn_raw", RAW, "020a"),
    ("issn_raw", RAW, "022a"),
    ("subtitle", JOIN, "245b", " : "),
    ("part_number", JOIN, "245n", " "),
    ("part_name", JOIN, "245p", " "),
    ("responsibility", JOIN, "245c"),
    ("edition", FIRST, "250a"),
    ("publisher", FIRST, ("260b", "264b")),
    ("place", FIRST, ("260a", "264a")),
    ("date_text", FIRST, ("260c", "264c")),
    ("extent", FIRST, "300a"),
    ("clc", CLEANED, ("050a", "082a")),
    ("subjects", CLEANED, "650a"),
    ("series", FIRST, ("490a", "830a")),
])


def python_describe(record: MarcRecord) -> dict:
    """The description of a record (`describe` is the same in C, for the records it takes)."""
    picked = pick(record.subfield_index(), _PICKED)
    title_field = record.get("245") or ""
    raw_title = subfield(title_field, "a")
    title = clean(raw_title)
    fixed = record.control("008") or ""
    picked["date_text"] = picked["date_text"] or fixed[7:11]
    return description(
        local_id=record.control("001"),
        datestamp=record.control("005"),
        title=title,
        sort_title=sorting_title(raw_title, title, _nonfiling(title_field)),
        authors=names(record.fields, _NAME_TAGS, _NAME_CODES, False),
        language=_language(record, fixed),
        material_type=_material_type(record.leader, fixed),
        holdings=holdings(record),
        **picked,
    )


# What describe_marc21 in transforms/_speedups.c reads besides the record: the tables above.
_C_SPEC = (_PICKED, _SHELF, Holding, _NAME_TAGS, _NAME_CODES)

describe = described_in_c(getattr(_speedups, "describe_marc21", None), python_describe, _C_SPEC)
