"""The canonical description of a record, independent of its MARC flavour.

`cnmarc.py` and `marc21.py` fill a description (`description`) from a MARC record; this
module turns it into the canonical `records` row with keys and quality flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from transforms import normalise
from transforms.isbn import normalise_issn, to_isbn13
from transforms.iso2709 import _speedups
from transforms.marc import subfields

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


# What a mapping takes from a record (`cnmarc.py`, `marc21.py`, `dublin_core.py` fill it and
# `to_row` turns it into the canonical row): a plain dict with these keys, made by `description`
# (a dict, not a class: the C mappings in _speedups.c build it directly, at no extra cost).
_DESCRIPTION_DEFAULTS = {
    "local_id": None, "datestamp": None, "isbn_raw": list, "issn_raw": list, "title": None,
    "sort_title": None,  # title without its leading article, for keys
    "subtitle": None, "part_number": None, "part_name": None, "responsibility": None, "authors": list,
    "edition": None, "publisher": None, "place": None, "date_text": None, "extent": None, "language": None,
    "material_type": "other", "clc": list, "subjects": list, "series": None, "holdings": list,
}


def description(**fields) -> dict:
    """A description with `fields` set and every other key at its default (a new empty list for lists)."""
    unknown = fields.keys() - _DESCRIPTION_DEFAULTS.keys()
    if unknown:
        raise TypeError(f"description() got unknown fields {sorted(unknown)}")
    return {name: fields[name] if name in fields else default() if default is list else default
            for name, default in _DESCRIPTION_DEFAULTS.items()}


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


def sorting_title(raw_title: str | None, title: str | None, nonfiling: int = 0) -> str | None:
    """clean(sorting_form(raw_title, nonfiling)) where title = clean(raw_title): the title itself
    when there is nothing to leave out (nearly always), without cleaning it twice."""
    if raw_title is None or (not nonfiling and "\x88" not in raw_title):
        return title
    return clean(sorting_form(raw_title, nonfiling))


def strip_role(name: str) -> str:
    name = name.strip()
    stripped = (_ROLE_SUFFIX.sub("", name) if name[-1:] in _ROLE_LAST_CHARACTERS else name).strip(" ,.;")
    return stripped or name.strip()


python_clean, python_strip_role = clean, strip_role
if _speedups is not None:  # the same functions in C (transforms/_speedups.c)
    clean = _speedups.clean  # noqa: F811
    strip_role = _speedups.strip_role  # noqa: F811


def first(values: list[str]) -> str | None:
    return clean(values[0]) if values else None


def join(values: list[str], separator: str = " ; ") -> str | None:
    return separator.join(filter(None, map(clean, values))) or None


# How `pick` takes a field: the values as they are; the first, cleaned; all cleaned and joined;
# all cleaned (a list). Cleaned values that come to nothing are left out.
RAW, FIRST, JOIN, CLEANED = range(4)
PickSpec = tuple[tuple[str, tuple[str, ...], int, str], ...]


def pick_spec(fields: list[tuple]) -> PickSpec:
    """The spec of a mapping's fields taken as they are from subfields: each field is
    (name, how, subfields) or (name, how, subfields, separator), subfields a tag + code (`"245b"`)
    or a tuple of them, read in that order."""
    return tuple((name, (keys,) if isinstance(keys, str) else tuple(keys), how, rest[0] if rest else " ; ")
                 for name, how, keys, *rest in fields)


def _take(values: list[str], how: int, separator: str):
    if how == RAW:
        return values
    if how == FIRST:
        return first(values)
    cleaned = [value for value in map(clean, values) if value]
    return cleaned if how == CLEANED else separator.join(cleaned) or None


def python_pick(index: dict[str, list[str]], spec: PickSpec) -> dict:
    """For each (name, keys, how, separator) of `spec`, name → the values of the subfields `keys`
    (tag + code) in `index` (a `MarcRecord.subfield_index()`), key after key, taken as `how` says."""
    return {name: _take([value for key in keys for value in index.get(key, ())], how, separator)
            for name, keys, how, separator in spec}


def python_pick_in_field(text: str, spec: PickSpec) -> dict:
    """As `pick`, from one data field's text: each key is a group of subfield codes whose values
    are taken in field order (`"bc"`: the $b and $c as they come)."""
    return {name: _take([value for key in keys for value in subfields(text, key)], how, separator)
            for name, keys, how, separator in spec}


pick = python_pick if _speedups is None else _speedups.pick
pick_in_field = python_pick_in_field if _speedups is None else _speedups.pick_in_field


def python_names(fields: dict[str, list[str]], tags: tuple[str, ...], codes: str, unimarc: bool) -> list[str]:
    """The authors of the name fields `tags` (tag after tag, fields in record order), each once,
    role words cut: MARC21 names are their subfields `codes` joined by a space and cleaned;
    UNIMARC names their parts stripped of " ," and joined by ", "."""
    authors = []
    for tag in tags:
        for text in fields.get(tag, ()):
            parts = subfields(text, codes)
            if unimarc:
                name = ", ".join(part.strip(" ,") for part in parts if part.strip(" ,"))
            else:
                name = clean(" ".join(parts))
            if name and strip_role(name) not in authors:
                authors.append(strip_role(name))
    return authors


names = python_names if _speedups is None else _speedups.names


def python_to_row(description: dict, *, library_id: str, source_format: str, flags: tuple[str, ...] = ()) -> dict:
    """The canonical `records` row (without provenance columns) of a description;
    `flags`: quality flags the reader noticed, added to those found here."""
    flags = list(flags)
    isbn13s = []
    for raw in description["isbn_raw"]:
        isbn = to_isbn13(raw)
        if isbn is None:
            flags.append("invalid_isbn")
        elif isbn not in isbn13s:
            isbn13s.append(isbn)
    title = description["title"]
    if not title:
        flags.append("no_title")
    year = normalise.parse_year(description["date_text"])
    if year is None:
        flags.append("no_year")
    local_id = description["local_id"]
    sort_title = description["sort_title"] or title
    authors = description["authors"]
    return {
        "record_key": f"{library_id}:{local_id}",
        "library_id": library_id,
        "local_id": local_id,
        "status": "active",
        "source_format": source_format,
        "datestamp": description["datestamp"],
        "isbn": isbn13s,
        "isbn_raw": description["isbn_raw"],
        "issn": [issn for issn in map(normalise_issn, description["issn_raw"]) if issn] if description["issn_raw"] else [],
        "title": title,
        "subtitle": description["subtitle"],
        "part_number": description["part_number"],
        "part_name": description["part_name"],
        "responsibility": description["responsibility"],
        "authors": authors,
        "edition": description["edition"],
        "publisher": description["publisher"],
        "place": description["place"],
        "year": year,
        "pages": normalise.parse_pages(description["extent"]),
        "language": description["language"],
        "material_type": description["material_type"],
        "clc": description["clc"],
        "subjects": description["subjects"],
        "series": description["series"],
        "title_key": normalise.title_key(sort_title, description["subtitle"]) or f"no-title:{library_id}:{local_id}",
        "title_pinyin": normalise.pinyin_key(sort_title),
        "author_key": normalise.author_key(authors[0] if authors else None),
        "publisher_key": normalise.publisher_key(description["publisher"]),
        "quality_flags": sorted(set(flags)) if len(flags) > 1 else flags,
    }


# What _speedups.row calls for the keys (the functions with their caches).
_ROW_FUNCTIONS = (to_isbn13, normalise_issn, normalise.parse_year, normalise.parse_pages, normalise.title_key,
                  normalise.pinyin_key, normalise.author_key, normalise.publisher_key)


def to_row(description: dict, *, library_id: str, source_format: str, flags: tuple[str, ...] = ()) -> dict:
    """python_to_row, in C when the speedups are built."""
    if _speedups is None:
        return python_to_row(description, library_id=library_id, source_format=source_format, flags=flags)
    return _speedups.row(description, library_id, source_format, flags, _ROW_FUNCTIONS)
