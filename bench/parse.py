"""Parse + normalise throughput of unioncat's reader against pymarc and yaz-marcdump.

    uv run python bench/parse.py [--records N] [--loc PATH]

Inputs: the 26,095 LoC MARC21 records (../shared/data, skipped when absent)
and N generated CNMARC records (the demo province generator, UTF-8 and
GB18030 mixed). Contenders, each over the same bytes in the same run:
- unioncat, one process: split, parse, detect encoding, decode the mapped
  fields, map to canonical rows with all keys (title, pinyin, author,
  publisher, ISBN-13);
- unioncat, two processes (the machine has two cores), each reading half of the
  records from a file, as the transform stage's workers read their libraries' files;
- pymarc: a plain `MARCReader` loop (parse + decode only, no mapping), with force_utf8 (the
  issue's baseline; it cannot read GB18030 records), and told each record's encoding;
- yaz-marcdump: YAZ's C decoder printing every record (to /dev/null).
Each contender's best of --repeat runs. unioncat's key caches (title, author, publisher,
pinyin, ISBN-13) are emptied before each run, so a run never finds the keys of an earlier one
(a long harvest meets each title once); its one-time set-up (OpenCC, the pinyin table) is done
before the first, on the first 100 records, as a long run would amortise it.
Prints a table; the last line is one JSON object with the figures ("parse").
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pymarc  # noqa: E402

from transforms import isbn, normalise  # noqa: E402
from transforms.encoding import CODECS, decide_encoding  # noqa: E402
from transforms.iso2709 import RecordError, parse_record, split_records  # noqa: E402
from transforms.readers import bibliographic_format, read_iso2709  # noqa: E402
from unioncat.province import DemoLibrary, write_demo_drops  # noqa: E402

LOC = REPO.parent / "shared" / "data" / "marc21_loc_books" / "BooksAll.2016.part01.first26095.utf8.mrc"


def generated_cnmarc(records: int, folder: Path) -> bytes:
    """About `records` CNMARC records from the demo generator, concatenated."""
    libraries = [DemoLibrary(f"B{n:03d}", f"图书馆{n}", "杭州", "city" if n < 12 else "county") for n in range(100)]
    write_demo_drops(libraries, folder, titles=max(records // 5, 100), real_records_dir=None)
    data = b"".join(p.read_bytes() for p in sorted(folder.glob("*/catalogue.mrc")))
    offsets = [offset for offset, _ in split_records(data)]
    return data[: offsets[records]] if len(offsets) > records else data


def _unioncat(data: bytes) -> int:
    return sum(1 for _ in read_iso2709(data, library_id="B", run_id="bench"))


def _pymarc(data: bytes) -> int:
    return sum(1 for record in pymarc.MARCReader(io.BytesIO(data), to_unicode=True, force_utf8=True, permissive=True) if record)


class PymarcToldEachEncoding:
    """pymarc's loop given each record's encoding, as a harvester configured per library would
    give it (pymarc does not detect one): the UTF-8 records with force_utf8, the others with
    their codec as file_encoding; grouped by unioncat's decision before the timing."""

    def __init__(self):
        self.groups: dict[str, bytes] = {}

    def prepare(self, data: bytes) -> None:
        chunks: dict[str, list[bytes]] = {}
        for _, chunk in split_records(data):
            try:
                raw = parse_record(chunk)
                encoding = CODECS[decide_encoding(raw, bibliographic_format(raw.tags, "auto")).encoding]
            except RecordError:
                encoding = "utf-8"
            chunks.setdefault(encoding, []).append(chunk)
        self.groups = {encoding: b"".join(group) for encoding, group in chunks.items()}

    def __call__(self, data: bytes) -> int:
        read = 0
        for encoding, group in self.groups.items():
            options = {"force_utf8": True} if encoding == "utf-8" else {"file_encoding": encoding}
            read += sum(1 for record in pymarc.MARCReader(io.BytesIO(group), to_unicode=True, permissive=True, **options) if record)
        return read


