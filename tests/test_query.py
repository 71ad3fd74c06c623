"""`unioncat query SQL`: SQL on the published catalogue, opened read-only under the
snapshot's reader lock, printed as a table (or CSV / JSON)."""

import csv
import io
import json

import duckdb
import pytest

from unioncat import cli
from unioncat.cli import _text_width, main
from warehouse import locks
from warehouse.snapshot import read_manifest, sha256_file
from warehouse_demo import LIBRARIES, published_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    settings = published_demo(tmp_path_factory.getbasetemp())
    return settings, ["--sources", str(settings.sources_path), "--data-dir", str(settings.data_dir)]


def _direct(settings, sql):
    con = duckdb.connect(str(settings.current_snapshot / "catalogue.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


SQL = "select library_id, name, level, records from library_stats order by library_id"


def test_a_table_with_chinese_names_lines_up(demo, capsys):
    settings, common = demo
    assert main(["query", SQL, *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [c.strip() for c in lines[0].split(" | ")] == ["library_id", "name", "level", "records"] and lines[1].startswith("-----")
    body = lines[2:-1]
    assert [line.split(" | ")[0].strip() for line in body] == list(LIBRARIES)
    expected = _direct(settings, SQL)
    assert [line.split(" | ")[1].strip() for line in body] == [name for _, name, _, _ in expected]
    assert lines[-1] == f"({len(LIBRARIES)} rows)"
    # Han characters take two columns: every separator sits in the same terminal column.
    columns = {tuple(_text_width(line[:i]) for i, c in enumerate(line) if c == "|") for line in [lines[0], *body]}
    assert len(columns) == 1
    assert all(line.split(" | ")[-1].strip().isdigit() for line in body)  # numbers right-aligned, whole


def test_csv_and_json_carry_the_same_rows(demo, capsys):
    settings, common = demo
    expected = _direct(settings, SQL)
    assert main(["query", SQL, "--format", "csv", *common]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["library_id", "name", "level", "records"]
    assert [tuple(r[:3]) + (int(r[3]),) for r in rows[1:]] == expected
    assert main(["query", SQL, "--format", "json", *common]) == 0
    assert [tuple(r.values()) for r in json.loads(capsys.readouterr().out)] == expected


def test_max_rows_says_when_rows_were_left_out(demo, capsys):
    _, common = demo
    assert main(["query", "select * from records", "--max-rows", "3", *common]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 + 3 + 1 and "more not shown" in out[-1]


def test_a_bad_statement_is_a_clear_error(demo, capsys):
    _, common = demo
    assert main(["query", "selec title from manifestations", *common]) == 1
    err = capsys.readouterr().err
    assert err.startswith("query failed: Parser Error") and "Traceback" not in err
    assert main(["query", "select * from no_such_table", *common]) == 1
    assert "no_such_table" in capsys.readouterr().err


@pytest.mark.parametrize("statement", [
    "delete from records",
    "create table mine as select 1",
    "update manifestations set title = 'x'",
    "drop table library_stats",
])
def test_a_write_is_refused_because_the_file_is_opened_read_only(demo, capsys, statement):
    settings, common = demo
    catalogue = settings.current_snapshot.resolve() / "catalogue.duckdb"
    assert main(["query", statement, *common]) == 1
    assert "read-only" in capsys.readouterr().err
    assert sha256_file(catalogue) == read_manifest(catalogue.parent)["checksums"]["catalogue.duckdb"]
    assert _direct(settings, "select count(*) from records")[0][0] > 0


@pytest.mark.parametrize("statement", [
    "select * from read_text('/etc/passwd')",
    "copy (select * from records) to '{out}'",
    "attach '{out}' as mine",
    "set enable_external_access = true",
])
def test_a_query_reaches_no_file_but_the_catalogue(demo, capsys, tmp_path, statement):
    """The published catalogue is public: its SQL reads no other file of the machine and writes none."""
    _, common = demo
    out = tmp_path / "leak.csv"
    assert main(["query", statement.format(out=out), *common]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert not out.exists()


def test_the_reader_lock_is_held_while_rows_are_read(demo, capsys, monkeypatch):
    """Retention cannot take the snapshot (exclusive lock) while the query prints, and can after."""
    settings, common = demo
    snapshot = settings.current_snapshot.resolve()
    seen = []
    render = cli._render_table

    def spy(*args, **kwargs):
        with locks.exclusive(snapshot) as free:
            seen.append(free)
        return render(*args, **kwargs)

    monkeypatch.setattr(cli, "_render_table", spy)
    assert main(["query", "select 1 as one", *common]) == 0
    assert seen == [False]
    with locks.exclusive(snapshot) as free:
        assert free


def test_no_snapshot_yet_is_said_plainly(tmp_path):
    with pytest.raises(SystemExit, match="no published snapshot"):
        main(["query", "select 1", "--data-dir", str(tmp_path)])
