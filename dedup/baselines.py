"""Simple matchers to measure ours against, over the same `match_records` / `dedup_input`:

- `isbn_only`: records sharing any valid ISBN-13 are one manifestation (connected components);
- `title_year`: exact normalised title key + year;
- `goldrush`: a match key after the Gold Rush (Colorado Alliance) specification as FOLIO's
  mod-reservoir implements it: title (70 chars), year, pagination (first four contiguous
  digits), edition (number, default 1), publisher (5 chars), part number, and the author as
  its first five ASCII letters or digits — the step that erases Han names, as the original does.
Each returns record_key → cluster label.
"""

from __future__ import annotations

import duckdb

from dedup.clustering import components


def isbn_only(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    keys = [k for (k,) in con.sql("select record_key from match_records order by rid").fetchall()]
    edges = con.sql("""
        with k as (select unnest(isbn) as isbn, rid from match_records)
        select a.rid, b.rid from k a join k b on a.isbn = b.isbn and a.rid < b.rid
    """).fetchall()
    roots = components(len(keys), [a for a, _ in edges], [b for _, b in edges])
    return {key: keys[root] for key, root in zip(keys, roots)}


def title_year(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.sql("""
        select record_key, case when year is null then record_key else title_key || '|' || year end from match_records
    """).fetchall())


GOLDRUSH_KEY = """
    rpad(left(m.title_key, 70), 70, '_')
    || coalesce(m.year::varchar, '0000')
    || rpad(coalesce(regexp_extract(m.pages::varchar, '([0-9]{4})', 1), ''), 4, '_')
    || rpad(case when m.edition_key similar to '[0-9]+' then left(m.edition_key, 3) else '1' end, 3, '_')
    || rpad(left(m.publisher_key, 5), 5, '_')
    || rpad(left(regexp_replace(coalesce(s.part_number, ''), '[^[:alnum:]]', '', 'g'), 10), 10, '_')
    || rpad(left(regexp_replace(lower(coalesce(s.authors[1], '')), '[^a-z0-9]', '', 'g'), 5), 5, '_')
"""


def goldrush(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.sql(f"""
        select m.record_key, {GOLDRUSH_KEY} from match_records m join dedup_input s using (record_key)
    """).fetchall())


BASELINES = {"isbn_only": isbn_only, "title_year": title_year, "goldrush": goldrush}
