"""`make soak` against a real embedded stack, briefly: files, counts, capacity, SIGTERM.

Runs this short cannot measure growth (it counts from the 1-minute mark); they
check that it says so, and everything else the soak writes.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import records, soak

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("cifar_dir")]

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--no-progress", "--n", "200", "--warmup", "10", "--sample-hz", "2"]


@pytest.fixture(scope="module")
def embedded(start_stack):
    return start_stack("embedded")


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_short_soak_writes_everything(embedded, tmp_path):
    rc = soak.main(["--arch", "embedded", "--run-dir", str(embedded.run_dir), "--out", str(tmp_path),
                    "--duration", "8s", "--probe", "3s", "--load", "0.5", "--bin", "2s", *QUICK])
    assert rc == 0
    run_dir = (tmp_path / "latest").resolve()
    assert run_dir.name.endswith("-soak-embedded")
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["kind"] == "soak" and doc["interrupted"] is False and "running" not in doc
    assert records.read(run_dir).schema_version == records.SCHEMA_VERSION
    s, cap, req = doc["settings"], doc["capacity"], doc["requests"]
    assert cap["measured"] and cap["images_per_s"] > 0 and s["rate_source"] == "measured"
    assert s["rate"] == pytest.approx(0.5 * cap["images_per_s"], rel=1e-3)
    assert (s["duration_s"], s["load"], s["bin_s"], s["codec"], s["batch"]) == (8.0, 0.5, 2.0, "json", 1)
    rows = read_csv(run_dir / "requests.csv")
    assert req["planned"] == req["count"] == req["rows_written"] == len(rows) == math.ceil(8 * s["rate"] - 1e-9)
    assert req["ok"] + sum(req["errors_by_status"].values()) == req["count"]
    assert doc["accuracy"] > 0.5 and doc["latency_ms"]["p50"] > 0
    assert 4 <= len(doc["per_bin"]) <= 5 and sum(b["requests"] for b in doc["per_bin"]) == req["count"]
    res = read_csv(run_dir / "resources.csv")
    assert {r["service"] for r in res} == {"frontend", "nginx", "client"}
    mem = doc["memory"]
    assert set(mem["services"]) == {"frontend", "nginx", "client"} and mem["verdict"] == "NOT MEASURABLE"
    assert all("needs at least 90 s" in g["rss"]["reason"] for g in mem["services"].values())
    assert (run_dir / "soak.png").read_bytes()[:4] == b"\x89PNG"
    assert embedded.alive()  # a stack the soak did not start is left running


def test_sigterm_keeps_the_rows(embedded, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "bench.soak", "--arch", "embedded", "--run-dir", str(embedded.run_dir),
           "--out", str(tmp_path), "--duration", "60s", "--rate", "40", *QUICK]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        requests_csv = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(tmp_path.glob("*-soak-embedded/requests.csv"))
            if found and len(found[0].read_text().splitlines()) > 40:
                requests_csv = found[0]
                break
            time.sleep(0.2)
        assert requests_csv is not None, "the soak never got going"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    doc = json.loads((requests_csv.parent / "summary.json").read_text())
    assert doc["interrupted"] is True and doc["settings"]["rate_source"] == "given"
    assert not doc["capacity"]["measured"]
    req = doc["requests"]
    assert 40 <= req["count"] < req["planned"] == 2400
    assert req["count"] == req["rows_written"] == len(read_csv(requests_csv))
    assert embedded.alive()
