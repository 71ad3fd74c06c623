"""The embedded default: generate the demo province's file drops, then run
the pipeline (through Airflow unless asked not to) and print the result."""

from __future__ import annotations

from pathlib import Path

from unioncat.registry import Library, load_registry
from unioncat.settings import Settings


def drops_root(settings: Settings, libraries: list[Library]) -> Path:
    """`demo/drops` beside the registry: every library's catalogue as its
    server (or, for file libraries, its drop folder) holds it."""
    root = settings.sources_path.parent / "demo" / "drops"
    misplaced = [lib.id for lib in libraries if lib.protocol == "file" and lib.endpoint_path().resolve() != (root / lib.id).resolve()]
    if misplaced:
        raise SystemExit(f"the demo writes each file library's drop to {root}/<library id>; these file endpoints point elsewhere: {misplaced[:5]}")
    return root


def run_demo(settings: Settings, *, titles: int, use_airflow: bool) -> int:
    from unioncat.network.province import LibraryNetwork
    from unioncat.province import write_demo_drops
    from warehouse.status import catalogue_summary

    libraries = list(load_registry(settings.sources_path).enabled())
    root = drops_root(settings, libraries)
    demo = write_demo_drops(libraries, root, titles=titles)
    print(f"demo province: {demo.records:,} records of {demo.manifestations:,} manifestations "
          f"in {demo.files} files for {demo.libraries} libraries under {root}", flush=True)
    with LibraryNetwork(settings, libraries, root) as network:
        print(f"library network: {len(network.libraries)} libraries served on loopback (Zebra Z39.50/SRU, OAI-PMH), "
              f"{len(libraries) - len(network.libraries)} file drops", flush=True)
        failed = _run_pipeline(settings, use_airflow)
    print(catalogue_summary(settings))
    return 1 if failed else 0


def _run_pipeline(settings: Settings, use_airflow: bool) -> list[str]:
    if use_airflow:
        from unioncat.airflow_env import run_dags_in_process

        states = run_dags_in_process(settings, progress=lambda line: print(line, flush=True))
        return [dag_id for dag_id, state in states.items() if state != "success"]
    from unioncat.pipeline import run_all

    return list(run_all(settings, progress=lambda line: print(line, flush=True)).failed)
