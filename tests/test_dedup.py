"""Dedup on hand-made hard cases (through the real stage on canonical rows), its keys, the
clustering against networkx as an independent oracle, and the evaluation metrics."""

import random

import duckdb
import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.clustering import components, split_component
from dedup.datasets import rows_table
from dedup.evaluate import evaluate
from dedup.features import chinese_number, edition_key, surname, volume_key, work_title_key
from dedup.stage import load_rows, run
from transforms.bibliographic import description, to_row

SET_ISBN = "978-7-02-000220-7"


def book(key: str, title: str, *, isbn: str | None = SET_ISBN, authors=("曹雪芹",), publisher="人民文学出版社",
         year="2010", pages="320页", **fields) -> dict:
    library, local_id = key.split(":")
    described = description(local_id=local_id, title=title, isbn_raw=[isbn] if isbn else [], authors=list(authors),
                            publisher=publisher, date_text=year, extent=pages, language="chi", **fields)
    return {**to_row(described, library_id=library, source_format="cnmarc"), "status": "active"}


def dedup(rows: list[dict], tmp_path, levels: dict | None = None) -> dict[str, str]:
    """record_key → manifestation_id after a full run over `rows`."""
    con = duckdb.connect()
    load_rows(con, rows_table(rows))
    libraries = {r["library_id"] for r in rows}
    run(con, tmp_path / "dedup", levels or {lib: "city" for lib in libraries})
    return dict(con.sql(f"select record_key, manifestation_id from read_parquet('{tmp_path / 'dedup' / 'record_manifestation.parquet'}')").fetchall())


def together(ids: dict[str, str], *keys: str) -> bool:
    return len({ids[k] for k in keys}) == 1


def test_same_book_in_three_libraries_with_cataloguing_variants_is_one_manifestation(tmp_path):
    ids = dedup([
        book("A:1", "红楼梦"),
        book("B:7", "紅樓夢", isbn="7-02-000220-X", publisher="人民文學出版社有限公司", year="c2010"),  # 繁体, ISBN-10, 公司
        book("C:3", "红 楼 梦", isbn=None, year="2010.3", pages="320 p."),  # spaced, no 010
        book("A:4", "Python程序设计", isbn=None, authors=("张伟",), publisher="浙江大学出版社"),
        book("B:4", "Ｐｙｔｈｏｎ程序设计", isbn=None, authors=("张伟",), responsibility="张伟编著",
             publisher="浙江大学出版社"),  # full-width
    ], tmp_path)
    assert together(ids, "A:1", "B:7", "C:3") and together(ids, "A:4", "B:4")


def test_volumes_of_a_set_sharing_one_isbn_stay_apart_and_numbered_variants_agree(tmp_path):
    ids = dedup([
        book("A:1", "鲁迅全集", part_number="第１册"), book("B:1", "鲁迅全集", part_number="第 1 册"),
        book("C:1", "鲁迅全集", part_number="第一册"), book("A:2", "鲁迅全集", part_number="第2册"),
        book("B:2", "鲁迅全集", part_number="第二册"), book("A:3", "鲁迅全集", part_name="上"),
        book("B:3", "鲁迅全集", part_name="下"),
        book("A:4", "红楼梦（上）"), book("B:4", "红楼梦(下)"),  # the volume left in the title proper
        book("A:5", "Database tuning (part I)", authors=("Shasha, Dennis",)),
        book("B:5", "Database tuning (part II)", authors=("Shasha, Dennis",)),
    ], tmp_path)
    assert together(ids, "A:1", "B:1", "C:1") and together(ids, "A:2", "B:2")
    assert len({ids["A:1"], ids["A:2"], ids["A:3"], ids["B:3"]}) == 4
    assert not together(ids, "A:4", "B:4") and not together(ids, "A:5", "B:5")


