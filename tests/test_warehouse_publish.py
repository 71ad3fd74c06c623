"""Publishing under fire: a reader in another process keeps its snapshot while a new one is
published, and a publish killed with SIGKILL at any point leaves `current` on a complete,
verifiable snapshot that the next publish builds on."""

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from conftest import REPO
from unioncat.pipeline import dedup, registry
from warehouse import retention
from warehouse.snapshot import publish, read_manifest, verify
from warehouse_demo import copy_inputs, published_demo

PUBLISH = """
import sys
from unioncat.registry import load_registry
from unioncat.settings import Settings
from warehouse.snapshot import publish
settings = Settings.resolve(sys.argv[1], sys.argv[2])
print(publish(settings, list(load_registry(settings.sources_path).enabled())).snapshot_id)
"""

READER = """
import sys
from unioncat.settings import Settings
from warehouse import locks
settings = Settings.resolve(sys.argv[1], sys.argv[2])
with locks.catalogue(settings) as con:
    for line in sys.stdin:  # one answer per line asked for, from the same open catalogue
        n, = con.execute("select count(*) from records").fetchall()[0]
        print(n, flush=True)
"""


@pytest.fixture()
def inputs(tmp_path_factory, tmp_path):
    return copy_inputs(published_demo(tmp_path_factory.getbasetemp()), tmp_path)


def _python(script: str, settings, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, str(settings.sources_path), str(settings.data_dir)],
                            cwd=REPO, env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _ask(reader: subprocess.Popen) -> int:
    reader.stdin.write("count\n")
    reader.stdin.flush()
    return int(reader.stdout.readline())


def test_a_reader_keeps_its_snapshot_while_a_new_one_is_published(inputs):
    libraries = list(registry(inputs).enabled())
    old = publish(inputs, libraries)
    reader = _python(READER, inputs)
    try:
        before = _ask(reader)
        assert before == read_manifest(old.path)["counts"]["records"]
        staged = inputs.staging_dir("ZJ001") / "records.parquet"
        pq.write_table(pq.read_table(staged).slice(10), staged)
        dedup(inputs, libraries)
        new = publish(inputs, libraries, keep=1)  # retention would take the old one, but it is being read
        assert _ask(reader) == before, "the open catalogue still answers from the old snapshot"
        assert old.snapshot_id in retention.snapshot_ids(inputs.published_dir)
        fresh = _python(READER, inputs)
        assert _ask(fresh) == before - 10 == read_manifest(new.path)["counts"]["records"]
        fresh.communicate("")
    finally:
        reader.communicate("")
    publish(inputs, libraries, keep=1)
    assert old.snapshot_id not in retention.snapshot_ids(inputs.published_dir), "released, it is pruned"


def _assert_current_intact(settings, expected_id: str | None) -> None:
    current = settings.current_snapshot
    if expected_id is None:
        assert not os.path.lexists(current)
        return
    assert current.resolve().name == expected_id
    assert verify(current.resolve()) == []


@pytest.mark.parametrize("step", ["library_files", "catalogue", "renamed", "symlink"])
def test_a_publish_killed_at_any_step_leaves_current_complete(inputs, step):
    first = _python(PUBLISH, inputs)
    out, err = first.communicate()
    assert first.returncode == 0, err
    previous = out.strip()
    killed = _python(PUBLISH, inputs, UNIONCAT_PUBLISH_CRASH_AT=step)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    _assert_current_intact(inputs, previous)
    rerun = _python(PUBLISH, inputs)
    out, err = rerun.communicate()
    assert rerun.returncode == 0, err
    _assert_current_intact(inputs, out.strip())
    assert read_manifest(inputs.current_snapshot)["parent"] in {previous, *retention.snapshot_ids(inputs.published_dir)}
    assert not [p for p in inputs.published_dir.iterdir() if p.name.startswith((".building-", ".current-", ".pruning-"))]


def _files_building(inputs) -> int:
    """Files in the snapshot being built; 0 when there is none (or it was renamed as we looked)."""
    try:
        building = list(inputs.published_dir.glob(".building-*")) if inputs.published_dir.exists() else []
        return sum(1 for _ in building[0].rglob("*")) if building else 0
    except FileNotFoundError:
        return 0


def test_a_publish_killed_at_arbitrary_moments_leaves_current_complete(inputs):
    """Killed while the snapshot folder fills up, at a later file each time (no crash hook)."""
    expected = None
    for files_before_kill in (1, 12, 25):
        publisher = _python(PUBLISH, inputs)
        deadline = time.monotonic() + 60
        while publisher.poll() is None and time.monotonic() < deadline:
            if _files_building(inputs) >= files_before_kill:
                publisher.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        out, _ = publisher.communicate()
        if publisher.returncode == 0:  # finished before the kill: that is a complete snapshot too
            expected = out.strip()
        _assert_current_intact(inputs, expected)
    rerun = _python(PUBLISH, inputs)
    out, err = rerun.communicate()
    assert rerun.returncode == 0, err
    _assert_current_intact(inputs, out.strip())
