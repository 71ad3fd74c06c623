"""Shared fixtures: the real test data beside the repo, small registries of
file libraries, and an isolated embedded Airflow."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# Airflow reads its configuration once, at first import: isolate it before any
# test module can import it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="unioncat-airflow-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)  # each run made one and left it in /tmp
os.environ.update(
    AIRFLOW_HOME=str(_AIRFLOW_HOME),
    AIRFLOW_CONFIG=str(REPO / "airflow.cfg"),
    AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
    AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(_AIRFLOW_HOME / "logs"),
    UNIONCAT_RETRY_DELAY_SECONDS="1",  # a failing library's retries in dag.test() come quickly
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("UNIONCAT_REQUIRE_SHARED_DATA"):
            pytest.fail(f"UNIONCAT_REQUIRE_SHARED_DATA is set but {SHARED_DATA} is missing")
        pytest.skip(f"real test data not found at {SHARED_DATA} (CI has ../shared beside the repo; a user's clone does not)")
    return SHARED_DATA


def write_registry(folder: Path, libraries: dict[str, tuple[str, list[Path]]]) -> Path:
    """A sources.toml of file libraries: {id: (level, [files to drop])}."""
    tables = []
    for n, (library_id, (level, files)) in enumerate(libraries.items()):
        drop = folder / "drops" / library_id
        drop.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy(path, drop / path.name)
        tables.append(
            f'[[library]]\nid = "{library_id}"\nname = "测试图书馆{n}"\ncity = "杭州"\nlevel = "{level}"\n'
            f'protocol = "file"\nendpoint = "drops/{library_id}"\n'
        )
    sources = folder / "sources.toml"
    sources.write_text("\n".join(tables), encoding="utf-8")
    return sources
