"""`unioncat`: the command line of the union catalogue.

Every command that reads the registry or data takes `--sources FILE` and
`--data-dir DIR` after its name, defaulting to $UNIONCAT_SOURCES /
$UNIONCAT_DATA_DIR and then to the repo's sources.toml and ./var.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from unioncat.registry import Library, RegistryError, load_registry, validate_registry
from unioncat.settings import Settings

EXIT_OK, EXIT_FAILED = 0, 1


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.resolve(args.sources, args.data_dir)


def _libraries(settings: Settings, only: str | None = None) -> list[Library]:
    registry = load_registry(settings.sources_path)
    if only:
        try:
            return [registry.get(only)]
        except KeyError as error:
            raise SystemExit(error.args[0]) from None
    return list(registry.enabled())


def cmd_sources_validate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    problems = validate_registry(settings.sources_path)
    for problem in problems:
        print(problem)
    if problems:
        _err(f"{len(problems)} problem(s) in {settings.sources_path}")
        return EXIT_FAILED
    registry = load_registry(settings.sources_path)
    print(f"{settings.sources_path}: {len(registry.libraries)} libraries, {len(registry.enabled())} enabled, no problems")
    return EXIT_OK


def cmd_harvest(args: argparse.Namespace) -> int:
    from harvesters.errors import HarvestError
    from unioncat.pipeline import harvest_library, new_run_id

    settings = _settings(args)
    libraries = _libraries(settings, args.library)
    run_id = new_run_id()
    failed = 0
    for n, library in enumerate(libraries, 1):
        try:
            print(f"[{n}/{len(libraries)}] {harvest_library(settings, library, run_id).summary()}", flush=True)
        except HarvestError as error:
            failed += 1
            _err(f"[{n}/{len(libraries)}] FAILED {error}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_transform(args: argparse.Namespace) -> int:
    from unioncat.pipeline import transform

    settings = _settings(args)
    libraries = _libraries(settings, args.library)
    for n, library in enumerate(libraries, 1):
        print(f"[{n}/{len(libraries)}] {transform(settings, library, full=args.full).line()}", flush=True)
    return EXIT_OK


def cmd_dedup(args: argparse.Namespace) -> int:
    from unioncat.pipeline import dedup

    settings = _settings(args)
    print(dedup(settings, _libraries(settings)).line())
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from unioncat.pipeline import publish_snapshot
    from warehouse.checks import QualityCheckFailed

    settings = _settings(args)
    if args.keep is not None:  # retention reads it when the snapshot is promoted
        os.environ["UNIONCAT_KEEP_SNAPSHOTS"] = str(args.keep)
    try:
        summary = publish_snapshot(settings, _libraries(settings), gate=not args.no_checks)
    except QualityCheckFailed as error:
        print("\n".join(f.line() for f in error.failures), file=sys.stderr)
        print(f"unioncat: {error}; published/current not switched (--no-checks publishes anyway)", file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(summary.checks))
    print(summary.line())
    print(f"snapshot: {summary.path}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from unioncat.pipeline import run_all
    from warehouse.checks import QualityCheckFailed

    settings = _settings(args)
    try:
        summary = run_all(settings, full=args.full, progress=lambda line: print(line, flush=True))
    except QualityCheckFailed as error:
        print("\n".join(f.line() for f in error.failures), file=sys.stderr)
        _err(f"{error}; published/current not switched (inspect it, then `unioncat publish --no-checks` to publish anyway)")
        return EXIT_FAILED
    _print_catalogue_summary(settings)
    if summary.failed:
        _err(f"{len(summary.failed)} library harvest(s) failed; their previous data was kept: {', '.join(summary.failed)}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from warehouse.status import library_status_rows

    settings = _settings(args)
    rows = library_status_rows(settings, _libraries(settings))
    print(f"{'library':<8} {'harvest':<8} {'last run':<22} {'records':>8} {'quarant.':>8}  name / problem")
    for row in rows:
        print(f"{row['library_id']:<8} {row['harvest']:<8} {row['last_run'] or '-':<22} {row['records']:>8} {row['quarantined']:>8}  {row['name']}")
        for problem in row["problems"]:
            print(f"{'':<59}  ! {problem}")
    current = settings.current_snapshot
    print(f"\ncurrent snapshot: {current.resolve() if current.exists() else 'none yet (run `unioncat run`)'}")
    return EXIT_OK


@contextmanager
def _catalogue(settings: Settings, snapshot_id: str | None = None) -> Iterator:
    """A read-only connection to the published catalogue, held from retention while it is used;
    no snapshot (yet, or of that id) ends the command with the reason."""
    from warehouse.locks import SnapshotMissing, catalogue

    opened = catalogue(settings, snapshot_id)
    try:
        con = opened.__enter__()
    except SnapshotMissing as error:
        raise SystemExit(str(error)) from None
    with contextlib.ExitStack() as stack:
        stack.push(opened)
        yield con


def cmd_search(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _catalogue(settings) as con:
        hits = con.execute("select manifestation_id, title, subtitle, part_number, edition, publisher, year, isbn, n_libraries "
                           "from search(?) limit ?", [args.text, args.limit]).fetchall()
        if not hits:
            print(f"no title matches {args.text!r}")
            return EXIT_FAILED
        for mid, title, subtitle, part, edition, publisher, year, isbn, n_libraries in hits:
            label = " : ".join(p for p in (title, subtitle) if p) + (f" {part}" if part else "")
            details = ", ".join(str(p) for p in (edition, publisher, year, isbn and f"ISBN {isbn}") if p)
            print(f"{label}  ({details})  [{mid}]")
            holders = con.execute("select name, copies from holders(?)", [mid]).fetchall()
            names = "、".join(f"{name}×{copies}" if copies > 1 else name for name, copies in holders)
            print(f"    held by {n_libraries} librar{'y' if n_libraries == 1 else 'ies'}: {names}")
    return EXIT_OK


def _text_width(text: str) -> int:
    """Columns `text` takes in a terminal: Han characters and full-width forms take two."""
    import unicodedata

    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _clip(text: str, width: int) -> str:
    if _text_width(text) <= width:
        return text
    out, used = [], 0
    for char in text:
        used += _text_width(char)
        if used > width - 1:
            break
        out.append(char)
    return "".join(out) + "…"


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return " ".join(str(value).split())  # newlines and tabs would break the table


QUERY_CELL_WIDTH = 48


def _render_table(columns: list[str], types: list[str], rows: list[tuple], more: bool, out=None) -> None:
    """A psql-like table: numbers right-aligned, wide characters counted as two columns."""
    out = out or sys.stdout
    cells = [[_clip(_cell(v), QUERY_CELL_WIDTH) for v in row] for row in rows]
    widths = [max([_text_width(c)] + [_text_width(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [any(n in t for n in ("INT", "DECIMAL", "DOUBLE", "FLOAT", "REAL", "NUMERIC")) for t in types]

    def line(values):
        padded = []
        for value, width, right in zip(values, widths, numeric):
            pad = " " * (width - _text_width(value))
            padded.append(pad + value if right else value + pad)
        return " | ".join(padded).rstrip()

    print(line(columns), file=out)
    print("-+-".join("-" * w for w in widths), file=out)
    for row in cells:
        print(line(row), file=out)
    shown = f"({len(rows)} row{'' if len(rows) == 1 else 's'}"
    print(shown + (", more not shown: raise --max-rows)" if more else ")"), file=out)


def _render_csv(columns: list[str], rows: list[tuple], out=None) -> None:
    import csv

    out = out or sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else _cell(v) if isinstance(v, (list, tuple)) else v for v in row] for row in rows])


def _render_json(columns: list[str], rows: list[tuple], out=None) -> None:
    import json

    out = out or sys.stdout
    print(json.dumps([dict(zip(columns, row)) for row in rows], ensure_ascii=False, indent=1, default=str), file=out)


def cmd_query(args: argparse.Namespace) -> int:
    """Run SQL on the published catalogue, opened read-only under the snapshot's reader lock."""
    import duckdb

    settings = _settings(args)
    limit = args.max_rows if args.max_rows is not None else (100 if args.format == "table" else None)
    with _catalogue(settings, args.snapshot) as con:
        try:
            result = con.execute(args.sql)
            if result.description is None:  # a statement without rows, e.g. SET
                print("ok")
                return EXIT_OK
            columns = [d[0] for d in result.description]
            types = [str(d[1]).upper() for d in result.description]
            rows = result.fetchall() if limit is None else result.fetchmany(limit + 1)
        except duckdb.Error as error:
            message = str(error)
            if "read-only" in message:
                _err(f"refused: the catalogue is opened read-only; unioncat query only reads it ({message})")
            else:
                _err(f"query failed: {message}")
            return EXIT_FAILED
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if more else rows
        if args.format == "csv":
            _render_csv(columns, rows)
        elif args.format == "json":
            _render_json(columns, rows)
        else:
            _render_table(columns, types, rows, more)
        if more and args.format != "table":
            _err(f"only the first {limit} rows written (--max-rows)")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from warehouse.locks import SnapshotMissing, reading
    from warehouse.report import regenerate_report

    settings = _settings(args)
    try:
        with reading(settings, args.snapshot) as snapshot:
            output = Path(args.output) if args.output else settings.data_dir / "reports" / f"{snapshot.name}.html"
            regenerate_report(settings, snapshot, output)
    except SnapshotMissing as error:
        raise SystemExit(str(error)) from None
    print(f"report of snapshot {snapshot.name}: {output}")
    print(f"(the snapshot carries the report written when it was built: {snapshot / 'report.html'})")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from unioncat.demo import run_demo

    return run_demo(_settings(args), titles=args.titles, use_airflow=not args.no_airflow)


