"""ISO 2709 framing: split a byte stream into records, parse one record's
leader/directory/fields into raw bytes, and encode a record back.

The parser is deliberately permissive about the things libraries get wrong
(record length in the leader, missing field terminators) and strict about
what cannot be repaired without guessing (a directory that points outside the
record). Decoding field bytes into text is left to `transforms.encoding`.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Iterator, NamedTuple

import pymarc

try:  # the hot loops in C (transforms/_speedups.c); the Python below does the same when it is not built
    from transforms import _speedups
except ImportError:  # pragma: no cover - depends on the machine's compiler
    _speedups = None

RECORD_TERMINATOR = b"\x1d"
FIELD_TERMINATOR = b"\x1e"
SUBFIELD_DELIMITER = b"\x1f"
LEADER_LENGTH = 24
DIRECTORY_ENTRY_LENGTH = 12
MAX_RECORD_BYTES = 99_999
MAX_UNLISTED_BYTES = 1_000  # real exports leave a few stray bytes after the last field, not thousands
_DIRECTORY_ENTRY = re.compile(rb"([\x21-\x7e]{3})([0-9]{4})([0-9]{5})", re.DOTALL)
_DIRECTORY = re.compile(rb"(?:[\x21-\x7e]{3}[0-9]{9})+")


class RecordError(ValueError):
    """A record that cannot be read; `reason` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RawField:
    tag: str
    data: bytes  # without the field terminator

    @property
    def is_control(self) -> bool:
        return self.tag < "010" and self.tag.isdigit()


class RawRecord(NamedTuple):
    """A record's leader and its fields' bytes, in directory order: `tags[i]`
    names `datas[i]` (without its field terminator)."""

    leader: str
    tags: list[str]
    datas: list[bytes]
    data: bytes  # the whole record as received

    @property
    def fields(self) -> tuple[RawField, ...]:
        return tuple(map(RawField, self.tags, self.datas))

    def first(self, tag: str) -> bytes | None:
        return self.datas[self.tags.index(tag)] if tag in self.tags else None


