"""The documentation runs: docs/PORTAL.md's Python against published snapshots (full load, then
incremental updates that must equal a full reload), and README's analyst queries against the
demo catalogue."""

import contextlib
import io
import json
import re
import zlib

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from unioncat.pipeline import dedup, registry
from warehouse.snapshot import publish
from warehouse_demo import copy_inputs, published_demo


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _run_portal(monkeypatch, settings, state) -> tuple[dict, str]:
    monkeypatch.setenv("UNIONCAT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PORTAL_STATE", str(state))
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in _blocks((REPO / "docs" / "PORTAL.md").read_text(encoding="utf-8"), "python"):
            exec(compile(block, "docs/PORTAL.md", "exec"), namespace)
    return namespace, out.getvalue()


def _thin(settings, library_id: str, modulus: int) -> None:
    staged = settings.staging_dir(library_id) / "records.parquet"
    table = pq.read_table(staged)
    keep = [zlib.crc32(k.encode()) % modulus != 0 for k in table.column("record_key").to_pylist()]
    pq.write_table(table.filter(pa.array(keep)), staged)


def _assert_index_is_a_full_load(namespace, settings, state) -> None:
    current = settings.current_snapshot.resolve()
    saved = json.loads(state.read_text(encoding="utf-8"))
    assert saved["snapshot_id"] == current.name
    assert saved["index"] == json.loads(json.dumps(namespace["documents"](current), ensure_ascii=False))


def test_portal_snippet_loads_then_follows_the_changes(tmp_path_factory, tmp_path, monkeypatch):
    settings = copy_inputs(published_demo(tmp_path_factory.getbasetemp()), tmp_path)
    libraries = list(registry(settings).enabled())
    state = tmp_path / "portal-index.json"
    publish(settings, libraries)
    namespace, out = _run_portal(monkeypatch, settings, state)
    assert "(full load)" in out and namespace["widely_held"]
    _assert_index_is_a_full_load(namespace, settings, state)

    _thin(settings, "ZJ001", 5)
    dedup(settings, libraries)
    publish(settings, libraries)
    namespace, out = _run_portal(monkeypatch, settings, state)
    assert re.search(r"\(\d+ changes from 1 snapshot\(s\)\)", out) and "(0 changes" not in out
    _assert_index_is_a_full_load(namespace, settings, state)

    for library_id in ("ZJ002", "ZJ003"):  # the portal misses a snapshot
        _thin(settings, library_id, 4)
        dedup(settings, libraries)
        publish(settings, libraries)
    namespace, out = _run_portal(monkeypatch, settings, state)
    assert "from 2 snapshot(s)" in out
    _assert_index_is_a_full_load(namespace, settings, state)

    current = settings.current_snapshot.resolve()
    namespace["verify"](current, {"checksums": {"manifest.json": namespace["hashlib"].sha256(
        (current / "manifest.json").read_bytes()).hexdigest()}})
    with pytest.raises(ValueError, match="checksum mismatch"):
        namespace["verify"](current, {"checksums": {"manifest.json": "0" * 64}})


def _analyst_statements() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- analyst-queries:start -->")[1].split("<!-- analyst-queries:end -->")[0]
    statements = [s.strip() for block in _blocks(section, "sql") for s in block.split(";\n")]
    return [s for s in statements if re.sub(r"--[^\n]*", "", s).strip()]


def test_readme_has_ten_analyst_questions():
    assert len(_analyst_statements()) == 10


@pytest.mark.parametrize("statement", _analyst_statements(), ids=lambda s: s.splitlines()[0][3:40])
def test_analyst_query_answers_on_the_demo(tmp_path_factory, statement):
    settings = published_demo(tmp_path_factory.getbasetemp())
    con = duckdb.connect(str(settings.current_snapshot / "catalogue.duckdb"), read_only=True)
    assert con.execute(statement).fetchall(), statement
