"""Dedup quality against labelled data: the generated Chinese province (its truth.csv),
DBLP-ACM, and the Pride and Prejudice editions; our matcher against the simple baselines."""

from collections import defaultdict

import duckdb
import pytest

from dedup import baselines, datasets
from dedup.evaluate import evaluate, record_features
from dedup.features import work_title_key
from dedup.stage import load_rows, run


def dedup(labelled: datasets.Labelled, out):
    con = duckdb.connect()
    load_rows(con, labelled.rows)
    run(con, out, labelled.levels)
    links = con.sql(f"select record_key, manifestation_id, work_id from read_parquet('{out / 'record_manifestation.parquet'}')").fetchall()
    features = record_features(out, con)
    return (con, out), {k: m for k, m, _ in links}, {k: w for k, _, w in links}, features


@pytest.fixture(scope="module")
def province(tmp_path_factory):
    folder = tmp_path_factory.mktemp("province")
    labelled = datasets.demo_province(folder, titles=1500, seed=31)
    return labelled, *dedup(labelled, folder / "dedup")


def test_generated_province_meets_the_bar(province):
    """Pairwise P >= 0.995, R >= 0.98 on the generated books, and no volume or edition merged.
    (The real records, labels `M-…`, come from catalogues holding genuine duplicates.)"""
    labelled, _, manifestation, _, features = province
    generated = {k: label for k, label in labelled.truth.items() if not label.startswith("M-")}
    result = evaluate(generated, manifestation, features=features)
    assert result.pairwise.precision >= 0.995 and result.pairwise.recall >= 0.98, result.report()
    kinds = {e["kind"] for e in result.false_merges}
    assert not kinds & {"cross_volume", "cross_edition"}, result.report()


def test_works_group_editions_volumes_and_translations(province):
    labelled, _, _, work, _ = province
    result = evaluate(labelled.work_truth, work)
    assert result.pairwise.recall >= 0.98 and result.bcubed.precision >= 0.98, result.report()


def test_we_beat_the_baselines_on_the_province(province):
    labelled, (con, out), manifestation, _, _ = province
    generated = {k: label for k, label in labelled.truth.items() if not label.startswith("M-")}
    ours = evaluate(generated, manifestation).pairwise.f1
    for name, baseline in baselines.BASELINES.items():
        assert evaluate(generated, baseline(con, out)).pairwise.f1 < ours, name


def test_dblp_acm(shared_data, tmp_path):
    labelled = datasets.dblp_acm(shared_data)
    _, manifestation, _, features = dedup(labelled, tmp_path)
    result = evaluate(labelled.truth, manifestation, features=features)
    assert result.pairwise.f1 >= 0.99, result.report()


def test_pride_and_prejudice_editions_stay_apart_and_share_a_work(shared_data, tmp_path):
    """marc4j's file holds Pride and Prejudice in ~150 records plus Sense and Sensibility, collected
    novels, criticism and translations: the P&P records (any edition, abridgement or adaptation
    naming Austen) share one work; records of one manifestation never differ in ISBNs, year or
    publisher."""
    labelled = datasets.pride_and_prejudice(shared_data)
    _, manifestation, work, features = dedup(labelled, tmp_path)
    rows = {r["record_key"]: r for r in labelled.rows.to_pylist()}
    def by_austen(title):
        return [k for k, r in rows.items() if work_title_key(r["title"]) == title and any("austen" in a.lower() for a in r["authors"])]

    pride, sense = by_austen("prideandprejudice"), by_austen("senseandsensibility")
    assert len(pride) > 140 and len({work[k] for k in pride}) == 1
    assert len({work[k] for k in sense}) == 1 and work[sense[0]] != work[pride[0]]
    members = defaultdict(list)
    for key, mid in manifestation.items():
        members[mid].append(features[key])
    for group in members.values():
        for a in group:
            for b in group:
                assert a["year"] == b["year"] and a["publisher_key"] == b["publisher_key"], (a, b)
                assert not a["isbn"] or not b["isbn"] or set(a["isbn"]) & set(b["isbn"]), (a, b)
    assert 300 < len(members) < len(rows)  # a few genuine duplicates merged, editions kept apart
