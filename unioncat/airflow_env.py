"""Run unioncat's DAGs with an embedded Airflow: project `airflow.cfg`, a
SQLite database under the data dir, tasks in-process via `dag.test()`.

Nothing here imports Airflow at module level: Airflow reads its configuration
when first imported, so the environment must be set before that.
"""

from __future__ import annotations

import os

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
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ["UNIONCAT_SOURCES"] = str(settings.sources_path)
    os.environ["UNIONCAT_DATA_DIR"] = str(settings.data_dir)


def run_dags_in_process(settings: Settings, run_conf: dict | None = None) -> dict[str, str]:
    """Run harvest_libraries then build_catalogue with `dag.test()`; returns each run's state."""
    configure_embedded_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb

    initdb()
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    states = {}
    for dag_id in DAG_IDS:
        dag_run = bag.dags[dag_id].test(run_conf=run_conf or {})
        states[dag_id] = str(dag_run.state)
    return states
