"""DAG integrity: the DagBag imports cleanly and cheaply, and both DAGs run
for real with dag.test() against file libraries."""

import json
import subprocess
import sys

import duckdb
import pytest

from conftest import REPO, write_registry

HEAVY_MODULES = ("pyarrow", "duckdb", "pymarc", "lxml", "rapidfuzz", "pandas", "opencc")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"harvest_libraries", "build_catalogue"} <= set(dagbag.dags)


def test_dag_files_import_no_heavy_module_at_parse_time():
    probe = (
        "import sys, runpy, json, airflow.sdk\n"
        "before = set(sys.modules)\n"
        f"for name in ('harvest_libraries', 'build_catalogue'): runpy.run_path('{REPO}/dags/' + name + '.py')\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY_MODULES]
    assert heavy == []


def test_harvest_tasks_are_mapped_per_library_with_retries(dagbag):
    harvest = dagbag.dags["harvest_libraries"].get_task("harvest")
    assert harvest.retries >= 2 and harvest.map_index_template == "{{ library_id }}"
    build = dagbag.dags["build_catalogue"]
    assert [t.task_id for t in build.topological_sort()][-2:] == ["dedup", "publish"]


def test_both_dags_run_and_publish(dagbag, shared_data, tmp_path, monkeypatch):
    from airflow.utils.db import initdb

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
    for dag_id in ("harvest_libraries", "build_catalogue"):
        run = dagbag.dags[dag_id].test()
        assert run.state == "success", dag_id
    catalogue = tmp_path / "var" / "published" / "current" / "catalogue.duckdb"
    con = duckdb.connect(str(catalogue), read_only=True)
    assert con.execute("select count(*) from record_manifestation").fetchall()[0][0] == 12
