"""Matching features of every active record, as one DuckDB table `match_records`.

The canonical keys from `transforms` (title_key, title_pinyin, publisher_key) are used as they
are; volume, edition and author keys are derived here from the displayed fields, computed
once per distinct value in Python and joined back in SQL. `fingerprint` changes exactly
when a feature the matcher reads changes: incremental runs re-match those records only.
"""

from __future__ import annotations

import re
from functools import lru_cache

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.normalise import fold_text, part_key, title_key

# Columns of the canonical `records` rows that dedup reads (never `raw`).
INPUT_COLUMNS = (
    "record_key", "library_id", "local_id", "isbn", "issn", "title", "subtitle", "part_number", "part_name",
    "responsibility", "authors", "edition", "publisher", "place", "year", "pages", "language", "material_type",
    "clc", "title_key", "title_pinyin", "publisher_key",
)
MAPPING_BATCH_ROWS = 100_000


def input_hash(alias: str) -> str:
    """SQL of a hash that changes when any input of the features of the record `alias` does
    (the record's features are then computed again)."""
    return f"hash({', '.join(f'{alias}.{column}' for column in INPUT_COLUMNS)})"


_CN_NUMBERS = {c: n for n, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "两": 2}
_CN_NUMERAL = re.compile(r"[〇零一二两三四五六七八九十百]+")
_ENGLISH_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "初": 1,
}
_ORDINAL_WORD = re.compile(r"\b(" + "|".join(k for k in _ENGLISH_ORDINALS if k.isascii()) + r")\b|初")
_NUMBER = re.compile(r"\d+")
_EDITION_WORDS = re.compile(r"\b(ed|edn|edition|editions|utg|aufl|auflage|painos)\b|版|本")
_VOLUME_WORDS = re.compile(r"^第|[册卷部辑集篇编分]+$")
_DIGITS = re.compile(r"\d+")
_HAN = re.compile(r"[\u3400-\u9fff]")


def chinese_number(text: str) -> int:
    """十四 → 14, 二十 → 20, 一〇八 → 108 (digit by digit when there is no 十/百)."""
    if "十" not in text and "百" not in text:
        return int("".join(str(_CN_NUMBERS[c]) for c in text))
    total, current = 0, 0
    for c in text:
        if c == "百":
            total += (current or 1) * 100
            current = 0
        elif c == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _CN_NUMBERS[c]
    return total + current


def _arabic(text: str) -> str:
    return _CN_NUMERAL.sub(lambda m: str(chinese_number(m.group())), text)


@lru_cache(maxsize=1 << 16)
def volume_key(part_number: str, part_name: str) -> str:
    """`第１册`, `第一册`, `1`, `v. 1` → `1`; `上册` and `上` → `上`; '' when the record is no part."""
    text = " ".join(p for p in (part_number, part_name) if p)
    if not text:
        return ""
    folded = _arabic(fold_text(text))
    key = part_key(folded)
    return key if key.isdigit() else _VOLUME_WORDS.sub("", key) or key


@lru_cache(maxsize=1 << 16)
def edition_key(edition: str) -> str:
    """`第2版`, `第二版`, `2nd ed.`, `Second edition` → `2`; `初版`, `1st ed.` → `1`;
    `修订版` → `修订`, `Rev. ed.` → `rev`; '' when no edition is stated."""
    folded = _arabic(fold_text(edition or ""))
    folded = _ORDINAL_WORD.sub(lambda m: f" {_ENGLISH_ORDINALS[m.group()]} ", folded)
    number = _NUMBER.search(folded)
    if number:
        return str(int(number.group()))
    return _EDITION_WORDS.sub("", folded).replace(" ", "")


@lru_cache(maxsize=1 << 18)
def surname(name: str) -> str:
    """The part of a name that cataloguers agree on: a Han name whole (`曹雪芹`), the surname of a
    Western one, inverted or not, without dates or initials (`Austen, Jane, 1775-1817`,
    `Jane Austen`, `J. Austen` → `austen`)."""
    words = _DIGITS.sub(" ", fold_text(name.split(",")[0] if "," in name else name)).split()
    if not words:
        return ""
    return "".join(words) if _HAN.search(words[-1]) else words[-1]


def authors_keys(authors: list[str] | None) -> tuple[str, str, str]:
    """(the sorted set of the authors' surnames, of all words of their names but initials,
    the first author's surname)."""
    surnames = [n for n in (surname(a) for a in authors or ()) if n]
    words = {w for a in authors or () for w in _DIGITS.sub(" ", fold_text(a)).split() if len(w) > 1}
    return " ".join(sorted(set(surnames))), " ".join(sorted(words)), (surnames[0] if surnames else "")


