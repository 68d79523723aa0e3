"""Outside tools against a real embedded stack, at a tiny scale: KServe v2 through nginx from our client,
perf_analyzer (where .venv-perf exists), `make bench` with MLPerf LoadGen, and `make crosscheck`."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench import client, crosscheck, perf_analyzer, run, wrk
from servebench import data

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cifar_dir")]

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_PERF = perf_analyzer.missing()
NO_WRK = wrk.missing()
needs_perf = pytest.mark.skipif(NO_PERF is not None, reason="no .venv-perf: create it with `make setup-perf`")


@pytest.fixture(scope="module")
def embedded(start_stack):
    return start_stack("embedded")


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_our_client_speaks_kserve_v2_through_nginx(embedded):
    split = data.load_test(limit=40)
    reqs = client.prepare_v2(split.images, split.labels)
    assert reqs[0].path == client.V2_INFER_PATH and reqs[0].protocol == "v2"
    assert b"Inference-Header-Content-Length: " in reqs[0].head and len(reqs[0].body) > 3072
    got: list[client.Result] = []
    cl = client.Client(embedded.url)
    try:
        cl.closed_loop(reqs, 2, got.append, threading.Event())
    finally:
        cl.close()
    assert len(got) == 40 and all(r.ok for r in got), [r.error for r in got if not r.ok][:3]
    assert sum(r.correct for r in got) >= 20  # the model is right about 75% of the time
    assert all(r.server_timing.get("model") for r in got)


@needs_perf
def test_perf_analyzer_at_concurrency_1(embedded, tmp_path):
    images = data.load_test(limit=40).images
    out = perf_analyzer.run(embedded.url, concurrency=1, images=images, measurement_interval_ms=500, max_trials=3,
                            fallback_count=100, work_dir=tmp_path)
    assert out["throughput"] > 0 and 0 < out["p50_ms"] <= out["p90_ms"] <= out["p99_ms"]
    assert out["requests"] > 0 and isinstance(out["stable"], bool)
    assert out["client_cpu_ms_per_request"] > 0
    assert out["settings"]["input_data"] == "CIFAR-10 test images"
    entries = json.loads((tmp_path / "input-data.json").read_text())["data"]
    assert len(entries) == 40  # the real images, not perf_analyzer's random bytes
    assert any(tmp_path.glob("perf_analyzer-c1*.log"))


def test_bench_with_loadgen_singlestream(embedded, tmp_path):
    rc = run.main(["--arch", "embedded", "--run-dir", str(embedded.run_dir), "--out", str(tmp_path), "--no-progress",
                   "--overhead-requests", "100", "--n", "50", "--warmup", "5", "--loadgen", "singlestream",
                   "--loadgen-min-duration", "0"])
    assert rc == 0
    run_dir = (tmp_path / "latest").resolve()
    summary = json.loads((run_dir / "summary.json").read_text())
    lg = summary["loadgen"]
    assert summary["kind"] == "bench" and summary["settings"]["mode"] == "loadgen-singlestream"
    assert lg["scenario"] == "SingleStream" and lg["verdict"] in ("VALID", "INVALID")
    assert lg["queries"] >= 50 and lg["sent"] == lg["queries"] and lg["latency_ms"]["p50"] > 0
    assert len(rows(run_dir / "requests.csv")) == lg["queries"] == summary["requests"]["count"]
    assert summary["requests"]["ok"] == lg["queries"] and summary["accuracy"] > 0.5
    assert rows(run_dir / "resources.csv") and (run_dir / "loadgen" / "mlperf_log_summary.txt").is_file()
    assert summary["table3_sequential"] is False


@pytest.mark.slow
def test_crosscheck_end_to_end(embedded, tmp_path):
    rc = crosscheck.main(["--arch", "embedded", "--run-dir", str(embedded.run_dir), "--out", str(tmp_path),
                          "--no-progress", "--n", "60", "--warmup", "5", "--concurrency", "1 2",
                          "--perf-interval-ms", "500", "--perf-max-trials", "3", "--loadgen-min-duration", "0.5",
                          "--wrk-duration-s", "1"])
    assert rc == 0
    run_dir = (tmp_path / "latest").resolve()
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["kind"] == "crosscheck" and doc["arch"] == "embedded" and doc["stack"]["url"] == embedded.url
    tools = {(t["tool"], t["scenario"], t["concurrency"]) for t in doc["tools"]}
    assert {("servebench", "closed-loop", 1), ("servebench", "closed-loop", 2), ("loadgen", "singlestream", 1),
            ("loadgen", "server", None), ("servebench", "server", None)} <= tools
    if NO_PERF:
        assert any("make setup-perf" in n for n in doc["notes"])
    else:
        assert {("perf_analyzer", "closed-loop", 1), ("perf_analyzer", "closed-loop", 2)} <= tools
        assert not (run_dir / "perf_analyzer" / "input-data.json").exists()  # megabytes of images, not kept
    for t in doc["tools"]:
        assert t["p50_ms"] and t["p50_ms"] > 0, t
    if NO_WRK is None:
        assert {("wrk", "closed-loop", 1), ("wrk", "closed-loop", 2)} <= tools
    assert len(doc["agreement"]) == 2 + (2 if NO_PERF is None else 0) + (2 if NO_WRK is None else 0)
    for a in doc["agreement"]:
        assert a["within_10pct"] or a["explanation"]


@pytest.mark.slow
def test_sigterm_during_a_loadgen_bench_keeps_every_row(embedded, tmp_path):
    cmd = [sys.executable, "-m", "bench.run", "--arch", "embedded", "--run-dir", str(embedded.run_dir),
           "--out", str(tmp_path), "--no-progress", "--overhead-requests", "50", "--n", "2000", "--codec", "raw",
           "--warmup", "0", "--loadgen", "singlestream", "--loadgen-min-duration", "60"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "SB_ROWS_BATCH": "1"})  # rows as answers arrive: the signal waits for them
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            csvs = list(tmp_path.glob("*/requests.csv"))
            if csvs and len(csvs[0].read_text().splitlines()) > 20:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)  # SingleStream drains at once
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-2000:]
    run_dir = (tmp_path / "latest").resolve()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["loadgen"]["verdict"] == "INTERRUPTED"
    sent = summary["loadgen"]["sent"]
    assert len(rows(run_dir / "requests.csv")) == summary["requests"]["count"] == sent > 20
    assert summary["loadgen"]["completed_unsent"] > 0 and summary["wall_s"] < 60


@pytest.mark.slow
def test_crosscheck_measures_the_model_server_directly_too(start_stack, tmp_path):
    st = start_stack("fastapi", SB_FRONTEND_WORKERS="1", SB_BACKEND_WORKERS="1")
    rc = crosscheck.main(["--arch", "fastapi", "--run-dir", str(st.run_dir), "--out", str(tmp_path), "--no-progress",
                          "--n", "40", "--warmup", "5", "--concurrency", "1", "--no-loadgen",
                          "--perf-interval-ms", "500", "--perf-max-trials", "3", "--wrk-duration-s", "1"])
    assert rc == 0
    doc = json.loads(((tmp_path / "latest").resolve() / "summary.json").read_text())
    direct = [t for t in doc["tools"] if t["scenario"] == "closed-loop direct to fastapi"]
    assert [t["tool"] for t in direct] == (["servebench"] + ([] if NO_PERF else ["perf_analyzer"])
                                           + ([] if NO_WRK else ["wrk"]))
    assert all(t["p50_ms"] > 0 and t["note"].startswith("accuracy") for t in direct if t["tool"] == "servebench")
    # nginx and Django in front cost something: straight at the server is faster at the median
    through = next(t for t in doc["tools"] if t["tool"] == "servebench" and t["scenario"] == "closed-loop")
    assert direct[0]["p50_ms"] < through["p50_ms"]
