"""CNMARC / UNIMARC → a description.

CNMARC is China's UNIMARC profile: 200 title, 205 edition, 210 publication,
215 extent, 690 CLC class, 701-712 names, 905/AVA local holdings. Capital
subfield codes ($A, $F) carry pinyin and are not read as data.
"""

from __future__ import annotations

from transforms.bibliographic import (
    CLEANED, FIRST, JOIN, RAW, description, Holding, clean, join, names, pick, pick_in_field, pick_spec, sorting_title,
)
from transforms.iso2709 import _speedups
from transforms.marc import MarcRecord, described_in_c, subfield

_NAME_CODES = "ab"  # a name field's parts
_NAME_TAGS = ("700", "701", "702", "710", "711", "712")
TAGS = frozenset({"001", "005", "010", "011", "100", "101", "200", "205", "210", "215", "225", "606", "690", "905", "906", "AVA", *_NAME_TAGS})
_GAZETTEER_ENDINGS = ("志", "志稿", "志略", "年鉴")


def _int(text: str | None) -> int | None:
    digits = "".join(filter(str.isdigit, text or ""))
    return int(digits) if digits else None


def _material_type(leader: str, clc: list[str], subjects: list[str], title: str | None, fixed: str) -> str:
    if leader[6] == "l":
        return "electronic"
    if leader[7] == "s":
        return "serial"
    if (title and title.endswith(_GAZETTEER_ENDINGS) and any(c.startswith("K29") for c in clc)) or any("地方志" in s for s in subjects):
        return "gazetteer"
    year = fixed[9:13]
    if leader[6] == "a" and year.isdecimal() and int(year) < 1912:
        return "ancient_book"
    return "monograph" if leader[6] in "ab" else "other"


# Local holdings fields: 905/906 (call number $d/$e, location $b or $c, copies $f) and Aleph's AVA.
_SHELF = {
    "905": pick_spec([("call_number", JOIN, ("d", "e"), "/"), ("location", FIRST, "bc"), ("copies", RAW, "f")]),
    "AVA": pick_spec([("call_number", FIRST, "d"), ("location", FIRST, "cb"), ("copies", RAW, "f")]),
}
_SHELF["906"] = _SHELF["905"]


def _holdings(record: MarcRecord) -> list[Holding]:
    holdings = []
    for tag in ("905", "906", "AVA"):
        for text in record.fields.get(tag, ()):
            shelf = pick_in_field(text, _SHELF[tag])
            copies = shelf["copies"]
            holdings.append(Holding(shelf["call_number"], shelf["location"], _int(copies[0]) if copies else None))
    return holdings


# What is taken as it is from subfields: (field, how, subfields in order[, separator]).
_PICKED = pick_spec([
    ("isbn_raw", RAW, "010a"),
    ("issn_raw", RAW, "011a"),
    ("subtitle", JOIN, "200e", " : "),
    ("part_number", JOIN, "200h", " "),
    ("part_name", JOIN, "200i", " "),
    ("edition", FIRST, "205a"),
    ("publisher", FIRST, "210c"),
    ("place", FIRST, "210a"),
    ("date_text", FIRST, "210d"),
    ("extent", FIRST, "215a"),
    ("language", FIRST, "101a"),
    ("clc", CLEANED, "690a"),
    ("subjects", CLEANED, "606a"),
    ("series", FIRST, "225a"),
    ("fixed", FIRST, "100a"),
])


_RESPONSIBILITY = pick_spec([("responsibility", JOIN, "fg")])  # $f and $g as they come, not all $f first


def python_describe(record: MarcRecord) -> dict:
    """The description of a record (`describe` is the same in C, for the records it takes)."""
    picked = pick(record.subfield_index(), _PICKED)
    fixed = picked.pop("fixed") or ""
    picked["date_text"] = picked["date_text"] or fixed[9:13]
    raw_title = subfield(record.get("200") or "", "a")
    title = clean(raw_title)
    return description(
        local_id=record.control("001"),
        datestamp=record.control("005"),
        title=title,
        sort_title=sorting_title(raw_title, title),
        responsibility=join([pick_in_field(text, _RESPONSIBILITY)["responsibility"] for text in record.get_fields("200")]),
        authors=names(record.fields, _NAME_TAGS, _NAME_CODES, True),
        material_type=_material_type(record.leader, picked["clc"], picked["subjects"], title, fixed),
        holdings=_holdings(record),
        **picked,
    )


# What describe_unimarc in transforms/_speedups.c reads besides the record: the tables above.
_C_SPEC = (_PICKED, _RESPONSIBILITY, _SHELF["905"], _SHELF["AVA"], Holding, _NAME_TAGS, _NAME_CODES)

describe = described_in_c(getattr(_speedups, "describe_unimarc", None), python_describe, _C_SPEC)