def split_records(stream: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (byte offset, record bytes incl. terminator) for each record.

    Splits on the record terminator rather than trusting leader lengths, so a
    record with a wrong length cannot swallow its neighbours. A trailing chunk
    without a terminator (a truncated file) is yielded as-is for the parser to
    reject. Blank separators (newlines some exporters add) are skipped.
    """
    start = 0
    size = len(stream)
    while start < size:
        end = stream.find(RECORD_TERMINATOR, start)
        chunk_end = size if end == -1 else end + 1
        chunk = stream[start:chunk_end]
        stripped = chunk.lstrip(b"\r\n \x00")
        if stripped and stripped != RECORD_TERMINATOR:
            yield start + (len(chunk) - len(stripped)), stripped
        start = chunk_end


def parse_record(chunk: bytes) -> RawRecord:
    """Parse one record's bytes into its leader and raw fields."""
    if _speedups is not None:  # the common well-formed record, at once
        parts = _speedups.split_record(chunk)
        if parts is not None:
            return RawRecord(*parts, chunk)
    if len(chunk) > MAX_RECORD_BYTES:
        raise RecordError("oversized_record", f"{len(chunk)} bytes, ISO 2709 allows {MAX_RECORD_BYTES}")
    if not chunk.endswith(RECORD_TERMINATOR):
        raise RecordError("truncated_record", f"no record terminator after {len(chunk)} bytes")
    if len(chunk) < LEADER_LENGTH + 2:
        raise RecordError("truncated_record", f"only {len(chunk)} bytes")
    try:
        leader = chunk[:LEADER_LENGTH].decode("ascii")
    except UnicodeDecodeError:
        raise RecordError("bad_leader", f"non-ASCII leader {chunk[:LEADER_LENGTH]!r}") from None
    if not leader[:5].isdigit():
        raise RecordError("bad_leader", f"record length {leader[:5]!r} is not a number (leader {leader!r})")
    directory_end = chunk.find(FIELD_TERMINATOR, LEADER_LENGTH)
    if directory_end == -1:
        raise RecordError("bad_directory", "no field terminator after the directory")
    if (directory_end - LEADER_LENGTH) % DIRECTORY_ENTRY_LENGTH:
        raise RecordError("bad_directory", f"directory length {directory_end - LEADER_LENGTH} is not a multiple of 12")
    if directory_end == LEADER_LENGTH:
        raise RecordError("bad_directory", "record has no fields")
    if not _DIRECTORY.fullmatch(chunk, LEADER_LENGTH, directory_end):
        raise RecordError("bad_directory", f"unreadable directory entries in {chunk[LEADER_LENGTH:directory_end][:60]!r}")
    # the directory terminator is the reliable anchor, not leader/12-16
    return _well_formed(leader, chunk, directory_end) or _by_directory(leader, chunk, directory_end)


@lru_cache(maxsize=512)
def _entries_format(count: int) -> struct.Struct:
    return struct.Struct("3s4s5s" * count)


def _well_formed(leader: str, chunk: bytes, directory_end: int) -> RawRecord | None:
    """The common case, cheaply: every field ends with a terminator exactly where
    the directory says (entries in order, lengths adding up to the body). None
    when anything differs, for `_by_directory` to sort out."""
    datas = chunk[directory_end + 1 : -1].split(FIELD_TERMINATOR)
    count = (directory_end - LEADER_LENGTH) // DIRECTORY_ENTRY_LENGTH
    if len(datas) != count + 1 or datas.pop():
        return None
    entries = _entries_format(count).unpack_from(chunk, LEADER_LENGTH)
    lengths = list(map((1).__add__, map(len, datas)))
    if list(map(int, entries[1::3])) != lengths or list(map(int, entries[2::3])) != list(accumulate(lengths[:-1], initial=0)):
        return None
    directory = chunk[LEADER_LENGTH:directory_end].decode("ascii")
    return RawRecord(leader, [directory[i : i + 3] for i in range(0, len(directory), DIRECTORY_ENTRY_LENGTH)], datas, chunk)


def _by_directory(leader: str, chunk: bytes, directory_end: int) -> RawRecord:
    """Fields cut where the directory says, tolerating a missing terminator."""
    entries = _DIRECTORY_ENTRY.findall(chunk, LEADER_LENGTH, directory_end)
    base_address = directory_end + 1
    body_length = len(chunk) - 1 - base_address
    tags, datas = [], []
    for tag, length_text, offset_text in entries:
        length, offset = int(length_text), int(offset_text)
        if length == 0 or offset + length > body_length + 1:
            raise RecordError(
                "bad_directory", f"field {tag.decode('latin-1')} at offset {offset} length {length} lies outside the {body_length}-byte body"
            )
        start = base_address + offset
        end = start + length
        if chunk[end - 1] == 0x1E:
            end -= 1
        tags.append(tag.decode("latin-1"))
        datas.append(chunk[start:end])
    unlisted = body_length - max(int(offset) + int(length) for _, length, offset in entries)
    if unlisted > MAX_UNLISTED_BYTES:  # a field over 9,999 bytes: its 4-digit length wrapped, its data would be cut
        raise RecordError("bad_directory", f"{unlisted} bytes after the last field are in no directory entry (a field longer than 9,999 bytes?)")
    return RawRecord(leader, tags, datas, chunk)


def encode_record(record: pymarc.Record, encoding: str) -> bytes:
    """Encode a pymarc record as ISO 2709 with field data in `encoding`.

    pymarc only writes UTF-8 or Latin-1; Chinese libraries also write GB18030,
    so lengths here are counted in the target encoding's bytes.
    """
    directory = b""
    body = b""
    for field in record.fields:
        if field.is_control_field():
            data = field.data.encode(encoding)
        else:
            data = "".join(field.indicators).encode(encoding)
            for subfield in field.subfields:
                data += SUBFIELD_DELIMITER + subfield.code.encode(encoding) + subfield.value.encode(encoding)
        data += FIELD_TERMINATOR
        directory += f"{field.tag}{len(data):04d}{len(body):05d}".encode("ascii")
        body += data
    directory += FIELD_TERMINATOR
    base_address = LEADER_LENGTH + len(directory)
    record_length = base_address + len(body) + 1
    leader = str(record.leader)
    leader = f"{record_length:05d}{leader[5:12]}{base_address:05d}{leader[17:]}"
    return leader.encode("ascii") + directory + body + RECORD_TERMINATOR
