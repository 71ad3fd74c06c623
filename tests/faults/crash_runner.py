"""Run `unioncat` stages in processes that kill themselves (SIGKILL, as `kill -9`) at a chosen point.

Started once (`python tests/faults/crash_runner.py`, cwd = the repo), it imports the CLI and the
stages, then forks one child per request, so that a crash point costs no interpreter start. A
request is one JSON line on stdin:

    {"argv": ["dedup", "--sources", "...", "--data-dir", "..."], "hook": "before-replace", "at": 3}

and the answer one JSON line on stdout: {"signal": 9} if the child was killed, else {"exit": rc,
"replaces": n, "duckdb_calls": m} (how many of each the whole stage made). Hooks:
- `before-replace` / `after-replace`: at the `at`-th os.replace/os.rename (every file of the
  landing zone, state, staging, dedup output and snapshot is written to a temp file and renamed;
  before the rename, a complete temp file is on disk; after it, the file counts);
- `duckdb-call`: at the `at`-th execute/sql/query on any DuckDB connection (mid-computation,
  e.g. while dedup scores or publish builds catalogue.duckdb);
- `none`: run to the end and report the counts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import duckdb  # noqa: E402

from unioncat.cli import main  # noqa: E402
import unioncat.pipeline  # noqa: E402,F401  (imported here so that a fork starts warm)
from transforms.normalise import pinyin_key  # noqa: E402

pinyin_key("汉字")  # loads pypinyin's dictionaries once, not in every child

COUNTED_DUCKDB_METHODS = ("execute", "executemany", "sql", "query")


class Ticker:
    def __init__(self, hook: str, at: int) -> None:
        self.hook, self.at = hook, at
        self.counts = {"replaces": 0, "duckdb_calls": 0}

    def tick(self, what: str, moment: str) -> None:
        if moment == "before":
            self.counts[what] += 1
        wanted = {"replaces": f"{moment}-replace", "duckdb_calls": "duckdb-call" if moment == "before" else ""}[what]
        if self.hook == wanted and self.counts[what] == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


class CountedConnection:
    """A DuckDB connection whose queries tick."""

    def __init__(self, connection, ticker: Ticker) -> None:
        self._connection, self._ticker = connection, ticker

    def __getattr__(self, name: str):
        attribute = getattr(self._connection, name)
        if name not in COUNTED_DUCKDB_METHODS:
            return attribute

        def counted(*args, **kwargs):
            self._ticker.tick("duckdb_calls", "before")
            return attribute(*args, **kwargs)

        return counted

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._connection.close()


def install(ticker: Ticker) -> None:
    real_replace, real_rename, real_connect = os.replace, os.rename, duckdb.connect

    def renaming(real):
        def rename(*args, **kwargs):
            ticker.tick("replaces", "before")
            result = real(*args, **kwargs)
            ticker.tick("replaces", "after")
            return result
        return rename

    os.replace, os.rename = renaming(real_replace), renaming(real_rename)
    duckdb.connect = lambda *args, **kwargs: CountedConnection(real_connect(*args, **kwargs), ticker)


def child(request: dict, report_fd: int) -> None:
    ticker = Ticker(request["hook"], request.get("at", 0))
    install(ticker)
    with open(os.devnull, "w") as quiet:
        os.dup2(quiet.fileno(), 1)  # the stage's progress lines; stdout is the answer channel
        code = main(request["argv"])
    os.write(report_fd, json.dumps({"exit": code, **ticker.counts}).encode())
    os._exit(0)


def serve() -> None:
    answers = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                child(request, write_end)
            except BaseException as error:  # reported, then the child ends without cleanup
                os.write(write_end, json.dumps({"error": repr(error)}).encode())
                os._exit(1)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as report:
            reported = report.read()
        answer = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else json.loads(reported or b"{}")
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