def cmd_eval(args: argparse.Namespace) -> int:
    from dedup.evaluate import evaluate_run

    settings = _settings(args)
    if not (settings.dedup_dir / "record_manifestation.parquet").exists():
        raise SystemExit(f"no dedup output in {settings.dedup_dir}; run `unioncat run` or `unioncat dedup` first")
    evaluation = evaluate_run(settings.dedup_dir, Path(args.truth), level=args.level, skip_label_prefix=args.skip_label_prefix)
    print(evaluation.report(examples=args.examples))
    return EXIT_OK


def cmd_network(args: argparse.Namespace) -> int:
    from unioncat.demo import drops_root
    from unioncat.network import province as network

    settings = _settings(args)
    if args.action == "status":
        info = network.status(settings)
        print(f"running (pid {info['pid']}, {info['libraries']} library servers)" if info else "not running")
        return EXIT_OK if info else EXIT_FAILED
    if args.action == "stop":
        print("stopped" if network.stop_background(settings) else "was not running")
        return EXIT_OK
    libraries = _libraries(settings)
    if args.action == "serve":
        network.serve(settings, libraries, drops_root(settings, libraries))
        return EXIT_OK
    info = network.start_background(settings)
    print(f"library network running (pid {info['pid']}): {info['libraries']} libraries served on loopback as {settings.sources_path} says")
    return EXIT_OK


