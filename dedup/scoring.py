"""Pair scoring: field by field comparison levels, weights, hard vetoes (rules.py).

One implementation serves both the candidate pairs of blocking and the all-pairs check of a
cluster suspected of breaking a hard rule. Structural comparisons (ISBN overlap, years,
volumes, editions) are SQL; string similarities are rapidfuzz, computed once per distinct
pair of unequal strings (most candidate pairs have equal keys and need none).
"""

from __future__ import annotations

from functools import lru_cache

import duckdb
import numpy as np
import pyarrow as pa
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from dedup import rules
from transforms.normalise import pinyin_key

W = rules.WEIGHTS
# Level columns of a scored pair, in the order evidence is written.
FIELDS = ("title", "authors", "publisher", "year", "pages", "isbn", "issn", "edition", "language")


@lru_cache(maxsize=1 << 16)
def _pinyin(key: str) -> str | None:
    return pinyin_key(key)


# Distinct value combinations scored per batch: rapidfuzz compares a batch in C++ on every core
# (`cpdist`), and memory holds one batch of strings, not every distinct pair of the catalogue.
SIMILARITY_BATCH_ROWS = 200_000
_WORKERS = -1  # all cores


def _pairwise(scorer, a: list[str], b: list[str]) -> np.ndarray:
    return cpdist(a, b, scorer=scorer, workers=_WORKERS, dtype=np.float64) if a else np.zeros(0)


def title_similarity(a: list[str], b: list[str], words_a: list[str], words_b: list[str]) -> np.ndarray:
    """rapidfuzz ratio of two title keys, or of their words in sorted order when that is higher
    (`SAP R/3 (tutorial): a database…` vs `SAP R/3: a database… (Tutorial)`); two Han titles
    that read alike in pinyin (a variant or homophone character) count as near."""
    score = _pairwise(fuzz.ratio, a, b)
    has_words = np.fromiter((bool(x and y) for x, y in zip(words_a, words_b)), bool, len(a))
    score = np.where(has_words, np.maximum(score, _pairwise(fuzz.token_sort_ratio, words_a, words_b)), score)
    for i in np.flatnonzero(score < rules.TITLE_NEAR):
        if len(a[i]) == len(b[i]) and _pinyin(a[i]) and _pinyin(a[i]) == _pinyin(b[i]):
            score[i] = rules.TITLE_NEAR
    return score


def authors_similarity(surnames_a: list[str], surnames_b: list[str], names_a: list[str], names_b: list[str]) -> np.ndarray:
    """Author lists as sets of surnames (`M. Livny` = `Miron Livny`) or of all name words, whichever
    agrees more (`Chen Qun` = `Qun Chen`, `Rafael Camps Paré` ⊇ `Rafael Camps`)."""
    score = _pairwise(fuzz.token_set_ratio, surnames_a, surnames_b)
    has_names = np.fromiter((bool(x and y) for x, y in zip(names_a, names_b)), bool, len(surnames_a))
    return np.where(has_names, np.maximum(score, _pairwise(fuzz.token_set_ratio, names_a, names_b)), score)


def publisher_similarity(a: list[str], b: list[str]) -> np.ndarray:
    return _pairwise(fuzz.ratio, a, b)


TITLE_COLUMNS = ("title_key", "title_words")
AUTHORS_COLUMNS = ("authors_key", "names_key")


def _similarities(con: duckdb.DuckDBPyConnection, pairs: str, columns: tuple[str, ...], scorer, name: str, table: str) -> None:
    """Table `name(rid_a, rid_b, sim)` for the pairs whose `columns` differ (first column
    non-empty on both sides): `scorer(a_c1, b_c1, a_c2, b_c2, …)`, over lists, scores each
    distinct combination of values once, batch by batch; the scores are joined back."""
    first = columns[0]
    differ = " or ".join(f"x.{c} <> y.{c}" for c in columns)
    value_columns = [f"{side}_{c}" for c in columns for side in ("a", "b")]
    con.execute(f"""
        create or replace temp table {name}_pairs as
        select p.rid_a, p.rid_b, {", ".join(f"x.{c} as a_{c}, y.{c} as b_{c}" for c in columns)}
        from {pairs} p join {table} x on x.rid = p.rid_a join {table} y on y.rid = p.rid_b
        where ({differ}) and x.{first} <> '' and y.{first} <> '';
        create or replace temp table {name}_values as
        select row_number() over () - 1 as n, * from (select distinct {", ".join(value_columns)} from {name}_pairs);
        create or replace temp table {name}_scores as select * exclude (n), 0.0::double as sim from {name}_values limit 0;
    """)
    total = con.sql(f"select count(*) from {name}_values").fetchall()[0][0]
    for start in range(0, total, SIMILARITY_BATCH_ROWS):
        batch = con.sql(f"select * exclude (n) from {name}_values where n >= {start} and n < {start + SIMILARITY_BATCH_ROWS}").to_arrow_table()
        scored = batch.append_column("sim", pa.array(scorer(*(batch.column(c).to_pylist() for c in value_columns)), pa.float64()))
        con.register(f"{name}_batch", scored)
        con.execute(f"insert into {name}_scores select * from {name}_batch")
        con.unregister(f"{name}_batch")
    on = " and ".join(f"s.{c} = p.{c}" for c in value_columns)
    con.execute(f"""
        create or replace temp table {name} as
        select p.rid_a, p.rid_b, s.sim from {name}_pairs p join {name}_scores s on {on};
        drop table {name}_pairs; drop table {name}_values; drop table {name}_scores;
    """)


