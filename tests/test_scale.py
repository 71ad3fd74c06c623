"""The scale-data generator (unioncat.scale): readable, labelled, Zipf-like, deterministic, streaming."""

from __future__ import annotations

import csv
import hashlib
import inspect
import statistics
import time
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path

import pytest

from transforms.isbn import isbn13_is_valid
from transforms.readers import Accepted, read_file
from unioncat import scale
from unioncat.registry import load_registry

RECORDS = 3000


@pytest.fixture(scope="module")
def province(tmp_path_factory) -> scale.ScaleSummary:
    return scale.write_scale_province(tmp_path_factory.mktemp("scale") / "p", records=RECORDS, processes=2)


def read_all(root: Path, library_ids) -> tuple[dict[str, dict], Counter]:
    rows, rejected = {}, Counter()
    for library_id in library_ids:
        for path in sorted((root / library_id).glob("*.mrc")):
            for result in read_file(path, library_id=library_id, run_id="t"):
                if isinstance(result, Accepted):
                    rows[result.row["record_key"]] = result.row
                else:
                    rejected[result.reason] += 1
    return rows, rejected


def truth(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {r["record_key"]: r["manifestation_label"] for r in csv.DictReader(handle)}


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != scale.SUMMARY):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def rows(province) -> dict[str, dict]:
    rows, rejected = read_all(province.root, province.per_library)
    assert rejected == Counter(), rejected  # nothing quarantined
    return rows


def test_every_record_reads_and_truth_covers_exactly_the_records(province, rows):
    assert province.records == RECORDS == len(rows)
    labels = truth(province.truth_path)
    assert set(labels) == set(rows)
    assert sum(province.per_library.values()) == RECORDS
    assert len(set(labels.values())) == province.manifestations


def test_exports_mix_cnmarc_utf8_gb18030_and_marc21(province, rows):
    assert set(province.exports.values()) == {"utf-8", "gb18030", "marc21"}
    seen = Counter((r["source_format"], r["source_encoding"]) for r in rows.values())
    assert seen[("cnmarc", "utf-8")] > seen[("cnmarc", "gb18030")] > seen[("marc21", "utf-8")] > 0
    assert set(seen) == {("cnmarc", "utf-8"), ("cnmarc", "gb18030"), ("marc21", "utf-8")}
    for row in rows.values():  # each library's records in its export's format
        export = province.exports[row["library_id"]]
        assert row["source_format"] == ("marc21" if export == "marc21" else "cnmarc")
        assert row["source_encoding"] == ("gb18030" if export == "gb18030" else "utf-8")


def test_holdings_are_zipf_like(province):
    holders = defaultdict(set)
    for key, label in truth(province.truth_path).items():
        holders[label].add(key.split(":")[0])
    sizes = sorted(len(v) for v in holders.values())
    assert sizes[-1] >= 20  # popular books in dozens of libraries
    assert statistics.median(sizes) <= 2  # most in one or two
    assert sum(1 for n in sizes if n == 1) / len(sizes) > 0.3
    assert Counter({int(k): v for k, v in province.holders_histogram.items()}) == Counter(sizes)
    counties = [n for lib, n in province.per_library.items() if lib not in ("ZJ001",) and lib > "ZJ012"]
    assert province.per_library["ZJ001"] > 3 * max(counties)  # the provincial library holds the most


def test_cataloguing_variants_are_there(rows):
    values = list(rows.values())
    raw_isbns = [i for r in values for i in r["isbn_raw"]]
    assert any("-" in i for i in raw_isbns) and any("-" not in i for i in raw_isbns)
    assert any(len(i.replace("-", "")) == 10 for i in raw_isbns)  # ISBN-10
    assert any(len(i.replace("-", "")) == 13 for i in raw_isbns)
    assert any(not r["isbn_raw"] for r in values)  # no ISBN (gazetteers, ancient books, habits)
    assert any(r["part_number"] for r in values)  # volumes of sets
    assert any(r["edition"] for r in values)
    titles = [r["title"] or "" for r in values]
    assert any(any("\uff01" <= c <= "\uff5e" for c in t) for t in titles) or any(
        any("\uff01" <= c <= "\uff5e" for c in (r["publisher"] or "")) for r in values)  # full-width
    assert any(" " in t for t in titles)  # spaced-out titles
    # one manifestation, several written forms: normalised keys agree where the raw titles differ
    by_label = defaultdict(set)
    for r in values:
        by_label[(r["title_key"], r["year"])].add(r["title"])
    assert any(len(forms) > 1 for forms in by_label.values())


