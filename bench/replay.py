"""Run one stage again on a state kept by `bench/scale.py --keep-states DIR`: an A/B of two
versions of the code on the same data, without the whole bench.

    uv run python bench/replay.py dedup DIR/before-dedup [--statements S] [--full | --same-matching]
    uv run python bench/replay.py publish DIR/before-publish [--statements S]

The state is hard-linked into a temporary copy (the stages replace files, never write into
them, so the kept state stays as it was), and the stage runs on the copy in this process, as
`unioncat.pipeline` runs it. Prints the wall and CPU seconds (user and system, and the page
faults behind most of the system time), dedup's phases and summary line,
and with --statements S every DuckDB statement that took at least S seconds, in order (a
query read as it is written counts where it is read). For an A/B, run the same command from
two checkouts (`git worktree add`) one after the other, alternating: this VM's speed moves by
10–35% over an hour, so compare runs made close together.

A change to dedup's matching code (`dedup.rules.MATCHING_CODE`) changes the rules fingerprint,
and dedup then throws its cached features, nodes and pairs away: the replay is a full run.
`--same-matching` writes this checkout's fingerprint into the copy's state, so that a change
that leaves the features, nodes and pairs as they were (how they are computed or held, not
what they are) is replayed incrementally; on a change that alters them its figures are wrong.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402

import warehouse.catalogue  # noqa: E402
import warehouse.checks  # noqa: E402
import warehouse.snapshot  # noqa: E402
from dedup import rules  # noqa: E402
from dedup.stage import deduplicate  # noqa: E402
from scale import keep_state  # noqa: E402
from unioncat import atomic, pipeline  # noqa: E402
from unioncat.settings import Settings, duckdb_config  # noqa: E402
from warehouse.locks import remove_tree  # noqa: E402

TIMINGS: list[tuple[float, str]] = []


def _first_line(sql: str) -> str:
    lines = [line.strip() for line in sql.strip().splitlines() if line.strip() and not line.strip().startswith("--")]
    return (lines[0] if lines else "")[:110]


class TimedConnection:
    """A DuckDB connection whose statements are timed one by one (a script split into them)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, query, *args, **kwargs):
        statements = self._con.extract_statements(query) if isinstance(query, str) and not args and not kwargs else []
        if len(statements) > 1:
            result = None
            for statement in statements:
                result = self._timed(statement.query)
            return result
        return self._timed(query, *args, **kwargs)

    def _timed(self, query, *args, **kwargs):
        started = time.perf_counter()
        result = self._con.execute(query, *args, **kwargs)
        TIMINGS.append((time.perf_counter() - started, _first_line(query)))
        return result


class _TimedDuckDB:
    """Stands for the `duckdb` module in the publish modules: their connections are timed."""

    def __getattr__(self, name):
        return getattr(duckdb, name)

    def connect(self, *args, **kwargs):
        return TimedConnection(duckdb.connect(*args, **kwargs))


def adopt_matching_code(data: Path) -> None:
    """The copy's dedup state with this checkout's rules fingerprint (`--same-matching`), written
    as a new file: the kept state's, hard-linked into the copy, stays as it was."""
    path = data / "dedup" / "state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    print(f"rules fingerprint {state.get('rules')} → {rules.fingerprint()} (--same-matching)")
    atomic.write_json(path, {**state, "rules": rules.fingerprint()})


def replay(stage: str, state: Path, full: bool) -> str:
    settings = Settings.resolve(state / "sources.toml", state)
    libraries = list(pipeline.registry(settings).enabled())
    if stage == "dedup":
        settings.dedup_dir.mkdir(parents=True, exist_ok=True)
        con = TimedConnection(duckdb.connect(config=duckdb_config(settings.dedup_dir / ".spill", preserve_insertion_order=False)))
        summary = deduplicate(settings, libraries, con=con, full=full)
        return f"{summary.line()}\nphases (s): " + ", ".join(f"{name} {seconds}" for name, seconds in summary.phases.items())
    for module in (warehouse.snapshot, warehouse.catalogue, warehouse.checks):
        module.duckdb = _TimedDuckDB()
    return pipeline.publish_snapshot(settings, libraries).line()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("dedup", "publish"))
    parser.add_argument("state", type=Path, help="a folder bench/scale.py --keep-states wrote (before-dedup, before-publish)")
    parser.add_argument("--statements", type=float, metavar="S", help="list the DuckDB statements that took at least S seconds")
    parser.add_argument("--full", action="store_true", help="dedup: a full run rather than an incremental one")
    parser.add_argument("--same-matching", action="store_true",
                        help="dedup: write this checkout's rules fingerprint into the copy, so that a change to the "
                             "matching code that leaves the features, nodes and pairs as they were replays incrementally "
                             "(its figures are wrong for a change that alters them)")
    args = parser.parse_args()
    if args.same_matching and (args.stage != "dedup" or args.full):
        parser.error("--same-matching is for an incremental dedup replay")
    if not (args.state / "sources.toml").is_file():
        parser.error(f"{args.state} is not a kept state: no sources.toml in it (bench/scale.py --keep-states DIR writes them)")
    work = Path(tempfile.mkdtemp(prefix=f"unioncat-replay-{args.stage}-", dir=args.state.parent))
    try:
        copy = work / "data"
        keep_state(args.state, args.state / "sources.toml", copy)
        if args.same_matching:
            adopt_matching_code(copy)
        started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        line = replay(args.stage, copy, args.full)
        seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    finally:
        remove_tree(work)  # the snapshots in it are frozen (read-only folders)
    print(line)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    # system time is mostly page faults: memory DuckDB fills (temp tables, hash tables, copies)
    # touched for the first time (BENCHMARKS.md: the allocator settings that did not change that)
    print(f"{args.stage}: {seconds:.1f} s, {user + system:.1f} CPU s (user {user:.1f}, system {system:.1f}; "
          f"{after.ru_minflt - before.ru_minflt:,} page faults), peak RSS {after.ru_maxrss // 1024:,} MB")
    if args.statements is not None:
        for took, statement in TIMINGS:
            if took >= args.statements:
                print(f"{took:8.2f}  {statement}")


if __name__ == "__main__":
    main()