def test_editions_distant_years_and_reused_isbns_veto_a_merge(tmp_path):
    ids = dedup([
        book("A:1", "数学分析", edition="第2版", isbn=None), book("B:1", "数学分析", edition="第3版", isbn=None),
        book("A:2", "数学分析", year="1990", isbn="9787040000009"), book("B:2", "数学分析", year="2005", isbn="9787040000009"),
        book("A:3", "唐诗三百首", isbn="9787020002207"), book("B:3", "宋词鉴赏辞典", isbn="9787020002207"),
    ], tmp_path)
    assert not together(ids, "A:1", "B:1") and not together(ids, "A:2", "B:2") and not together(ids, "A:3", "B:3")


def test_an_isbn_alone_never_merges_and_no_isbn_is_no_obstacle(tmp_path):
    ids = dedup([
        book("A:1", "余杭县志", isbn=None, authors=("余杭县地方志编纂委员会",), publisher="浙江人民出版社", year="1990"),
        book("B:1", "余杭县志", isbn=None, authors=("余杭县地方志编纂委员会",), publisher="浙江人民出版社", year="1990"),
        book("A:2", "活着", isbn="9787506365437", authors=("余华",), publisher="作家出版社"),
        book("B:2", "在细雨中呼喊", isbn="9787506365437", authors=("余华",), publisher="作家出版社"),
    ], tmp_path)
    assert together(ids, "A:1", "B:1") and not together(ids, "A:2", "B:2")


def test_a_popular_title_from_different_publishers_is_several_manifestations(tmp_path):
    ids = dedup([book(f"L{n}:1", "红楼梦", isbn=None, publisher=publisher, year="1985")
                 for n, publisher in enumerate(["人民文学出版社", "岳麓书社", "中华书局", "浙江古籍出版社"])], tmp_path)
    assert len(set(ids.values())) == 4


def test_a_record_resembling_two_editions_does_not_chain_them(tmp_path):
    ids = dedup([
        book("A:1", "宋代史", edition="第2版", isbn=None), book("B:1", "宋代史", edition="第3版", isbn=None),
        book("C:1", "宋代史", isbn=None),  # no 205: scores high against both
    ], tmp_path)
    assert not together(ids, "A:1", "B:1")


def test_one_library_holds_a_book_once_unless_its_records_are_identical(tmp_path):
    ids = dedup([
        book("A:1", "围城", isbn=None, authors=("钱锺书",)), book("A:2", "围城", isbn=None, authors=("钱锺书",)),
        book("B:1", "围城", isbn="9787020090006", authors=("钱锺书",)), book("B:2", "围城", isbn="9787020090006", authors=("钱锺书",)),
    ], tmp_path)
    assert not together(ids, "A:1", "A:2")  # without an identifier two identical records may be two books
    assert together(ids, "B:1", "B:2")  # a genuine duplicate: identical, same ISBN


def test_western_records_match_on_title_words_and_surnames(tmp_path):
    ids = dedup([
        book("A:1", "Pride and prejudice", isbn=None, authors=("Austen, Jane, 1775-1817",), publisher="Penguin", year="1996", pages="xii, 480 p."),
        book("B:1", "Pride and prejudice", isbn=None, authors=("Jane Austen",), publisher="Penguin Books", year="1996", pages="480 p."),
        book("C:1", "Pride and prejudice", isbn=None, authors=("Austen, Jane",), publisher="Penguin", year="2003", pages="435 p."),
    ], tmp_path)
    assert together(ids, "A:1", "B:1") and not together(ids, "A:1", "C:1")


def test_match_evidence_says_why_records_are_together(tmp_path):
    dedup([book("A:1", "江南往事"), book("B:1", "江南往事")], tmp_path)
    row = duckdb.sql(f"select * from read_parquet('{tmp_path / 'dedup' / 'record_manifestation.parquet'}') where record_key = 'B:1'").fetchall()[0]
    _, _, _, _, _, rule, score, other, evidence = row
    assert rule == "isbn+title+authors+publisher+year+pages" and other == "A:1" and score >= 10
    assert "title=exact" in evidence and "isbn=shared" in evidence


# ---- keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("written, key", [("第2版", "2"), ("第二版", "2"), ("2nd ed.", "2"), ("Second edition", "2"),
                                          ("初版", "1"), ("修订版", "修订"), ("Rev. ed.", "rev"), ("第十二版", "12"), ("", "")])
