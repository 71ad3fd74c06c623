"""Scale: the whole pipeline on a generated province of N records, full rebuild and a 1% incremental run.

    uv run python bench/scale.py --records N [--seed S] [--cache DIR] [--keep] [--baseline-sample M]
                                 [--memory-cap-gb G] [--skip-baseline] [--skip-incremental] [--keep-states DIR]

1. Generate (unioncat.scale; cached by N and seed in --cache, default the system temp folder's
   unioncat-bench/scale, outside the repo): ~100 libraries' ISO 2709 drops, truth.csv, sources.toml.
2. Full rebuild in a fresh data dir, each stage in a child process of its own, as
   `unioncat.pipeline.run_all` runs them: harvest (file drops, one process per core) →
   transform (one process per core) → dedup → publish.
3. Incremental: 1% of the records changed (unioncat.scale.apply_changes: a subset of libraries
   rewrites its files with records modified and deleted, and drops a file of new books; their
   folders are copied out of the cache first, the others stay links to it), then the same four
   stages without --full. Each run starts on a settled disk (`settle_disk`, timed apart).
   --keep-states DIR keeps the data dir as the incremental dedup and publish found it
   (`DIR/before-dedup`, `DIR/before-publish`, hard links, outside the stages' timing), for
   `bench/replay.py` to run one stage again on it: an A/B of two versions of the code on the
   same state, without the whole bench.
Per stage: wall seconds, records/s, peak RSS of the stage's process tree (sampled from /proc
every 0.1 s: the transform's two workers count together) and the largest single process
(ru_maxrss), CPU seconds (user + system of the stage's processes: on a shared machine the wall
time depends on the load, the CPU time much less), load average, output size. A stage whose tree passes --memory-cap-gb
(default 16) is stopped and reported as such: the machine is shared.
4. Quality: pairwise and B-cubed P/R/F1 of the dedup against truth.csv (computed in DuckDB, so it
   scales), after the full and the incremental run.
5. Queries: `search()` and `holders()` of the published catalogue (median of 5, warm).
6. Baseline, same run: a naive pipeline on a sample of whole libraries (--baseline-sample
   records, default min(N, 1M)): pymarc MARCReader (told each library's encoding) → title, ISBN,
   year → clusters by exact ISBN digits, else exact title + year, in plain Python dicts →
   holdings per cluster → Parquet (pyarrow). pandas is not a dependency of the project, so the
   baseline uses plain Python + pyarrow instead. Scored like ours on the same records.
Prints a table, then one JSON line: {"scale": {...}}.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CACHE = Path(tempfile.gettempdir()) / "unioncat-bench" / "scale"
STAGES = ("harvest", "transform", "dedup", "publish")
GIB = 1 << 30


# ---- stages, each run in a child process: `bench/scale.py --stage NAME --sources F --data D [--full]` ----


def run_stage(name: str, sources: Path, data: Path, full: bool) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    from unioncat import pipeline
    from unioncat.settings import Settings

    settings = Settings.resolve(sources, data)
    libraries = list(pipeline.registry(settings).enabled())
    run_id = pipeline.new_run_id()
    if name == "harvest":  # as run_all: one process per core
        with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, len(libraries))) as pool:
            results = list(pool.map(functools.partial(pipeline.harvest_library, full=full), [settings] * len(libraries),
                                    libraries, [run_id] * len(libraries)))
        return {"pages": sum(r.pages for r in results), "bytes": sum(r.bytes for r in results),
                "unchanged": sum(r.unchanged for r in results)}
    if name == "transform":  # as run_all: libraries transform independently, one process per core
        with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, len(libraries))) as pool:
            summaries = list(pool.map(functools.partial(pipeline.transform, full=full), [settings] * len(libraries), libraries))
        done = [s for s in summaries if not s.skipped]
        return {"records": sum(s.records for s in summaries), "transformed_libraries": len(done),
                "transformed_records": sum(s.records for s in done), "quarantined": sum(s.quarantined for s in summaries),
                "quarantine_reasons": _sum_dicts(s.quarantine_reasons for s in summaries)}
    if name == "dedup":
        summary = pipeline.dedup(settings, libraries, full=full)
        return {"records": summary.records, "manifestations": summary.manifestations, "works": summary.works,
                "pairs_scored": summary.pairs_scored, "accepted_pairs": summary.accepted_pairs,
                "rematched_records": summary.rematched_records, "incremental": summary.incremental,
                "changes": summary.changes, "phases": summary.phases,
                "phase_peak_rss_mb": json.loads((settings.dedup_dir / "state.json").read_text())["phase_peak_rss_mb"]}
    if name == "publish":
        summary = pipeline.publish_snapshot(settings, libraries)
        return {"snapshot": summary.snapshot_id, "counts": summary.counts}
    raise ValueError(name)


def with_rusage(result: dict) -> dict:
    """The child's own peak RSS and its largest worker's (ru_maxrss: KiB on Linux)."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime
    return {**result, "max_process_rss_mb": round(max(own.ru_maxrss, workers.ru_maxrss) / 1024),
            "main_process_rss_mb": round(own.ru_maxrss / 1024), "cpu_seconds": round(cpu, 1)}