def _case(column: str, levels: dict[str, float]) -> str:
    return "case " + " ".join(f"when {column} = '{level}' then {weight}" for level, weight in levels.items()) + " else 0 end"


def score_pairs(con: duckdb.DuckDBPyConnection, pairs: str, out: str, keep: str | None = None, *, table: str = "match_nodes") -> None:
    """`out`: the pairs of `pairs(rid_a, rid_b, …)` — rids of `table`, nodes or records — with
    their levels, weight, veto and decision (all of them, or those meeting the SQL condition
    `keep`). Other columns of `pairs` are carried through."""
    _similarities(con, pairs, TITLE_COLUMNS, title_similarity, "sim_title", table)
    _similarities(con, pairs, AUTHORS_COLUMNS, authors_similarity, "sim_authors", table)
    _similarities(con, pairs, ("publisher_key",), publisher_similarity, "sim_publisher", table)
    short_title = "least(x.title_info, y.title_info)"
    con.execute(f"""
        create or replace temp table {out} as
        with compared as (
            select p.*, len(list_intersect(x.authors, y.authors)) as shared_authors,
                case when x.title_key = y.title_key or sim_title.sim >= 100 then 'exact'
                     when least(length(x.title_key), length(y.title_key)) >= {rules.CONTAINED_TITLE_MIN_CHARS}
                          and (contains(x.title_key, y.title_key) or contains(y.title_key, x.title_key)) then 'near'
                     when sim_title.sim >= {rules.TITLE_NEAR} then 'near'
                     when sim_title.sim >= {rules.TITLE_SIMILAR} then 'similar'
                     when sim_title.sim >= {rules.TITLE_WEAK} then 'weak'
                     else 'different' end as title,
                {short_title} >= {rules.LONG_TITLE_CHARS} as long_title,
                shared_authors >= 2 as many_authors,
                case when x.authors_key = '' or y.authors_key = '' then 'missing'
                     when (x.authors_key = y.authors_key and x.names_key = y.names_key) or sim_authors.sim >= 100 then 'agree'
                     when sim_authors.sim >= {rules.AUTHORS_NEAR} then 'near'
                     else 'different' end as authors,
                case when x.publisher_key = '' or y.publisher_key = '' then 'missing'
                     when x.publisher_key = y.publisher_key then 'agree'
                     when least(length(x.publisher_key), length(y.publisher_key)) >= {rules.PUBLISHER_PREFIX_MIN_CHARS}
                          and (starts_with(x.publisher_key, y.publisher_key) or starts_with(y.publisher_key, x.publisher_key)) then 'near'
                     when sim_publisher.sim >= {rules.PUBLISHER_NEAR} then 'near'
                     else 'different' end as publisher,
                case when x.year is null or y.year is null then 'missing'
                     when x.year = y.year then 'exact'
                     when abs(x.year - y.year) <= {rules.YEAR_TOLERANCE} then 'near'
                     else 'different' end as year,
                case when x.pages is null or y.pages is null then 'missing'
                     when abs(x.pages - y.pages) <= greatest({rules.PAGES_TOLERANCE_ABS},
                                                            {rules.PAGES_TOLERANCE_REL} * greatest(x.pages, y.pages)) then 'agree'
                     else 'different' end as pages,
                case when len(x.isbn) = 0 or len(y.isbn) = 0 then 'missing'
                     when list_has_any(x.isbn, y.isbn) then 'shared' else 'conflict' end as isbn,
                case when len(x.issn) = 0 or len(y.issn) = 0 then 'missing'
                     when list_has_any(x.issn, y.issn) then 'shared' else 'conflict' end as issn,
                case when x.edition_key = '' and y.edition_key = '' then 'missing'
                     when x.edition_key = y.edition_key then 'agree'
                     when x.edition_key = '' or y.edition_key = '' then 'one_sided'
                     else 'different' end as edition,
                case when x.language is null or y.language is null then 'missing'
                     when x.language = y.language then 'same' else 'different' end as language,
                case when x.title_key = y.title_key then 100 else coalesce(sim_title.sim, 0) end as title_score,
                case when shared_authors = 0 then 0
                     else 100 * shared_authors / (len(x.authors) + len(y.authors) - shared_authors) end as authors_score,
                x.volume_key <> y.volume_key as different_part,
                not list_has_all(x.title_numbers, y.title_numbers) and not list_has_all(y.title_numbers, x.title_numbers) as different_number,
                {same_library_sql('x', 'y')} as same_library
            from {pairs} p
            join {table} x on x.rid = p.rid_a
            join {table} y on y.rid = p.rid_b
            left join sim_title using (rid_a, rid_b)
            left join sim_authors using (rid_a, rid_b)
            left join sim_publisher using (rid_a, rid_b)
        ),
        weighed as (
            select *,
                (({_case('title', W['title'])}) + (case when long_title then {_case('title', W['title_long'])} else 0 end)
                + ({_case('authors', W['authors'])})
                + (case when many_authors and authors = 'agree' then {W['authors_many']['yes']} else 0 end) + ({_case('publisher', W['publisher'])}) + ({_case('year', W['year'])})
                + ({_case('pages', W['pages'])}) + ({_case('isbn', W['isbn'])}) + ({_case('issn', W['issn'])})
                + ({_case('edition', W['edition'])}) + ({_case('language', W['language'])}))::double as weight,
                case when different_part then 'different_part'
                     when different_number then 'different_number'
                     when edition = 'different' then 'different_edition'
                     when year = 'different' then 'different_year'
                     when isbn = 'conflict' then 'isbn_conflict'
                     when title = 'different' then 'different_title'
                     when same_library then 'same_library' end as veto
            from compared
        )
        select * exclude (long_title, many_authors, shared_authors, different_part, different_number, same_library),
               veto is null and weight >= {rules.MATCH_THRESHOLD} as accepted
        from weighed
        {f"where {keep}" if keep else ""};
        drop table sim_title; drop table sim_authors; drop table sim_publisher;
    """)


