"""Canonical Arrow schemas: the rows every stage after `transforms` reads.

Field descriptions travel in the Parquet metadata so that a portal or analyst
reading a snapshot sees what each column means without this code.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from unioncat import atomic

SCHEMA_VERSION = "1"
ROW_GROUP_ROWS = 128 * 1024  # a scan reads whole row groups; per-library files mostly hold one


def write_table(path: Path, data: pa.Table | Iterable[pa.RecordBatch], table_schema: pa.Schema, table_name: str) -> int:
    """The one way a catalogue table's Parquet file is written (a snapshot's, and dedup's tables
    that publish links into one): same schema, metadata and options, so the same rows in the same
    order give the same bytes. Batches (a DuckDB query's reader) are written as they come."""
    metadata = {"unioncat.schema_version": SCHEMA_VERSION, "unioncat.table": table_name}
    batches = data.to_batches(max_chunksize=ROW_GROUP_ROWS) if isinstance(data, pa.Table) else data
    return atomic.write_parquet_batches(path, batches, table_schema.with_metadata(metadata), row_group_size=ROW_GROUP_ROWS)


def _field(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": doc})


_str = pa.string()
_strs = pa.list_(pa.string())

RECORDS = pa.schema(
    [
        _field("record_key", _str, "<library_id>:<local_id>, unique in the catalogue", False),
        _field("library_id", _str, "registry id of the holding library, e.g. ZJ001", False),
        _field("local_id", _str, "the record's control number (001) as written by the library", False),
        _field("status", _str, "active or deleted", False),
        _field("source_format", _str, "cnmarc, unimarc, marc21 (the bibliographic format read)"),
        _field("source_encoding", _str, "encoding used to decode the record, e.g. utf-8, gb18030, marc-8"),
        _field("encoding_evidence", _str, "why that encoding was chosen (declared, verified, detected)"),
        _field("encoding_confidence", pa.float32(), "confidence in the encoding decision, 0-1 (1: declared and verified)"),
        _field("datestamp", _str, "last change of the record at the source (005 or protocol datestamp)"),
        _field("run_id", _str, "the harvest run that delivered the record"),
        _field("isbn", _strs, "valid ISBN-13s of the record, normalised"),
        _field("isbn_raw", _strs, "ISBNs as written, including invalid ones"),
        _field("issn", _strs, "ISSNs as written"),
        _field("title", _str, "title proper (200$a / 245$a)"),
        _field("subtitle", _str, "other title information (200$e / 245$b)"),
        _field("part_number", _str, "number of part or volume (200$h / 245$n)"),
        _field("part_name", _str, "name of part or volume (200$i / 245$p)"),
        _field("responsibility", _str, "statement of responsibility (200$f$g / 245$c)"),
        _field("authors", _strs, "personal and corporate names, roles stripped"),
        _field("edition", _str, "edition statement (205 / 250)"),
        _field("publisher", _str, "publisher name (210$c / 260$b / 264$b)"),
        _field("place", _str, "place of publication (210$a / 260$a / 264$a)"),
        _field("year", pa.int16(), "year of publication, parsed"),
        _field("pages", pa.int32(), "number of pages, parsed from the extent"),
        _field("language", _str, "language code (101$a / 008/35-37)"),
        _field("material_type", _str, "monograph, serial, ancient_book, gazetteer, electronic, other"),
        _field("clc", _strs, "Chinese Library Classification numbers (690), or LC/Dewey for MARC21"),
        _field("subjects", _strs, "subject headings"),
        _field("series", _str, "series title"),
        _field("title_key", _str, "normalised title + subtitle for matching; never empty"),
        _field("title_pinyin", _str, "toneless pinyin of the title's Han characters, an extra matching key"),
        _field("author_key", _str, "normalised first author for matching"),
        _field("publisher_key", _str, "normalised publisher for matching"),
        _field("quality_flags", _strs, "problems noticed while reading, e.g. invalid_isbn, no_title"),
        _field("raw", pa.binary(), "the source record's bytes as received"),
    ]
)

HOLDINGS = pa.schema(
    [
        _field("record_key", _str, "the bibliographic record the holding belongs to", False),
        _field("library_id", _str, "registry id of the holding library", False),
        _field("call_number", _str, "shelf mark / call number"),
        _field("location", _str, "branch or collection"),
        _field("copies", pa.int32(), "number of copies"),
        _field("available", pa.int32(), "copies available, when the source says"),
    ]
)

QUARANTINE = pa.schema(
    [
        _field("library_id", _str, "library whose data could not be read", False),
        _field("source", _str, "file or page the bytes came from", False),
        _field("position", pa.int64(), "byte offset (ISO 2709) or record index (XML) within the source"),
        _field("reason", _str, "short reason code, e.g. truncated_record, bad_directory, not_marc", False),
        _field("detail", _str, "human-readable explanation"),
        _field("run_id", _str, "the harvest run that delivered the bytes"),
        _field("raw", pa.binary(), "the bytes that could not be read"),
    ]
)

# The tables a snapshot's `changes` are computed from (against the parent's: warehouse.changes;
# dedup's lineage against its previous run is the same when its previous run is the parent's).
CHANGES_FROM = ("record_manifestation", "manifestations")

# A library's tables as a snapshot holds them (`<table>.parquet/<library_id>.parquet`), sorted by
# these columns (a stable sort). The transform writes its staging files so, with `write_table`,
# and publish links them into the snapshot as they are.
LIBRARY_TABLES = {
    "records": (RECORDS, ("record_key",)),
    "holdings": (HOLDINGS, tuple(HOLDINGS.names)),
    "quarantine": (QUARANTINE, ("library_id", "source", "position", "reason", "detail", "run_id")),
}


def write_library_table(path: Path, table: pa.Table, table_name: str) -> int:
    """A library's table in snapshot form: `table` sorted (nulls last, as DuckDB's ORDER BY) and
    written by `write_table`."""
    table_schema, order = LIBRARY_TABLES[table_name]
    indices = pc.sort_indices(table, sort_keys=[(column, "ascending") for column in order])
    # the transform hands its records over in order: written as they are, not taken again
    in_order = not len(indices) or pc.all(pc.equal(indices, pa.array(np.arange(len(indices), dtype=np.uint64)))).as_py()

    def batches():  # of ROW_GROUP_ROWS rows, as from a DuckDB reader; one in memory at a time
        for start in range(0, len(indices), ROW_GROUP_ROWS):
            rows = table.slice(start, ROW_GROUP_ROWS) if in_order else table.take(indices.slice(start, ROW_GROUP_ROWS))
            yield from rows.combine_chunks().to_batches()

    return write_table(path, batches(), table_schema, table_name)


RECORD_MANIFESTATION = pa.schema(
    [
        _field("record_key", _str, "record", False),
        _field("library_id", _str, "holding library", False),
        _field("local_id", _str, "record's local id", False),
        _field("manifestation_id", _str, "stable id of the manifestation the record belongs to", False),
        _field("work_id", _str, "stable id of the work (editions and translations of one title by one author)"),
        _field("match_rule", _str, "fields that agreed on the record's strongest link into its manifestation "
               "(e.g. isbn+title+authors+publisher+year), or singleton", False),
        _field("match_score", pa.float32(), "summed field weight of that link (accepted from dedup.rules.MATCH_THRESHOLD)"),
        _field("matched_with", _str, "record at the other end of that link"),
        _field("match_evidence", _str, "field levels of that link, e.g. title=exact authors=agree … weight=17"),
    ]
)

# Descriptive fields a manifestation takes from its member records (golden record).
GOLDEN_FIELDS = (
    "title", "subtitle", "part_number", "part_name", "responsibility", "authors", "edition", "publisher",
    "place", "year", "pages", "language", "material_type", "clc", "title_key",
)

MANIFESTATIONS = pa.schema(
    [
        _field("manifestation_id", _str, "stable id of one edition of one book", False),
        _field("work_id", _str, "stable id of the work the manifestation is an edition or translation of"),
        _field("isbn", _str, "an ISBN-13 of the manifestation"),
        *(RECORDS.field(name) for name in GOLDEN_FIELDS),
        _field("golden_record_key", _str, "record the golden fields were taken from"),
        _field("n_records", pa.int32(), "records in the manifestation", False),
        _field("n_libraries", pa.int32(), "libraries holding it", False),
    ]
)

WORKS = pa.schema(
    [
        _field("work_id", _str, "stable id of a work: its editions and translations catalogued under one title and author", False),
        _field("title", _str, "title of the work's most held manifestation"),
        _field("author", _str, "first author of that manifestation"),
        _field("n_manifestations", pa.int32(), "manifestations of the work", False),
        _field("n_records", pa.int32(), "records of the work in all libraries", False),
    ]
)

MATCH_EVIDENCE = pa.schema(
    [
        _field("record_key_a", _str, "one record of the pair: the first record of its node (the smaller key)", False),
        _field("record_key_b", _str, "the other record", False),
        _field("node_key_a", _str, "the node (twin records, dedup.nodes) of record_key_a, all of whose records the pair stands for", False),
        _field("node_key_b", _str, "the node of record_key_b", False),
        _field("node_a", pa.int32(), "the rid of node_key_a in this run's match_nodes.parquet (how the next run finds it)", False),
        _field("node_b", pa.int32(), "the rid of node_key_b", False),
        _field("blocks", pa.list_(pa.uint64()), "blocks that proposed the pair: hash(kind, key) (dedup.blocking)"),
        _field("weight", pa.float64(), "summed field weights (dedup.rules.WEIGHTS)", False),
        _field("title_score", pa.float64(), "title similarity 0-100 (orders equally weighted links)"),
        _field("authors_score", pa.float64(), "share of surnames in common, 0-100 (orders equally weighted links)"),
        *(_field(name, _str, f"comparison level of {name}") for name in
          ("title", "authors", "publisher", "year", "pages", "isbn", "issn", "edition", "language")),
        _field("veto", _str, "hard rule that forbids merging the pair (dedup.rules.VETOES), or null"),
        _field("accepted", pa.bool_(), "the pair links its records into one manifestation (before cluster splits)", False),
    ]
)

LIBRARIES = pa.schema(
    [
        _field("library_id", _str, "registry id", False),
        _field("name", _str, "library name", False),
        _field("city", _str, "city", False),
        _field("level", _str, "province, city or county", False),
        _field("protocol", _str, "how the catalogue is harvested", False),
        _field("run_id", _str, "run whose data this snapshot holds for the library"),
    ]
)

HOLDINGS_DISTRIBUTION = pa.schema(
    [
        _field("manifestation_id", _str, "manifestation", False),
        _field("library_id", _str, "holding library", False),
        _field("city", _str, "city of the library", False),
        _field("level", _str, "level of the library", False),
        _field("copies", pa.int32(), "copies the library holds", False),
    ]
)

CHANGES = pa.schema(
    [
        _field("change", _str, "added, updated, merged (old → surviving id), split (old → new part) or deleted", False),
        _field("manifestation_id", _str, "manifestation in this version (null when deleted)"),
        _field("old_manifestation_id", _str, "manifestation in the previous version (null when added)"),
    ]
)
