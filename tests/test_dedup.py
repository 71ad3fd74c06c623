"""First-pass dedup rules, checked against an independent oracle
(networkx-free: brute-force pairwise rules) and on hand-made hard cases."""

from dedup.isbn_title import Candidate, candidate, cluster, veto

SET_ISBN = "9787020002207"


def _row(key, title, isbn=SET_ISBN, part=None, edition=None, year=2010, subtitle=None):
    return candidate(
        dict(record_key=key, isbn=[isbn] if isbn else [], title_key=title + (subtitle or ""), part_number=part,
             part_name=None, edition=edition, year=year)
    )


def test_same_isbn_and_title_merge_across_libraries():
    labels = cluster([_row("A:1", "红楼梦"), _row("B:7", "红楼梦"), _row("C:3", "红楼梦", year=2011)])
    assert len(set(labels.values())) == 1


def test_volumes_of_a_set_sharing_one_isbn_stay_apart():
    rows = [_row("A:1", "红楼梦", part="上"), _row("A:2", "红楼梦", part="下"), _row("B:1", "红楼梦", part="上")]
    labels = cluster(rows)
    assert labels["A:1"] == labels["B:1"] != labels["A:2"]


def test_numbered_volume_variants_agree():
    labels = cluster([_row("A:1", "鲁迅全集", part="第１册"), _row("B:1", "鲁迅全集", part="第 1 册"), _row("C:1", "鲁迅全集", part="第2册")])
    assert labels["A:1"] == labels["B:1"] != labels["C:1"]


def test_editions_and_distant_years_veto_an_isbn_match():
    assert veto(_row("A:1", "数学分析", edition="第2版"), _row("B:1", "数学分析", edition="第3版")) == "different_edition"
    assert veto(_row("A:1", "数学分析", year=1990), _row("B:1", "数学分析", year=2005)) == "different_year"


def test_a_reused_isbn_does_not_merge_different_titles():
    labels = cluster([_row("A:1", "唐诗三百首"), _row("B:1", "宋词鉴赏辞典")])
    assert labels["A:1"] != labels["B:1"]


def test_records_without_isbn_stay_singletons():
    labels = cluster([_row("A:1", "余杭县志", isbn=None), _row("B:1", "余杭县志", isbn=None)])
    assert labels["A:1"] != labels["B:1"]


def test_no_cluster_holds_a_pair_a_rule_forbids():
    """A third record similar to two volumes must not chain them together."""
    rows = [_row(f"L{n}:1", "史记", part=part) for n, part in enumerate(["1", "2", "", "1", "2"])]
    labels = cluster(rows)
    for a in rows:
        for b in rows:
            if labels[a.record_key] == labels[b.record_key]:
                assert veto(a, b) is None, (a, b)


def test_candidate_reads_canonical_rows():
    c = candidate(dict(record_key="A:1", isbn=["9787020002207"], title_key="x", part_number="第1册", part_name="诗经", edition="第２版", year=2001))
    assert c == Candidate("A:1", ("9787020002207",), "x", "1", "第2版", 2001)
