"""A lean in-memory MARC record: only the fields the mappings read, decoded.

pymarc builds an object per field and subfield of every record; at 11 million
records that dominates the transform. Here a record maps each tag its mapping
asks for to the decoded texts of its fields: a control field's data, or a data
field as ISO 2709 writes it (two indicators, then `\\x1f`-delimited subfields,
each a one-character code and its value). Subfields are found in that text
when a mapping asks for them, with `subfield` and `subfields`.
"""

from __future__ import annotations

SUBFIELD = "\x1f"
_NONE: list[str] = []  # shared empty result of `values`; never appended to


def data_field(indicators: str, subfields: list[tuple[str, str]]) -> str:
    """The text of a data field from (code, value) pairs, as XML and Aleph
    sequential give them; a code is one character, a value never holds the delimiter."""
    return (indicators + "  ")[:2] + "".join(SUBFIELD + code[:1] + value.replace(SUBFIELD, "") for code, value in subfields)


def indicators(text: str) -> str:
    return (text.split(SUBFIELD, 1)[0] + "  ")[:2]


def subfield(text: str | None, code: str) -> str | None:
    """The first value of subfield `code` of a data field's text."""
    if not text:
        return None
    start = text.find(SUBFIELD + code)
    if start == -1:
        return None
    end = text.find(SUBFIELD, start + 2)
    return text[start + 2 :] if end == -1 else text[start + 2 : end]


def subfields(text: str, codes: str) -> list[str]:
    """The values of the subfields whose codes are among `codes` (one character each), in order."""
    if len(codes) == 1 and SUBFIELD + codes not in text:
        return []  # the common case of a subfield the field does not have, without splitting
    return [chunk[1:] for chunk in text.split(SUBFIELD)[1:] if chunk and chunk[0] in codes]


class MarcRecord:
    __slots__ = ("leader", "fields", "_by_subfield")

    def __init__(self, leader: str, fields: dict[str, list[str]] | None = None, by_subfield: dict[str, list[str]] | None = None):
        self.leader = leader
        self.fields = {} if fields is None else fields
        self._by_subfield = by_subfield  # tag + code → values, when the reader built it

    def add(self, tag: str, text: str) -> None:
        self.fields.setdefault(tag, []).append(text)
        self._by_subfield = None

    def get(self, tag: str) -> str | None:
        """The text of the first field `tag`."""
        found = self.fields.get(tag)
        return found[0] if found else None

    def control(self, tag: str) -> str | None:
        """Data of a control field, stripped; None when absent or (in broken
        records) written as a data field."""
        found = self.fields.get(tag)
        return found[0].strip() if found and SUBFIELD not in found[0] else None

    def get_fields(self, *tags: str) -> list[str]:
        if len(tags) == 1:
            return self.fields.get(tags[0], [])
        return [text for tag in tags for text in self.fields.get(tag, ())]

    def values(self, tags: str | tuple[str, ...], codes: str) -> list[str]:
        """The non-blank values of subfields `codes` (each one character) of the
        fields `tags`, in record order (tag by tag): what most mappings ask for.
        The list may be the record's own: read it, do not change it."""
        index = self.subfield_index()
        if len(codes) == 1:
            if tags.__class__ is str:
                return index.get(tags + codes, _NONE)
            return [value for tag in tags for value in index.get(tag + codes, ())]
        return [value for tag in ((tags,) if isinstance(tags, str) else tags) for text in self.fields.get(tag, ())
                for value in subfields(text, codes) if value and not value.isspace()]

    def subfield_index(self) -> dict[str, list[str]]:
        """tag + code → the non-blank values of that subfield, in record order. Read it, do not change it."""
        return self._by_subfield if self._by_subfield is not None else self._index()

    def _index(self) -> dict[str, list[str]]:
        """tag + code → non-blank values, in record order, built once per record: one split per field."""
        index: dict[str, list[str]] = {}
        for tag, texts in self.fields.items():
            for text in texts:
                for chunk in text.split(SUBFIELD)[1:]:
                    if len(chunk) > 1 and not chunk[1:].isspace():
                        key = tag + chunk[0]
                        if key in index:
                            index[key].append(chunk[1:])
                        else:
                            index[key] = [chunk[1:]]
        self._by_subfield = index
        return index

    @property
    def tags(self) -> set[str]:
        return set(self.fields)


def described_in_c(c_describe, python_describe, c_spec):
    """A mapping's `describe(record)`: `c_describe` (a _speedups function reading the record's
    fields, subfield index and leader with the mapping's tables `c_spec`), and `python_describe`
    for the records it declines or when the C is not built."""
    if c_describe is None:
        return python_describe

    def describe(record: MarcRecord) -> dict:
        return c_describe(record.fields, record.subfield_index(), record.leader, c_spec) or python_describe(record)

    return describe
