"""Credentials come from UNIONCAT_CONN_<ID> or from Airflow connections, and go nowhere else:
a planted password is in no landed page, state file, staging or dedup file, snapshot file (the
DuckDB catalogue's bytes included), in no file Airflow wrote (its home: logs, database) and in
nothing `unioncat run`, the DAGs' task logs and `unioncat status` print, also when a library with
credentials fails.

The Airflow path is the one a deployment uses: connections defined as AIRFLOW_CONN_<CONN_ID>
environment variables (JSON or URI form), which Airflow 3 reads through its environment secrets
backend without a metadata database. With no UNIONCAT_CONN_* set, a library whose conn_id
finds no credentials fails, and the Z39.50 server refuses a session without the password: the
run succeeding for those libraries proves the credentials came through Airflow."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from faults.checks import LOC_FILE, REPO
from harvesters.errors import HarvestError, redact
from unioncat.network.zebra import ZebraServer, free_port

pytestmark = pytest.mark.timeout(180)

Z3950_SECRET = "Zs3cret-9f1c2e"
HTTP_SECRET = "Hs3cret-77ab04"
ACCOUNTS = {"ZEB_CONN": ("harvester", Z3950_SECRET), "OAI_CONN": ("oaiuser", HTTP_SECRET), "SRU_CONN": ("sruuser", HTTP_SECRET),
            "DOWN_CONN": ("downuser", HTTP_SECRET)}


def forms(user: str, secret: str) -> list[bytes]:
    """The secret as it could leak: plain, in UTF-16, and as an HTTP Basic credential."""
    basic = base64.b64encode(f"{user}:{secret}".encode())
    return [secret.encode(), secret.encode("utf-16-le"), basic]


def registry(z3950_endpoint: str, oai_url: str, sru_url: str) -> str:
    libraries = [("S01", "z3950", z3950_endpoint, "zeb_conn"), ("S02", "oai", oai_url, "oai_conn"),
                 ("S03", "sru", sru_url, "sru_conn"), ("S04", "sru", f"http://127.0.0.1:{free_port()}/LOC", "down_conn")]
    return "".join(f'[[library]]\nid = "{id_}"\nname = "密码测试{n}"\ncity = "杭州"\nlevel = "city"\nprotocol = "{protocol}"\n'
                   f'endpoint = "{endpoint}"\nsyntax = "marc21"\nconn_id = "{conn}"\n\n'
                   for n, (id_, protocol, endpoint, conn) in enumerate(libraries))


def credential_environment(source: str, airflow_home: Path) -> dict[str, str]:
    """The environment of the run: the accounts as UNIONCAT_CONN_<ID>, or as Airflow connections
    (alternately JSON and URI, the password percent-encoded) with no UNIONCAT_CONN_* at all; an
    Airflow home of the test's own either way, so that whatever Airflow writes is searched too."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("UNIONCAT_CONN_", "AIRFLOW_CONN_"))}
    env.update(AIRFLOW_HOME=str(airflow_home), AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(airflow_home / "logs"),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}")
    for n, (name, (user, secret)) in enumerate(ACCOUNTS.items()):
        if source == "unioncat_env":
            env[f"UNIONCAT_CONN_{name}"] = f"{user}:{secret}"
        elif n % 2 == 0:
            env[f"AIRFLOW_CONN_{name}"] = json.dumps({"conn_type": "generic", "login": user, "password": secret})
        else:
            env[f"AIRFLOW_CONN_{name}"] = f"generic://{user}:{quote(secret, safe='')}@opac.example.cn"
    return env


# The DAGs through dag.test(), every task's log at INFO on the console, where it is searched.
DAG_RUN = ("import sys; from pathlib import Path; from unioncat.settings import Settings; "
           "from unioncat.airflow_env import run_dags_in_process; "
           "states = run_dags_in_process(Settings.resolve(Path(sys.argv[1]), Path(sys.argv[2]))); "
           "sys.exit(0 if states['build_catalogue'] == 'success' else 2)")


@pytest.mark.parametrize("source, runner", [("unioncat_env", "cli"), ("airflow_connection", "cli"), ("airflow_connection", "dags")])
def test_a_planted_password_is_in_no_output_and_no_file(tmp_path, loc_zebra, loc_oai, source, runner):
    with ZebraServer(tmp_path / "guarded", {"LOC": [LOC_FILE]}, accounts={"harvester": Z3950_SECRET}) as guarded:
        sources = tmp_path / "sources.toml"
        sources.write_text(registry(guarded.z3950_endpoint("LOC"), loc_oai.url, loc_zebra.sru_url("LOC")), encoding="utf-8")
        env = credential_environment(source, tmp_path / "airflow")
        common = ["--sources", str(sources), "--data-dir", str(tmp_path / "data")]
        if runner == "dags":
            env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
            command = ["-c", DAG_RUN, str(sources), str(tmp_path / "data")]
        else:
            command = ["-m", "unioncat.cli", "run", *common]
        run = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, timeout=150)
        status = subprocess.run([sys.executable, "-m", "unioncat.cli", "status", *common], cwd=REPO, env=env,
                                capture_output=True, timeout=60)
    if runner == "dags":  # the harvest of S04 failed, the build published the others
        assert run.returncode == 0 and b"S04" in run.stdout + run.stderr, (run.stdout + run.stderr).decode()[-3000:]
    else:
        assert run.returncode == 1 and b"S04" in run.stderr, run.stderr.decode()  # only the library that is down failed
    assert b"harvest failed" in status.stdout and b"S04" in status.stdout
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name == "catalogue.duckdb" for p in files)
    files += [p for p in (tmp_path / "airflow").rglob("*") if p.is_file()]
    assert {"S01", "S02", "S03"} <= {p.parts[p.parts.index("landing") + 1] for p in files if "landing" in p.parts}
    leaks = [(where, form) for user, secret in ACCOUNTS.values() for form in forms(user, secret)
             for where, data in [("run output", run.stdout + run.stderr), ("status output", status.stdout + status.stderr),
                                 *((str(p), p.read_bytes()) for p in files)]
             if form in data]
    assert leaks == []


@pytest.mark.parametrize("message, shown", [
    ("http://harvester:pw@opac.example.cn/oai: HTTP 500", "http://***@opac.example.cn/oai: HTTP 500"),
    ("https://token@sru.example.cn:8080/db and ftp://a:b@c", "https://***@sru.example.cn:8080/db and ftp://***@c"),
    ("127.0.0.1:210/LOC: Timeout", "127.0.0.1:210/LOC: Timeout"),
])
def test_error_messages_never_carry_credentials_in_urls(message, shown):
    error = HarvestError("ZJ001", message)
    assert str(error) == f"ZJ001: {shown}" and redact(message) == shown
    # as a harvest worker process sends it back (unioncat.pipeline.run_all)
    sent = pickle.dumps(error)
    assert message.encode() not in sent or message == shown
    back = pickle.loads(sent)
    assert type(back) is HarvestError and str(back) == str(error) and back.library_id == "ZJ001"