def _sum_dicts(dicts) -> dict:
    total: dict = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


# ---- the parent: runs children, samples their memory --------------------------------------------


def tree_rss(root_pid: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def child(args: list[str], cap_bytes: int, label: str) -> dict:
    """Run `python bench/scale.py <args>` in its own session; wall time, peak tree RSS (sampled),
    ru_maxrss of the largest process, the JSON its last line printed."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    peak, killed = [0], [False]

    def sample() -> None:
        while process.poll() is None:
            current = tree_rss(process.pid)
            peak[0] = max(peak[0], current)
            if current > cap_bytes and not killed[0]:
                killed[0] = True
                os.killpg(process.pid, signal.SIGKILL)  # our own child's session only
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    result: dict = {"seconds": round(seconds, 2), "peak_rss_mb": round(peak[0] / 2**20), "max_process_rss_mb": 0,
                    "load_before": round(load_before, 2),
                    "load_after": round(os.getloadavg()[0], 2)}
    if killed[0]:
        result["error"] = f"stopped: its processes passed the memory cap of {cap_bytes / GIB:.0f} GiB"
    elif process.returncode != 0:
        result["error"] = f"exit {process.returncode}: " + stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {process.returncode}"
        (Path(tempfile.gettempdir()) / f"unioncat-bench-scale-{label}.stderr").write_text(stderr)
    else:
        result.update(json.loads(stdout.strip().splitlines()[-1]))
    print(f"  {label:<24}{result['seconds']:>9.1f} s  peak RSS {result['peak_rss_mb']:>7,} MB"
          + (f"  {result['error']}" if "error" in result else ""), flush=True)
    return result


# ---- generation (cached) ------------------------------------------------------------------------


def generate(records: int, seed: int, cache: Path, cap: int) -> tuple[Path, dict]:
    folder = cache / f"records{records}-seed{seed}"
    marker = folder / "complete.json"
    if marker.exists():
        return folder, {**json.loads(marker.read_text()), "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    need = records * 600  # ~520 bytes a record, + truth
    free = shutil.disk_usage(folder).free
    if free < need * 5:  # drops, landing copy, staging, dedup, snapshot
        raise SystemExit(f"{free / GIB:.1f} GiB free under {folder}; this run needs about {need * 5 / GIB:.1f} GiB")
    print(f"generating {records:,} records into {folder} …", flush=True)
    result = child(["--generate", str(folder), str(records), str(seed)], cap, "generate")
    if "error" in result:
        raise SystemExit(f"generation failed: {result['error']}")
    marker.write_text(json.dumps(result))
    return folder, {**result, "cached": False}


def generate_child(folder: Path, records: int, seed: int) -> dict:
    from unioncat.scale import write_scale_province

    summary = write_scale_province(folder, records=records, seed=seed)
    return {"records": summary.records, "manifestations": summary.manifestations, "bytes": summary.bytes,
            "libraries": summary.libraries, "shards": summary.shards}


def work_copy(province: Path, target: Path) -> Path:
    """A drops root whose library folders link to the cached province (copied when changed)."""
    target.mkdir(parents=True)
    for entry in province.iterdir():
        if entry.is_dir():
            (target / entry.name).symlink_to(entry)
        elif entry.name in ("scale.json", "sources.toml", "truth.csv"):
            shutil.copyfile(entry, target / entry.name)
    return target


def materialise(drops: Path, library_ids: list[str]) -> None:
    for library_id in library_ids:
        link = drops / library_id
        if link.is_symlink():
            source = link.resolve()
            link.unlink()
            shutil.copytree(source, link)


# ---- quality, sizes, queries ----------------------------------------------------------------------


def quality(data: Path, truth: Path, keys_table: str | None = None, predicted: str | None = None) -> dict:
    """Pairwise and B-cubed P/R/F1 of a clustering (record_key → cluster) against truth.csv, in DuckDB."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": "6GB", "temp_directory": str(data / ".quality-spill")})
    predicted = predicted or f"select record_key, manifestation_id as cluster from read_parquet('{data / 'dedup' / 'record_manifestation.parquet'}')"
    keys = f"join read_parquet('{keys_table}') k using (record_key)" if keys_table else ""
    con.execute(f"""
        create temp table cells as
        select t.manifestation_label as t, p.cluster as p, count(*)::double as n
        from read_csv('{truth}', header=true, all_varchar=true) t join ({predicted}) p using (record_key) {keys}
        group by all
    """)
    row = con.execute("""
        with pt as (select p, sum(n) as np from cells group by p), tt as (select t, sum(n) as nt from cells group by t)
        select (select sum(n * (n - 1) / 2) from cells) as tp,
               (select sum(np * (np - 1) / 2) from pt) as predicted_pairs,
               (select sum(nt * (nt - 1) / 2) from tt) as true_pairs,
               (select sum(n) from cells) as records,
               (select sum(c.n * c.n / pt.np) from cells c join pt using (p)) as bp,
               (select sum(c.n * c.n / tt.nt) from cells c join tt using (t)) as br
    """).fetchall()[0]
    con.close()
    shutil.rmtree(data / ".quality-spill", ignore_errors=True)
    tp, pp, ap, n, bp, br = (x or 0 for x in row)

    def f1(p, r):
        return 2 * p * r / (p + r) if p + r else 0.0

    precision, recall = (tp / pp if pp else 1.0), (tp / ap if ap else 1.0)
    b_precision, b_recall = (bp / n if n else 1.0), (br / n if n else 1.0)
    return {"records": int(n), "precision": round(precision, 5), "recall": round(recall, 5),
            "f1": round(f1(precision, recall), 5), "bcubed_f1": round(f1(b_precision, b_recall), 5),
            "predicted_pairs": int(pp), "true_pairs": int(ap)}


