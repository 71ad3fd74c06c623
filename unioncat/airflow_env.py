"""Run unioncat's DAGs with an embedded Airflow: project `airflow.cfg`, a
SQLite database under the data dir, tasks in-process via `dag.test()`.

Nothing here imports Airflow at module level: Airflow reads its configuration
when first imported, so the environment must be set before that.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from pathlib import Path

from unioncat.settings import REPO_ROOT, Settings

DAG_IDS = ("harvest_libraries", "build_catalogue")


STANDALONE_PARALLELISM = "4"  # the default 32 starts 32 task workers (~2 GB); 4 is plenty for a demo


def _set_in_config_file(config: Path) -> set[str]:
    """`AIRFLOW__SECTION__KEY` names of the options the config file sets: those the launcher leaves alone."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(config, encoding="utf-8")
    except configparser.Error:
        return set()
    return {f"AIRFLOW__{section.upper()}__{key.upper()}" for section in parser.sections() for key in parser[section]}


def embedded_environment(settings: Settings, environ: dict | None = None, *, launcher: bool = False) -> dict[str, str]:
    """The Airflow variables unioncat sets: defaults for what neither the environment nor the
    config file (`AIRFLOW_CONFIG`, default the repo's `airflow.cfg`) already sets. So the
    embedded default is SQLite under the data dir, and a scaled-out deployment that names its
    database, executor or parallelism in `airflow.cfg` or in the environment keeps them.

    `launcher`: for `unioncat airflow ...` (real Airflow processes) rather than `dag.test()`."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("AIRFLOW_HOME") or settings.data_dir / "airflow")
    config = Path(environ.get("AIRFLOW_CONFIG") or REPO_ROOT / "airflow.cfg")
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(config),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }
    if launcher:
        defaults["AIRFLOW__CORE__PARALLELISM"] = STANDALONE_PARALLELISM
        # Task workers report to the API server's execution API, which Airflow assumes on
        # localhost:8080 unless told: on another port every task would fail to start.
        if "AIRFLOW__API__BASE_URL" not in environ:
            defaults["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://localhost:{environ.get('AIRFLOW__API__PORT', '8080')}/execution/"
    else:
        # dag.test() logs every task's lifecycle to the console; the run's own
        # summary is printed instead. Set INFO to see it all.
        defaults["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    in_file = _set_in_config_file(config)
    chosen = {name: value for name, value in defaults.items() if name not in environ and name not in in_file}
    # In one process (dag.test) only the Fernet key matters: connections it reads were
    # encrypted by the UI's processes with the same key.
    wanted = SECRET_VARIABLES if launcher else ("AIRFLOW__CORE__FERNET_KEY",)
    missing_secrets = [name for name in wanted if name not in environ and name not in in_file]
    if missing_secrets:
        home.mkdir(parents=True, exist_ok=True)
        secrets = shared_secrets(home)
        chosen |= {name: secrets[name] for name in missing_secrets}
    return chosen


def configure_embedded_airflow(settings: Settings, *, launcher: bool = False) -> None:
    """Point Airflow at the project config and, unless configured otherwise, a SQLite database
    under the data dir. Must run before anything imports `airflow.settings`."""
    os.environ.update(embedded_environment(settings, launcher=launcher))
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ["UNIONCAT_SOURCES"] = str(settings.sources_path)
    os.environ["UNIONCAT_DATA_DIR"] = str(settings.data_dir)


SECRETS_FILE = "unioncat_secrets.json"
SECRET_VARIABLES = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY")


def shared_secrets(home: Path) -> dict[str, str]:
    """The keys every Airflow component must agree on, generated once into `home` (mode 0600).

    Airflow generates them only when it writes a fresh `airflow.cfg` into AIRFLOW_HOME; with
    the project's own `airflow.cfg` each process of `standalone` would draw its own JWT
    secret and the API server would refuse every task's token ("Invalid auth token")."""
    import base64
    import json
    import secrets

    path = home / SECRETS_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        stored = {}
    missing = {name for name in SECRET_VARIABLES if not stored.get(name)}
    if missing:
        fresh = {
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        stored |= {name: fresh[name] for name in missing}
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(stored, out)
        os.replace(temp, path)
    return {name: stored[name] for name in SECRET_VARIABLES}


def ensure_pools() -> dict[str, int]:
    """Create the missing harvest pools (one per protocol; a task in a missing pool is never
    scheduled). A pool that exists keeps its slots: an operator's `airflow pools set
    unioncat_z3950 16 ...` on a scaled-out deployment survives the next `unioncat airflow init`.
    Returns each pool's slots."""
    from airflow.models.pool import Pool

    from unioncat.orchestration import POOL_SLOTS, pool_name

    slots = {}
    for protocol, default in POOL_SLOTS.items():
        name = pool_name(protocol)
        pool = Pool.get_pool(name)
        if pool is None:
            Pool.create_or_update_pool(name, default, f"concurrent {protocol} harvests", include_deferred=False)
        slots[name] = pool.slots if pool is not None else default
    return slots


def run_dags_in_process(settings: Settings, run_conf: dict | None = None, progress=print) -> dict[str, str]:
    """Run harvest_libraries then build_catalogue with `dag.test()`; returns each run's state."""
    configure_embedded_airflow(settings)
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")  # Airflow's import, not ours
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb

    initdb()
    ensure_pools()
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    states = {}
    for dag_id in DAG_IDS:
        progress(f"airflow: running {dag_id} (dag.test, tasks in-process) ...")
        dag_run = bag.dags[dag_id].test(run_conf=run_conf or {})
        states[dag_id] = str(dag_run.state)
        task_states = Counter(str(ti.state) for ti in dag_run.get_task_instances())
        failed = sorted(f"{ti.task_id}[{ti.rendered_map_index or ti.map_index}]" for ti in dag_run.get_task_instances() if str(ti.state) == "failed")
        progress(
            f"airflow: {dag_id} {dag_run.state}: " + ", ".join(f"{n} {state}" for state, n in sorted(task_states.items()))
            + (f"; failed: {', '.join(failed)}" if failed else "")
        )
    return states


def airflow_command(settings: Settings, args: list[str]) -> int:
    """Run the `airflow` CLI with the project's configuration, e.g. `standalone`, `dags list`.

    `standalone` first migrates the database and creates the harvest pools (a task
    in a missing pool is never scheduled), then replaces this process. `init` does only
    that (and starts nothing): run it once against a scaled-out deployment's database."""
    configure_embedded_airflow(settings, launcher=True)
    if args[:1] in (["standalone"], ["init"]):
        from airflow.utils.db import initdb

        initdb()
        pools = ensure_pools()
        print("airflow: database migrated; pools " + ", ".join(f"{name} ({n} slots)" for name, n in pools.items()), flush=True)
        if args[:1] == ["init"]:
            return 0
        home = os.environ["AIRFLOW_HOME"]
        print(f"airflow: UI and API on http://localhost:{os.environ.get('AIRFLOW__API__PORT', '8080')}; user admin, "
              f"password in {home}/simple_auth_manager_passwords.json.generated", flush=True)
    airflow = Path(sys.executable).with_name("airflow")
    # `standalone` starts its scheduler, API server, ... as `airflow` found on PATH: this
    # environment's, even when unioncat was started by its full path outside `uv run`.
    os.environ["PATH"] = os.pathsep.join([str(airflow.parent), os.environ.get("PATH", "")])
    os.execv(str(airflow), [str(airflow), *args])
