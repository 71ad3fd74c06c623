"""Airflow DAG: transform → dedup → publish, scheduled on the harvest Asset."""

from unioncat.orchestration import build_catalogue_dag

build_catalogue = build_catalogue_dag()