def du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def sizes(data: Path) -> dict:
    current = (data / "published" / "current").resolve()
    result = {"landing_mb": du(data / "landing") / 2**20, "staging_mb": du(data / "staging") / 2**20,
              "dedup_mb": du(data / "dedup") / 2**20, "snapshot_mb": du(current) / 2**20}
    for name in ("records.parquet", "holdings.parquet", "manifestations.parquet", "record_manifestation.parquet",
                 "holdings_distribution.parquet", "catalogue.duckdb"):
        if (current / name).exists():
            result[name] = (current / name).stat().st_size / 2**20
    return {k: round(v, 1) for k, v in result.items()}


def query_times(data: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(data / "published" / "current" / "catalogue.duckdb"), read_only=True)
    results = {}
    for label, text in (("search 数学分析", "数学分析"), ("search 杭州", "杭州"), ("search (no hit)", "没有这本书")):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            hits = con.execute("select * from search(?) limit 20", [text]).fetchall()
            times.append(time.perf_counter() - started)
        results[label] = {"ms": round(statistics.median(times) * 1000, 1), "hits": len(hits)}
    mid = con.execute("select manifestation_id from manifestations order by n_libraries desc limit 1").fetchall()[0][0]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        holders = con.execute("select * from holders(?)", [mid]).fetchall()
        times.append(time.perf_counter() - started)
    results["holders (most held)"] = {"ms": round(statistics.median(times) * 1000, 1), "hits": len(holders)}
    con.close()
    return results


