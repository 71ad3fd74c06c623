"""A small published demo province for the warehouse, report and docs tests: eight libraries
of the committed registry (province, three cities, four of their counties) as file drops of
the generated province, run once per session through the real pipeline."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from conftest import REPO
from unioncat.pipeline import registry, run_all
from unioncat.province import write_demo_drops
from unioncat.registry import load_registry
from unioncat.settings import Settings

LIBRARIES = ("ZJ001", "ZJ002", "ZJ003", "ZJ004", "ZJ013", "ZJ014", "ZJ026", "ZJ036")
TITLES = 150


def _registry_text() -> str:
    committed = {lib.id: lib for lib in load_registry(REPO / "sources.toml").libraries}
    return "\n".join(
        f'[[library]]\nid = "{lib.id}"\nname = "{lib.name}"\ncity = "{lib.city}"\nlevel = "{lib.level}"\n'
        f'protocol = "file"\nendpoint = "demo/drops/{lib.id}"\n'
        for lib in (committed[i] for i in LIBRARIES)
    )


@functools.cache
def published_demo(base: Path) -> Settings:
    """The demo province harvested, transformed, deduplicated and published under `base`/demo
    (once per session: pass tmp_path_factory.getbasetemp()). Treat it as read-only."""
    folder = base / "warehouse-demo"
    folder.mkdir()
    (folder / "sources.toml").write_text(_registry_text(), encoding="utf-8")
    settings = Settings.resolve(folder / "sources.toml", folder / "var")
    write_demo_drops(list(registry(settings).enabled()), folder / "demo" / "drops", titles=TITLES)
    assert run_all(settings, progress=lambda _: None).failed == {}
    return settings


def copy_inputs(settings: Settings, target: Path) -> Settings:
    """The demo's registry, drops and stage outputs (not its published snapshots) under `target`."""
    root = settings.sources_path.parent
    shutil.copy(settings.sources_path, target / "sources.toml")
    shutil.copytree(root / "demo", target / "demo")
    for stage in ("staging", "dedup", "state"):
        shutil.copytree(settings.data_dir / stage, target / "var" / stage)
    return Settings.resolve(target / "sources.toml", target / "var")
