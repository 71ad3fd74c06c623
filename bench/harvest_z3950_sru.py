"""Harvest throughput: our Z39.50 and SRU harvesters against `yaz-client`, from a local Zebra.

    uv run python bench/harvest_z3950_sru.py [--records N] [--page 1000] [--repeat 3]

Loads N generated CNMARC records (UTF-8, demo-province records with unique
001s) into a local Zebra, then times full harvests of that database:
- yaz-client: open, format unimarc, elementset zebra::data, find all records,
  `show` in batches of --page, records written to a marc dump file;
- our Z39.50 harvester (ctypes ZOOM): the same search and batches, each batch
  landed as a page and checkpointed (fsync'd temp file + rename, state file);
- our SRU harvester: cql.allRecords=1, maximumRecords=--page, MARCXML pages.
Each is run --repeat times; the best run counts. Prints a table, then one JSON
line: {"harvest": {...}}. Target: Z39.50 within 10% of yaz-client.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymarc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harvesters import sru, z3950  # noqa: E402
from harvesters.http import HttpPolicy  # noqa: E402
from transforms.iso2709 import encode_record, split_records  # noqa: E402
from unioncat.network.zebra import ZebraServer  # noqa: E402
from unioncat.province import DemoLibrary, write_demo_drops  # noqa: E402
from unioncat.registry import Library  # noqa: E402
from unioncat.settings import Settings  # noqa: E402

DATABASE = "BENCH"
TEMPLATE_LIBRARIES = [DemoLibrary("ZJ002", "杭州图书馆", "杭州", "city"), DemoLibrary("ZJ004", "温州市图书馆", "温州", "city"),
                      DemoLibrary("ZJ001", "浙江图书馆", "杭州", "province")]


def generate_catalogue(folder: Path, count: int) -> Path:
    """`count` UTF-8 CNMARC records: the demo's UTF-8 records, cycled, each with its own 001."""
    write_demo_drops(TEMPLATE_LIBRARIES, folder / "drops", titles=300, real_records_dir=None)
    templates = []
    for drop in sorted((folder / "drops").glob("*/catalogue.mrc")):
        data = drop.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        templates += [pymarc.Record(data=chunk, to_unicode=True, force_utf8=True) for _, chunk in split_records(data)]
    path = folder / "bench.mrc"
    with path.open("wb") as out:
        for n in range(count):
            record = templates[n % len(templates)]
            record["001"].data = f"bench{n:08d}"
            out.write(encode_record(record, "utf-8"))
    return path


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def yaz_client_harvest(port: int, records: int, page: int, dump: Path) -> None:
    commands = [f"open tcp:127.0.0.1:{port}/{DATABASE}", "format unimarc", "elements zebra::data",
                f"set_marcdump {dump}", 'find @attr 1=_ALLRECORDS @attr 2=103 ""']
    commands += [f"show {start}+{min(page, records - start + 1)}" for start in range(1, records + 1, page)]
    script = dump.with_suffix(".cmd")
    script.write_text("\n".join(commands + ["quit", ""]))
    dump.unlink(missing_ok=True)
    subprocess.run(["yaz-client", "-k", "65536", "-f", str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=600)
    received = dump.read_bytes().count(b"\x1d")
    if received != records:
        raise SystemExit(f"yaz-client received {received} of {records} records")


def our_harvest(module, library: Library, work: Path, records: int, **options) -> None:
    data_dir = work / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    result = module.harvest(Settings(work / "sources.toml", data_dir), library, "bench", full=True, **options)
    if result.records != records:
        raise SystemExit(f"{library.protocol} harvest landed {result.records} of {records} records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--page", type=int, default=1000, help="records per present / SRU page")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="unioncat-bench-") as temp:
        work = Path(temp)
        catalogue = generate_catalogue(work, args.records)
        with ZebraServer(work / "zebra", {DATABASE: [catalogue]}) as zebra:
            z3950_library = Library(DATABASE, "bench", "杭州", "city", "z3950", zebra.z3950_endpoint(DATABASE), syntax="cnmarc")
            sru_library = Library(DATABASE, "bench", "杭州", "city", "sru", zebra.sru_url(DATABASE), syntax="cnmarc")
            contenders = {
                "yaz-client (Z39.50)": lambda: yaz_client_harvest(zebra.port, args.records, args.page, work / "yaz.mrc"),
                "unioncat z3950": lambda: our_harvest(z3950, z3950_library, work, args.records,
                                                      policy=z3950.Z3950Policy(page_records=args.page)),
                "unioncat sru": lambda: our_harvest(sru, sru_library, work, args.records,
                                                    policy=sru.SruPolicy(http=HttpPolicy(), page_records=args.page)),
            }
            best = {name: min(timed(action) for _ in range(args.repeat)) for name, action in contenders.items()}

    rates = {name: args.records / seconds for name, seconds in best.items()}
    baseline = rates["yaz-client (Z39.50)"]
    print(f"{args.records:,} records from a local Zebra, {args.page} per present/page, best of {args.repeat}")
    print(f"{'harvester':<22}{'seconds':>10}{'records/s':>12}{'vs yaz-client':>15}")
    for name, seconds in best.items():
        print(f"{name:<22}{seconds:>10.2f}{rates[name]:>12,.0f}{rates[name] / baseline:>14.0%}")
    figures = {
        "records": args.records, "page": args.page,
        "yaz_client_records_per_s": round(baseline),
        "z3950_records_per_s": round(rates["unioncat z3950"]),
        "sru_records_per_s": round(rates["unioncat sru"]),
        "z3950_vs_yaz_client": round(rates["unioncat z3950"] / baseline, 3),
    }
    print(json.dumps({"harvest": figures}))


if __name__ == "__main__":
    main()