# Full-width ASCII (Ｐｙｔｈｏｎ, ２０１５) as SQL string literals for translate().
_HALFWIDTH = "".join(chr(c) for c in range(0x21, 0x7F)).replace("'", "''")
_FULLWIDTH = "".join(chr(c + 0xFEE0) for c in range(0x21, 0x7F)).replace("'", "''")
_SUBTITLE_SEPARATOR = re.compile(r"\s*[:：=]\s*|\s+/\s*")


@lru_cache(maxsize=1 << 16)
def work_title_key(title: str | None) -> str:
    """Title proper for works: a subtitle glued into the title (`江南往事：一个小镇的记忆`,
    `Pride and prejudice : a novel`) is cut off, `&` is `and`."""
    proper = _SUBTITLE_SEPARATOR.split(title or "", maxsplit=1)[0] or (title or "")
    return title_key(proper.replace("&", " and "))


def mapping(con: duckdb.DuckDBPyConnection, name: str, query: str, compute, columns: list[str]) -> None:
    """Compute Python keys once per distinct value of `query` and keep them as the table `name`
    (string columns: the query's, then compute's). Read and computed a batch at a time: at 11M
    records there are millions of distinct authors and titles."""
    def computed(batch: pa.RecordBatch) -> pa.Table:
        values = list(zip(*(column.to_pylist() for column in batch.columns)))
        keys = list(zip(*(compute(*value) for value in values))) if values else [()] * (len(columns) - batch.num_columns)
        return pa.table([*batch.columns, *(pa.array(k, pa.string()) for k in keys)], names=columns)

    parts = [computed(batch) for batch in con.sql(query).to_arrow_reader(MAPPING_BATCH_ROWS)]
    table = pa.concat_tables(parts) if parts else pa.table({c: pa.array([], pa.string()) for c in columns})
    del parts
    con.register(f"{name}_arrow", table)
    con.execute(f"create or replace temp table {name} as select * from {name}_arrow")
    con.unregister(f"{name}_arrow")


def build_match_records(con: duckdb.DuckDBPyConnection, source: str = "dedup_input", *, previous: dict[str, str] | None = None,
                        unchanged_libraries: list[str] = ()) -> int:
    """`match_records(rid, record_key, library_id, twin_key, has_isbn)`: one row per active record
    of `source`, `rid` in record_key order, `record_features`: their features and rid (a view; see
    `drop_record_features`), and `written_features`: the features to write, those of every library
    but the unchanged ones, with `pos` (a view; see `_number`).

    `previous`: library → the previous run's feature file (None: a full run); a record whose
    inputs are the ones it had then (same `input_hash`) keeps its features from there, and only
    new and changed records are computed (their keys: `recomputed_records`). The records of
    `unchanged_libraries` (whose input is known to be the previous run's) keep theirs without
    their input being read or hashed, and `record_features` reads those from their files.
    Returns how many were computed."""
    rows = "select rowid as row_key, * from computed_features"
    if previous is None:
        return _number(con, rows, {}, _compute_features(con, source))
    unchanged = [lib for lib in unchanged_libraries if lib in previous]
    others = [path for lib, path in previous.items() if lib not in unchanged]
    # Only (record_key, input_hash) of every other record is held beside the features kept: at
    # 11M records a second copy of the input does not fit DuckDB's memory limit.
    con.execute(f"""
        create or replace temp table input_hashes as select record_key, {input_hash('s')} as input_hash from {source} s
        where not list_contains({sql_strings(unchanged)}::varchar[], library_id)
    """)
    kept = (f"select p.* exclude (pos) from read_parquet({sql_strings(others)}) p semi join input_hashes using (record_key, input_hash)"
            if others else "select null::varchar as record_key where false")
    con.execute(f"""
        create or replace temp table kept_features as {kept};
        drop table input_hashes;
        create or replace temp table changed_input as
        select s.* from {source} s anti join kept_features using (record_key) where not list_contains({sql_strings(unchanged)}::varchar[], library_id);
    """)
    computed = _compute_features(con, "changed_input")
    con.execute("create or replace temp table recomputed_records as select record_key from changed_input; drop table changed_input")
    rows += " union all by name select rowid | (1::bigint << 40) as row_key, * from kept_features"
    return _number(con, rows, {lib: previous[lib] for lib in unchanged}, computed)


