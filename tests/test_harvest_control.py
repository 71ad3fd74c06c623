"""What the DAGs rely on around each harvest: per-host slots, re-harvest
windows, run folders that never overwrite committed pages, failure alerts,
and the run summary."""

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from harvesters import state as harvest_state
from unioncat.alerts import alert_task_failure, failure_message
from unioncat.host_limits import host_of, host_slot
from unioncat.pipeline import landing_run_id, rewind_watermark
from unioncat.registry import Library
from unioncat.run_report import Outcomes, build_outcomes, harvest_outcomes
from unioncat.settings import Settings


def _library(library_id="ZJ001", protocol="z3950", endpoint="127.0.0.1:9210/ZJ001"):
    return Library(id=library_id, name="测试馆", city="杭州", level="county", protocol=protocol, endpoint=endpoint)


@pytest.fixture()
def settings(tmp_path):
    (tmp_path / "state").mkdir()
    return Settings(tmp_path / "sources.toml", tmp_path)


@pytest.mark.parametrize(
    "protocol, endpoint, host",
    [
        ("z3950", "opac.example.cn:210/ZJ001", "opac.example.cn:210"),
        ("sru", "http://127.0.0.1:9210/ZJ001", "127.0.0.1:9210"),
        ("oai", "https://oai.zjlib.cn/oai/ZJ001", "oai.zjlib.cn"),
        ("file", "demo/drops/ZJ001", None),
    ],
)
def test_libraries_are_limited_per_server(protocol, endpoint, host):
    assert host_of(_library(protocol=protocol, endpoint=endpoint)) == host


def test_a_harvest_waits_for_a_free_slot_of_its_server(settings):
    first, second = _library("ZJ001"), _library("ZJ002", endpoint="127.0.0.1:9210/ZJ002")
    waiting, entered, order = threading.Event(), threading.Event(), []

    def later_harvest():
        with host_slot(settings, second, slots=1, progress=lambda line: (order.append(line), waiting.set())):
            order.append("second in")
            entered.set()

    with host_slot(settings, first, slots=1, progress=order.append) as slot:
        assert slot == 0
        worker = threading.Thread(target=later_harvest)
        worker.start()
        assert waiting.wait(10)  # it announced that it waits ...
        assert not entered.is_set()  # ... and did not get in while the slot was held
        order.append("first out")
    worker.join(10)
    assert order[1:] == ["first out", "second in"] and "busy, waiting" in order[0]


def test_two_slots_let_two_harvests_in(settings):
    with host_slot(settings, _library("ZJ001"), slots=2) as a, host_slot(settings, _library("ZJ002"), slots=2) as b:
        assert {a, b} == {0, 1}


@pytest.mark.parametrize(
    "protocol, watermark, rewound",
    [
        ("oai", "2026-11-25T10:44:22Z", "2026-11-01T00:00:00Z"),
        ("z3950", "20261120180000", "20261101000000"),
        ("sru", "20261120180000", "20261101000000"),
    ],
)
def test_since_moves_the_watermark_back_in_the_protocols_format(settings, protocol, watermark, rewound):
    library = _library(protocol=protocol)
    harvest_state.save(settings, library.id, {"watermark": watermark})
    rewind_watermark(settings, library, datetime(2026, 11, 1, tzinfo=timezone.utc))
    assert harvest_state.load(settings, library.id)["watermark"] == rewound
    rewind_watermark(settings, library, datetime(2026, 11, 30, tzinfo=timezone.utc))  # never forward
    assert harvest_state.load(settings, library.id)["watermark"] == rewound


def test_a_committed_run_folder_is_never_landed_into_again(settings):
    library = _library()
    assert landing_run_id(settings, library, "manual__x") == "manual__x"
    (settings.landing_dir(library.id) / "manual__x").mkdir(parents=True)
    assert landing_run_id(settings, library, "manual__x") == "manual__x.2"
    (settings.landing_dir(library.id) / "manual__x.2").mkdir()
    assert landing_run_id(settings, library, "manual__x") == "manual__x.3"
    harvest_state.save(settings, library.id, {"in_progress": {"run_id": "manual__x", "pages": []}})
    assert landing_run_id(settings, library, "manual__x") == "manual__x"  # a retry resumes its own run


def _context(map_index=3):
    ti = SimpleNamespace(dag_id="harvest_libraries", task_id="harvest_z3950", map_index=map_index, try_number=3, rendered_map_index="ZJ007")
    return {"ti": ti, "run_id": "manual__2026-11-25", "exception": ConnectionRefusedError("127.0.0.1:9210 refused")}


def test_a_failure_alert_names_the_library_run_and_reason():
    assert failure_message(_context()) == (
        "unioncat: harvest_libraries.harvest_z3950[ZJ007] failed in run manual__2026-11-25 (try 3): "
        "ConnectionRefusedError: 127.0.0.1:9210 refused"
    )


class _Bridge(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        _Bridge.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_alert_webhook_gets_the_message_and_a_dead_one_is_only_logged(monkeypatch, caplog):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bridge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook?token=s3cret-token"
        monkeypatch.setenv("UNIONCAT_ALERT_WEBHOOK", url)
        alert_task_failure(_context())
        assert _Bridge.received[-1]["text"].startswith("unioncat: harvest_libraries.harvest_z3950[ZJ007] failed")
    finally:
        server.shutdown()
        server.server_close()
    alert_task_failure(_context())  # the bridge is gone: logged, not raised
    assert "alert webhook failed" in caplog.text and "s3cret-token" not in caplog.text


def test_the_harvest_summary_sorts_libraries_into_succeeded_failed_skipped(settings):
    harvest_state.record_failure(settings, "ZJ002", "run", RuntimeError("server down"))
    planned = {"z3950": ["ZJ001", "ZJ002"], "oai": ["ZJ003"], "sru": None}
    states = {"harvest_z3950_0": "success", "harvest_z3950_1": "failed", "harvest_oai_0": "skipped", "plan_sru": "failed"}
    outcomes = harvest_outcomes(settings, planned, states)
    assert outcomes.rows == [("ZJ001", "succeeded", "z3950"), ("ZJ002", "failed", "z3950: server down"), ("ZJ003", "skipped", "oai")]
    assert outcomes.counts() == {"succeeded": 1, "failed": 1, "skipped": 1, "problems": 1}
    assert "plan_sru failed" in outcomes.table()


def test_the_build_summary_names_the_first_step_that_failed(settings):
    outcomes = build_outcomes(settings, ["ZJ001"], {"transform_0": "success", "dedup": "success", "build_snapshot": "failed"})
    assert outcomes.problems == ["build_snapshot failed"]
    assert isinstance(outcomes, Outcomes) and outcomes.counts()["succeeded"] == 1
