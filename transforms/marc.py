"""A lean in-memory MARC record: only the fields the mappings read, decoded.

pymarc builds an object per field and subfield of every record; at 11 million
records that dominates the transform. Here a record keeps the fields of the
tags its mapping asks for, each data field as (code, value) pairs. The method
names follow pymarc's so that mapping code reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ControlField:
    tag: str
    data: str


@dataclass(slots=True)
class DataField:
    tag: str
    indicators: str
    subfields: list[tuple[str, str]]

    def get(self, code: str, default: str | None = None) -> str | None:
        for sub_code, value in self.subfields:
            if sub_code == code:
                return value
        return default

    def get_subfields(self, *codes: str) -> list[str]:
        return [value for sub_code, value in self.subfields if sub_code in codes]


@dataclass(slots=True)
class MarcRecord:
    leader: str
    fields: dict[str, list] = field(default_factory=dict)

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

    def get_fields(self, *tags: str) -> list:
        if len(tags) == 1:
            return self.fields.get(tags[0], [])
        return [f for tag in tags for f in self.fields.get(tag, [])]

    @property
    def tags(self) -> set[str]:
        return set(self.fields)