def sql_strings(values) -> str:
    """A SQL list literal of strings."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _number(con: duckdb.DuckDBPyConnection, rows: str, files: dict[str, str], computed: int) -> int:
    """`match_records` of the feature rows of the query `rows` (with `row_key`, unique among
    them) and of the feature files `files` (library → its file, written by an earlier run).

    A record's rid is its library's offset plus its position among the library's records
    (`pos`), both in record key order: a record key is `<library_id>:<local_id>`, so the
    libraries' keys do not interleave. The files keep the positions they were written with, so
    only the rows of `rows` are ordered (at 11.27M records, numbering every record in one window
    took 3.2–4.1 s; reading the files' positions and ordering the 1.74M records of the 20
    libraries a 1% run changes, 1.8 s)."""
    _check_record_keys(con)
    counts = dict(con.sql(f"select library_id, count(*) from ({rows}) group by library_id").fetchall())
    counts |= {library_id: pq.read_metadata(path).num_rows for library_id, path in files.items()}
    offsets, first = [], 0
    for library_id in sorted(counts, key=lambda lib: (lib + ":").encode()):
        offsets.append((library_id, first))
        first += counts[library_id]
    con.register("library_offsets_arrow", pa.table({"library_id": pa.array([lib for lib, _ in offsets], pa.string()),
                                                   "first_rid": pa.array([rid for _, rid in offsets], pa.int32())}))
    con.execute("create or replace temp table library_offsets as select * from library_offsets_arrow")
    con.unregister("library_offsets_arrow")
    # The features stay in the tables they were computed or read into; numbering them into a
    # wide copy took 10 s at 11.27M records and held every feature twice. The unchanged
    # libraries' stay in their files, read where used (the numbering reads five columns, the
    # nodes their first records): held in memory, their 3.6 GB at 11.27M records made DuckDB
    # spill the nodes to disk.
    in_files = f"read_parquet({sql_strings(files.values())}) f join library_offsets o using (library_id)"
    con.execute(f"""
        -- the rows are joined back by their row in the table they are in (row_key), not by record key
        create or replace temp table record_rids as
        select row_key, record_key, library_id, twin_key, has_isbn, pos, (o.first_rid + pos)::integer as rid from (
            select row_key, record_key, library_id, twin_key, len(isbn) > 0 as has_isbn,
                   (row_number() over (partition by library_id order by record_key) - 1)::integer as pos
            from ({rows})
        ) join library_offsets o using (library_id);
        create or replace temp table match_records as
        select rid, record_key, library_id, twin_key, has_isbn from record_rids
        {f"union all select o.first_rid + f.pos, f.record_key, f.library_id, f.twin_key, len(f.isbn) > 0 from {in_files}" if files else ""};
        create or replace temp view record_features as
        select f.* exclude (row_key), r.rid from ({rows}) f join record_rids r using (row_key)
        {f"union all by name select f.* exclude (pos), (o.first_rid + f.pos)::integer as rid from {in_files}" if files else ""};
        create or replace temp view written_features as
        select f.* exclude (row_key), r.pos from ({rows}) f join record_rids r using (row_key);
    """)
    return computed


def _check_record_keys(con: duckdb.DuckDBPyConnection) -> None:
    """The rids follow record keys only if every key is its library id, ':', then the local id
    (the canonical schema's `record_key`) and no library id holds a ':'."""
    bad = con.sql("""select record_key, library_id from computed_features
                     where not starts_with(record_key, library_id || ':') or contains(library_id, ':') limit 1""").fetchall()
    if bad:
        raise ValueError(f"record {bad[0][0]!r} of library {bad[0][1]!r}: a record key must be '<library_id>:<local_id>' "
                         "and a library id must not contain ':'")


def drop_record_features(con: duckdb.DuckDBPyConnection) -> None:
    """Once the nodes hold their first records' features and the feature files are written: held
    to the end of a run, the features made DuckDB spill up to 11 GB to disk at 11.27M records."""
    con.execute("drop view written_features; drop view record_features; drop table record_rids; drop table library_offsets; "
                "drop table computed_features; drop table if exists kept_features")


def _compute_features(con: duckdb.DuckDBPyConnection, source: str) -> int:
    """`computed_features`: the features of every record of `source` (without `rid`)."""
    mapping(con, "volume_keys", f"select distinct coalesce(part_number, ''), coalesce(part_name, '') from {source}",
             lambda n, p: (volume_key(n, p),), ["part_number", "part_name", "volume_key"])
    mapping(con, "edition_keys", f"select distinct coalesce(edition, '') from {source}",
             lambda e: (edition_key(e),), ["edition", "edition_key"])
    mapping(con, "author_keys", f"select distinct array_to_string(coalesce(authors, []), chr(31)) from {source}",
             lambda joined: authors_keys(joined.split("\x1f") if joined else []), ["authors", "authors_key", "names_key", "author1"])
    con.execute(f"""
        -- what is read from a title, once per distinct title and subtitle (libraries share most)
        create or replace temp table title_features as
        with texts as (
            select title, subtitle,
                   lower(strip_accents(translate(title || ' ' || subtitle, '{_FULLWIDTH}', '{_HALFWIDTH}'))) as title_text
            from (select distinct coalesce(title, '') as title, coalesce(subtitle, '') as subtitle from {source})
        )
        select title, subtitle, title_text,
               -- title words for a word-order-blind comparison, without the bracketed Western
               -- qualifiers one source adds: (panel session), [electronic resource]
               trim(regexp_replace(regexp_replace(title_text, '\\([^()0-9\\x{{3400}}-\\x{{9fff}}]*\\)|\\[[^\\[\\]0-9\\x{{3400}}-\\x{{9fff}}]*\\]', ' ', 'g'),
                                   '[^\\pL\\pN]+', ' ', 'g')) as title_words,
               -- numbers in the title: 97中国发展报告, Part II, Windows 95, 红楼梦（上）, 全集第三卷
               list_sort(list_distinct(list_transform(
                   regexp_extract_all(title_text, '[0-9]+')
                   || regexp_extract_all(title_text, '\\b(ii|iii|iv|vi|vii|viii|ix|xi|xii)\\b', 1)
                   || regexp_extract_all(title_text, '\\b(?:part|vol|volume|book|band|teil|tome)\\.? (i|v|x)\\b', 1)
                   || regexp_extract_all(title_text, '\\(([上中下])\\)', 1)
                   || regexp_extract_all(title_text, '第([一二三四五六七八九十]+)[册卷辑部集编]', 1),
                   lambda n: ltrim(n, '0')))) as title_numbers
        from texts;
        create or replace temp table title_key_features as
        select title_key, length(title_key) + length(regexp_replace(title_key, '[^\\x{{3400}}-\\x{{9fff}}]', '', 'g')) as title_info
        from (select distinct title_key from {source});
        create or replace temp table match_features as
        with features as (
            select s.record_key, s.library_id, {input_hash('s')} as input_hash,
                   -- each value once: a record is then in each of its blocks once (dedup.blocking)
                   list_sort(list_distinct(coalesce(s.isbn, []))) as isbn,
                   list_sort(list_distinct(coalesce(s.issn, []))) as issn,
                   s.title_key, t.title_text, k.title_info,
                   coalesce(s.title_pinyin, '') as title_pinyin,
                   coalesce(s.publisher_key, '') as publisher_key,
                   s.year::integer as year, s.pages::integer as pages,
                   nullif(s.language, '') as language,
                   v.volume_key, e.edition_key, a.authors_key, a.names_key, a.author1, t.title_words, t.title_numbers
            from {source} s
            join title_features t on t.title = coalesce(s.title, '') and t.subtitle = coalesce(s.subtitle, '')
            join title_key_features k on k.title_key = s.title_key
            join volume_keys v on v.part_number = coalesce(s.part_number, '') and v.part_name = coalesce(s.part_name, '')
            join edition_keys e on e.edition = coalesce(s.edition, '')
            join author_keys a on a.authors = array_to_string(coalesce(s.authors, []), chr(31))
        )
        select * exclude (title_text),
               case when authors_key = '' then []::varchar[] else string_split(authors_key, ' ') end as authors,
               hash(library_id, isbn, issn, title_key, title_text, title_pinyin, publisher_key, year, pages, language,
                    volume_key, edition_key, authors_key, names_key, author1) as fingerprint,
               hash(title_key, authors_key, publisher_key, year, volume_key, edition_key, isbn) as duplicate_key
        from features;
        drop table title_features; drop table title_key_features;
        -- twin_key: every feature the matcher compares, so records equal in it are twins (dedup.nodes)
        create or replace temp table computed_features as
        select *,
               hash(isbn, issn, title_key, title_words, title_numbers, title_pinyin, publisher_key, year, pages, language,
                    volume_key, edition_key, authors_key, names_key, author1) as twin_key
        from match_features;
        drop table match_features; drop table volume_keys; drop table edition_keys; drop table author_keys;
    """)
    return con.sql("select count(*) from computed_features").fetchall()[0][0]