def same_library_sql(x: str, y: str) -> str:
    """Whether nodes `x` and `y` hold records of one library (the same-library veto), unless they
    are one ISBN'd book listed twice."""
    return f"(list_has_any({x}.libraries, {y}.libraries) and not ({x}.duplicate_key = {y}.duplicate_key and len({x}.isbn) > 0))"


def library_veto_sql(pair: str, x: str, y: str) -> str:
    """The veto of a scored pair `pair` of nodes `x` and `y` that hold other libraries than when
    it was scored, their features the same: the same-library veto is the last one checked, so
    another veto stands and only that one is decided again."""
    # a null veto is not <> 'same_library': it is decided again
    return f"if({pair}.veto <> 'same_library', {pair}.veto, if({same_library_sql(x, y)}, 'same_library', null))"


def evidence_sql(alias: str = "") -> str:
    """A readable one-line summary of a scored pair: `title=exact authors=agree … weight=17`."""
    prefix = f"{alias}." if alias else ""
    parts = " || ' ' || ".join(f"'{f}=' || {prefix}{f}" for f in FIELDS)
    return f"{parts} || ' weight=' || round({prefix}weight, 1)::varchar"


def rule_sql(alias: str = "") -> str:
    """The fields that agreed, joined by '+': `isbn+title+authors+publisher+year`."""
    prefix = f"{alias}." if alias else ""
    agreed = [
        f"case when {prefix}isbn = 'shared' then 'isbn' end",
        f"case when {prefix}issn = 'shared' then 'issn' end",
        f"case when {prefix}title in ('exact', 'near') then 'title' end",
        f"case when {prefix}authors in ('agree', 'near') then 'authors' end",
        f"case when {prefix}publisher in ('agree', 'near') then 'publisher' end",
        f"case when {prefix}year in ('exact', 'near') then 'year' end",
        f"case when {prefix}pages = 'agree' then 'pages' end",
    ]
    return f"concat_ws('+', {', '.join(agreed)})"