# ---- the naive baseline ---------------------------------------------------------------------------


def baseline_child(drops: Path, library_ids: list[str], out: Path) -> dict:
    """pymarc + plain Python + pyarrow: read, key, group, count holders, write Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pymarc

    info = json.loads((drops / "scale.json").read_text())
    started = time.perf_counter()
    keys, clusters, read, failed = [], [], 0, 0
    holders: dict[str, set] = {}
    for library_id in library_ids:
        gb = info["exports"][library_id] == "gb18030"
        for path in sorted((drops / library_id).glob("*.mrc")):
            with open(path, "rb") as handle:
                reader = pymarc.MARCReader(handle, to_unicode=True, force_utf8=not gb,
                                           file_encoding="gb18030" if gb else "iso8859-1", permissive=True)
                for record in reader:
                    if record is None:
                        failed += 1
                        continue
                    read += 1
                    marc21 = record.get("245") is not None
                    title_field = record.get("245") if marc21 else record.get("200")
                    title = (title_field.get("a") or "").strip() if title_field else ""
                    isbn_field = record.get("020") if marc21 else record.get("010")
                    isbn = "".join(c for c in (isbn_field.get("a") or "") if c.isdigit() or c in "xX") if isbn_field else ""
                    date_field = record.get("260") if marc21 else record.get("210")
                    date = (date_field.get("c" if marc21 else "d") or "") if date_field else ""
                    year = next((date[i : i + 4] for i in range(len(date) - 3) if date[i : i + 4].isdigit()), "")
                    key = f"isbn:{isbn}" if isbn else f"title:{title}|{year}"
                    keys.append(f"{library_id}:{record.get('001').data}")
                    clusters.append(key)
                    holders.setdefault(key, set()).add(library_id)
    parsed = time.perf_counter() - started
    table = pa.table({"record_key": keys, "cluster": clusters})
    pq.write_table(table, out / "baseline_clusters.parquet")
    pq.write_table(pa.table({"cluster": list(holders), "n_libraries": [len(v) for v in holders.values()]}),
                   out / "baseline_holdings.parquet")
    return {"records": read, "unreadable": failed, "clusters": len(holders), "read_seconds": round(parsed, 2)}


def baseline(drops: Path, per_library: dict, sample: int, work: Path, cap: int) -> tuple[dict, Path]:
    chosen, total = [], 0
    for library_id in sorted(per_library, key=lambda k: (-per_library[k], k)):  # whole libraries, largest first
        if total >= sample:
            break
        if total + per_library[library_id] > sample * 1.1 and chosen:
            continue
        chosen.append(library_id)
        total += per_library[library_id]
    out = work / "baseline"
    out.mkdir()
    result = child(["--baseline", str(drops), str(out), ",".join(chosen)], cap, "baseline (naive)")
    result["libraries"] = len(chosen)
    return result, out


# ---- main -----------------------------------------------------------------------------------------


def settle_disk(label: str) -> float:
    """Flush what the steps before a run wrote (generating or changing the drops, the run before)
    and may still be writing back, so that a run starts on a quiet disk, as a nightly run does,
    and does not pay for the bench's own writes in its first fsyncs. Timed apart and printed."""
    started = time.perf_counter()
    os.sync()
    seconds = round(time.perf_counter() - started, 1)
    print(f"  disk settled before the {label} run: {seconds} s", flush=True)
    return seconds


def keep_state(data: Path, sources: Path, target: Path) -> None:
    """The data dir as a stage finds it, hard-linked into `target` (the stages replace files,
    never write into them), with the sources file the run read."""
    from warehouse.locks import remove_tree

    if target.exists():
        remove_tree(target)  # its snapshots are frozen (read-only folders)
    shutil.copytree(data, target, symlinks=True, copy_function=os.link, ignore=shutil.ignore_patterns(".spill"))
    (target / "sources.toml").unlink(missing_ok=True)  # a link into the state copied: not written through
    shutil.copy2(sources, target / "sources.toml")


