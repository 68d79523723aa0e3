"""`make bench` against real native stacks (small N): files, accuracy, open loop, interruption, resources."""
from __future__ import annotations

import csv
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench import client, records, results, run, timing
from servebench import data

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cifar_dir")]

REPO_ROOT = Path(__file__).resolve().parents[2]
N = 40
QUICK = ["--no-progress", "--overhead-requests", "200"]
NGINX_MS = 1.5  # nginx's upstream header time has 1 ms resolution


@pytest.fixture(scope="module")
def embedded(start_stack):
    return start_stack("embedded")


@pytest.fixture(scope="module")
def flask(start_stack):
    return start_stack("flask")


def bench(st, out: Path, *options: str) -> tuple[Path, dict, list[dict]]:
    rc = run.main(["--arch", st.arch, "--run-dir", str(st.run_dir), "--out", str(out), *QUICK, *options])
    assert rc == 0
    run_dir = (out / "latest").resolve()
    return run_dir, json.loads((run_dir / "summary.json").read_text()), read_csv(run_dir / "requests.csv")


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def num(row: dict, key: str) -> float | None:
    return float(row[key]) if row[key] != "" else None


def labels(cell: str) -> list[int]:
    return [int(x) for x in cell.split()]


def check_resources(run_dir: Path, st, summary: dict) -> None:
    rows = read_csv(run_dir / "resources.csv")
    expected = set(st.doc["services"]) | {"client"}
    assert {r["service"] for r in rows} == expected
    assert set(summary["resources"]) == expected
    for service in expected:
        mine = [r for r in rows if r["service"] == service]
        assert len(mine) >= 2, service
        cpu = [float(r["cpu_seconds"]) for r in mine]
        assert cpu == sorted(cpu), f"{service}: cumulative CPU went down"
        assert all(float(r["rss_mb"]) > 0 and int(r["n_procs"]) >= 1 for r in mine), service
        assert any(r["pss_mb"] for r in mine), f"{service}: PSS never read"
        assert mine[0]["cpu_percent"] == "" and all(r["cpu_percent"] != "" for r in mine[1:])
        res = summary["resources"][service]
        assert res["rss_mb_max"] >= res["rss_mb_mean"] > 0
        assert res["cpu_seconds_per_image"] is not None
    # the model process does the work
    worker = "frontend" if st.arch == "embedded" else st.arch
    assert summary["resources"][worker]["cpu_seconds"] > 0


def check_summary_keys(summary: dict) -> None:
    for key in ("kind", "run_id", "arch", "runtime", "interrupted", "settings", "stack", "provenance", "requests",
                "accuracy", "latency_ms", "throughput_images_per_s", "wall_s", "table3", "hops_ms", "resources",
                "harness_overhead_ms", "reference"):
        assert key in summary, key
    assert summary["kind"] == "bench" and summary["schema_version"] == records.SCHEMA_VERSION
    assert summary["study"] is None  # run by hand, not by a study
    assert set(summary["settings"]) >= {"n", "batch", "codec", "concurrency", "rate", "arrivals", "repeats",
                                        "warmup", "seed"}
    assert set(summary["latency_ms"]) == {"p50", "p90", "p99", "max", "mean"}
    assert set(summary["hops_ms"]) == set(timing.HOPS)
    assert {"git_commit", "versions", "machine"} <= set(summary["provenance"])
    assert summary["stack"]["knobs"]["SB_PORT"] and summary["stack"]["info"]["arch"] == summary["arch"]
    assert summary["harness_overhead_ms"] > 0


