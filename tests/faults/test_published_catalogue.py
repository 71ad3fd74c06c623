"""The published catalogue as the public meets it: `unioncat search` and `status` work on a
read-only snapshot and never open it writable, and search terms are data, never SQL."""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from faults.checks import REPO

pytestmark = pytest.mark.timeout(120)

HOSTILE_TERMS = ["'; drop table manifestations; --", "' or 1=1 --", "%", "_", "\\", '"); select 1; --', "红楼梦'); drop view search; --"]


@pytest.fixture(scope="module")
def read_only_catalogue(province_baseline, tmp_path_factory) -> Path:
    """A copy of the published province with every file and folder chmod a-w, as consumers get it."""
    data = tmp_path_factory.mktemp("consumer") / "data"
    shutil.copytree(province_baseline.root / "data", data, symlinks=True)
    for path in [data / "published", *(data / "published").rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield data
    for path in [data / "published", *(data / "published").rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def unioncat(data: Path, sources: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unioncat.cli", *args, "--sources", str(sources), "--data-dir", str(data)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_search_and_status_read_a_locked_read_only_snapshot_and_change_nothing(read_only_catalogue, province_baseline):
    catalogue = read_only_catalogue / "published" / "current" / "catalogue.duckdb"
    before = fingerprint(read_only_catalogue / "published")
    title = duckdb.connect(str(catalogue), read_only=True).execute(
        "select title from manifestations where n_libraries > 1 order by manifestation_id limit 1").fetchall()[0][0]
    # Another reader holds the file (a shared lock): opening it writable would fail; as root, chmod
    # alone would not stop a writer, the lock does.
    holder = duckdb.connect(str(catalogue), read_only=True)
    try:
        found = unioncat(read_only_catalogue, province_baseline.sources, "search", title)
        status = unioncat(read_only_catalogue, province_baseline.sources, "status")
    finally:
        holder.close()
    assert found.returncode == 0 and title in found.stdout and "held by" in found.stdout, found.stderr
    assert status.returncode == 0 and "current snapshot:" in status.stdout, status.stderr
    assert fingerprint(read_only_catalogue / "published") == before
    assert not list((read_only_catalogue / "published").rglob("*.wal"))


def test_a_writer_cannot_open_the_snapshot_the_search_holds_open(read_only_catalogue):
    """The converse, proving the lock test above can fail: a writable open is refused."""
    catalogue = read_only_catalogue / "published" / "current" / "catalogue.duckdb"
    holder = duckdb.connect(str(catalogue), read_only=True)
    try:
        writer = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(catalogue)!r})"],
                                capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert writer.returncode != 0 and "lock" in writer.stderr.lower()


@pytest.mark.parametrize("term", HOSTILE_TERMS)
def test_sql_metacharacters_in_a_search_are_searched_for_literally(read_only_catalogue, province_baseline, term):
    """The hostile term finds what its words find (quotes, comment marks and LIKE wildcards are
    just characters), raises no SQL error and changes nothing."""
    before = fingerprint(read_only_catalogue / "published")
    found = unioncat(read_only_catalogue, province_baseline.sources, "search", term, "--limit", "1000")
    words_only = unioncat(read_only_catalogue, province_baseline.sources, "search", re.sub(r"[^\w\s]", " ", term), "--limit", "1000")
    assert found.returncode in (0, 1) and found.stderr == "", found.stderr
    assert found.stdout.split("\n")[1:] == words_only.stdout.split("\n")[1:]  # the first line may quote the term
    con = duckdb.connect(str(read_only_catalogue / "published" / "current" / "catalogue.duckdb"), read_only=True)
    try:
        total = con.execute("select count(*) from manifestations").fetchall()[0][0]
        assert con.execute("select count(*) from search('中')").fetchall()[0][0] > 0
    finally:
        con.close()
    assert found.stdout.count("held by") < total, "the term matched every manifestation"
    assert fingerprint(read_only_catalogue / "published") == before
