"""CNMARC / UNIMARC → `Description`.

CNMARC is China's UNIMARC profile: 200 title, 205 edition, 210 publication,
215 extent, 690 CLC class, 701-712 names, 905/AVA local holdings. Capital
subfield codes ($A, $F) carry pinyin and are not read as data.
"""

from __future__ import annotations

from transforms.bibliographic import Description, Holding, clean, first, join, sorting_form, strip_role
from transforms.marc import MarcRecord, subfield, subfields

_NAME_TAGS = ("700", "701", "702", "710", "711", "712")
TAGS = frozenset({"001", "005", "010", "011", "100", "101", "200", "205", "210", "215", "225", "606", "690", "905", "906", "AVA", *_NAME_TAGS})
_GAZETTEER_ENDINGS = ("志", "志稿", "志略", "年鉴")


def _int(text: str | None) -> int | None:
    digits = "".join(filter(str.isdigit, text or ""))
    return int(digits) if digits else None


def _material_type(record: MarcRecord, clc: list[str], title: str | None, fixed: str) -> str:
    leader = record.leader
    if leader[6] == "l":
        return "electronic"
    if leader[7] == "s":
        return "serial"
    subjects = " ".join(record.values("606", "a"))
    if (title and title.endswith(_GAZETTEER_ENDINGS) and any(c.startswith("K29") for c in clc)) or "地方志" in subjects:
        return "gazetteer"
    year = fixed[9:13]
    if leader[6] == "a" and year.isdigit() and int(year) < 1912:
        return "ancient_book"
    return "monograph" if leader[6] in "ab" else "other"


def _holdings(record: MarcRecord) -> list[Holding]:
    holdings = [
        Holding(
            call_number=join(subfields(text, "d") + subfields(text, "e"), "/"),
            location=clean(next(iter(subfields(text, "bc")), None)),
            copies=_int(subfield(text, "f")),
        )
        for text in record.get_fields("905", "906")
    ]
    holdings += [
        Holding(
            call_number=clean(subfield(text, "d")),
            location=clean(next(iter(subfields(text, "cb")), None)),
            copies=_int(subfield(text, "f")),
        )
        for text in record.get_fields("AVA")
    ]
    return holdings


def _authors(record: MarcRecord) -> list[str]:
    authors = []
    for tag in _NAME_TAGS:
        for text in record.fields.get(tag, ()):
            name = ", ".join(part.strip(" ,") for part in subfields(text, "ab") if part.strip(" ,"))
            if name and strip_role(name) not in authors:
                authors.append(strip_role(name))
    return authors


def describe(record: MarcRecord) -> Description:
    title_field = record.get("200") or ""
    raw_title = subfield(title_field, "a")
    title = clean(raw_title)
    clc = [c for c in map(clean, record.values("690", "a")) if c]
    fixed = first(record.values("100", "a")) or ""
    return Description(
        local_id=record.control("001"),
        datestamp=record.control("005"),
        isbn_raw=record.values("010", "a"),
        issn_raw=record.values("011", "a"),
        title=title,
        sort_title=clean(sorting_form(raw_title)),
        subtitle=join(record.values("200", "e"), " : "),
        part_number=join(record.values("200", "h"), " "),
        part_name=join(record.values("200", "i"), " "),
        responsibility=join(record.values("200", "fg")),
        authors=_authors(record),
        edition=first(record.values("205", "a")),
        publisher=first(record.values("210", "c")),
        place=first(record.values("210", "a")),
        date_text=first(record.values("210", "d")) or fixed[9:13],
        extent=first(record.values("215", "a")),
        language=first(record.values("101", "a")),
        material_type=_material_type(record, clc, title, fixed),
        clc=clc,
        subjects=[c for c in map(clean, record.values("606", "a")) if c],
        series=first(record.values("225", "a")),
        holdings=_holdings(record),
    )
