"""bench.loadgen: LoadGen's settings, its logs as they really read, and a real LoadGen test over a stand-in client.

The log fixtures are LoadGen 6.0.17's own ``mlperf_log_summary.txt`` and
``mlperf_log_detail.txt`` from runs against the embedded stack (the detail log
without its two longest lines: the hashes of LoadGen's source files and the
sample set), one VALID SingleStream, one VALID Server, one INVALID Server
(too few queries for early stopping). The SUT tests run LoadGen itself; only
the HTTP exchange is replaced, so no server is started.
"""
from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bench import client, loadgen

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "loadgen"


# ------------------------------------------------------------------ its logs
def test_singlestream_verdict_and_figures():
    out = loadgen.read_logs(FIXTURES / "singlestream-valid")
    assert out["scenario"] == "SingleStream" and out["verdict"] == "VALID" and out["valid"] is True
    assert out["queries"] == 522 and out["qps"] == pytest.approx(260.4, abs=0.1)
    lat = out["latency_ms"]
    assert set(lat) == {"p50", "p90", "p95", "p97", "p99", "p999", "min", "max", "mean"}
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] == 3.357
    assert out["checks"]["min_duration_met"] is True and out["checks"]["min_queries_met"] is True
    assert out["loadgen_version"].startswith("6.0.17") and out["errors"] == []


def test_server_verdicts():
    valid = loadgen.read_logs(FIXTURES / "server-valid")
    assert valid["scenario"] == "Server" and valid["valid"] is True
    assert valid["qps"] == 98.84 and valid["scheduled_qps"] == 98.93 and valid["latency_ms"]["p99"] == 20.258
    assert valid["checks"]["perf_constraints_met"] is True and valid["checks"]["overlatency_queries"] == 0
    invalid = loadgen.read_logs(FIXTURES / "server-invalid")
    assert invalid["verdict"] == "INVALID" and invalid["valid"] is False
    assert invalid["checks"]["early_stopping_met"] is False and invalid["checks"]["perf_constraints_met"] is True
    assert "Run unsuccessful" in invalid["early_stopping"]


def test_summary_and_detail_say_the_same():
    for case in ("singlestream-valid", "server-valid", "server-invalid"):
        summary = loadgen.parse_summary((FIXTURES / case / loadgen.SUMMARY_FILE).read_text())
        detail = loadgen.parse_detail((FIXTURES / case / loadgen.DETAIL_FILE).read_text())
        assert summary["Result is"] == detail["result_validity"], case
        assert summary["50.00 percentile latency (ns)"] == detail["result_50.00_percentile_latency_ns"], case
        assert summary["Scenario"] == detail["effective_scenario"], case


def test_logs_missing_read_as_nothing(tmp_path):
    out = loadgen.read_logs(tmp_path)
    assert out["verdict"] is None and out["valid"] is None and out["latency_ms"]["p50"] is None


# ------------------------------------------------------------------ settings
def test_settings_become_loadgen_test_settings():
    ss = loadgen.LoadgenSettings("singlestream", min_queries=50, min_duration_s=0.5, expected_latency_ms=4.0)
    ts = ss.test_settings(100)
    assert ts.min_query_count == 50 and ts.min_duration_ms == 500 and ts.performance_sample_count_override == 100
    assert ts.single_stream_expected_latency_ns == 4_000_000
    assert ss.workers == 1 and ss.recorded()["target_qps"] is None
    server = loadgen.LoadgenSettings("server", target_qps=120.0, target_latency_ms=30.0, connections=8)
    ts = server.test_settings(10)
    assert ts.server_target_qps == 120.0 and ts.server_target_latency_ns == 30_000_000
    assert server.workers == 8 and server.recorded()["expected_latency_ms"] is None
    with pytest.raises(ValueError, match="target QPS"):
        loadgen.LoadgenSettings("server")
    with pytest.raises(ValueError):
        loadgen.LoadgenSettings("offline")


# ------------------------------------------------------------------ a real LoadGen test, no network
class StandIn(client.Client):
    """The harness's client with the HTTP exchange replaced: answers after ``delay_s``, always right."""

    def __init__(self, delay_s: float = 0.002):
        super().__init__("http://127.0.0.1:9")
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def exchange(self, conn, req, scheduled):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return client.Result(req, scheduled, scheduled, time.perf_counter(), 200, predicted=req.labels,
                             correct=req.images)


def requests(n: int = 20) -> list[client.Request]:
    return [client.Request(i, b"x", "application/octet-stream", np.array([i % 10])) for i in range(n)]


def test_singlestream_sends_one_query_at_a_time(tmp_path):
    got: list[client.Result] = []
    cl = StandIn()
    settings = loadgen.LoadgenSettings("singlestream", min_queries=70, min_duration_s=0.0, expected_latency_ms=2.0)
    out = loadgen.run(cl, requests(), settings, tmp_path / "lg", got.append, threading.Event(), log=lambda *_: None)
    assert out["verdict"] == "VALID" and out["scenario"] == "SingleStream"
    assert out["queries"] == out["sent"] == len(got) >= 70 and out["completed_unsent"] == 0  # 64: early stopping
    assert cl.threads == {"loadgen-sut-0"}
    assert {r.request.index for r in got} <= set(range(20))
    assert out["latency_ms"]["p50"] >= 2.0  # LoadGen's own clock saw the stand-in's delay
    assert (tmp_path / "lg" / loadgen.SUMMARY_FILE).is_file() and out["settings"]["min_queries"] == 70


def test_server_spreads_queries_over_its_connections(tmp_path):
    got: list[client.Result] = []
    cl = StandIn(delay_s=0.02)
    settings = loadgen.LoadgenSettings("server", target_qps=400.0, min_queries=100, min_duration_s=0.2,
                                       connections=4)
    out = loadgen.run(cl, requests(), settings, tmp_path / "lg", got.append, threading.Event(), log=lambda *_: None)
    assert out["scenario"] == "Server" and out["queries"] == len(got) >= 100
    assert len(cl.threads) > 1  # 400/s of 20 ms answers needs several in flight


def test_ctrl_c_stops_sending_and_says_interrupted(tmp_path):
    got: list[client.Result] = []
    settings = loadgen.LoadgenSettings("singlestream", min_queries=10, min_duration_s=1.0, expected_latency_ms=5.0)
    threading.Timer(0.2, _thread.interrupt_main).start()
    t0, started = time.monotonic(), time.perf_counter()
    with pytest.raises(loadgen.Interrupted) as caught:
        loadgen.run(StandIn(0.005), requests(), settings, tmp_path / "lg", got.append, threading.Event(),
                    log=lambda *_: None)
    out = caught.value.outcome
    assert started + 0.1 < caught.value.at < time.perf_counter()  # when Ctrl-C came, before the drain ended
    assert out["verdict"] == "INTERRUPTED" and out["valid"] is False
    assert out["sent"] == len(got) > 0 and out["completed_unsent"] > 0
    assert time.monotonic() - t0 < 5.0  # LoadGen drained the rest of its schedule unsent
