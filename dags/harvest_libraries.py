"""Airflow DAG: harvest every enabled library of sources.toml (one mapped task per library)."""

from unioncat.orchestration import harvest_libraries_dag

harvest_libraries = harvest_libraries_dag()
