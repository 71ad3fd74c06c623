"""The embedded default: generate the demo province's file drops, then run
the pipeline (through Airflow unless asked not to) and print the result."""

from __future__ import annotations

from pathlib import Path

from unioncat.registry import Library, load_registry
from unioncat.settings import Settings


def drops_root(libraries: list[Library]) -> Path:
    """The one folder every file library's drop lives in (`<root>/<library id>`)."""
    roots = {lib.endpoint_path().parent for lib in libraries if lib.protocol == "file"}
    misplaced = [lib.id for lib in libraries if lib.protocol == "file" and lib.endpoint_path().name != lib.id]
    if len(roots) != 1 or misplaced:
        raise SystemExit(
            "the demo writes every file library's drop into <folder>/<library id>; "
            f"this registry's file endpoints do not follow that ({sorted(map(str, roots))}, {misplaced[:5]})"
        )
    return roots.pop()


def run_demo(settings: Settings, *, titles: int, use_airflow: bool) -> int:
    from unioncat.province import write_demo_drops
    from warehouse.status import catalogue_summary

    libraries = list(load_registry(settings.sources_path).enabled())
    root = drops_root(libraries)
    demo = write_demo_drops(libraries, root, titles=titles)
    print(f"demo province: {demo.records:,} records of {demo.manifestations:,} manifestations "
          f"in {demo.files} files for {demo.libraries} libraries under {root}", flush=True)
    if use_airflow:
        from unioncat.airflow_env import run_dags_in_process

        states = run_dags_in_process(settings, progress=lambda line: print(line, flush=True))
        failed = [dag_id for dag_id, state in states.items() if state != "success"]
    else:
        from unioncat.pipeline import run_all

        failed = list(run_all(settings, progress=lambda line: print(line, flush=True)).failed)
    print(catalogue_summary(settings))
    return 1 if failed else 0
