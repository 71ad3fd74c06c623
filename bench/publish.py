"""Publish: snapshot build time, file sizes and catalogue query latency.

    uv run python bench/publish.py                    # the demo province through the real pipeline
    uv run python bench/publish.py --records 1000000  # the dedup benchmark's generated province

1. Inputs. Without --records: the demo province (102 file libraries, 2,000 titles, ~11k records)
   harvested, transformed and deduplicated by the real pipeline, so records carry their MARC
   bytes. With --records N: the province bench/dedup.py generates and caches (system temp
   folder, unioncat-bench/dedup; about 15 minutes the first time at 1M), its rows staged per
   library with one holding per record and *without* the source MARC bytes (records.parquet is
   smaller than a real one by them), then deduplicated once; the prepared folder is cached
   beside it (unioncat-bench/publish). Preparation runs in child processes, so the peak RSS
   reported is publishing's.
2. Publish (build + promote): the first snapshot (everything written), the same inputs again
   (everything linked from the parent), then with one library's records changed.
3. File sizes of the first snapshot, and the catalogue (sql/*.sql) build alone.
4. Query latency on the catalogue (warm, median of 5): search (Chinese, Western, one
   character), holders, find_isbn and the distribution views.
Prints a table, then one JSON line: {"publish": {...}}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from unioncat.registry import load_registry  # noqa: E402
from unioncat.settings import Settings  # noqa: E402
from warehouse.locks import remove_tree  # noqa: E402
from warehouse import catalogue  # noqa: E402
from warehouse.snapshot import publish, read_manifest  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "unioncat-bench" / "publish"
QUERIES = {
    "search('活着')": "select * from search('活着')",
    "search('高等数学')": "select * from search('高等数学')",
    "search('history')": "select * from search('history')",
    "search('史') (one character)": "select * from search('史')",
    "holders(most held)": "select * from holders((select manifestation_id from manifestations order by n_libraries desc limit 1))",
    "find_isbn": "select * from find_isbn((select isbn from manifestations where isbn is not null order by n_libraries desc limit 1))",
    "library_stats": "select * from library_stats",
    "library_overlap (one library)": "select * from library_overlap where library_a = 'ZJ002' order by jaccard desc",
    "city_coverage": "select * from city_coverage",
    "class_coverage": "select * from class_coverage",
}


def _registry_of_file_libraries(folder: Path) -> Path:
    """The committed registry with every library as a file drop under demo/drops (no network)."""
    libraries = load_registry(REPO / "sources.toml").libraries
    text = "\n".join(f'[[library]]\nid = "{lib.id}"\nname = "{lib.name}"\ncity = "{lib.city}"\nlevel = "{lib.level}"\n'
                     f'protocol = "file"\nendpoint = "demo/drops/{lib.id}"\n' for lib in libraries)
    (folder / "sources.toml").write_text(text, encoding="utf-8")
    return folder / "sources.toml"


def prepare_demo(folder: Path) -> None:
    """Child process: the demo province through harvest, transform and dedup (run_all; its snapshot is dropped)."""
    from unioncat.pipeline import run_all
    from unioncat.province import write_demo_drops

    settings = Settings.resolve(_registry_of_file_libraries(folder), folder / "var")
    write_demo_drops(list(load_registry(settings.sources_path).enabled()), folder / "demo" / "drops", titles=2000)
    run_all(settings, progress=lambda _: None)
    remove_tree(settings.published_dir)


def prepare_generated(folder: Path, records: int) -> None:
    """Child process: bench/dedup.py's cached province rows staged per library, then dedup."""
    from unioncat import schema
    from unioncat.pipeline import dedup

    spec = importlib.util.spec_from_file_location("bench_dedup", REPO / "bench" / "dedup.py")
    bench_dedup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_dedup)
    rows = bench_dedup.province(records, 20261125, Path(tempfile.gettempdir()) / "unioncat-bench" / "dedup") / "rows"
    settings = Settings.resolve(_registry_of_file_libraries(folder), folder / "var")
    libraries = list(load_registry(settings.sources_path).enabled())
    for library in libraries:
        staging = settings.staging_dir(library.id)
        staging.mkdir(parents=True, exist_ok=True)
        table = pq.read_table(rows / f"{library.id}.parquet")
        table = table.append_column(schema.RECORDS.field("raw"), pa.nulls(table.num_rows, pa.binary()))
        pq.write_table(table.select(schema.RECORDS.names).cast(schema.RECORDS), staging / "records.parquet", compression="zstd")
        keys = table.column("record_key")
        holdings = pa.table({"record_key": keys, "library_id": table.column("library_id"),
                             "call_number": pa.nulls(len(keys), pa.string()), "location": pa.nulls(len(keys), pa.string()),
                             "copies": pa.array([1] * len(keys), pa.int32()), "available": pa.nulls(len(keys), pa.int32())})
        pq.write_table(holdings.cast(schema.HOLDINGS), staging / "holdings.parquet", compression="zstd")
        pq.write_table(schema.QUARANTINE.empty_table(), staging / "quarantine.parquet", compression="zstd")
    dedup(settings, libraries)


