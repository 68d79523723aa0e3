"""The native runner: clear failures, and `down` stops exactly what `up` started."""
from __future__ import annotations

import socket

import psutil
import pytest

from servebench import stack
from tests.stacks import is_listening, stack_env

pytestmark = pytest.mark.integration


def test_port_in_use_is_named(tmp_path):
    env = stack_env()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(env["SB_FASTAPI_PORT"])))
        blocker.listen()
        with pytest.raises(stack.StackError, match=r"port .* \(SB_FASTAPI_PORT\) .* in use"):
            stack.up("fastapi", env=env, path=tmp_path, log=lambda *_: None)
    assert stack.state(tmp_path) is None


def test_tfserving_without_binary_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(stack.StackError, match="tensorflow_model_server"):
        stack.up("tfserving-rest", env=stack_env(), path=tmp_path, log=lambda *_: None)


def test_backend_that_fails_to_start_is_reported(tmp_path):
    env = stack_env(SB_MAX_BATCH="not-a-number")  # the settings object refuses it
    with pytest.raises(stack.StackError, match="flask exited"):
        stack.up("flask", env=env, path=tmp_path, log=lambda *_: None, timeout_s=60)
    assert stack.state(tmp_path) is None


def test_down_stops_everything_it_started(tmp_path):
    env = stack_env()
    st = stack.up("embedded", env=env, path=tmp_path, log=lambda *_: None)
    try:
        pids = [p.pid for procs in st.processes().values() for p in procs]
        assert len(pids) >= 3 and st.alive()
        with pytest.raises(stack.StackError, match="already running"):
            stack.up("embedded", env=stack_env(), path=tmp_path, log=lambda *_: None)
    finally:  # a failed assertion must not leave the stack running
        assert stack.down(tmp_path, log=lambda *_: None)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert not is_listening(int(env["SB_PORT"]))
    assert stack.state(tmp_path) is None


def test_down_without_a_state_file_still_stops_every_process(tmp_path):
    """The state file lost (a deleted run folder's, a run killed while writing it): strays are found anyway."""
    env = stack_env(SB_FRONTEND_WORKERS="1")
    st = stack.up("embedded", env=env, path=tmp_path, log=lambda *_: None)
    try:
        pids = [p.pid for procs in st.processes().values() for p in procs]
        assert any("nginx: worker" in " ".join(psutil.Process(p).cmdline()) for p in pids)
        (tmp_path / "stack.json").unlink()
        assert stack.down(tmp_path, log=lambda *_: None)
        psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=15)
        left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert not left, [psutil.Process(p).cmdline() for p in left]
    finally:
        for name, pid in st.pids().items():
            stack._stop(pid, grace_s=2)