def cmd_airflow(args: argparse.Namespace) -> int:
    from unioncat.airflow_env import airflow_command

    return airflow_command(_settings(args), args.airflow_args or ["--help"])


def _print_catalogue_summary(settings: Settings) -> None:
    from warehouse.status import catalogue_summary

    print(catalogue_summary(settings))


_EXAMPLES = {
    "sources validate": "unioncat sources validate --sources sources.toml",
    "harvest": "unioncat harvest --data-dir var --library ZJ001",
    "transform": "unioncat transform --data-dir var --full",
    "dedup": "unioncat dedup --data-dir var",
    "publish": "unioncat publish --data-dir var",
    "run": "unioncat run --sources sources.toml --data-dir var",
    "status": "unioncat status --data-dir var",
    "search": "unioncat search 红楼梦 --data-dir var",
    "query": "unioncat query \"select name, records, unique_holdings from library_stats order by 3 desc limit 5\" --data-dir var",
    "report": "unioncat report --data-dir var --output /tmp/report.html",
    "demo": "unioncat demo --data-dir var",
    "eval": "unioncat eval --truth demo/drops/truth.csv --skip-label-prefix M-",
    "network": "unioncat network start   # then: unioncat run; unioncat network stop",
    "airflow": "unioncat airflow standalone   # the Airflow UI on http://localhost:8080 with unioncat's DAGs",
}