def test_edition_key(written, key):
    assert edition_key(written) == key


@pytest.mark.parametrize("number, name, key", [("第１册", "", "1"), ("第一册", "", "1"), ("v. 1", "", "1"), ("", "上册", "上"),
                                               ("", "上", "上"), ("第1册", "先秦", "1"), ("", "", "")])
def test_volume_key(number, name, key):
    assert volume_key(number, name) == key


def test_names_titles_and_numbers():
    assert [surname(n) for n in ("Austen, Jane, 1775-1817", "Jane Austen", "J. Austen", "曹雪芹")] == ["austen"] * 3 + ["曹雪芹"]
    assert work_title_key("Pride & prejudice : a novel") == work_title_key("Pride and prejudice") == "prideandprejudice"
    assert work_title_key("江南往事：一个小镇的记忆") == "江南往事"
    assert [chinese_number(t) for t in ("十四", "二十", "一〇八", "三")] == [14, 20, 108, 3]


# ---- clustering against networkx ----------------------------------------------------------------


def test_components_equal_networkx_connected_components():
    rng = random.Random(7)
    graphs = [(n, [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 80))])
              for n in (rng.randint(1, 60) for _ in range(20))]
    # sparse graphs of long chains, numbered at random: many rounds of hooking
    for n in (500, 3000):
        labels = list(range(n))
        rng.shuffle(labels)
        graphs.append((n, [(labels[i], labels[i + 1]) for i in range(n - 1) if rng.random() < 0.9]))
    graphs.append((6, [(5, 1), (1, 4), (4, 0), (2, 2)]))
    for n, edges in graphs:
        roots = components(n, [a for a, _ in edges], [b for _, b in edges])
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from(edges)
        expected = {node: min(part) for part in nx.connected_components(graph) for node in part}
        assert roots.tolist() == [expected[node] for node in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(1, 20), st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=8),
)))
def test_split_never_keeps_a_forbidden_pair_and_only_follows_accepted_links(case):
    n, raw_edges, raw_forbidden = case
    edges = [(float(w), 0.0, min(a, b), max(a, b)) for w, a, b in raw_edges if a != b]
    forbidden = {(min(a, b), max(a, b)) for a, b in raw_forbidden if a != b}
    groups = split_component(list(range(n)), edges, forbidden)
    for a, b in forbidden:
        assert groups[a] != groups[b]
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((a, b) for _, _, a, b in edges)
    for node, group in groups.items():  # every group lies inside one connected component of the links
        assert nx.has_path(graph, node, group) and group <= node
    assert split_component(list(range(n)), list(reversed(edges)), forbidden) == groups  # order-independent


# ---- evaluation ---------------------------------------------------------------------------------


def test_pairwise_and_bcubed_scores_by_hand():
    truth = {"a": "1", "b": "1", "c": "1", "d": "2", "e": "3"}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}
    result = evaluate(truth, predicted)
    # true pairs ab ac bc; predicted pairs ab cd; one right
    assert (result.true_pairs, result.predicted_pairs) == (3, 2)
    assert (result.pairwise.precision, result.pairwise.recall) == (0.5, round(1 / 3, 5))
    # B-cubed precision: a 1, b 1, c 1/2, d 1/2, e 1 → 0.8; recall: a 2/3, b 2/3, c 1/3, d 1, e 1 → 11/15
    assert (result.bcubed.precision, result.bcubed.recall) == (0.8, round(11 / 15, 5))
    assert result.exact_clusters == 1 and len(result.false_merges) == 1 and len(result.missed_merges) == 1


def test_each_record_is_linked_under_its_library_and_local_id(tmp_path):
    rows = [book("A:1", "红楼梦"), {**book("B:1", "红楼梦"), "local_id": "ocm:0042", "record_key": "B:ocm:0042"}]
    dedup(rows, tmp_path)
    links = duckdb.sql(f"select record_key, library_id, local_id from read_parquet('{tmp_path / 'dedup' / 'record_manifestation.parquet'}')")
    assert sorted(links.fetchall()) == [("A:1", "A", "1"), ("B:ocm:0042", "B", "ocm:0042")]
