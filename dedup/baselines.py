"""Simple matchers to measure ours against, over the features a dedup run wrote to its folder
(`match_records.parquet/`) and its input `dedup_input`:

- `isbn_only`: records sharing any valid ISBN-13 are one manifestation (connected components);
- `title_year`: exact normalised title key + year;
- `goldrush`: a match key after the Gold Rush (Colorado Alliance) specification as FOLIO's
  mod-reservoir implements it: title (70 chars), year, pagination (first four contiguous
  digits), edition (number, default 1), publisher (5 chars), part number, and the author as
  its first five ASCII letters or digits — the step that erases Han names, as the original does.
Each takes the connection and the run's folder, and returns record_key → cluster label.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from dedup.clustering import components
from dedup.features import sql_strings


def _features(con: duckdb.DuckDBPyConnection, dedup_dir: Path) -> str:
    """A view of the run's features, `rid` numbered 0… in record key order."""
    files = sorted(str(f) for f in (Path(dedup_dir) / "match_records.parquet").glob("*.parquet"))
    con.execute("create or replace temp view baseline_features as select (row_number() over (order by record_key) - 1)::integer as rid, * "
                f"from read_parquet({sql_strings(files)})")
    return "baseline_features"


def isbn_only(con: duckdb.DuckDBPyConnection, dedup_dir: Path) -> dict[str, str]:
    features = _features(con, dedup_dir)
    keys = [k for (k,) in con.sql(f"select record_key from {features} order by rid").fetchall()]
    edges = con.sql(f"""
        with k as (select unnest(isbn) as isbn, rid from {features})
        select a.rid, b.rid from k a join k b on a.isbn = b.isbn and a.rid < b.rid
    """).fetchall()
    roots = components(len(keys), [a for a, _ in edges], [b for _, b in edges])
    return {key: keys[root] for key, root in zip(keys, roots)}


def title_year(con: duckdb.DuckDBPyConnection, dedup_dir: Path) -> dict[str, str]:
    return dict(con.sql(f"""
        select record_key, case when year is null then record_key else title_key || '|' || year end from {_features(con, dedup_dir)}
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


def goldrush(con: duckdb.DuckDBPyConnection, dedup_dir: Path) -> dict[str, str]:
    return dict(con.sql(f"""
        select m.record_key, {GOLDRUSH_KEY} from {_features(con, dedup_dir)} m join dedup_input s using (record_key)
    """).fetchall())


BASELINES = {"isbn_only": isbn_only, "title_year": title_year, "goldrush": goldrush}
