"""Dedup throughput and quality.

    uv run python bench/dedup.py [--records N] [--seed S] [--skip-quality]

1. The generated province (unioncat.province) with about N records: drops written and read by
   the transforms' reader once, then cached as Parquet in --cache (default: the system temp
   folder's unioncat-bench/dedup, outside var/, which the demo resets; first run at 1M: ~15
   minutes, mostly generating and parsing the CNMARC files; later runs reuse it).
2. A full dedup (dedup.stage: features, blocking, scoring, clustering, golden records, works,
   ids, all files written) of 99.5% of the records: seconds, records/s, peak RSS of this
   process (generation runs in child processes, so the peak is dedup's).
3. An incremental run: the 0.5% held back added, 0.25% changed (a later year), 0.25% deleted.
4. Quality: pairwise and B-cubed P/R/F1 of ours and the baselines (ISBN only, exact title+year,
   Goldrush-style key) on the province (generated labels; the real records' `M-` labels are
   left out: their catalogues hold genuine duplicates), DBLP-ACM and, for the rules, Pride
   and Prejudice (when ../shared/data is present).
Prints a table, then one JSON line: {"dedup": {...}}.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from dedup import baselines, datasets  # noqa: E402
from dedup.evaluate import evaluate, read_truth  # noqa: E402
from dedup.stage import load_files, load_rows, run  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "unioncat-bench" / "dedup"
SHARED = REPO.parent / "shared" / "data"
RECORDS_PER_TITLE = 5.08  # what the generator yields with the 102 libraries of sources.toml


def _read_library(args: tuple[str, str, str]) -> int:
    from transforms.readers import Accepted, read_file

    library_id, drops, target = args
    rows = [r.row for path in sorted(Path(drops).glob("*")) for r in read_file(path, library_id=library_id, run_id="bench")
            if isinstance(r, Accepted)]
    pq.write_table(datasets.rows_table(rows), target)
    return len(rows)


def generate(folder: Path, titles: int, seed: int) -> None:
    """Child process: write the drops, read them with 2 workers into one Parquet file per library."""
    from unioncat.province import write_demo_drops

    libraries = datasets.demo_libraries()
    write_demo_drops(libraries, folder / "drops", titles=titles, seed=seed)
    (folder / "rows").mkdir(exist_ok=True)
    jobs = [(lib.id, str(folder / "drops" / lib.id), str(folder / "rows" / f"{lib.id}.parquet")) for lib in libraries]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_read_library, jobs, chunksize=4))
    json.dump({lib.id: lib.level for lib in libraries}, open(folder / "levels.json", "w"))
    (folder / "complete").touch()


def province(records: int, seed: int, cache: Path) -> Path:
    titles = max(50, round(records / RECORDS_PER_TITLE))
    folder = cache / f"titles{titles}-seed{seed}"
    if not (folder / "complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"generating the province ({titles:,} titles) into {folder} …", flush=True)
        subprocess.run([sys.executable, __file__, "--generate", str(folder), str(titles), str(seed)], check=True)
    return folder


def scores(result) -> dict:
    p, b = result.pairwise, result.bcubed
    return {"precision": p.precision, "recall": p.recall, "f1": p.f1, "bcubed_f1": b.f1}


def compare(con, truth: dict, out: Path) -> dict:
    """Ours and the baselines against `truth`, on the dedup run in `con` / `out`."""
    ours = dict(con.sql(f"select record_key, manifestation_id from read_parquet('{out / 'record_manifestation.parquet'}')").fetchall())
    results = {name: scores(evaluate(truth, method(con, out))) for name, method in baselines.BASELINES.items()}
    results["ours"] = scores(evaluate(truth, ours))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--skip-quality", action="store_true", help="throughput only")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where generated provinces are kept between runs")
    args = parser.parse_args()
    folder = province(args.records, args.seed, args.cache)
    files = sorted(str(p) for p in (folder / "rows").glob("*.parquet"))
    levels = json.load(open(folder / "levels.json"))
    work = Path(tempfile.mkdtemp(prefix="bench-dedup-"))

    con = duckdb.connect(config={"preserve_insertion_order": False, "temp_directory": str(work / ".spill")})
    load_files(con, files)
    con.execute("create or replace temp table all_records as select * from dedup_input; drop view dedup_input")
    held_back = "hash(record_key) % 200 = 0"  # 0.5%
    con.execute(f"create or replace temp table dedup_input as select * from all_records where not ({held_back})")
    started = time.perf_counter()
    full = run(con, work / "dedup", levels)
    full_seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    quality: dict = {}
    if not args.skip_quality:
        truth = {k: v for k, v in read_truth(folder / "drops" / "truth.csv").items() if not v.startswith("M-")}
        quality[f"province ({full.records:,} records)"] = compare(con, truth, work / "dedup")

    con.execute("""
        create or replace temp table dedup_input as
        select * replace (case when hash(record_key) % 400 = 1 then year + 3 else year end as year)
        from all_records where hash(record_key) % 400 <> 2
    """)  # + the 0.5% held back, 0.25% with a later year, 0.25% deleted
    started = time.perf_counter()
    incremental = run(con, work / "dedup", levels)
    incremental_seconds = time.perf_counter() - started
    con.close()

    if not args.skip_quality and SHARED.is_dir():
        for name, labelled in (("dblp_acm", datasets.dblp_acm(SHARED)),):
            small = duckdb.connect()
            load_rows(small, labelled.rows)
            run(small, work / name, labelled.levels)
            quality[name] = compare(small, labelled.truth, work / name)

    print(f"\ndedup of the generated province, {full.records:,} records ({folder.name})")
    print(f"{'run':<13}{'records':>11}{'seconds':>9}{'records/s':>11}{'pairs scored':>14}{'manifestations':>16}")
    print(f"{'full':<13}{full.records:>11,}{full_seconds:>9.1f}{full.records / full_seconds:>11,.0f}{full.pairs_scored:>14,}{full.manifestations:>16,}")
    print(f"{'incremental':<13}{incremental.rematched_records:>11,}{incremental_seconds:>9.1f}{'':>11}{incremental.pairs_scored:>14,}{incremental.manifestations:>16,}")
    print(f"peak RSS {peak_mb:,.0f} MB after the full run; changes in the incremental run: {incremental.changes}")
    for dataset, methods in quality.items():
        print(f"\n{dataset:<34}{'P':>8}{'R':>8}{'F1':>8}{'B3 F1':>8}")
        for method, s in methods.items():
            print(f"  {method:<32}{s['precision']:>8.4f}{s['recall']:>8.4f}{s['f1']:>8.4f}{s['bcubed_f1']:>8.4f}")
    print(json.dumps({"dedup": {
        "records": full.records, "seconds": round(full_seconds, 1), "records_per_s": round(full.records / full_seconds),
        "peak_rss_mb": round(peak_mb), "pairs_scored": full.pairs_scored, "manifestations": full.manifestations,
        "works": full.works, "incremental": {"records": incremental.records, "rematched_records": incremental.rematched_records,
                                             "pairs_scored": incremental.pairs_scored, "seconds": round(incremental_seconds, 1),
                                             "changes": incremental.changes},
        "quality": quality,
    }}, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generate(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
