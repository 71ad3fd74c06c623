"""The local library network end to end: generated catalogues served by a
real Zebra (Z39.50 and SRU) and the OAI-PMH server, harvested over each
protocol, transformed, deduplicated and published; also in the background
(`unioncat network start|status|stop`)."""

import csv
import socket

import duckdb
import pytest

from unioncat.cli import main
from unioncat.demo import drops_root
from unioncat.network.province import LibraryNetwork
from unioncat.pipeline import registry, run_all
from unioncat.province import write_demo_drops
from unioncat.settings import Settings

PROTOCOLS = {"N01": ("province", "z3950"), "N02": ("city", "sru"), "N03": ("city", "oai"), "N04": ("county", "file"), "N05": ("county", "z3950")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def province(tmp_path):
    zebra, oai = _free_port(), _free_port()
    endpoints = {"z3950": f"127.0.0.1:{zebra}/{{id}}", "sru": f"http://127.0.0.1:{zebra}/{{id}}",
                 "oai": f"http://127.0.0.1:{oai}/oai/{{id}}", "file": "demo/drops/{id}"}
    tables = [
        f'[[library]]\nid = "{library_id}"\nname = "网络图书馆{library_id}"\ncity = "杭州"\nlevel = "{level}"\n'
        f'protocol = "{protocol}"\nendpoint = "{endpoints[protocol].format(id=library_id)}"\n'
        for library_id, (level, protocol) in PROTOCOLS.items()
    ]
    (tmp_path / "sources.toml").write_text("\n".join(tables), encoding="utf-8")
    settings = Settings.resolve(tmp_path / "sources.toml", tmp_path / "var")
    libraries = list(registry(settings).enabled())
    summary = write_demo_drops(libraries, drops_root(settings, libraries), titles=150)
    return settings, libraries, summary


def test_every_protocol_harvests_the_whole_catalogue(province):
    settings, libraries, summary = province
    with LibraryNetwork(settings, libraries, drops_root(settings, libraries)) as network:
        assert len(network.libraries) == 4
        result = run_all(settings, progress=lambda _: None)
    assert result.failed == {}
    expected = {}
    for row in csv.DictReader(summary.truth_path.open(encoding="utf-8")):
        library_id = row["record_key"].split(":")[0]
        expected[library_id] = expected.get(library_id, 0) + 1
    con = duckdb.connect(str(settings.current_snapshot / "catalogue.duckdb"), read_only=True)
    found = dict(con.execute("select library_id, count(*) from record_manifestation group by 1").fetchall())
    assert found == expected
    quarantined = dict(con.execute("select library_id, count(*) from quarantine group by 1").fetchall())
    assert sum(quarantined.values()) <= 1  # at most the one truncated dump (file-based only)


def test_a_library_whose_server_is_down_fails_alone(province):
    settings, libraries, _ = province
    with LibraryNetwork(settings, libraries, drops_root(settings, libraries)):
        run_all(settings, progress=lambda _: None)
    result = run_all(settings, progress=lambda _: None)  # network stopped: servers down
    assert set(result.failed) == {"N01", "N02", "N03", "N05"}
    con = duckdb.connect(str(settings.current_snapshot / "catalogue.duckdb"), read_only=True)
    kept = {library_id for (library_id,) in con.execute("select distinct library_id from records").fetchall()}
    assert kept == set(PROTOCOLS), "each failed library keeps its last good data"


def test_network_runs_in_the_background(province, capsys):
    settings, _, _ = province
    common = ["--sources", str(settings.sources_path), "--data-dir", str(settings.data_dir)]
    assert main(["network", "status", *common]) == 1
    try:
        assert main(["network", "start", *common]) == 0
        assert main(["network", "status", *common]) == 0
        assert "running" in capsys.readouterr().out
        assert main(["harvest", "--library", "N03", *common]) == 0
    finally:
        main(["network", "stop", *common])
    assert main(["network", "status", *common]) == 1
