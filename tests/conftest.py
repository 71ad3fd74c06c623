"""Shared fixtures: the real test data beside the repo, small registries of
file libraries, and an isolated embedded Airflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
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
