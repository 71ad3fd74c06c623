"""The canonical description of a record, independent of its MARC flavour.

`cnmarc.py` and `marc21.py` fill a `Description` from a pymarc record; this
module turns it into the canonical `records` row with keys and quality flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from transforms import normalise
from transforms.isbn import normalise_issn, to_isbn13
from transforms.iso2709 import _speedups

# Role words glued to names in 7XX $a or responsibility statements ("张三著").
_ROLE_SUFFIX = re.compile(r"\s*(主编|编著|编译|编纂|编辑|整理|校注|注释|选编|原著|著|编|译|绘|撰|校|等)+$")
_ROLE_LAST_CHARACTERS = frozenset("编著译纂辑理注释绘撰校等")
_TRAILING_CHARS_TEXT = "/:;,.="
_TRAILING_CHARS = frozenset(_TRAILING_CHARS_TEXT)
# Control characters that must not reach display text, nor the bidirectional overrides that
# would make a title print reversed or reorder a listing; \x88/\x89 (NSB/NSE) bracket
# non-sorting words in UNIMARC and are removed with their text for keys. TAB and LF become
# spaces: a title is one line.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAK = str.maketrans("\t\n", "  ")
_NON_SORTING = re.compile(r"\x88[^\x89]*\x89")


@dataclass(slots=True)
class Holding:
    call_number: str | None = None
    location: str | None = None
    copies: int | None = None
    available: int | None = None


@dataclass
class Description:
    local_id: str | None = None
    datestamp: str | None = None
    isbn_raw: list[str] = field(default_factory=list)
    issn_raw: list[str] = field(default_factory=list)
    title: str | None = None
    sort_title: str | None = None  # title without its leading article, for keys
    subtitle: str | None = None
    part_number: str | None = None
    part_name: str | None = None
    responsibility: str | None = None
    authors: list[str] = field(default_factory=list)
    edition: str | None = None
    publisher: str | None = None
    place: str | None = None
    date_text: str | None = None
    extent: str | None = None
    language: str | None = None
    material_type: str = "other"
    clc: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    series: str | None = None
    holdings: list[Holding] = field(default_factory=list)


def clean(value: str | None) -> str | None:
    """Trim ISBD punctuation libraries leave at the end of subfields."""
    if value is None:
        return None
    if not value.isprintable():
        value = _CONTROL.sub("", value).translate(_LINE_BREAK)
    value = value.strip()
    while value and value[-1] in _TRAILING_CHARS:
        value = value.rstrip(_TRAILING_CHARS_TEXT).rstrip()
    return value or None


def sorting_form(title: str | None, nonfiling: int = 0) -> str | None:
    """The title without its non-sorting article: MARC21 245 ind2 counts its
    characters, UNIMARC brackets it with NSB/NSE."""
    if title is None:
        return None
    if "\x88" in title:
        return _CONTROL.sub("", _NON_SORTING.sub("", title))
    return title[nonfiling:] if 0 < nonfiling < len(title) else title


def strip_role(name: str) -> str:
    name = name.strip()
    stripped = (_ROLE_SUFFIX.sub("", name) if name[-1:] in _ROLE_LAST_CHARACTERS else name).strip(" ,.;")
    return stripped or name.strip()


python_clean = clean
if _speedups is not None:
    clean = _speedups.clean  # noqa: F811 - the same function in C (transforms/_speedups.c)


def first(values: list[str]) -> str | None:
    return clean(values[0]) if values else None


def join(values: list[str], separator: str = " ; ") -> str | None:
    return separator.join(filter(None, map(clean, values))) or None


def to_row(description: Description, *, library_id: str, source_format: str, flags: tuple[str, ...] = ()) -> dict:
    """The canonical `records` row (without provenance columns) of a description;
    `flags`: quality flags the reader noticed, added to those found here."""
    flags = list(flags)
    isbn13s = []
    for raw in description.isbn_raw:
        isbn = to_isbn13(raw)
        if isbn is None:
            flags.append("invalid_isbn")
        elif isbn not in isbn13s:
            isbn13s.append(isbn)
    title = description.title
    if not title:
        flags.append("no_title")
    year = normalise.parse_year(description.date_text)
    if year is None:
        flags.append("no_year")
    local_id = description.local_id
    sort_title = description.sort_title or title
    authors = description.authors
    return {
        "record_key": f"{library_id}:{local_id}",
        "library_id": library_id,
        "local_id": local_id,
        "status": "active",
        "source_format": source_format,
        "datestamp": description.datestamp,
        "isbn": isbn13s,
        "isbn_raw": description.isbn_raw,
        "issn": [issn for issn in map(normalise_issn, description.issn_raw) if issn] if description.issn_raw else [],
        "title": title,
        "subtitle": description.subtitle,
        "part_number": description.part_number,
        "part_name": description.part_name,
        "responsibility": description.responsibility,
        "authors": authors,
        "edition": description.edition,
        "publisher": description.publisher,
        "place": description.place,
        "year": year,
        "pages": normalise.parse_pages(description.extent),
        "language": description.language,
        "material_type": description.material_type,
        "clc": description.clc,
        "subjects": description.subjects,
        "series": description.series,
        "title_key": normalise.title_key(sort_title, description.subtitle) or f"no-title:{library_id}:{local_id}",
        "title_pinyin": normalise.pinyin_key(sort_title),
        "author_key": normalise.author_key(authors[0] if authors else None),
        "publisher_key": normalise.publisher_key(description.publisher),
        "quality_flags": sorted(set(flags)) if len(flags) > 1 else flags,
    }
