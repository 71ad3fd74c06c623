"""The README's Airflow UI path, for real and exactly as documented: `unioncat airflow
standalone` (scheduler, DAG processor, API server, LocalExecutor on SQLite; the launcher
creates the harvest pools), then what an engineer does, through the REST API: read the
generated admin password, get a token, unpause both DAGs, trigger `harvest_libraries`
with `{"logical_date": null}`, watch it succeed and the Asset-scheduled `build_catalogue`
publish a catalogue. A build triggered by hand while another runs waits in the queue
(`max_active_runs=1`) and succeeds after it.

Slow (a minute or two): `bash scripts/test -m slow tests/test_airflow_ui.py`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO, write_registry
from unioncat.network.zebra import free_port

pytestmark = pytest.mark.slow
STARTUP_SECONDS = 240
RUN_SECONDS = 600
ACTIVE = ("queued", "running")


def _poll(what, probe, seconds, every=2.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what} after {seconds} s")


def _ok(url):
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


@pytest.fixture()
def standalone(tmp_path):
    sources = write_registry(tmp_path, {"P01": ("province", [REPO / "demo" / "real" / "sample_cnmarcxml.xml"]),
                                        "C01": ("city", [REPO / "demo" / "real" / "loc_books_300.mrc"])})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # not the test session's Airflow
    env["AIRFLOW__API__PORT"] = str(port)
    log_path = tmp_path / "standalone.log"
    log = log_path.open("wb")
    # The documented command (`uv run unioncat airflow standalone`): the project's console script.
    unioncat = Path(sys.executable).with_name("unioncat")
    process = subprocess.Popen(
        [str(unioncat), "airflow", "--sources", str(sources), "--data-dir", str(tmp_path / "var"), "standalone"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            return _ok(f"{base}/api/v2/monitor/health")

        _poll("the API server", up, STARTUP_SECONDS)
        yield base, tmp_path / "var", log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the whole group: scheduler, workers, API server
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_the_documented_ui_path_harvests_builds_from_the_asset_and_queues_builds(standalone):
    base, data_dir, log_path = standalone
    passwords = data_dir / "airflow" / "simple_auth_manager_passwords.json.generated"
    assert f"password in {passwords}" in log_path.read_text(errors="replace")  # the launcher says where it is
    password = _poll("the generated admin password", lambda: passwords.exists() and json.loads(passwords.read_text())["admin"], 60)
    token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10).json()["access_token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    for dag_id in ("harvest_libraries", "build_catalogue"):
        _poll(f"{dag_id} to be parsed", lambda: api.get(f"{base}/api/v2/dags/{dag_id}", timeout=10).ok, STARTUP_SECONDS)
        assert api.patch(f"{base}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=10).ok
    pools = {p["name"]: p["slots"] for p in api.get(f"{base}/api/v2/pools", timeout=10).json()["pools"]}
    assert {"unioncat_oai", "unioncat_sru", "unioncat_z3950", "unioncat_file"} <= set(pools)
    harvest = api.post(f"{base}/api/v2/dags/harvest_libraries/dagRuns", json={"logical_date": None}, timeout=10)
    assert harvest.ok, harvest.text
    harvest_run = harvest.json()["dag_run_id"]

    def builds():
        return {run["dag_run_id"]: run for run in api.get(f"{base}/api/v2/dags/build_catalogue/dagRuns", timeout=10).json()["dag_runs"]}

    # As soon as the Asset-triggered build runs, trigger another build by hand: it must queue.
    first = _poll("an Asset-triggered build to run",
                  lambda: next((r for r in builds().values() if r["run_type"] == "asset_triggered" and r["state"] == "running"), None),
                  RUN_SECONDS, every=0.5)
    manual = api.post(f"{base}/api/v2/dags/build_catalogue/dagRuns", json={"logical_date": None}, timeout=10)
    assert manual.ok, manual.text
    manual_run = manual.json()["dag_run_id"]
    seen_queued_behind, most_running = False, 0

    def all_done():
        nonlocal seen_queued_behind, most_running
        runs = builds()
        running = [r for r in runs.values() if r["state"] == "running"]
        most_running = max(most_running, len(running))
        seen_queued_behind |= runs[manual_run]["state"] == "queued" and any(r["dag_run_id"] != manual_run for r in running)
        harvest_state = api.get(f"{base}/api/v2/dags/harvest_libraries/dagRuns/{harvest_run}", timeout=10).json()["state"]
        return runs if harvest_state not in ACTIVE and all(r["state"] not in ACTIVE for r in runs.values()) else None

    runs = _poll("the harvest and every build to finish", all_done, RUN_SECONDS, every=0.5)
    assert api.get(f"{base}/api/v2/dags/harvest_libraries/dagRuns/{harvest_run}", timeout=10).json()["state"] == "success"
    assert {run_id: r["state"] for run_id, r in runs.items()} == dict.fromkeys(runs, "success")
    assert most_running == 1 and seen_queued_behind  # max_active_runs=1: the manual build waited its turn

    events = api.get(f"{base}/api/v2/dags/build_catalogue/dagRuns/{first['dag_run_id']}/upstreamAssetEvents", timeout=10).json()
    assert events["asset_events"] and {e["name"] for e in events["asset_events"]} == {"unioncat://landing"}
    assert {(e["source_dag_id"], e["source_run_id"]) for e in events["asset_events"]} == {("harvest_libraries", harvest_run)}
    manifest = json.loads((data_dir / "published" / "current" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["records"] > 300
