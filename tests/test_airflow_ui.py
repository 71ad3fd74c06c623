"""The README's Airflow UI path, for real: `unioncat airflow standalone`
(scheduler, API server, LocalExecutor on SQLite), then what an engineer does
in the UI, through the REST API: unpause, trigger the harvest, watch it
succeed, and see the Asset-scheduled build publish a catalogue.

Slow (a minute or two): `bash scripts/test -m slow`."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from conftest import REPO, write_registry
from unioncat.network.zebra import free_port

pytestmark = pytest.mark.slow
STARTUP_SECONDS = 240
RUN_SECONDS = 600


def _poll(what, probe, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(2)
    raise AssertionError(f"gave up waiting for {what} after {seconds} s")


@pytest.fixture()
def standalone(tmp_path):
    sources = write_registry(tmp_path, {"P01": ("province", [REPO / "demo" / "real" / "sample_cnmarcxml.xml"]),
                                        "C01": ("city", [REPO / "demo" / "real" / "loc_books_300.mrc"])})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # not the test session's Airflow
    env["AIRFLOW__API__PORT"] = str(port)
    log = (tmp_path / "standalone.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "unioncat.cli", "airflow", "--sources", str(sources), "--data-dir", str(tmp_path / "var"), "standalone"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert process.poll() is None, (tmp_path / "standalone.log").read_text(errors="replace")[-3000:]
            return _ok(f"{base}/api/v2/monitor/health")

        _poll("the API server", up, STARTUP_SECONDS)
        yield base, tmp_path / "var"
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the whole group: scheduler, workers, API server
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _ok(url):
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def test_trigger_from_the_api_and_watch_both_dags_succeed(standalone):
    base, data_dir = standalone
    passwords = data_dir / "airflow" / "simple_auth_manager_passwords.json.generated"
    password = _poll("the generated admin password", lambda: passwords.exists() and json.loads(passwords.read_text())["admin"], 60)
    token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10).json()["access_token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    for dag_id in ("harvest_libraries", "build_catalogue"):
        _poll(f"{dag_id} to be parsed", lambda: api.get(f"{base}/api/v2/dags/{dag_id}", timeout=10).ok, STARTUP_SECONDS)
        assert api.patch(f"{base}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=10).ok
    run = api.post(f"{base}/api/v2/dags/harvest_libraries/dagRuns", json={"logical_date": None}, timeout=10).json()

    def finished(dag_id, run_id):
        state = api.get(f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=10).json()["state"]
        return state if state in ("success", "failed") else None

    assert _poll("the harvest run", lambda: finished("harvest_libraries", run["dag_run_id"]), RUN_SECONDS) == "success"
    build_runs = _poll("the Asset-triggered build", lambda: api.get(f"{base}/api/v2/dags/build_catalogue/dagRuns", timeout=10).json()["dag_runs"], 120)
    assert _poll("the build run", lambda: finished("build_catalogue", build_runs[0]["dag_run_id"]), RUN_SECONDS) == "success"
    manifest = json.loads((data_dir / "published" / "current" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["records"] > 300
