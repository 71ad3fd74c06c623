"""OAI-PMH harvest throughput: our harvester against plain sickle, from the same local server.

    uv run python bench/harvest_oai.py [--records N] [--page-size 100] [--repeat 2]

Loads N records into the local OAI-PMH server (unioncat.network.oai_server, run as a
subprocess so that it does not share the harvesters' GIL): the 310 real records of demo/real
(300 LoC MARC21, 10 BNU CNMARC), cycled, each with its own 001. Then times full ListRecords
harvests (metadataPrefix marc21) of the whole repository:
- sickle: `Sickle(url).ListRecords(...)`, iterating every record (its default Record objects);
- ours: `harvesters.oai.harvest(full=True)`: Identify, ListMetadataFormats, windows, every page
  landed (fsync'd temp file + rename) and checkpointed, the next page prefetched meanwhile.
Each is run --repeat times, alternately; the best run counts. Prints a table, then one JSON
line: {"harvest": {...}}. Target: ours at least 2x sickle's records/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymarc
from lxml import etree
from sickle import Sickle

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harvesters import oai  # noqa: E402
from unioncat.network.oai_server import RecordStore  # noqa: E402
from unioncat.registry import Library  # noqa: E402
from unioncat.settings import Settings  # noqa: E402

REAL = REPO / "demo" / "real"


def write_collection(path: Path, count: int) -> None:
    """A MARCXML collection of `count` real records, cycled, each with its own 001."""
    with (REAL / "loc_books_300.mrc").open("rb") as handle:
        templates = [etree.fromstring(pymarc.record_to_xml(record, namespace=True)) for record in pymarc.MARCReader(handle)]
    templates += list(etree.parse(str(REAL / "sample_cnmarcxml.xml")).getroot().iter("{*}record"))[1::2]  # the MARC records, not SRU's
    with path.open("wb") as out:
        out.write(b'<collection xmlns="http://www.loc.gov/MARC21/slim">\n')
        for n in range(count):
            record = templates[n % len(templates)]
            record.find("{*}controlfield[@tag='001']").text = f"bench{n:08d}"
            out.write(etree.tostring(record, encoding="utf-8") + b"\n")
        out.write(b"</collection>\n")


def start_server(store: Path, page_size: int) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "unioncat.network.oai_server", "--store", str(store), "--page-size", str(page_size)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    return server, server.stdout.readline().strip()


def with_sickle(url: str, _: Path) -> int:
    return sum(1 for _ in Sickle(url, timeout=60).ListRecords(metadataPrefix="marc21", ignore_deleted=False))


def with_unioncat(url: str, data_dir: Path) -> int:
    settings = Settings(data_dir / "sources.toml", data_dir)
    result = oai.harvest(settings, Library("BENCH", "基准图书馆", "杭州", "city", "oai", url), f"run{time.monotonic_ns()}", full=True)
    return result.records + result.deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-oai-") as folder:
        work = Path(folder)
        write_collection(work / "records.xml", args.records)
        store = RecordStore(work / "oai.sqlite")
        loaded = store.load_file(work / "records.xml")
        store.close()
        server, url = start_server(work / "oai.sqlite", args.page_size)
        try:
            best: dict[str, float] = {}
            for round_ in range(args.repeat):
                for name, run in (("sickle", with_sickle), ("unioncat", with_unioncat)):
                    started = time.perf_counter()
                    harvested = run(url, work / f"data-{round_}")
                    seconds = time.perf_counter() - started
                    if harvested != loaded:
                        raise SystemExit(f"{name} harvested {harvested} records, the server holds {loaded}")
                    best[name] = min(seconds, best.get(name, seconds))
        finally:
            server.terminate()
            server.wait()
    rates = {name: loaded / seconds for name, seconds in best.items()}
    print(f"OAI-PMH full ListRecords harvest of {loaded:,} records, pages of {args.page_size}, best of {args.repeat}")
    print(f"{'harvester':<10} {'seconds':>8} {'records/s':>10} {'vs sickle':>9}")
    for name in best:
        print(f"{name:<10} {best[name]:>8.2f} {rates[name]:>10,.0f} {rates[name] / rates['sickle']:>8.2f}x")
    print(json.dumps({"harvest": {
        "protocol": "oai-pmh", "records": loaded, "page_size": args.page_size,
        "sickle_seconds": round(best["sickle"], 3), "sickle_records_per_s": round(rates["sickle"]),
        "unioncat_seconds": round(best["unioncat"], 3), "unioncat_records_per_s": round(rates["unioncat"]),
        "speedup": round(rates["unioncat"] / rates["sickle"], 2),
    }}))


if __name__ == "__main__":
    main()
