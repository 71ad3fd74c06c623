"""The launcher behind `unioncat airflow ...` and `unioncat demo`: which Airflow settings it
supplies (and which it leaves to airflow.cfg or the environment, as a scaled-out deployment
sets them), the secrets every Airflow process must share, and `unioncat airflow init`, which
migrates the metadata database and creates the harvest pools without clobbering resized ones."""

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from unioncat.airflow_env import SECRET_VARIABLES, SECRETS_FILE, embedded_environment
from unioncat.orchestration import POOL_SLOTS
from unioncat.settings import Settings


def _settings(tmp_path):
    return Settings(REPO / "sources.toml", tmp_path / "var")


def test_the_embedded_default_is_sqlite_under_the_data_dir(tmp_path):
    env = embedded_environment(_settings(tmp_path), {})
    home = tmp_path / "var" / "airflow"
    assert env["AIRFLOW_HOME"] == str(home) and env["AIRFLOW_CONFIG"] == str(REPO / "airflow.cfg")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert env["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "WARNING"  # dag.test: the run's summary, not Airflow's chatter
    assert "AIRFLOW__API_AUTH__JWT_SECRET" not in env and env["AIRFLOW__CORE__FERNET_KEY"]


def test_the_launcher_points_task_workers_at_the_api_port(tmp_path):
    env = embedded_environment(_settings(tmp_path), {"AIRFLOW__API__PORT": "8123"}, launcher=True)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8123/execution/"
    assert "AIRFLOW__LOGGING__LOGGING_LEVEL" not in env  # the UI's task logs want INFO
    assert "AIRFLOW__CORE__PARALLELISM" not in env  # the repo's airflow.cfg says 4 ...
    bare = tmp_path / "bare.cfg"
    bare.write_text("[core]\nload_examples = False\n", encoding="utf-8")
    assert embedded_environment(_settings(tmp_path), {"AIRFLOW_CONFIG": str(bare)}, launcher=True)["AIRFLOW__CORE__PARALLELISM"] == "4"
    behind_proxy = embedded_environment(_settings(tmp_path), {"AIRFLOW__API__BASE_URL": "https://airflow.example.cn"}, launcher=True)
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL" not in behind_proxy  # Airflow derives it from base_url


def test_what_airflow_cfg_or_the_environment_sets_is_left_alone(tmp_path):
    config = tmp_path / "airflow.cfg"
    config.write_text("[core]\nexecutor = CeleryExecutor\nparallelism = 64\n"
                      "[database]\nsql_alchemy_conn = postgresql+psycopg2://airflow@db/airflow\n"
                      "[api_auth]\njwt_secret = from-the-file\n", encoding="utf-8")
    env = embedded_environment(_settings(tmp_path), {"AIRFLOW_CONFIG": str(config), "AIRFLOW__CORE__DAGS_FOLDER": "/srv/dags"},
                               launcher=True)
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__PARALLELISM", "AIRFLOW__CORE__DAGS_FOLDER",
                 "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_CONFIG"):
        assert name not in env, name
    assert env["AIRFLOW__API__SECRET_KEY"] and env["AIRFLOW__CORE__FERNET_KEY"]


def test_every_airflow_process_gets_the_same_secrets_from_the_shared_home(tmp_path):
    """The scheduler signs each task's token, the API server checks it: one JWT secret for all,
    kept (0600) in AIRFLOW_HOME, so workers sharing the data dir agree too."""
    first = embedded_environment(_settings(tmp_path), {}, launcher=True)
    again = embedded_environment(_settings(tmp_path), {}, launcher=True)
    secrets = {name: first[name] for name in SECRET_VARIABLES}
    assert all(secrets.values()) and len(set(secrets.values())) == 3
    assert {name: again[name] for name in SECRET_VARIABLES} == secrets
    path = tmp_path / "var" / "airflow" / SECRETS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = embedded_environment(Settings(REPO / "sources.toml", tmp_path / "elsewhere"), {}, launcher=True)
    assert other["AIRFLOW__API_AUTH__JWT_SECRET"] != secrets["AIRFLOW__API_AUTH__JWT_SECRET"]  # per deployment, not fixed


def _unioncat(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # not the test session's Airflow
    command = [str(Path(sys.executable).with_name("unioncat")), "airflow", "--data-dir", str(tmp_path / "var"), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _pools(tmp_path):
    with sqlite3.connect(tmp_path / "var" / "airflow" / "airflow.db") as con:
        return dict(con.execute("select pool, slots from slot_pool where pool like 'unioncat_%'").fetchall())


def test_airflow_init_creates_the_pools_and_keeps_an_operators_sizes(tmp_path):
    done = _unioncat(tmp_path, "init")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "airflow: database migrated; pools unioncat_oai (4 slots)" in done.stdout
    assert _pools(tmp_path) == {f"unioncat_{protocol}": slots for protocol, slots in POOL_SLOTS.items()}
    with sqlite3.connect(tmp_path / "var" / "airflow" / "airflow.db") as con:  # what `airflow pools set unioncat_z3950 16 ...` does
        con.execute("update slot_pool set slots = 16 where pool = 'unioncat_z3950'")
    assert _unioncat(tmp_path, "init").returncode == 0
    assert _pools(tmp_path)["unioncat_z3950"] == 16 and _pools(tmp_path)["unioncat_oai"] == POOL_SLOTS["oai"]
