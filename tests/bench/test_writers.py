"""Every writer writes one versioned run record that bench.records reads back as written.

The stack is a test double: bench.overhead's trivial server (in this process)
answers every request with a well-formed prediction, and a fake state stands
for the runtime's. The reference writer is covered by test_reference.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import client, load, records, results, run, soak
from bench.options import BenchOptions, LoadOptions, SoakOptions
from bench.overhead import TrivialServer, _reply_for

pytestmark = pytest.mark.unit

N = 12


class FakeStack:
    """What the writers use of a runtime's state."""

    arch = "embedded"

    def __init__(self, url: str):
        self.url = url
        self.doc = {"runtime": "native", "started_utc": "2026-01-01T00:00:00+00:00",
                    "knobs": {"SB_PORT": "8080", "SB_CALL_PATH": "signature"}, "services": {"nginx": {}}}

    def processes(self) -> dict:
        return {}


@pytest.fixture
def stack():
    with TrivialServer(_reply_for(1)) as url:
        yield FakeStack(url)


@pytest.fixture
def requests() -> list[client.Request]:
    images = np.zeros((N, 32, 32, 3), dtype=np.uint8)
    return client.prepare(images, np.zeros(N, dtype=np.int64), 1, "raw")  # the double answers class 0


def check_round_trip(run_dir: Path, record: records.RunRecord, kind: str) -> dict:
    doc = json.loads((run_dir / records.FILE).read_text())
    assert doc["schema_version"] == records.SCHEMA_VERSION and doc["kind"] == kind
    assert doc["run_id"] == run_dir.name and doc["study"] == "docker-serving"
    assert set(doc["provenance"]) >= {"created_utc", "git_commit", "versions", "machine"}
    assert "running" not in doc
    back = records.read(run_dir)
    assert back == record and back.doc() == records.parse(doc).doc()
    return doc


def test_bench_writes_a_bench_record(stack, requests, tmp_path):
    options = BenchOptions(arch="embedded", n=N, warmup=2, runtime="native", out=tmp_path, progress=False,
                           study="docker-serving")
    bench = run.Bench(options, "embedded", stack, requests, {"median_ms": 0.1})
    bench.warm_up()
    run_dir = results.new_run_dir("bench-embedded", tmp_path)
    record = bench.measure(run_dir)
    doc = check_round_trip(run_dir, record, "bench")
    # the flat measurements the report reads
    assert doc["requests"]["ok"] == N and doc["accuracy"] == 1.0 and doc["settings"]["n"] == N
    assert doc["arch"] == "embedded" and doc["runtime"] == "native" and doc["interrupted"] is False
    assert set(doc["table3"]) == {"1", "10"} and doc["harness_overhead_ms"] == 0.1
    assert doc["stack"]["knobs"]["SB_CALL_PATH"] == "signature"


def test_soak_writes_a_soak_record(stack, requests, tmp_path):
    options = SoakOptions(arch="embedded", duration="1s", rate=20.0, warmup=2, n=N, out=tmp_path,
                          progress=False, study="docker-serving", bin="1s")
    record = soak.Soak(options, stack, requests).run(tmp_path)
    run_dir = (tmp_path / "latest").resolve()
    doc = check_round_trip(run_dir, record, "soak")
    assert doc["requests"]["count"] == doc["requests"]["planned"] == 20
    assert doc["settings"]["rate_source"] == "given" and doc["memory"]["verdict"] == "NOT MEASURABLE"


def test_load_writes_a_load_record(stack, tmp_path, monkeypatch):
    """locust itself is replaced by a process that writes the totals a locustfile writes as it quits."""
    totals = {"requests": 10, "failures": 0, "requests_per_s": 5.0,
              "latency_ms": {"p50": 1, "p90": 2, "p99": 3, "max": 4, "mean": 1.5},
              "images_checked": 10, "images_correct": 9}

    def fake_locust(args, url, run_dir, hosts=None):
        script = f"import json; json.dump({totals!r}, open({str(run_dir / load.TOTALS_FILE)!r}, 'w'))"
        return [[sys.executable, "-c", script]]

    monkeypatch.setattr(load, "locust_commands", fake_locust)
    options = LoadOptions(arch="embedded", out=tmp_path, study="docker-serving")
    run_dir = results.new_run_dir("load-embedded", tmp_path)
    record = load.run(options, stack, run_dir)
    doc = check_round_trip(run_dir, record, "load")
    assert doc["locust"]["requests"] == 10 and doc["locust"]["images_per_s"] == 5.0
    assert doc["accuracy"] == 0.9 and doc["settings"]["users"] == 4


def test_a_record_not_finished_says_so(stack, requests, tmp_path, monkeypatch):
    """What a run killed outright leaves: a record marked running and interrupted."""
    options = BenchOptions(arch="embedded", n=N, warmup=0, out=tmp_path, progress=False)
    bench = run.Bench(options, "embedded", stack, requests, {"median_ms": None})
    monkeypatch.setattr(run.Bench, "summary", lambda *a: (_ for _ in ()).throw(SystemExit("killed")))
    run_dir = results.new_run_dir("bench-embedded", tmp_path)
    with pytest.raises(SystemExit):
        bench.measure(run_dir)
    record = records.read(run_dir)
    assert record.interrupted and record.get("running") is True and record.study is None
