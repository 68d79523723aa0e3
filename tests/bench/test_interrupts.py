"""`make bench` interrupted as a user would: Ctrl-C once, Ctrl-C twice, SIGTERM to make.

Each run starts its own stack through make (as a user does), is interrupted
while it sends, and must end with: the rows it wrote equal to the count in its
summary, the summary marked interrupted, no stack state left behind and no
process of the stack still running.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from servebench import stack
from tests.stacks import stack_env

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cifar_dir")]

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS_BEFORE_SIGNAL = 20
QUIET_WORKERS = {"SB_FRONTEND_WORKERS": "1", "SB_BACKEND_WORKERS": "1"}  # faster start, same paths


@contextmanager
def make_bench(arch: str, tmp_path: Path):
    """`make bench` in its own process group, like a shell's foreground job, sending by the time it is
    yielded as ``(proc, run, out)``; whatever the test asserts, nothing of it is left running."""
    run, out = tmp_path / "run", tmp_path / "results"
    # Rows written as answers arrive (not after the pass): the test signals once it sees them.
    env = stack_env(SB_RUN_DIR=str(run), PYTHONUNBUFFERED="1", SB_ROWS_BATCH="1", **QUIET_WORKERS)
    cmd = ["make", "--no-print-directory", "bench", f"ARCH={arch}", "N=2000", "WARMUP=0", f"RESULTS={out}"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for_rows(proc, out)
        yield proc, run, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        stack.down(run, log=lambda *_: None)


def wait_for_rows(proc: subprocess.Popen, out: Path, timeout_s: float = 180.0) -> Path:
    deadline = time.monotonic() + timeout_s
    csv_path = out / "latest" / "requests.csv"
    while True:
        if csv_path.exists() and len(csv_path.read_bytes().splitlines()) > ROWS_BEFORE_SIGNAL:
            return csv_path
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        assert time.monotonic() < deadline, f"no rows within {timeout_s:.0f} s"
        time.sleep(0.1)


def wait_group_gone(pgid: int, timeout_s: float = 90.0) -> list[psutil.Process]:
    """Every process of the job (make, the harness) has exited; returns what is left."""
    deadline = time.monotonic() + timeout_s
    left = stack.group_processes(pgid)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = stack.group_processes(pgid)
    return left


def check_clean_end(proc: subprocess.Popen, run: Path, out: Path) -> str:
    output, _ = proc.communicate(timeout=120)
    text = output.decode(errors="replace")
    assert proc.returncode != 0, text
    left = wait_group_gone(proc.pid)
    assert not left, f"still running after the job ended: {[p.cmdline() for p in left]}\n{text}"
    # nothing of the stack is left: no state, no process
    assert not (run / "stack.json").exists(), text
    strays = stack.leftovers(run)
    assert not strays, f"stack processes left running: {[p.cmdline() for p in strays]}\n{text}"
    # every counted request was written, every written one counted
    run_dir = (out / "latest").resolve()
    summary = json.loads((run_dir / "summary.json").read_text())
    with (run_dir / "requests.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert summary["interrupted"] is True, text
    assert "running" not in summary
    assert ROWS_BEFORE_SIGNAL <= len(rows) == summary["requests"]["count"] < 2000, text
    assert sum(int(r["images"]) for r in rows) == summary["requests"]["images"]
    assert all(r["status"] == "200" for r in rows)
    return text


def test_ctrl_c_keeps_the_rows_and_stops_the_stack(tmp_path):
    with make_bench("embedded", tmp_path) as (proc, run, out):
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        check_clean_end(proc, run, out)


def test_ctrl_c_twice_still_stops_the_backend(tmp_path):
    """The second Ctrl-C lands in the teardown: it may shorten the waits, never skip the stop."""
    with make_bench("fastapi", tmp_path) as (proc, run, out):
        os.killpg(proc.pid, signal.SIGINT)
        # Once the harness starts stopping services, Ctrl-C again (make has died of the first one).
        deadline = time.monotonic() + 30
        harness = [p for p in stack.group_processes(proc.pid) if "bench.run" in " ".join(p.cmdline())]
        while time.monotonic() < deadline:
            st = stack.state(run)
            if st is None or st.health()["nginx"][0] != "up":
                break
            time.sleep(0.02)
        for p in harness:
            try:
                p.send_signal(signal.SIGINT)
                time.sleep(0.3)
                p.send_signal(signal.SIGINT)  # and a third time, for good measure
            except psutil.NoSuchProcess:
                pass
        check_clean_end(proc, run, out)


def test_sigterm_to_make_stops_everything(tmp_path):
    with make_bench("flask", tmp_path) as (proc, run, out):
        proc.send_signal(signal.SIGTERM)  # to make alone: make passes it on to the harness
        check_clean_end(proc, run, out)


def test_down_cleans_up_after_a_run_killed_outright(tmp_path):
    """SIGKILL gives the harness no chance to clean up; `make down` must."""
    with make_bench("embedded", tmp_path) as (proc, run, out):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        st = stack.state(run)
        assert st is not None and any(st.processes().values()), "the services outlive a killed harness"
        summary = json.loads(((out / "latest").resolve() / "summary.json").read_text())
        assert summary["interrupted"] is True and summary.get("running") is True  # says it never finished
        env = {**os.environ, "SB_RUN_DIR": str(run)}
        down = subprocess.run(["make", "--no-print-directory", "down"], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not (run / "stack.json").exists()
        assert not stack.leftovers(run)
        status = subprocess.run(["make", "--no-print-directory", "status"], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode != 0 and "no native stack is running" in status.stdout
