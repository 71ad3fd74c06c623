"""MARC21 → `Description`: 020, 245 $a$b$n$p$c, 250, 260/264, 300,
100/110/111/700/710/711, 050/082 classes, 650 subjects, 852 holdings."""

from __future__ import annotations

from transforms.bibliographic import Description, Holding, clean, first, join, sorting_form, strip_role
from transforms.marc import MarcRecord

_NAME_TAGS = ("100", "110", "111", "700", "710", "711")
TAGS = frozenset({
    "001", "004", "005", "008", "020", "022", "041", "050", "082", "245", "250", "260", "264", "300", "490", "650",
    "830", "852", "866", *_NAME_TAGS,
})
_MATERIAL_BY_LEADER = {"m": "monograph", "s": "serial", "i": "serial", "a": "monograph", "c": "monograph"}


def _material_type(record: MarcRecord) -> str:
    leader = record.leader
    form = (record.control("008") or "")[23:24]
    if leader[6] == "m" or (leader[6] in "at" and form in ("o", "s", "q")):
        return "electronic"
    if leader[6] in "at":
        return _MATERIAL_BY_LEADER.get(leader[7], "other")
    return "other"


def holdings(record: MarcRecord) -> list[Holding]:
    """852 locations of a bibliographic record or of an MFHD holdings record."""
    return [
        Holding(
            call_number=join(f.get_subfields("h", "i", "k", "j"), " "),
            location=join(f.get_subfields("a", "b", "c"), " / "),
        )
        for f in record.get_fields("852")
    ]


def _nonfiling(title_field) -> int:
    indicator = title_field.indicators[1:2]
    return int(indicator) if indicator.isdigit() else 0


def _language(record: MarcRecord) -> str | None:
    code = (record.control("008") or "")[35:38].strip()
    return code or first(record.values("041", "a"))


def describe(record: MarcRecord) -> Description:
    title_field = record.get("245")
    authors = []
    for name_field in record.get_fields(*_NAME_TAGS):
        name = clean(" ".join(name_field.get_subfields("a", "b")))
        if name and strip_role(name) not in authors:
            authors.append(strip_role(name))
    isbn_raw = record.values("020", "a")
    return Description(
        local_id=record.control("001"),
        datestamp=record.control("005"),
        isbn_raw=isbn_raw,
        issn_raw=record.values("022", "a"),
        title=clean(title_field.get("a")) if title_field else None,
        sort_title=clean(sorting_form(title_field.get("a"), _nonfiling(title_field))) if title_field else None,
        subtitle=join(title_field.get_subfields("b"), " : ") if title_field else None,
        part_number=join(title_field.get_subfields("n"), " ") if title_field else None,
        part_name=join(title_field.get_subfields("p"), " ") if title_field else None,
        responsibility=join(title_field.get_subfields("c")) if title_field else None,
        authors=authors,
        edition=first(record.values("250", "a")),
        publisher=first(record.values(("260", "264"), "b")),
        place=first(record.values(("260", "264"), "a")),
        date_text=first(record.values(("260", "264"), "c")) or (record.control("008") or "")[7:11],
        extent=first(record.values("300", "a")),
        language=_language(record),
        material_type=_material_type(record),
        clc=[c for c in map(clean, record.values(("050", "082"), "a")) if c],
        subjects=[c for c in map(clean, record.values("650", "a")) if c],
        series=first(record.values(("490", "830"), "a")),
        holdings=holdings(record),
    )
