"""A lean in-memory MARC record: only the fields the mappings read, decoded.

pymarc builds an object per field and subfield of every record; at 11 million
records that dominates the transform. Here a record keeps the fields of the
tags its mapping asks for, each data field as its decoded text (indicators,
then `\\x1f`-delimited subfields, as in ISO 2709), split only when a mapping
asks for a subfield. The method names follow pymarc's so that mapping code
reads the same.
"""

from __future__ import annotations

SUBFIELD = "\x1f"


class ControlField:
    __slots__ = ("tag", "data")
    text = ""  # no subfields: a control tag where a mapping expects a data field reads as empty

    def __init__(self, tag: str, data: str):
        self.tag = tag
        self.data = data

    def get(self, code: str, default: str | None = None) -> str | None:
        return default

    def get_subfields(self, *codes: str) -> list[str]:
        return []


class DataField:
    __slots__ = ("tag", "text")

    def __init__(self, tag: str, text: str):
        self.tag = tag
        self.text = text  # "ii\x1faValue\x1fbValue…", without the field terminator

    @classmethod
    def from_subfields(cls, tag: str, indicators: str, subfields: list[tuple[str, str]]) -> DataField:
        """From (code, value) pairs, as XML and Aleph sequential give them; a
        code is one character, a value never holds the delimiter."""
        return cls(tag, indicators + "".join(SUBFIELD + code[:1] + value.replace(SUBFIELD, "") for code, value in subfields))

    @property
    def indicators(self) -> str:
        return (self.text.split(SUBFIELD, 1)[0] + "  ")[:2]

    @property
    def subfields(self) -> list[tuple[str, str]]:
        return [(chunk[0], chunk[1:]) for chunk in self.text.split(SUBFIELD)[1:] if chunk]

    def get(self, code: str, default: str | None = None) -> str | None:
        text = self.text
        start = text.find(SUBFIELD + code)
        if start == -1:
            return default
        end = text.find(SUBFIELD, start + 2)
        return text[start + 2 :] if end == -1 else text[start + 2 : end]

    def get_subfields(self, *codes: str) -> list[str]:
        if len(codes) == 1 and SUBFIELD + codes[0] not in self.text:
            return []  # the common case of a subfield a record does not have, without splitting
        return [chunk[1:] for chunk in self.text.split(SUBFIELD)[1:] if chunk and chunk[0] in codes]


class MarcRecord:
    __slots__ = ("leader", "fields")

    def __init__(self, leader: str, fields: dict[str, list] | None = None):
        self.leader = leader
        self.fields = {} if fields is None else fields

    def add(self, marc_field: ControlField | DataField) -> None:
        self.fields.setdefault(marc_field.tag, []).append(marc_field)

    def get(self, tag: str):
        found = self.fields.get(tag)
        return found[0] if found else None

    def control(self, tag: str) -> str | None:
        """Data of a control field, stripped; None when absent or (in broken
        records) written as a data field."""
        found = self.get(tag)
        return found.data.strip() if isinstance(found, ControlField) else None

    def values(self, tags: str | tuple[str, ...], codes: str) -> list[str]:
        """The non-blank values of subfields `codes` (each one character) of the
        fields `tags`, in record order: what most mappings ask for."""
        found = self.fields.get(tags) if isinstance(tags, str) else [f for tag in tags for f in self.fields.get(tag, ())]
        if not found:
            return []
        single = len(codes) == 1 and SUBFIELD + codes
        values = []
        for marc_field in found:
            text = marc_field.text
            if single and single not in text:
                continue
            values += [chunk[1:] for chunk in text.split(SUBFIELD)[1:] if chunk[:1] in codes and chunk[1:] and not chunk[1:].isspace()]
        return values

    def get_fields(self, *tags: str) -> list:
        if len(tags) == 1:
            return self.fields.get(tags[0], [])
        return [f for tag in tags for f in self.fields.get(tag, [])]

    @property
    def tags(self) -> set[str]:
        return set(self.fields)