def test_sequential_run_records_every_request(embedded, tmp_path):
    run_dir, summary, rows = bench(embedded, tmp_path, "--n", str(N), "--warmup", "5")
    check_summary_keys(summary)
    assert (tmp_path / "latest").readlink() == Path(run_dir.name)  # relative
    assert summary["interrupted"] is False and summary["arch"] == "embedded"

    assert list(rows[0]) == results.REQUEST_COLUMNS
    assert [int(r["index"]) for r in rows] == list(range(N))
    truth = data.load_test(limit=N).labels
    assert [t for r in rows for t in labels(r["true"])] == truth.tolist()
    assert sum(int(r["images"]) for r in rows) == N
    for r in rows:
        assert r["status"] == "200" and r["error"] == ""
        assert len(labels(r["predicted"])) == int(r["images"]) == 1
        assert int(r["correct"]) == sum(p == t for p, t in zip(labels(r["predicted"]), labels(r["true"])))
        latency, django, decode, model = (num(r, k) for k in ("latency_ms", "django_ms", "decode_ms", "model_ms"))
        upstream = num(r, "upstream_header_ms")
        assert latency >= django >= decode + model > 0
        assert upstream + NGINX_MS >= django and latency + NGINX_MS >= upstream
        assert num(r, "backend_ms") is None and num(r, "forward_ms") is None  # embedded: no backend hop
        assert num(r, "sent_s") == pytest.approx(num(r, "scheduled_s"), abs=1e-3)  # closed loop: sent when due
    sent = [num(r, "sent_s") for r in rows]
    assert sent == sorted(sent)

    predicted = np.array([labels(r["predicted"])[0] for r in rows])
    assert summary["accuracy"] == pytest.approx(float(np.mean(predicted == truth)), abs=1e-6)
    assert summary["requests"] == {"count": N, "ok": N, "errors_by_status": {}, "invalid_answers": 0, "images": N}
    lat = [num(r, "latency_ms") for r in rows]
    assert summary["latency_ms"]["p50"] == pytest.approx(float(np.median(lat)), abs=0.01)
    assert summary["latency_ms"]["max"] == pytest.approx(max(lat), abs=0.01)
    assert summary["throughput_images_per_s"] == pytest.approx(N / summary["wall_s"], rel=0.01)
    assert set(summary["table3"]) == {"1", "10"} and summary["table3_sequential"] is True
    assert 0 < summary["table3"]["1"]["mean_s"] < summary["table3"]["10"]["mean_s"] <= summary["wall_s"]
    hops = summary["hops_ms"]
    assert all(hops[h] is not None for h in ("client_network_nginx", "gunicorn", "django", "decode", "model"))
    assert hops["forward_network"] is None and hops["backend_framework"] is None
    check_resources(run_dir, embedded, summary)