def _command(subparsers, name: str, handler: Callable, help_text: str, *, registry: bool = True) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name.split()[-1], help=help_text, description=help_text,
        epilog=f"example:\n  {_EXAMPLES[name]}", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    parser.add_argument("--sources", metavar="FILE", help="registry of libraries (default: $UNIONCAT_SOURCES or the repo's sources.toml)")
    if registry:
        parser.add_argument("--data-dir", metavar="DIR", help="where landing, staging and published data live (default: $UNIONCAT_DATA_DIR or ./var)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unioncat",
        description="Build a province-wide union library catalogue: harvest → transform → dedup → publish.",
        epilog="example:\n  unioncat demo            # demo province through Airflow, prints where the catalogue is\n"
               "  unioncat search 唐诗     # which libraries hold it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    sources = commands.add_parser("sources", help="check the library registry", description="Check the library registry.")
    sources_commands = sources.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _command(sources_commands, "sources validate", cmd_sources_validate,
             "report every problem of sources.toml at once, with line numbers; exit 1 if any", registry=False).set_defaults(data_dir=None)

    for name, handler, help_text in (
        ("harvest", cmd_harvest, "fetch each enabled library's catalogue into the landing zone (incremental)"),
        ("transform", cmd_transform, "read landed MARC into canonical records, holdings and quarantine"),
    ):
        command = _command(commands, name, handler, help_text)
        command.add_argument("--library", metavar="ID", help="only this library")
        if name == "transform":
            command.add_argument("--full", action="store_true", help="re-read every library and every record, even those unchanged since the last run")
    _command(commands, "dedup", cmd_dedup, "group records of all libraries into manifestations")
    publish = _command(commands, "publish", cmd_publish, "write an immutable snapshot and switch published/current to it")
    publish.add_argument("--keep", type=int, metavar="N",
                         help="keep the newest N snapshots, prune older ones (default: $UNIONCAT_KEEP_SNAPSHOTS or 5)")
    publish.add_argument("--no-checks", action="store_true",
                         help="switch published/current even if the quality gate fails (row counts against the current "
                              "snapshot, title keys, quarantine rates: see warehouse/checks.py)")
    run = _command(commands, "run", cmd_run, "all stages: harvest → transform → dedup → publish (incremental unless --full)")
    run.add_argument("--full", action="store_true",
                     help="harvest every library whole, re-read every record and re-match every record, even those unchanged since the last run")
    _command(commands, "status", cmd_status, "per-library harvest state, record and quarantine counts, problems")
    search = _command(commands, "search", cmd_search, "find titles (Chinese or Western) in the published catalogue and list holding libraries")
    search.add_argument("text", help="words of the title, e.g. 红楼梦")
    search.add_argument("--limit", type=int, default=10, help="at most this many manifestations (default 10)")
    query = _command(commands, "query", cmd_query,
                     "run SQL on the published catalogue (opened read-only; tables, views and macros of sql/)")
    query.add_argument("sql", metavar="SQL", help="one statement, e.g. \"select * from library_stats\"")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)")
    query.add_argument("--max-rows", type=int, metavar="N",
                       help="print at most N rows (default: 100 for a table, all for csv and json)")
    query.add_argument("--snapshot", metavar="ID", help="snapshot id under published/ (default: current)")
    report = _command(commands, "report", cmd_report,
                      "write the data-quality and coverage report (HTML with charts) of a published snapshot")
    report.add_argument("--snapshot", metavar="ID", help="snapshot id under published/ (default: current)")
    report.add_argument("--output", metavar="FILE", help="where to write it (default: <data-dir>/reports/<snapshot id>.html)")
    demo = _command(commands, "demo", cmd_demo, "generate the demo province's file drops and run the pipeline through Airflow")
    demo.add_argument("--titles", type=int, default=2000, help="manifestations in the generated province (default 2000)")
    demo.add_argument("--no-airflow", action="store_true", help="run the stages directly instead of through Airflow's dag.test()")
    evaluation = _command(commands, "eval", cmd_eval, "score the last dedup against labelled truth: pairwise and B-cubed P/R/F1, errors by kind")
    evaluation.add_argument("--truth", required=True, metavar="FILE", help="CSV with record_key and manifestation_label (and work_label)")
    evaluation.add_argument("--level", choices=("manifestation", "work"), default="manifestation", help="compare manifestations (default) or works")
    evaluation.add_argument("--skip-label-prefix", metavar="PREFIX", help="leave out records whose label starts with it")
    evaluation.add_argument("--examples", type=int, default=5, help="example errors listed per kind (default 5)")
    network = _command(commands, "network", cmd_network,
                       "start, stop or check the local library network (Zebra Z39.50/SRU, OAI-PMH) the registry points at")
    network.add_argument("action", choices=("start", "stop", "status", "serve"),
                         help="start/stop it in the background, status, or serve in the foreground")
    airflow = _command(commands, "airflow", cmd_airflow,
                       "run the airflow CLI with unioncat's configuration (e.g. standalone, dags list, dags trigger)")
    airflow.add_argument("airflow_args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments for airflow, after unioncat's own options, e.g. standalone")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except RegistryError as error:
        _err(f"invalid registry:\n{error}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
