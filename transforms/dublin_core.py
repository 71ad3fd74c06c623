"""oai_dc (simple Dublin Core) → a description: what an OAI-PMH repository
offers when it has no MARC. Thin by nature: title, creators, publisher, date,
identifiers (ISBN/ISSN when recognisable), language, subjects, type."""

from __future__ import annotations

import re

from transforms.bibliographic import description, clean, strip_role

_ISBN = re.compile(r"(?:ISBN[:\s]*)?((?:97[89][\s-]?)?(?:\d[\s-]?){9}[\dXx])")
_ISSN = re.compile(r"ISSN[:\s]*(\d{4}-?\d{3}[\dXx])", re.IGNORECASE)


def _texts(dc, name: str) -> list[str]:
    return [c.text.strip() for c in dc if isinstance(c.tag, str) and c.tag.rsplit("}", 1)[-1] == name and c.text and c.text.strip()]


def describe(dc, oai_identifier: str) -> dict:
    identifiers = _texts(dc, "identifier")
    isbns = [m.group(1) for text in identifiers if "isbn" in text.lower() or text.replace("-", "").isdigit() for m in [_ISBN.search(text)] if m]
    issns = [m.group(1) for text in identifiers for m in [_ISSN.search(text)] if m]
    titles = _texts(dc, "title")
    types = " ".join(_texts(dc, "type")).lower()
    return description(
        local_id=oai_identifier,
        isbn_raw=isbns,
        issn_raw=issns,
        title=clean(titles[0]) if titles else None,
        subtitle=clean(titles[1]) if len(titles) > 1 else None,
        authors=[strip_role(name) for name in _texts(dc, "creator") + _texts(dc, "contributor")],
        publisher=clean(next(iter(_texts(dc, "publisher")), None)),
        date_text=next(iter(_texts(dc, "date")), None),
        extent=next(iter(_texts(dc, "format")), None),
        language=next(iter(_texts(dc, "language")), None),
        material_type="serial" if "journal" in types or "serial" in types else "electronic" if "electronic" in types else "monograph" if "book" in types or "text" in types else "other",
        subjects=_texts(dc, "subject"),
    )