def pipeline_run(sources: Path, data: Path, full: bool, cap: int, label: str, keep_states: Path | None = None) -> dict:
    stages = {}
    for stage in STAGES:
        if keep_states is not None and stage in ("dedup", "publish"):
            keep_state(data, sources, keep_states / f"before-{stage}")
        args = ["--stage", stage, "--sources", str(sources), "--data", str(data)] + (["--full"] if full else [])
        stages[stage] = child(args, cap, f"{label} {stage}")
        if "error" in stages[stage]:
            break
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where generated provinces are kept between runs")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (printed) instead of deleting it")
    parser.add_argument("--baseline-sample", type=int, default=1_000_000, help="records of the baseline's sample")
    parser.add_argument("--memory-cap-gb", type=float, default=16.0, help="stop a stage whose processes pass this")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-incremental", action="store_true")
    parser.add_argument("--keep-states", type=Path, help="keep the data dir as the incremental dedup and publish find it, "
                        "in DIR/before-dedup and DIR/before-publish, for bench/replay.py")
    args = parser.parse_args()
    cap = int(args.memory_cap_gb * GIB)

    province, generated = generate(args.records, args.seed, args.cache, cap)
    info = json.loads((province / "scale.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="unioncat-bench-scale-"))
    print(f"work folder {work} (load {os.getloadavg()[0]:.2f})", flush=True)
    drops = work_copy(province, work / "drops")
    data = work / "data"
    report: dict = {"records": info["records"], "libraries": info["libraries"], "manifestations": info["manifestations"],
                    "seed": args.seed, "generate": generated,
                    "machine": {"cores": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GIB, 1),
                                "python": platform.python_version()}}
    try:
        report["settle_seconds"] = {"full": settle_disk("full")}
        report["full"] = pipeline_run(drops / "sources.toml", data, True, cap, "full")
        ok = all("error" not in s for s in report["full"].values()) and len(report["full"]) == len(STAGES)
        if ok:
            report["sizes"] = sizes(data)
            report["quality"] = {"full": quality(data, drops / "truth.csv")}
            report["queries"] = query_times(data)
        if ok and not args.skip_incremental:
            from unioncat.scale import apply_changes

            started = time.perf_counter()
            change = apply_changes(drops, fraction=0.01, before_writing=lambda ids: materialise(drops, ids))
            report["change"] = {**change.__dict__, "changed": change.changed, "seconds": round(time.perf_counter() - started, 1)}
            print(f"  changes: {change.modified:,} modified, {change.deleted:,} deleted, {change.added:,} added "
                  f"in {len(change.libraries)} libraries", flush=True)
            report["settle_seconds"]["incremental"] = settle_disk("incremental")
            report["incremental"] = pipeline_run(drops / "sources.toml", data, False, cap, "incremental", args.keep_states)
            if all("error" not in s for s in report["incremental"].values()):
                report["quality"]["incremental"] = quality(data, drops / "truth.csv")
        if not args.skip_baseline:
            sample = min(args.baseline_sample, info["records"])
            report["baseline"], out = baseline(drops, info["per_library"], sample, work, cap)
            if "error" not in report["baseline"]:
                report["baseline"]["quality"] = quality(data, drops / "truth.csv",
                                                        predicted=f"select * from read_parquet('{out / 'baseline_clusters.parquet'}')")
                if ok:
                    report["baseline"]["ours_on_sample"] = quality(data, drops / "truth.csv",
                                                                   keys_table=str(out / "baseline_clusters.parquet"))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    print(json.dumps({"scale": report}, ensure_ascii=False))


def print_report(report: dict) -> None:
    n = report["records"]
    print(f"\nscale: {n:,} records, {report['libraries']} libraries, {report['manifestations']:,} manifestations "
          f"({report['machine']['cores']} cores, {report['machine']['memory_gib']} GiB)")
    g = report["generate"]
    print(f"generate: {g['seconds']:.1f} s, {g['records'] / g['seconds']:,.0f} records/s, {g.get('cpu_seconds', 0):.1f} CPU s, "
          f"peak RSS {g['peak_rss_mb']:,} MB"
          + (" (cached)" if g.get("cached") else ""))
    print(f"\n{'run':<12}{'stage':<11}{'seconds':>9}{'records/s':>11}{'CPU s':>9}{'peak RSS MB':>13}{'largest proc MB':>17}{'load':>11}")
    for run in ("full", "incremental"):
        stages = report.get(run) or {}
        total = cpu = 0.0
        for stage, s in stages.items():
            total += s["seconds"]
            cpu += s.get("cpu_seconds", 0)
            rate = f"{n / s['seconds']:,.0f}" if "error" not in s else "—"
            print(f"{run:<12}{stage:<11}{s['seconds']:>9.1f}{rate:>11}{s.get('cpu_seconds', 0):>9.1f}{s['peak_rss_mb']:>13,}"
                  f"{s['max_process_rss_mb']:>17,}{s['load_before']:>5.1f}→{s['load_after']:<4.1f}"
                  + (f"  {s['error']}" if "error" in s else ""))
        if stages:
            print(f"{run:<12}{'total':<11}{total:>9.1f}{n / total:>11,.0f}{cpu:>9.1f}"
                  f"{max(s['peak_rss_mb'] for s in stages.values()):>13,}")
    for run in ("full", "incremental"):
        phases = ((report.get(run) or {}).get("dedup") or {}).get("phases")
        if phases:
            print(f"{run} dedup phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
            peaks = report[run]["dedup"].get("phase_peak_rss_mb", {})
            print(f"{run} dedup peak RSS at the end of each phase (MB): " + ", ".join(f"{k} {v:,}" for k, v in peaks.items()))
    if "change" in report:
        c = report["change"]
        print(f"incremental input: {c['changed']:,} records changed ({c['modified']:,} modified, {c['deleted']:,} deleted, "
              f"{c['added']:,} added) in {len(c['libraries'])} libraries, {c['files_rewritten']} files rewritten")
    if "sizes" in report:
        print("sizes (MB): " + ", ".join(f"{k} {v:,.1f}" for k, v in report["sizes"].items()))
    for run, q in (report.get("quality") or {}).items():
        print(f"dedup quality ({run}): pairwise P {q['precision']:.4f} R {q['recall']:.4f} F1 {q['f1']:.4f}, "
              f"B-cubed F1 {q['bcubed_f1']:.4f} over {q['records']:,} records")
    for label, q in (report.get("queries") or {}).items():
        print(f"query {label}: {q['ms']:.1f} ms ({q['hits']} rows)")
    b = report.get("baseline")
    if b:
        if "error" in b:
            print(f"baseline: {b['error']}")
        else:
            print(f"\nbaseline (pymarc + plain Python + pyarrow, {b['records']:,} records of {b['libraries']} libraries): "
                  f"{b['seconds']:.1f} s, {b['records'] / b['seconds']:,.0f} records/s, {b.get('cpu_seconds', 0):.1f} CPU s, "
                  f"peak RSS {b['peak_rss_mb']:,} MB")
            for label, q in (("naive ISBN / title+year", b.get("quality")), ("unioncat (same records)", b.get("ours_on_sample"))):
                if q:
                    print(f"  {label:<26} P {q['precision']:.4f} R {q['recall']:.4f} F1 {q['f1']:.4f} B-cubed F1 {q['bcubed_f1']:.4f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--stage":
        stage_parser = argparse.ArgumentParser()
        stage_parser.add_argument("--stage")
        stage_parser.add_argument("--sources", type=Path)
        stage_parser.add_argument("--data", type=Path)
        stage_parser.add_argument("--full", action="store_true")
        a = stage_parser.parse_args()
        print(json.dumps(with_rusage(run_stage(a.stage, a.sources, a.data, a.full)), ensure_ascii=False, default=str))
    elif len(sys.argv) > 1 and sys.argv[1] == "--generate":
        print(json.dumps(with_rusage(generate_child(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        print(json.dumps(with_rusage(baseline_child(Path(sys.argv[2]), sys.argv[4].split(","), Path(sys.argv[3])))))
    else:
        main()
