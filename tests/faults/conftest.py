"""Fixtures of the fault-injection suite: one real Zebra (Z39.50 + SRU) and one real OAI-PMH
server, both holding the 300 real LoC records of the demo (faults.checks.LOC_FILE), started once
for the session; the record store behind the OAI-PMH server, for test-local servers
(faults.endless_oai)."""

from __future__ import annotations

import pytest

from faults.checks import LOC_FILE
from faults.stages import Baseline, run_baseline
from unioncat.network.oai_server import OAIServer, RecordStore
from unioncat.network.zebra import ZebraServer
from unioncat.settings import Settings

OAI_PAGE_SIZE = 25


@pytest.fixture(scope="session")
def loc_zebra(tmp_path_factory) -> ZebraServer:
    with ZebraServer(tmp_path_factory.mktemp("zebra-faults"), {"LOC": [LOC_FILE]}) as server:
        yield server


@pytest.fixture(scope="session")
def loc_store() -> RecordStore:
    """The 300 LoC records as an OAI-PMH repository holds them, stamped over three years (so that a
    harvest takes several windows); read only."""
    store = RecordStore()
    for n, record in enumerate(LOC_FILE.read_bytes().split(b"\x1d")[:-1]):
        store.upsert(record + b"\x1d", f"{2019 + n % 3}-05-{1 + n % 28:02d}T10:00:00Z")
    return store


@pytest.fixture(scope="session")
def loc_oai(loc_store) -> OAIServer:
    with OAIServer(loc_store, page_size=OAI_PAGE_SIZE) as server:
        yield server


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "sources.toml", tmp_path / "data")


@pytest.fixture(scope="session")
def province_baseline(tmp_path_factory) -> Baseline:
    """Four file libraries of the demo generator run stage by stage, uninterrupted."""
    baseline = run_baseline(tmp_path_factory.mktemp("province"))
    yield baseline
    baseline.runner.close()
