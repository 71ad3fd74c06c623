"""search(text): Chinese titles by any substring of two or more characters, Western titles by
their words, single characters by substring; ranked by the share of query terms matched."""

import random
import re

import duckdb
import pytest

from warehouse_demo import published_demo

HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    settings = published_demo(tmp_path_factory.getbasetemp())
    return duckdb.connect(str(settings.current_snapshot / "catalogue.duckdb"), read_only=True)


def _found(con, text: str) -> set[str]:
    return {mid for (mid,) in con.execute("select manifestation_id from search(?)", [text]).fetchall()}


def test_chinese_titles_are_found_by_any_substring_of_two_or_more_characters(con):
    rng = random.Random(7)
    titles = con.execute("select manifestation_id, title from manifestations where regexp_matches(title, '\\p{Han}{2}') "
                         "order by manifestation_id").fetchall()
    assert len(titles) > 100
    tried = 0
    for mid, title in rng.sample(titles, 60):
        for _ in range(3):
            length = rng.randint(2, len(title))
            start = rng.randint(0, len(title) - length)
            substring = title[start:start + length]
            if len(HAN.findall(substring)) < 2:
                continue
            tried += 1
            assert mid in _found(con, substring), (substring, title)
    assert tried > 100


def test_western_titles_are_found_by_their_words(con, shared_data):
    titles = con.execute("select manifestation_id, title from manifestations where regexp_matches(title, '^[A-Za-z]') "
                         "order by manifestation_id").fetchall()
    assert len(titles) > 10  # the demo includes real MARC21 records from ../shared/data
    rng = random.Random(11)
    for mid, title in rng.sample(titles, 10):
        words = re.findall(r"[A-Za-z0-9]+", title)
        query = " ".join(rng.sample(words, min(2, len(words))))
        assert mid in _found(con, query.upper()), (query, title)
    assert _found(con, "zzqx nonexistentword") == set()


def test_a_single_character_is_matched_as_a_substring(con):
    expected = {mid for (mid,) in con.execute("select manifestation_id from manifestations "
                                              "where contains(concat_ws(' ', title, subtitle), '史')").fetchall()}
    assert expected and _found(con, "史") == expected
    assert _found(con, "  ") == set()


def test_results_are_ranked_by_matched_share_then_libraries(con):
    title, = con.execute("select term from search_index where regexp_matches(term, '^\\p{Han}{2}$') "
                         "group by term order by count(*) desc, term limit 1").fetchall()[0]
    rows = con.execute("select title, n_libraries, score from search(?)", [title]).fetchall()
    assert len(rows) > 1 and all(score == 1.0 for _, _, score in rows)
    order = [(title not in t, -n) for t, n, _ in rows]  # the phrase in the title first, then most held
    assert order == sorted(order)
    # A query with an extra word nobody has still finds the title, with a lower score.
    partial = con.execute("select manifestation_id, score from search(?)", [title + " 龘靐"]).fetchall()
    assert {mid for mid, _ in partial} == _found(con, title) and {s for _, s in partial} == {0.5}


def test_simplified_query_finds_a_traditional_title(con):
    rows = con.execute("select manifestation_id, title, title_key from manifestations "
                       "where title <> title_key and regexp_matches(title_key, '^\\p{Han}{2,}$') limit 20").fetchall()
    traditional = [(mid, key) for mid, title, key in rows if key[:2] not in title and not HAN.sub("", title)]
    assert traditional  # the demo catalogues some titles in traditional characters
    for mid, key in traditional:
        assert mid in _found(con, key)