def _halves(data: bytes) -> list[bytes]:
    offsets = [offset for offset, _ in split_records(data)]
    middle = offsets[len(offsets) // 2]
    return [data[:middle], data[middle:]]


def _unioncat_file(path: str) -> int:
    return _unioncat(Path(path).read_bytes())


class TwoCores:
    """unioncat in two worker processes, each reading half of the records from a file as the
    transform stage's workers read their libraries' files (not sent them through a pipe)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.paths: list[str] = []

    def prepare(self, data: bytes) -> None:
        """Write the halves of `data`, the records the next calls read (before they are timed)."""
        self.paths = []
        for number, half in enumerate(_halves(data)):
            path = self.folder / f"half-{number}.mrc"
            path.write_bytes(half)
            self.paths.append(str(path))

    def __call__(self, data: bytes) -> int:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            return sum(pool.map(_unioncat_file, self.paths))


def _yaz_marcdump(data: bytes) -> int:
    with tempfile.NamedTemporaryFile(suffix=".mrc") as handle:
        handle.write(data)
        handle.flush()
        subprocess.run(["yaz-marcdump", handle.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return data.count(b"\x1d")


KEY_CACHES = (normalise.fold_text, normalise.title_key, normalise.pinyin_key, normalise.author_key,
              normalise.publisher_key, normalise.parse_year, normalise.parse_pages, isbn.to_isbn13)


def timed(function, data: bytes, repeat: int) -> tuple[int, float]:
    """Records and the best time of `repeat` runs, the key caches emptied before each."""
    best = float("inf")
    for _ in range(repeat):
        for cache in KEY_CACHES:
            cache.cache_clear()
        start = time.perf_counter()
        count = function(data)
        best = min(best, time.perf_counter() - start)
    return count, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="generated CNMARC records (default 100000)")
    parser.add_argument("--loc", type=Path, default=LOC, help="LoC MARC21 file (default: ../shared/data copy)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender, the best counts (default 3)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="unioncat-bench-parse-"))
    try:
        datasets = {"generated CNMARC": generated_cnmarc(args.records, folder)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.loc.exists():
        datasets = {"LoC MARC21": args.loc.read_bytes(), **datasets}
    two_cores = TwoCores(Path(tempfile.mkdtemp(prefix="unioncat-bench-halves-")))
    told = PymarcToldEachEncoding()
    contenders = {
        "unioncat (1 core)": _unioncat,
        "unioncat (2 cores)": two_cores,
        "pymarc MARCReader (1 core, no mapping)": _pymarc,
        "pymarc, told each record's encoding": told,
        "yaz-marcdump (C, 1 core)": _yaz_marcdump if shutil.which("yaz-marcdump") else None,
    }
    figures: dict = {}
    print(f"{'dataset':<18} {'reader':<40} {'records':>9} {'seconds':>8} {'records/s':>10}")
    for dataset, data in datasets.items():
        _unioncat(data[: next(islice(split_records(data), 100, None))[0]])  # one-time set-up, on the first 100 records
        two_cores.prepare(data)
        told.prepare(data)
        for name, function in contenders.items():
            if function is None:
                continue
            count, seconds = timed(function, data, args.repeat)
            rate = count / seconds
            figures.setdefault(dataset, {})[name] = {"records": count, "seconds": round(seconds, 3), "records_per_s": round(rate)}
            print(f"{dataset:<18} {name:<40} {count:>9,} {seconds:>8.2f} {rate:>10,.0f}")
        ours = figures[dataset]["unioncat (1 core)"]["records_per_s"]
        base = figures[dataset]["pymarc MARCReader (1 core, no mapping)"]["records_per_s"]
        both = figures[dataset]["unioncat (2 cores)"]["records_per_s"]
        told_rate = figures[dataset]["pymarc, told each record's encoding"]["records_per_s"]
        print(f"{dataset:<18} unioncat vs pymarc: {ours / base:.2f}x on 1 core, {both / base:.2f}x on 2 cores "
              f"(vs pymarc told each encoding: {ours / told_rate:.2f}x, {both / told_rate:.2f}x)")
    shutil.rmtree(two_cores.folder, ignore_errors=True)
    print(json.dumps({"parse": figures}, ensure_ascii=False))


if __name__ == "__main__":
    main()
