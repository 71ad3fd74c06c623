"""The demo province of file libraries run stage by stage through tests/faults/crash_runner.py:
the uninterrupted run every crash is compared with, and the published catalogue the consumer
tests read."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from faults.checks import REPO
from unioncat.province import DemoLibrary, write_demo_drops

STAGES = ("harvest", "transform", "dedup", "publish")
LIBRARIES = [DemoLibrary("K01", "浙江图书馆", "杭州", "province"), DemoLibrary("K02", "杭州图书馆", "杭州", "city"),
             DemoLibrary("K03", "宁波图书馆", "宁波", "city"), DemoLibrary("K04", "余姚市图书馆", "宁波", "county")]


class StageRunner:
    """The crash runner process: runs stages, optionally killing them."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("w")
        self._process = subprocess.Popen([sys.executable, str(REPO / "tests" / "faults" / "crash_runner.py")], cwd=REPO,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)

    def run(self, stage: str, data_dir: Path, sources: Path, hook: str = "none", at: int = 0) -> dict:
        request = {"argv": [stage, "--sources", str(sources), "--data-dir", str(data_dir)], "hook": hook, "at": at}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        assert answer, f"the crash runner died; see {self._log.name}"
        return json.loads(answer)

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(30)
        self._log.close()


@dataclass
class Baseline:
    sources: Path
    root: Path
    counts: dict  # stage → {"replaces": n, "duckdb_calls": m} of the uninterrupted run
    runner: StageRunner

    def data_before(self, stage: str) -> Path:
        return self.root / f"before-{stage}"

    @property
    def published(self) -> Path:
        return (self.root / "data" / "published" / "current").resolve()


def run_baseline(root: Path) -> Baseline:
    """An uninterrupted run, stage by stage, with a copy of the data dir before each stage."""
    write_demo_drops(LIBRARIES, root / "drops", titles=40)
    sources = root / "sources.toml"
    sources.write_text("".join(
        f'[[library]]\nid = "{lib.id}"\nname = "{lib.name}"\ncity = "{lib.city}"\nlevel = "{lib.level}"\n'
        f'protocol = "file"\nendpoint = "drops/{lib.id}"\n\n' for lib in LIBRARIES), encoding="utf-8")
    runner = StageRunner(root / "crash_runner.log")
    data, counts = root / "data", {}
    data.mkdir()
    for stage in STAGES:
        shutil.copytree(data, root / f"before-{stage}", symlinks=True)
        answer = runner.run(stage, data, sources)
        assert answer.get("exit") == 0, answer
        counts[stage] = answer
    return Baseline(sources, root, counts, runner)
