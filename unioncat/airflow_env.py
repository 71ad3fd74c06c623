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


def configure_embedded_airflow(settings: Settings) -> None:
    """Point an in-process Airflow at the project config and a SQLite database
    under the data dir. Must run before anything imports `airflow.settings`."""
    home = settings.data_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(REPO_ROOT / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # dag.test() logs every task's lifecycle to the console; the run's own
        # summary is printed instead. Set INFO to see it all.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ["UNIONCAT_SOURCES"] = str(settings.sources_path)
    os.environ["UNIONCAT_DATA_DIR"] = str(settings.data_dir)


def ensure_pools() -> None:
    """Create (or resize) one pool per harvest protocol; a task in a missing pool never runs."""
    from airflow.models.pool import Pool

    from unioncat.orchestration import POOL_SLOTS, pool_name

    for protocol, slots in POOL_SLOTS.items():
        Pool.create_or_update_pool(pool_name(protocol), slots, f"concurrent {protocol} harvests", include_deferred=False)


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


STANDALONE_PARALLELISM = "4"  # the default 32 starts 32 task workers (~2 GB); 4 is plenty for a demo


def airflow_command(settings: Settings, args: list[str]) -> int:
    """Run the `airflow` CLI with the project's configuration, e.g. `standalone`, `dags list`.

    `standalone` first migrates the database and creates the harvest pools (a task
    in a missing pool is never scheduled), then replaces this process."""
    configure_embedded_airflow(settings)
    os.environ.pop("AIRFLOW__LOGGING__LOGGING_LEVEL", None)  # the UI's task logs want INFO
    os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", STANDALONE_PARALLELISM)
    if args[:1] == ["standalone"]:
        from airflow.utils.db import initdb

        initdb()
        ensure_pools()
        home = os.environ["AIRFLOW_HOME"]
        print(f"airflow: UI and API on http://localhost:{os.environ.get('AIRFLOW__API__PORT', '8080')}; user admin, "
              f"password in {home}/simple_auth_manager_passwords.json.generated", flush=True)
    airflow = Path(sys.executable).with_name("airflow")
    os.execv(str(airflow), [str(airflow), *args])
