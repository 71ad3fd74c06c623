"""DAG integrity: the DagBag imports cleanly and cheaply, the DAGs have the
shape data engineers rely on (pools, retries, timeouts, params, Assets), and
both run for real with dag.test(): publishing, a quality gate that stops the
swap, one-library runs and idempotent re-runs of a logical date."""

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from conftest import REPO, write_registry

HEAVY_MODULES = ("pyarrow", "duckdb", "pymarc", "lxml", "rapidfuzz", "pandas", "opencc", "requests")
PROTOCOLS = ("oai", "sru", "z3950", "file")
PARSE_BAR_SECONDS = 1.0


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"harvest_libraries", "build_catalogue"} <= set(dagbag.dags)


def test_dag_files_parse_without_heavy_modules_network_or_database():
    """Parsing runs every few seconds in the DAG processor: it must not import the
    data stack, open a socket or touch a database."""
    probe = (
        "import json, runpy, socket, sqlite3, sys, time, airflow.sdk\n"
        "def refuse(*a, **k): raise RuntimeError('I/O at parse time')\n"
        "socket.socket.connect = refuse; sqlite3.connect = refuse\n"
        "before, start = set(sys.modules), time.perf_counter()\n"
        f"for name in ('harvest_libraries', 'build_catalogue'): runpy.run_path('{REPO}/dags/' + name + '.py')\n"
        "print(json.dumps({'seconds': time.perf_counter() - start, 'modules': sorted(set(sys.modules) - before)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"both DAG files parsed in {parsed['seconds']:.3f} s")
    assert [m for m in parsed["modules"] if m.split(".")[0] in HEAVY_MODULES] == []
    # Issue 8's bar (a bar, not a benchmark): the DAG processor, with the Airflow SDK loaded as it
    # always is, imports both files in under a second. They take ~0.1 s; a slip into importing
    # the data stack (pyarrow + duckdb alone ~1 s) or any I/O at parse time trips it.
    assert parsed["seconds"] < PARSE_BAR_SECONDS


def test_the_dagbag_loads_each_dag_file_under_the_bar(dagbag):
    stats = {Path(stat.file).name: stat for stat in dagbag.dagbag_stats}
    assert set(stats) == {"harvest_libraries.py", "build_catalogue.py"}
    for name, stat in stats.items():
        assert stat.dag_num == 1, name
        assert stat.duration.total_seconds() < PARSE_BAR_SECONDS, f"{name} took {stat.duration}"


def test_harvest_dag_has_a_pooled_mapped_task_per_protocol(dagbag):
    from unioncat.orchestration import HARVEST_ASSET, POOL_SLOTS

    dag = dagbag.dags["harvest_libraries"]
    assert set(dag.params.keys()) == {"library", "full", "since"}
    for protocol in PROTOCOLS:
        task = dag.get_task(f"harvest_{protocol}")
        assert task.pool == f"unioncat_{protocol}" and protocol in POOL_SLOTS
        assert task.map_index_template == "{{ library_id }}"
        assert task.retries >= 2 and task.retry_exponential_backoff and task.execution_timeout is not None
        assert HARVEST_ASSET in task.outlets and task.on_failure_callback
        assert dag.get_task(f"plan_{protocol}").downstream_task_ids == {f"harvest_{protocol}", "harvest_summary"}
    assert dag.get_task("harvest_summary").trigger_rule == "all_done"


def test_build_dag_is_scheduled_on_harvests_and_gates_the_swap(dagbag):
    dag = dagbag.dags["build_catalogue"]
    order = [t.task_id for t in dag.topological_sort()]
    assert order[-5:] == ["dedup", "build_snapshot", "quality_checks", "promote", "build_summary"]
    assert dag.get_task("transform").map_index_template == "{{ library_id }}"
    assert {"library", "full", "max_shrink", "max_quarantine_rate"} <= set(dag.params.keys())
    assert [asset.name for asset in dag.timetable.asset_condition.objects] == ["unioncat://landing"]


@pytest.mark.parametrize("dag_id", ["build_catalogue", "harvest_libraries"])
def test_one_run_at_a_time_so_later_triggers_queue(dagbag, dag_id):
    """Every harvested library emits a landing event: without this, builds started by the
    first events would run concurrently with the ones after them, on the same staging and
    dedup files. (The scheduler then keeps a manual trigger `queued` and defers Asset events
    until the running build ends: tests/test_airflow_ui.py watches that for real.)"""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = dagbag.dags[dag_id]
    assert dag.max_active_runs == 1
    assert DagSerialization.from_dict(DagSerialization.to_dict(dag)).max_active_runs == 1  # what the scheduler reads


@pytest.fixture()
def province(shared_data, tmp_path, monkeypatch):
    from airflow.utils.db import initdb

    from unioncat.airflow_env import ensure_pools

    sources = write_registry(
        tmp_path,
        {
            "P01": ("province", [shared_data / "unimarc_cnmarc" / "cnmarc_bnu_alma_sru_dp2" / "sample_cnmarcxml.xml"]),
            "C01": ("city", [shared_data / "marc21" / "marc4j_tests" / "chabon.xml"]),
        },
    )
    monkeypatch.setenv("UNIONCAT_SOURCES", str(sources))
    monkeypatch.setenv("UNIONCAT_DATA_DIR", str(tmp_path / "var"))
    initdb()
    ensure_pools()
    return tmp_path


def _run(dagbag, dag_id, **kwargs):
    """dag.test() on a freshly parsed DAG: a run's conf stays in the DAG object's params."""
    from airflow.dag_processing.dagbag import DagBag

    run = DagBag(dag_folder=str(REPO / "dags")).dags[dag_id].test(**kwargs)
    return run, {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in run.get_task_instances()}


def _current(folder):
    snapshot = (folder / "var" / "published" / "current").resolve()
    return snapshot, json.loads((snapshot / "manifest.json").read_text(encoding="utf-8"))


def test_both_dags_run_publish_and_summarise(dagbag, province, capsys):
    harvest_run, harvest_states = _run(dagbag, "harvest_libraries")
    assert harvest_run.state == "success"
    assert harvest_states["harvest_file[0]"] == harvest_states["harvest_file[1]"] == "success"
    assert {harvest_states[f"harvest_{p}"] for p in ("oai", "sru", "z3950")} == {"skipped"}  # no such libraries
    build_run, build_states = _run(dagbag, "build_catalogue")
    assert build_run.state == "success", build_states
    snapshot, manifest = _current(province)
    con = duckdb.connect(str(snapshot / "catalogue.duckdb"), read_only=True)
    assert con.execute("select count(*) from record_manifestation").fetchall()[0][0] == manifest["counts"]["records"] == 12
    report = json.loads((province / "var" / "checks" / f"{manifest['snapshot_id']}.json").read_text(encoding="utf-8"))
    assert report["results"] and all(line.startswith("ok") for line in report["results"])
    out = capsys.readouterr().out
    assert "harvest summary: 2 succeeded, 0 failed, 0 skipped" in out and "build summary: 2 succeeded" in out


def _harvest_then_build_stops_at_the_gate(dagbag, province, before, capsys) -> str:
    """Harvest, build: the quality gate fails, `current` stays on `before`. The build's output."""
    assert _run(dagbag, "harvest_libraries")[0].state == "success"
    build_run, states = _run(dagbag, "build_catalogue")
    assert build_run.state == "failed"
    assert (states["build_snapshot"], states["quality_checks"], states["promote"]) == ("success", "failed", "upstream_failed")
    assert _current(province)[0] == before
    return capsys.readouterr().out


def test_a_failed_quality_check_keeps_the_previous_snapshot_current(dagbag, province, shared_data, capsys):
    _run(dagbag, "harvest_libraries")
    _run(dagbag, "build_catalogue")
    before, _ = _current(province)
    # C01's next export is mostly unreadable: far over the quarantine threshold.
    shutil.copy(shared_data / "marc21" / "pymarc_tests" / "bad_records.mrc", province / "drops" / "C01" / "bad_records.mrc")
    out = _harvest_then_build_stops_at_the_gate(dagbag, province, before, capsys)
    assert "FAIL quarantine_rate" in out and "C01" in out and "current not switched" in out
    assert _run(dagbag, "build_catalogue", run_conf={"max_quarantine_rate": 0.9})[0].state == "success"
    assert _current(province)[0] != before


def test_a_library_that_empties_its_drop_cannot_shrink_the_catalogue(dagbag, province, capsys):
    _run(dagbag, "harvest_libraries")
    _run(dagbag, "build_catalogue")
    before, manifest = _current(province)
    for path in (province / "drops" / "P01").iterdir():  # P01's export vanishes: most of the catalogue
        path.unlink()
    out = _harvest_then_build_stops_at_the_gate(dagbag, province, before, capsys)
    assert f"FAIL row_counts.records: 2 rows against {manifest['counts']['records']} in the parent, allowed at least" in out
    assert "current not switched" in out
    assert _run(dagbag, "build_catalogue", run_conf={"max_shrink": 0.95})[0].state == "success"  # the operator accepts it
    assert _current(province)[1]["counts"]["records"] == 2


def test_a_record_without_a_title_key_stops_the_swap(dagbag, province, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _run(dagbag, "harvest_libraries")
    _run(dagbag, "build_catalogue")
    before, _ = _current(province)
    # A transform bug (the transform itself falls back to `no-title:<key>`) blanks one record's key.
    staged = province / "var" / "staging" / "C01" / "records.parquet"
    table = pq.read_table(staged)
    keys = table.column("title_key").to_pylist()
    keys[0] = ""
    table = table.set_column(table.schema.get_field_index("title_key"), "title_key", pa.array(keys, type=table.schema.field("title_key").type))
    pq.write_table(table, staged)
    build_run, states = _run(dagbag, "build_catalogue")
    assert build_run.state == "failed"
    assert (states["quality_checks"], states["promote"]) == ("failed", "upstream_failed")
    assert _current(province)[0] == before
    out = capsys.readouterr().out
    assert f"FAIL title_keys: 1 active record(s) without one, e.g. ['{table.column('record_key')[0]}']" in out


def test_the_library_param_harvests_one_library(dagbag, province):
    run, states = _run(dagbag, "harvest_libraries", run_conf={"library": "C01"})
    assert run.state == "success"
    assert [key for key, state in states.items() if key.startswith("harvest_file[")] == ["harvest_file[0]"]
    assert not (province / "var" / "state" / "P01.json").exists()
    assert _run(dagbag, "harvest_libraries", run_conf={"library": "NOPE"})[0].state == "failed"


def test_the_full_param_lands_unchanged_drops_again(dagbag, province, capsys):
    assert _run(dagbag, "harvest_libraries")[0].state == "success"
    landed = {p.name for p in (province / "var" / "landing" / "C01").iterdir()}
    assert _run(dagbag, "harvest_libraries")[0].state == "success"  # incremental: nothing changed, nothing landed
    assert "C01: 0 page(s) landed (0 bytes, 0 records, 0 deleted), 1 unchanged" in capsys.readouterr().out
    run, states = _run(dagbag, "harvest_libraries", run_conf={"full": True})
    assert run.state == "success" and states["harvest_file[0]"] == states["harvest_file[1]"] == "success"
    assert "C01: 1 page(s) landed" in capsys.readouterr().out
    runs = {p.name: p for p in (province / "var" / "landing" / "C01").iterdir()}
    full_run = [runs[name] for name in set(runs) - landed if any(runs[name].iterdir())]
    assert len(full_run) == 1 and [p.name for p in full_run[0].iterdir()] == ["chabon.xml"]
    state = json.loads((province / "var" / "state" / "C01.json").read_text(encoding="utf-8"))
    assert state["files"]["chabon.xml"]["page"] == f"landing/C01/{full_run[0].name}/chabon.xml"  # the catalogue reads the new copy


def test_a_bad_since_param_fails_the_plan_once_and_names_it(dagbag, province, caplog):
    run, states = _run(dagbag, "harvest_libraries", run_conf={"since": "last tuesday"})
    assert run.state == "failed"
    assert {states[f"plan_{p}"] for p in PROTOCOLS} == {"failed"}
    assert not any(key.startswith("harvest_file[") for key in states)  # never expanded, so never retried per library
    assert not (province / "var" / "state" / "C01.json").exists()
    assert "the since param must be a date or time in ISO 8601" in caplog.text + "".join(
        p.read_text(errors="replace") for p in (province / "var").rglob("*.log"))


def test_rerunning_a_logical_date_publishes_the_same_content(dagbag, province):
    logical_date = datetime(2026, 11, 1, tzinfo=timezone.utc)
    hashes = []
    for _ in range(2):
        for dag_id in ("harvest_libraries", "build_catalogue"):
            assert _run(dagbag, dag_id, logical_date=logical_date)[0].state == "success"
        hashes.append(_current(province)[1]["content_hash"])
    assert hashes[0] == hashes[1]
