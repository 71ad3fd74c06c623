"""MARC21 → `Description`: 020, 245 $a$b$n$p$c, 250, 260/264, 300,
100/110/111/700/710/711, 050/082 classes, 650 subjects, 852 holdings."""

from __future__ import annotations

import pymarc

from transforms.bibliographic import Description, Holding, clean, join, strip_role

_NAME_TAGS = ("100", "110", "111", "700", "710", "711")
_MATERIAL_BY_LEADER = {"m": "monograph", "s": "serial", "i": "serial", "a": "monograph", "c": "monograph"}


def _values(record: pymarc.Record, tags: tuple[str, ...], codes: tuple[str, ...]) -> list[str]:
    return [v for f in record.get_fields(*tags) for v in f.get_subfields(*codes) if v and v.strip()]


def _first(record: pymarc.Record, tags: tuple[str, ...], code: str) -> str | None:
    values = _values(record, tags, (code,))
    return clean(values[0]) if values else None


def _material_type(record: pymarc.Record) -> str:
    leader = str(record.leader)
    if leader[6] == "m":
        return "electronic"
    if leader[6] in "at":
        return _MATERIAL_BY_LEADER.get(leader[7], "other")
    return "other"


def _holdings(record: pymarc.Record) -> list[Holding]:
    return [
        Holding(
            call_number=join(f.get_subfields("h", "i"), " "),
            location=join(f.get_subfields("a", "b", "c"), " / "),
        )
        for f in record.get_fields("852")
    ]


def _language(record: pymarc.Record) -> str | None:
    fixed = record.get("008")
    code = fixed.data[35:38].strip() if fixed and len(fixed.data) >= 38 else ""
    return code or _first(record, ("041",), "a")


def describe(record: pymarc.Record) -> Description:
    title_field = record.get("245")
    authors = []
    for name_field in record.get_fields(*_NAME_TAGS):
        name = clean(" ".join(name_field.get_subfields("a", "b")))
        if name and strip_role(name) not in authors:
            authors.append(strip_role(name))
    control = record.get("001")
    stamp = record.get("005")
    isbn_raw = _values(record, ("020",), ("a",))
    return Description(
        local_id=control.data.strip() if control else None,
        datestamp=stamp.data.strip() if stamp else None,
        isbn_raw=isbn_raw,
        issn_raw=_values(record, ("022",), ("a",)),
        title=clean(title_field.get("a")) if title_field else None,
        subtitle=join(title_field.get_subfields("b"), " : ") if title_field else None,
        part_number=join(title_field.get_subfields("n"), " ") if title_field else None,
        part_name=join(title_field.get_subfields("p"), " ") if title_field else None,
        responsibility=join(title_field.get_subfields("c")) if title_field else None,
        authors=authors,
        edition=_first(record, ("250",), "a"),
        publisher=_first(record, ("260", "264"), "b"),
        place=_first(record, ("260", "264"), "a"),
        date_text=_first(record, ("260", "264"), "c") or (record.get("008").data[7:11] if record.get("008") else None),
        extent=_first(record, ("300",), "a"),
        language=_language(record),
        material_type=_material_type(record),
        clc=[c for c in map(clean, _values(record, ("050", "082"), ("a",))) if c],
        subjects=[c for c in map(clean, _values(record, ("650",), ("a",))) if c],
        series=_first(record, ("490", "830"), "a"),
        holdings=_holdings(record),
    )
