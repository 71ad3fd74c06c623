"""The quality gate's checks (warehouse.checks) on small hand-made catalogues: where each
bound lies and what makes a check fail. tests/test_dags.py shows, through build_catalogue,
that a failed check keeps `current` where it was."""

import json

import duckdb
import pytest

from warehouse.checks import MIN_RECORDS_FOR_GROWTH, QualityCheckFailed, Thresholds, check_snapshot, enforce


def _snapshot(folder, *, records=10, manifestations=None, holdings=None, title_keys=None, statuses=None, quarantined=0):
    """A published-looking folder: catalogue.duckdb with the tables the checks read, and a manifest."""
    folder.mkdir(parents=True)
    manifestations = records if manifestations is None else manifestations
    holdings = records if holdings is None else holdings
    title_keys = title_keys or [f"title{n}" for n in range(records)]
    statuses = statuses or ["active"] * records
    con = duckdb.connect(str(folder / "catalogue.duckdb"))
    con.execute("create table records (record_key varchar, library_id varchar, status varchar, title_key varchar)")
    con.execute("insert into records select unnest(?), 'L1', unnest(?), unnest(?::varchar[])",
                [[f"L1:{n}" for n in range(records)], statuses, title_keys])
    con.execute("create table record_manifestation as select record_key, 'm' || row_number() over () as manifestation_id from records")
    con.execute(f"create table manifestations as select 'm' || range as manifestation_id from range({manifestations})")
    con.execute(f"create table holdings_distribution as select 'm' || range as manifestation_id, 'L1' as library_id from range({holdings})")
    con.execute(f"create table quarantine as select 'L1' as library_id, range as position from range({quarantined})")
    con.close()
    counts = {"records": records, "manifestations": manifestations, "holdings_distribution": holdings}
    (folder / "manifest.json").write_text(json.dumps({"snapshot_id": folder.name, "counts": counts}), encoding="utf-8")
    return folder


def _by_name(results):
    return {r.name: r for r in results}


@pytest.mark.parametrize("records, passed", [(80, True), (79, False), (0, False)])
def test_records_may_shrink_by_max_shrink_and_no_more(tmp_path, records, passed):
    parent = _snapshot(tmp_path / "parent", records=100)
    new = _snapshot(tmp_path / "new", records=records, manifestations=100, holdings=100)
    results = _by_name(check_snapshot(new, parent, Thresholds(max_shrink=0.2)))
    assert results["row_counts.records"].passed is passed
    assert "against 100 in the parent, allowed at least 80" in results["row_counts.records"].detail
    assert results["row_counts.manifestations"].passed and results["row_counts.holdings_distribution"].passed
    if not passed:
        with pytest.raises(QualityCheckFailed, match="row_counts.records"):
            enforce("new", list(results.values()))


@pytest.mark.parametrize("table", ["manifestations", "holdings_distribution"])
def test_every_counted_table_is_bounded(tmp_path, table):
    parent = _snapshot(tmp_path / "parent", records=100)
    new = _snapshot(tmp_path / "new", records=100, **{"manifestations" if table == "manifestations" else "holdings": 50})
    results = _by_name(check_snapshot(new, parent, Thresholds()))
    assert not results[f"row_counts.{table}"].passed and results["row_counts.records"].passed


def test_growth_is_bounded_once_the_parent_is_large(tmp_path):
    small_parent = _snapshot(tmp_path / "small", records=10)
    grown = _snapshot(tmp_path / "grown", records=100)
    assert _by_name(check_snapshot(grown, small_parent, Thresholds()))["row_counts.records"].passed  # a young catalogue grows fast
    n = MIN_RECORDS_FOR_GROWTH
    parent = _snapshot(tmp_path / "parent", records=n)
    within = _snapshot(tmp_path / "within", records=3 * n)
    beyond = _snapshot(tmp_path / "beyond", records=3 * n + 1)
    assert _by_name(check_snapshot(within, parent, Thresholds(max_growth=3.0)))["row_counts.records"].passed
    result = _by_name(check_snapshot(beyond, parent, Thresholds(max_growth=3.0)))["row_counts.records"]
    assert not result.passed and f"allowed [{0.8 * n:,.0f}, {3 * n:,.0f}]" in result.detail


def test_the_first_snapshot_has_nothing_to_compare_with(tmp_path):
    results = _by_name(check_snapshot(_snapshot(tmp_path / "first", records=1), None, Thresholds()))
    assert results["row_counts"].passed and all(r.passed for r in results.values())


def test_thresholds_come_from_the_environment_and_params_override(monkeypatch):
    monkeypatch.setenv("UNIONCAT_CHECK_MAX_SHRINK", "0.5")
    assert Thresholds.from_env().max_shrink == 0.5
    assert Thresholds.from_env(max_shrink=0.9, max_quarantine_rate=None) == Thresholds(max_shrink=0.9)


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_an_active_record_without_a_title_key_fails(tmp_path, blank):
    keys = [f"title{n}" for n in range(10)]
    keys[3] = blank
    new = _snapshot(tmp_path / "new", title_keys=keys)
    results = _by_name(check_snapshot(new, None, Thresholds()))
    assert not results["title_keys"].passed
    assert results["title_keys"].detail == "1 active record(s) without one, e.g. ['L1:3']"
    assert [r.name for r in results.values() if not r.passed] == ["title_keys"]
    with pytest.raises(QualityCheckFailed, match=r"title_keys: 1 active record\(s\) without one"):
        enforce("new", list(results.values()))


def test_a_deleted_record_needs_no_title_key(tmp_path):
    keys = [f"title{n}" for n in range(10)]
    keys[3] = ""
    statuses = ["active"] * 10
    statuses[3] = "deleted"
    new = _snapshot(tmp_path / "new", title_keys=keys, statuses=statuses)
    assert _by_name(check_snapshot(new, None, Thresholds()))["title_keys"].passed


def test_an_active_record_in_no_manifestation_fails(tmp_path):
    new = _snapshot(tmp_path / "new")
    con = duckdb.connect(str(new / "catalogue.duckdb"))
    con.execute("delete from record_manifestation where record_key = 'L1:5'")
    con.close()
    results = _by_name(check_snapshot(new, None, Thresholds()))
    assert [r.name for r in results.values() if not r.passed] == ["records_linked"]
    assert results["records_linked"].detail == "1 active record(s) in no manifestation, e.g. ['L1:5']"


def test_records_linked_counts_active_records_not_rows(tmp_path):
    """A deleted record's row in record_manifestation does not stand for a missing active one,
    although the two tables then have as many rows."""
    statuses = ["active"] * 10
    statuses[3] = "deleted"
    new = _snapshot(tmp_path / "new", statuses=statuses)
    assert _by_name(check_snapshot(new, None, Thresholds()))["records_linked"].passed
    con = duckdb.connect(str(new / "catalogue.duckdb"))
    con.execute("delete from record_manifestation where record_key = 'L1:5'")
    con.close()
    results = _by_name(check_snapshot(new, None, Thresholds()))
    assert results["records_linked"].detail == "1 active record(s) in no manifestation, e.g. ['L1:5']"
