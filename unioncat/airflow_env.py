"""Run unioncat's DAGs with an embedded Airflow: project `airflow.cfg`, a
SQLite database under the data dir, tasks in-process via `dag.test()`.

Nothing here imports Airflow at module level: Airflow reads its configuration
when first imported, so the environment must be set before that.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter

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


def run_dags_in_process(settings: Settings, run_conf: dict | None = None, progress=print) -> dict[str, str]:
    """Run harvest_libraries then build_catalogue with `dag.test()`; returns each run's state."""
    configure_embedded_airflow(settings)
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")  # Airflow's import, not ours
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb

    initdb()
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