def test_isbns_identify_manifestations_except_sets_and_reuse(rows):
    """ISBNs do not wrap around at scale: one ISBN, one title (bar reuse and typos, < 3%)."""
    by_isbn = defaultdict(set)
    for row in rows.values():
        for isbn in row["isbn"]:
            by_isbn[isbn].add(row["title_key"])
    assert by_isbn
    clashes = sum(1 for v in by_isbn.values() if len(v) > 1)
    assert clashes / len(by_isbn) < 0.03
    assert all(isbn13_is_valid(i) for r in rows.values() for i in r["isbn"])


def test_sources_toml_points_at_the_drops(province):
    registry = load_registry(province.sources_path)
    libraries = registry.enabled()
    assert len(libraries) == province.libraries == len(province.per_library)
    for library in libraries:
        assert library.protocol == "file"
        assert library.endpoint_path().is_dir()
        assert library.syntax == ("marc21" if province.exports[library.id] == "marc21" else "cnmarc")


def test_output_is_deterministic_whatever_the_processes(tmp_path, province):
    one = scale.write_scale_province(tmp_path / "a", records=RECORDS, processes=1)
    assert digest(one.root) == digest(province.root)
    other = scale.write_scale_province(tmp_path / "b", records=RECORDS, seed=7, processes=1)
    assert digest(other.root) != digest(province.root)
    assert other.records == RECORDS


def test_records_stream_one_at_a_time():
    """A shard is a generator: asking a province of a trillion records for its first thousand
    does not build anything proportional to the size asked for."""
    libraries = scale.registry_libraries()
    exports = scale.export_plan(libraries, 1)
    stream = scale.shard_records(libraries, exports, records=10**12, seed=1, shard=0)
    assert inspect.isgenerator(stream)
    started = time.process_time()
    first = list(islice(stream, 1000))
    assert len(first) == 1000 and all(isinstance(data, bytes) and data.endswith(b"\x1d") for _, data, _ in first)
    assert time.process_time() - started < 60  # (a bound, not a speed check: a trillion would take years)
    stream.close()


def test_writer_keeps_no_per_record_state():
    """The state a shard carries grows with the libraries and publishers, not with the records:
    after 20k records the ISBN agency knows the publishers and each library its CLC classes."""
    libraries = scale.registry_libraries()
    exports = scale.export_plan(libraries, 1)
    summary = scale.ShardSummary(0)
    frames = []
    stream = scale.shard_records(libraries, exports, records=20_000, seed=1, shard=0, summary=summary)
    for n, _ in enumerate(stream):
        if n == 19_000:
            frames = [f for f in (stream.gi_frame,) if f]
    local = frames[0].f_locals
    assert len(local["writers"]) <= len(libraries)
    assert len(local["catalogue"].isbns.last) <= len(scale.PUBLISHERS)
    assert len(local["static"]) < 50
    assert max(len(w.book_numbers) for w in local["writers"].values()) < 200  # CLC classes in use
    assert summary.records == 20_000


def test_changes_modify_delete_and_add_about_one_percent(tmp_path):
    summary = scale.write_scale_province(tmp_path / "p", records=RECORDS, processes=1)
    before, _ = read_all(summary.root, summary.per_library)
    change = scale.apply_changes(summary.root, fraction=0.01)
    after, rejected = read_all(summary.root, summary.per_library)
    assert rejected == Counter()
    assert change.modified > 0 and change.deleted > 0 and change.added > 0
    assert change.changed == pytest.approx(0.01 * RECORDS, abs=12)
    assert len(after) == len(before) - change.deleted + change.added
    modified = [k for k in after if k in before and after[k]["pages"] != before[k]["pages"]]
    assert len(modified) == change.modified
    assert all(after[k]["pages"] == before[k]["pages"] + 1 for k in modified)
    assert {k.split(":")[0] for k in set(before) ^ set(after)} <= set(change.libraries)
    labels = truth(summary.truth_path)
    assert set(after) <= set(labels)  # truth covers the added records too
    assert len(labels) == RECORDS + change.added
