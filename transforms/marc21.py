"""MARC21 → `Description`: 020, 245 $a$b$n$p$c, 250, 260/264, 300,
100/110/111/700/710/711, 050/082 classes, 650 subjects, 852 holdings."""

from __future__ import annotations

from transforms.bibliographic import Description, Holding, clean, first, join, sorting_form, strip_role
from transforms.marc import MarcRecord, indicators, subfield, subfields

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
            call_number=join(subfields(text, "hikj"), " "),
            location=join(subfields(text, "abc"), " / "),
        )
        for text in record.get_fields("852")
    ]


def _nonfiling(title_field: str) -> int:
    indicator = indicators(title_field)[1:2]
    return int(indicator) if indicator.isdigit() else 0


def _language(record: MarcRecord) -> str | None:
    code = (record.control("008") or "")[35:38].strip()
    return code or first(record.values("041", "a"))


def _authors(record: MarcRecord) -> list[str]:
    authors = []
    for text in record.get_fields(*_NAME_TAGS):
        name = clean(" ".join(subfields(text, "ab")))
        if name and strip_role(name) not in authors:
            authors.append(strip_role(name))
    return authors


def describe(record: MarcRecord) -> Description:
    title_field = record.get("245") or ""
    raw_title = subfield(title_field, "a")
    return Description(
        local_id=record.control("001"),
        datestamp=record.control("005"),
        isbn_raw=record.values("020", "a"),
        issn_raw=record.values("022", "a"),
        title=clean(raw_title),
        sort_title=clean(sorting_form(raw_title, _nonfiling(title_field))),
        subtitle=join(record.values("245", "b"), " : "),
        part_number=join(record.values("245", "n"), " "),
        part_name=join(record.values("245", "p"), " "),
        responsibility=join(record.values("245", "c")),
        authors=_authors(record),
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