def test_forwarding_arch_batches_and_repeats(flask, tmp_path):
    run_dir, summary, rows = bench(flask, tmp_path, "--n", str(N), "--batch", "4", "--codec", "raw",
                                   "--concurrency", "2", "--repeats", "2", "--warmup", "2")
    check_summary_keys(summary)
    assert len(rows) == 2 * N // 4 and sum(int(r["images"]) for r in rows) == 2 * N
    assert Counter(r["repeat"] for r in rows) == {"0": N // 4, "1": N // 4}
    for r in rows:
        assert r["status"] == "200"
        assert len(labels(r["predicted"])) == len(labels(r["true"])) == int(r["images"]) == 4
        latency, django, forward, backend = (num(r, k) for k in ("latency_ms", "django_ms", "forward_ms", "backend_ms"))
        assert latency >= django >= forward >= backend >= num(r, "decode_ms") + num(r, "model_ms")
    correct = sum(int(r["correct"]) for r in rows)
    assert summary["accuracy"] == pytest.approx(correct / (2 * N), abs=1e-6)
    assert summary["table3"]["10"]["repeats"] == 2 and summary["table3_sequential"] is False
    # every hop of the path (the batching queue is there only with batching on)
    assert all(v is not None for h, v in summary["hops_ms"].items() if h != "queue")
    assert summary["hops_ms"]["queue"] is None and summary["server_batch"]["max"] == 4
    assert [p["complete"] for p in summary["passes"]] == [True, True]
    check_resources(run_dir, flask, summary)


def test_errors_are_counted_by_status(embedded, tmp_path):
    # 300 images in one request is over the servers' SB_MAX_BATCH (256): 413, nothing to score.
    _, summary, rows = bench(embedded, tmp_path, "--n", "600", "--batch", "300", "--codec", "raw", "--warmup", "0")
    assert [r["status"] for r in rows] == ["413", "413"]
    assert all(r["predicted"] == "" and r["error"] for r in rows)
    assert summary["requests"]["errors_by_status"] == {"413": 2}
    assert summary["requests"]["ok"] == 0 and summary["accuracy"] is None


def test_open_loop_keeps_its_schedule(embedded, tmp_path):
    rate = 50.0
    _, summary, rows = bench(embedded, tmp_path, "--n", str(N), "--rate", str(rate), "--arrivals", "constant",
                             "--warmup", "5")
    assert summary["settings"]["rate"] == rate and summary["settings"]["mode"] == "open"
    scheduled = np.array([num(r, "scheduled_s") for r in sorted(rows, key=lambda r: int(r["index"]))])
    assert np.diff(scheduled) == pytest.approx(np.full(N - 1, 1 / rate), abs=1e-6)
    assert summary["wall_s"] >= (N - 1) / rate
    for r in rows:
        waited_ms = (num(r, "sent_s") - num(r, "scheduled_s")) * 1000.0
        assert waited_ms >= -0.01  # never sent early
        assert num(r, "latency_ms") >= waited_ms + num(r, "django_ms")  # measured from the scheduled time
    assert summary["schedule_lag_ms"]["p50"] < 5.0


def test_interrupted_run_keeps_its_rows(embedded, tmp_path):
    cmd = [sys.executable, "-m", "bench.run", "--arch", "embedded", "--run-dir", str(embedded.run_dir),
           "--out", str(tmp_path), "--n", "2000", "--warmup", "0", *QUICK]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SB_ROWS_BATCH": "1"}  # rows as answers arrive
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        requests_csv = tmp_path / "latest" / "requests.csv"
        deadline = time.monotonic() + 90
        while not (requests_csv.exists() and len(requests_csv.read_text().splitlines()) > 20):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no rows within 90 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out.decode()
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    rows = read_csv(requests_csv)
    assert summary["interrupted"] is True
    assert 20 <= len(rows) == summary["requests"]["count"] < 2000
    assert summary["passes"][0]["complete"] is False
    assert all(r["status"] == "200" for r in rows)
    assert all(embedded.processes().values()), "the run must not stop a stack it did not start"


# ---------------------------------------------------------------- the client alone (no stack)
class _StallingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stall_on = 5  # the 6th request takes 300 ms
    seen = 0

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen += 1
        if type(self).seen == self.stall_on + 1:
            time.sleep(0.3)
        body = b'{"predictions":[{"class_id":0,"probabilities":[1,0,0,0,0,0,0,0,0,0]}]}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_open_loop_counts_a_stall_against_every_request_it_delays():
    """Coordinated omission: requests queued behind a stall carry the wait in their latency."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StallingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = client.Client(f"http://127.0.0.1:{server.server_address[1]}")
        reqs = [client.Request(i, b"x", "application/octet-stream", np.array([0])) for i in range(20)]
        got: list[client.Result] = []
        rate = 100.0  # one request every 10 ms, one connection: the 300 ms stall delays the next ~30
        c.open_loop(reqs, client.arrival_offsets(20, rate, "constant", 0), 1, got.append, threading.Event(),
                    time.perf_counter() + 0.01)
        c.close()
    finally:
        server.shutdown()
    got.sort(key=lambda r: r.request.index)
    assert all(r.ok and r.correct == 1 for r in got)
    after = got[_StallingHandler.stall_on + 1:]
    # each request after the stall was sent late, and its latency includes that wait
    assert all(r.sent - r.scheduled > 0.1 for r in after[:5])
    assert all(r.latency_ms >= (r.end - r.sent) * 1000.0 + (r.sent - r.scheduled) * 1000.0 - 1e-6 for r in got)
    assert min(r.latency_ms for r in after[:5]) > 100.0
    # a closed-loop client would have reported them at their service time, a fraction of a ms
    assert min((r.end - r.sent) * 1000.0 for r in after[:5]) < 50.0


def test_poisson_arrivals_are_seeded():
    a = client.arrival_offsets(2000, 100.0, "poisson", seed=7)
    assert np.array_equal(a, client.arrival_offsets(2000, 100.0, "poisson", seed=7))
    assert a[0] == 0 and np.all(np.diff(a) >= 0)
    assert np.mean(np.diff(a)) == pytest.approx(0.01, rel=0.1)
    assert not np.array_equal(a, client.arrival_offsets(2000, 100.0, "poisson", seed=8))
