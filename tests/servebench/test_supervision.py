"""The native runner with a service whose master is gone: status says degraded, down stops what is left."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

from servebench import stack
from tests.stacks import stack_settings

pytestmark = pytest.mark.integration

# A "master" that starts a worker and exits at once, leaving the worker in its process group.
_ORPHANING_MASTER = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])"


def _fake_state(tmp_path, pid: int) -> stack.StackState:
    doc = {"arch": "embedded", "runtime": "native", "url": "http://127.0.0.1:1", "knobs": {},
           "services": {"flask": {"pid": pid, "port": 1, "command": [], "log": ""}}}
    (tmp_path / "stack.json").write_text(json.dumps(doc))
    return stack.state(tmp_path)


def test_a_service_whose_master_died_is_degraded_and_down_stops_its_workers(tmp_path):
    master = subprocess.Popen([sys.executable, "-c", _ORPHANING_MASTER], start_new_session=True)
    master.wait(timeout=30)
    try:
        st = _fake_state(tmp_path, master.pid)
        deadline = time.monotonic() + 10
        while not st.processes()["flask"] and time.monotonic() < deadline:
            time.sleep(0.05)
        health, procs = st.health()["flask"]
        assert health == "degraded" and len(procs) == 1
        status = subprocess.run([sys.executable, "-m", "servebench.runtime", "status"],
                                env={"SB_RUN_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 1 and "DEGRADED" in status.stdout and "make down" in status.stdout
        with pytest.raises(stack.StackError, match="already running"):
            stack.up("embedded", stack_settings(), tmp_path, log=lambda *_: None)
        assert stack.down(tmp_path, log=lambda *_: None)
        procs[0].wait(timeout=15)
        assert not stack.group_processes(master.pid)
    finally:
        stack.down(tmp_path, log=lambda *_: None)


def _run_parent(code: str) -> str:
    """Run ``code`` as a parent that starts a worker and exits; its output (the worker's pid first)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=stack.REPO_ROOT,
                          env={"PYTHONPATH": str(stack.REPO_ROOT), "PATH": "/usr/bin:/bin"}).stdout


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the worker outlived its parent"
        time.sleep(0.05)


def test_a_worker_dies_with_its_parent():
    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', "
            "'from servebench import supervision; import time; supervision.die_with_parent(); "
            "print(\"armed\", flush=True); time.sleep(120)'], stdout=subprocess.PIPE)\n"
            "print(child.pid, child.stdout.readline().decode().strip(), flush=True)\n"
            "os._exit(0)\n")
    pid, armed = _run_parent(code).split()
    assert armed == "armed"
    _wait_gone(int(pid), 10)


def test_a_worker_armed_after_its_parent_died_dies_at_once():
    # A spawned worker arms itself only after its imports; its master may be gone by then (found in CI:
    # a replacement worker still importing TensorFlow outlived a SIGKILLed uvicorn master).
    code = ("import os, subprocess, sys\n"
            "child = subprocess.Popen([sys.executable, '-c', "
            "'import os, sys, time\\n"
            "from servebench import supervision\\n"
            "master = int(sys.argv[1])\\n"
            "while os.getppid() == master: time.sleep(0.01)\\n"
            "supervision.die_with_parent(parent=master)\\n"
            "time.sleep(120)', str(os.getpid())])\n"
            "print(child.pid, flush=True)\n"
            "os._exit(0)\n")
    _wait_gone(int(_run_parent(code).split()[0]), 20)
