"""The launch layer: a process leads its own group, stops with it, carries its marker, and writes its log."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from servebench import cgroups, processes, topology

pytestmark = pytest.mark.unit

# A parent that starts a child in its own group (a master and its worker); prints the child's pid.
MASTER = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
          "print(c.pid, flush=True); time.sleep(60)")
STUBBORN = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(60)")


def _gone(pid: int) -> bool:
    return not processes.pid_alive(pid)


def test_executable_prefers_our_python_and_names_what_is_missing():
    assert processes.executable("python") == sys.executable
    assert processes.executable("/bin/sh") == "/bin/sh"
    with pytest.raises(processes.LaunchError, match="not found on PATH"):
        processes.executable("no-such-program-servebench")


def test_stop_takes_the_whole_group_with_the_leader(tmp_path):
    proc = processes.launch(["python", "-c", MASTER], env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    assert processes.leads_group(proc.pid) and os.getpgid(child) == proc.pid
    assert {p.pid for p in processes.group_processes(proc.pid)} >= {proc.pid, child}
    assert proc.stop(grace_s=5) == -signal.SIGTERM
    psutil.wait_procs([psutil.Process(child)], timeout=5) if psutil.pid_exists(child) else None
    assert _gone(proc.pid) and _gone(child)


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace():
    proc = processes.launch(["python", "-c", STUBBORN], env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    assert proc.stop(grace_s=0.5) == -signal.SIGKILL
    assert time.monotonic() - start < 5


def test_a_group_stopped_by_pid_alone(tmp_path):
    """As `make down` stops a service another process started: by the pid in the state file."""
    proc = processes.launch(["python", "-c", MASTER], env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    processes.stop_group(proc.pid, grace_s=5)
    proc.wait(5)
    psutil.wait_procs([psutil.Process(child)], timeout=5) if psutil.pid_exists(child) else None
    assert _gone(child)
    proc.close()


def test_the_marker_makes_a_process_findable_and_the_log_gets_its_output(tmp_path):
    log = tmp_path / "logs" / "x.log"
    proc = processes.launch(["python", "-c", "import sys, time; print('hello'); print('oops', file=sys.stderr, "
                             "flush=True); sys.stdout.flush(); time.sleep(60)"],
                            env=dict(os.environ), log_path=log, marker=tmp_path)
    try:
        assert processes.MARKER == topology.STACK_MARKER  # the native runtime's strays are found the same way
        deadline = time.monotonic() + 10
        while "oops" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "hello" in log.read_text() and "oops" in log.read_text()
        assert [p.pid for p in processes.leftovers(tmp_path)] == [proc.pid]
        assert processes.leftovers(tmp_path / "other") == []
    finally:
        proc.stop(grace_s=2)
    assert processes.leftovers(tmp_path) == []


def test_stop_all_steps_through_its_signals():
    """locust's stop: SIGINT, then SIGTERM for one that ignores SIGINT, SIGKILL last."""
    ignores_int = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True); "
                   "time.sleep(60)")
    ignores_both = ignores_int.replace("time.sleep", "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep")
    procs = [processes.launch(["python", "-c", code], env=dict(os.environ), stdout=subprocess.PIPE, text=True)
             for code in (ignores_int, ignores_both)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    processes.stop_all(procs, [(signal.SIGINT, 0.5), (signal.SIGTERM, 0.5)])
    assert [p.returncode for p in procs] == [-signal.SIGTERM, -signal.SIGKILL]


@pytest.mark.skipif(bool(cgroups.unavailable()), reason=f"cgroups: {cgroups.unavailable()}")
def test_limits_put_the_process_in_its_cgroup_until_it_stops():
    name = f"proc-test-{os.getpid()}"
    proc = processes.launch(["python", "-c", STUBBORN], env=dict(os.environ), stdout=subprocess.PIPE, text=True,
                            limits=cgroups.Limits(memory_mb=256), cgroup=name)
    assert proc.stdout.readline().strip() == "ready"
    assert proc.cgroup is not None and proc.pid in proc.cgroup.pids()
    assert proc.cgroup.recorded()["memory_mb"] == 256
    proc.stop(grace_s=0.5)
    assert not (cgroups.ROOT / "memory" / cgroups.PARENT / name).exists()


def test_a_program_that_cannot_start_leaves_no_cgroup(tmp_path):
    with pytest.raises((processes.LaunchError, OSError)):
        processes.launch([str(tmp_path / "missing")], env={})


def test_the_native_runtime_refuses_to_start_over_strays_of_a_dead_run(tmp_path):
    """The existing-state check: no state file, but a process carrying the run dir's marker still runs."""
    from servebench import stack

    proc = processes.launch(["python", "-c", STUBBORN.replace("signal.SIG_IGN", "signal.SIG_DFL")], env=dict(os.environ), stdout=subprocess.PIPE, text=True,
                            marker=tmp_path.resolve())
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(stack.StackError, match=f"earlier run .* still running \\(pids \\[{proc.pid}\\]\\)"):
            stack.NativeRuntime().up("embedded", run_dir=tmp_path, log=lambda *_: None)
        assert stack.down(tmp_path, log=lambda *_: None)  # `make down` stops them
        assert proc.wait(5) is not None
    finally:
        proc.stop(grace_s=0.5)