def prepared(records: int | None) -> Path:
    folder = CACHE / (f"records{records}" if records else "demo")
    if not (folder / "complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"preparing {folder} …", flush=True)
        subprocess.run([sys.executable, __file__, "--prepare", str(folder), str(records or 0)], check=True)
        (folder / "complete").touch()
    return folder


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _latency(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, int]:
    rows = len(con.execute(sql).fetchall())  # warm
    times = []
    for _ in range(5):
        started = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times), rows


def change_one_library(settings: Settings, library_id: str) -> None:
    staged = settings.staging_dir(library_id) / "records.parquet"
    table = pq.read_table(staged)
    pq.write_table(table.slice(1), staged, compression="zstd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, help="use the generated province of about N records (default: the demo)")
    parser.add_argument("--prepare", nargs=2, metavar=("FOLDER", "RECORDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.nice(5)  # the machine is shared
    if args.prepare:
        folder, records = Path(args.prepare[0]), int(args.prepare[1])
        prepare_generated(folder, records) if records else prepare_demo(folder)
        return

    source = prepared(args.records)
    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    shutil.copy(source / "sources.toml", work / "sources.toml")
    for stage in ("staging", "dedup", "state"):
        if (source / "var" / stage).exists():
            shutil.copytree(source / "var" / stage, work / "var" / stage)
    settings = Settings.resolve(work / "sources.toml", work / "var")
    libraries = list(load_registry(settings.sources_path).enabled())

    first_s, first = _timed(lambda: publish(settings, libraries, keep=10))
    again_s, again = _timed(lambda: publish(settings, libraries, keep=10))
    change_one_library(settings, "ZJ013")
    changed_s, changed = _timed(lambda: publish(settings, libraries, keep=10))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    manifest = read_manifest(first.path)
    counts = manifest["counts"]

    scratch = work / "catalogue-only"
    scratch.mkdir()
    for name in manifest["files"]:
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(first.path / name, scratch / name)
    catalogue_s, _ = _timed(lambda: catalogue.build(scratch))

    groups = ["records.parquet", "holdings.parquet", "quarantine.parquet", "manifestations.parquet", "record_manifestation.parquet",
              "holdings_distribution.parquet", "works.parquet", "changes.parquet", "libraries.parquet", "catalogue.duckdb",
              "report.html", "manifest.json"]
    sizes = {name: _size(first.path / name) for name in groups}
    rewritten = sum(_size(changed.path / n) for n in read_manifest(changed.path)["files"] if n not in changed.reused)

    con = duckdb.connect(str(first.path / "catalogue.duckdb"), read_only=True)
    latency = {name: _latency(con, sql) for name, sql in QUERIES.items()}
    con.close()

    label = f"{counts['records']:,} records, {counts['manifestations']:,} manifestations, {counts['libraries']} libraries"
    print(f"\npublish of {'the demo province' if not args.records else 'the generated province'}: {label}")
    print(f"{'publish':<44}{'seconds':>9}{'files linked':>14}")
    print(f"{'first snapshot (all written)':<44}{first_s:>9.2f}{len(first.reused):>14}")
    print(f"{'same inputs again':<44}{again_s:>9.2f}{len(again.reused):>14}")
    print(f"{'one library changed':<44}{changed_s:>9.2f}{len(changed.reused):>14}")
    print(f"{'catalogue.duckdb alone (sql/*.sql)':<44}{catalogue_s:>9.2f}")
    print(f"peak RSS {peak_mb:,.0f} MB; bytes written by the incremental publish besides the catalogue: {rewritten / 2**20:,.1f} MiB")
    print(f"\n{'file':<32}{'MiB':>10}")
    for name, size in sizes.items():
        print(f"{name:<32}{size / 2**20:>10.2f}")
    print(f"{'total':<32}{sum(sizes.values()) / 2**20:>10.2f}")
    print(f"\n{'query':<34}{'ms':>9}{'rows':>8}")
    for name, (seconds, rows) in latency.items():
        print(f"{name:<34}{seconds * 1000:>9.1f}{rows:>8}")
    print(json.dumps({"publish": {
        "records": counts["records"], "manifestations": counts["manifestations"], "libraries": counts["libraries"],
        "raw_marc_included": not args.records,
        "seconds": {"first": round(first_s, 2), "unchanged": round(again_s, 2), "one_library_changed": round(changed_s, 2),
                    "catalogue_only": round(catalogue_s, 2)},
        "files_linked": {"unchanged": len(again.reused), "one_library_changed": len(changed.reused)},
        "peak_rss_mb": round(peak_mb), "bytes": sizes, "incremental_bytes_written": rewritten,
        "query_ms": {name: round(seconds * 1000, 2) for name, (seconds, _) in latency.items()},
    }}, ensure_ascii=False))
    remove_tree(work)


if __name__ == "__main__":
    main()
