"""The Airflow side: DAG factories for `dags/` and an in-process runner.

DAG files stay thin and cheap to parse: this module imports only the Airflow
SDK at module level; the stage code is imported inside the tasks.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from unioncat.settings import Settings

HARVEST_ASSET = Asset("unioncat://landing")
CATALOGUE_ASSET = Asset("unioncat://published/current")
_DEFAULT_ARGS = {"owner": "unioncat", "retries": 2, "retry_exponential_backoff": True}


def _settings() -> Settings:
    return Settings.resolve()


def _label_map_index(library_id: str) -> None:
    get_current_context()["library_id"] = library_id


@task
def enabled_libraries(params: dict | None = None) -> list[str]:
    """Ids of the libraries to work on: one (the `library` param) or all enabled."""
    from unioncat.pipeline import registry

    libraries = registry(_settings()).enabled()
    wanted = (params or {}).get("library") or ""
    ids = [lib.id for lib in libraries if not wanted or lib.id == wanted]
    if not ids:
        raise ValueError(f"no enabled library matches {wanted!r} in {_settings().sources_path}")
    return ids


def harvest_libraries_dag():
    @dag(
        dag_id="harvest_libraries",
        schedule=None,
        catchup=False,
        default_args=_DEFAULT_ARGS,
        tags=["unioncat"],
        params={"library": Param("", type="string", description="harvest only this library id (empty: all enabled)")},
        doc_md="Harvest every enabled library of `sources.toml` into the landing zone, one mapped task per library.",
    )
    def harvest_libraries():
        @task(outlets=[HARVEST_ASSET], map_index_template="{{ library_id }}")
        def harvest(library_id: str) -> dict:
            from unioncat.pipeline import harvest_library, new_run_id, registry

            _label_map_index(library_id)
            settings = _settings()
            run_id = get_current_context()["run_id"]
            result = harvest_library(settings, registry(settings).get(library_id), _safe(run_id) or new_run_id())
            print(result.summary())
            return {"library_id": library_id, "pages": result.pages, "records": result.records}

        harvest.expand(library_id=enabled_libraries())

    return harvest_libraries()


def build_catalogue_dag():
    @dag(
        dag_id="build_catalogue",
        schedule=[HARVEST_ASSET],
        catchup=False,
        default_args=_DEFAULT_ARGS,
        tags=["unioncat"],
        params={
            "library": Param("", type="string", description="transform only this library id (empty: all enabled)"),
            "full": Param(False, type="boolean", description="re-transform every library even if unchanged"),
        },
        doc_md="Transform landed files, deduplicate into manifestations, publish a snapshot.",
    )
    def build_catalogue():
        @task(map_index_template="{{ library_id }}")
        def transform(library_id: str, params: dict | None = None) -> dict:
            from unioncat.pipeline import registry, transform

            _label_map_index(library_id)
            settings = _settings()
            summary = transform(settings, registry(settings).get(library_id), full=bool((params or {}).get("full")))
            print(summary.line())
            return {"library_id": library_id, "records": summary.records, "quarantined": summary.quarantined}

        @task
        def dedup() -> dict:
            from unioncat.pipeline import dedup, registry

            settings = _settings()
            summary = dedup(settings, list(registry(settings).enabled()))
            print(summary.line())
            return {"records": summary.records, "manifestations": summary.manifestations}

        @task(outlets=[CATALOGUE_ASSET])
        def publish() -> dict:
            from unioncat.pipeline import publish_snapshot, registry

            settings = _settings()
            summary = publish_snapshot(settings, list(registry(settings).enabled()))
            print(summary.line())
            return {"snapshot_id": summary.snapshot_id, "path": str(summary.path), **summary.counts}

        transformed = transform.expand(library_id=enabled_libraries())
        transformed >> dedup() >> publish()

    return build_catalogue()


def _safe(run_id: str) -> str:
    """Airflow run ids (`manual__2026-11-25T09:00:00+00:00`) as folder names."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in run_id)
