"""The embedded default end to end, as `unioncat demo` runs it: the committed
registry's 102 libraries on the local library network, the generated
province, both DAGs through dag.test(), and the generator's ground truth;
then a library whose server is down fails alone while the catalogue is
published with its previous data."""

import csv
from collections import defaultdict

import duckdb
import pytest

from conftest import REPO
from unioncat.demo import drops_root
from unioncat.network.province import LibraryNetwork
from unioncat.network.zebra import free_port
from unioncat.pipeline import registry
from unioncat.province import write_demo_drops
from unioncat.settings import Settings


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from unioncat.airflow_env import run_dags_in_process

    folder = tmp_path_factory.mktemp("demo")
    # The committed registry, its network moved to free ports so that a running demo does not collide.
    text = (REPO / "sources.toml").read_text(encoding="utf-8")
    (folder / "sources.toml").write_text(text.replace(":9210/", f":{free_port()}/").replace(":9211/", f":{free_port()}/"), encoding="utf-8")
    settings = Settings.resolve(folder / "sources.toml", folder / "var")
    libraries = list(registry(settings).enabled())
    summary = write_demo_drops(libraries, drops_root(settings, libraries), titles=300)
    with pytest.MonkeyPatch.context() as env, LibraryNetwork(settings, libraries, drops_root(settings, libraries)):
        env.setenv("UNIONCAT_SOURCES", str(settings.sources_path))
        env.setenv("UNIONCAT_DATA_DIR", str(settings.data_dir))
        states = run_dags_in_process(settings, progress=lambda _: None)
    assert states == {"harvest_libraries": "success", "build_catalogue": "success"}
    con = duckdb.connect(str(settings.current_snapshot / "catalogue.duckdb"), read_only=True)
    return settings, summary, con


def test_demo_drops_go_where_the_registry_points(demo):
    settings, summary, _ = demo
    assert summary.libraries == 102
    assert all((settings.sources_path.parent / "demo" / "drops" / lib.id).is_dir() for lib in registry(settings).enabled())


def test_every_generated_record_is_in_the_catalogue_or_quarantine(demo):
    _, summary, con = demo
    linked, quarantined = con.execute("select (select count(*) from record_manifestation), (select count(*) from quarantine)").fetchall()[0]
    assert linked == summary.records  # truth.csv: every readable record
    assert quarantined == 1  # the one truncated county dump
    reason, library = con.execute("select reason, library_id from quarantine").fetchall()[0]
    assert (reason, library) == ("truncated_record", summary.truncated_library)


def test_no_manifestation_mixes_two_generated_books(demo):
    """Volumes of a set share an ISBN, editions share a work, popular titles share
    a title: none of them may be merged. (Real records come from catalogues
    that hold genuine duplicates, so only generated labels are checked.)"""
    settings, summary, con = demo
    truth = {row["record_key"]: row["manifestation_label"] for row in csv.DictReader(summary.truth_path.open(encoding="utf-8"))}
    labels = defaultdict(set)
    for record_key, mid in con.execute("select record_key, manifestation_id from record_manifestation").fetchall():
        if not truth[record_key].startswith("M-"):
            labels[mid].add(truth[record_key])
    mixed = {mid: sorted(found) for mid, found in labels.items() if len(found) > 1}
    assert mixed == {}


def test_holdings_are_shared_like_a_province(demo):
    _, _, con = demo
    widest = con.execute("select max(n_libraries) from manifestations").fetchall()[0][0]
    shared = con.execute("select count(*) from manifestations where n_libraries > 1").fetchall()[0][0]
    assert widest >= 10 and shared > 50
    levels = dict(con.execute("select level, count(*) from library_stats where records > 0 group by level").fetchall())
    assert levels == {"province": 1, "city": 11, "county": 90}


def test_the_since_param_harvests_a_library_again_from_that_date(demo, capsys):
    """Everything is harvested already, so an incremental run would land nothing: with `since`
    the OAI-PMH library's window opens at that date and its whole catalogue comes again."""
    from unioncat.airflow_env import run_dags_in_process

    settings, _, con = demo
    library = next(lib for lib in registry(settings).enabled() if lib.protocol == "oai")
    held = con.execute("select count(*) from records where library_id = ?", [library.id]).fetchall()[0][0]
    with pytest.MonkeyPatch.context() as env, LibraryNetwork(settings, [library], drops_root(settings, [library])):
        env.setenv("UNIONCAT_SOURCES", str(settings.sources_path))
        env.setenv("UNIONCAT_DATA_DIR", str(settings.data_dir))
        states = run_dags_in_process(settings, run_conf={"library": library.id, "since": "2000-01-01"}, progress=print)
    assert states == {"harvest_libraries": "success", "build_catalogue": "success"}
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{library.id}: ") and "landed" in line]
    assert f", {held:,} records," in line, line


def test_a_library_whose_server_is_down_fails_alone_and_keeps_its_data(demo, capsys):
    from unioncat.airflow_env import run_dags_in_process

    settings, _, con = demo
    down = "ZJ005"  # a Z39.50 library
    held = con.execute("select count(*) from records where library_id = ?", [down]).fetchall()[0][0]
    before = settings.current_snapshot.resolve()
    serving = [lib for lib in registry(settings).enabled() if lib.id != down]
    endpoint = next(lib.endpoint for lib in registry(settings).enabled() if lib.id == down)
    text = settings.sources_path.read_text(encoding="utf-8")
    settings.sources_path.write_text(text.replace(f'"{endpoint}"', f'"127.0.0.1:{free_port()}/{down}"'), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env, LibraryNetwork(settings, serving, drops_root(settings, serving)):
        env.setenv("UNIONCAT_SOURCES", str(settings.sources_path))
        env.setenv("UNIONCAT_DATA_DIR", str(settings.data_dir))
        states = run_dags_in_process(settings, progress=print)
    assert states == {"harvest_libraries": "failed", "build_catalogue": "success"}
    out = capsys.readouterr().out
    assert "harvest summary: 101 succeeded, 1 failed, 0 skipped" in out and f"{down}      failed" in out
    [built] = [line for line in out.splitlines() if line.strip().startswith(down) and "previous data kept" in line]
    assert f"{held:,} records" in built and "last harvest failed" in built, built
    assert settings.current_snapshot.resolve() != before
    after = duckdb.connect(str(settings.current_snapshot / "catalogue.duckdb"), read_only=True)
    assert after.execute("select count(*) from records where library_id = ?", [down]).fetchall()[0][0] == held > 0
