"""The runtime interface's shared steps, without servers: refusals, rollback, state, the switch and the CLI.

A dummy architecture (a test double, registered here only) runs two tiny
processes: one that sleeps (reported healthy by a stubbed probe) and one that
exits at once.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import psutil
import pytest

from servebench import compose, health, registry, runtime, stack
from servebench.registry import Architecture, Need, Service
from servebench.runtime import StackError, StackState
from servebench.settings import HarnessSettings, Settings
from tests.stacks import stack_settings

pytestmark = pytest.mark.unit

DUMMY = "sb-dummy"
SLEEPER, CRASHER = "sb-sleeper", "sb-crasher"
MISSING = "sb-no-such-program"
QUIET = lambda *_: None  # noqa: E731


@pytest.fixture
def dummy():
    registry.register_service(Service(name=SLEEPER, port_field="flask_port", health_path=None,
                                      command=("python", "-c", "import time; time.sleep(120)")))
    registry.register_service(Service(name=CRASHER, port_field="fastapi_port", health_path=None,
                                      command=("python", "-c", "import sys; print('boom'); sys.exit(3)")))
    registry.register(Architecture(name=DUMMY, title="Dummy", color="k", services=(SLEEPER, CRASHER),
                                   profile=DUMMY, backend="tests.nowhere:Nothing"))
    registry.register(Architecture(name=DUMMY + "-needy", title="Needy", color="k", services=(SLEEPER,),
                                   profile=DUMMY, backend="tests.nowhere:Nothing",
                                   needs=(Need("binary", MISSING, f"install {MISSING} from the moon"),)))
    yield DUMMY
    registry.unregister(DUMMY + "-needy")
    registry.unregister(DUMMY)


@pytest.fixture
def native(tmp_path):
    return stack.NativeRuntime(HarnessSettings(run_dir=tmp_path))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_switch_gives_each_runtime_with_the_harness_settings(tmp_path):
    harness = HarnessSettings(run_dir=tmp_path)
    assert isinstance(runtime.get("native", harness), stack.NativeRuntime)
    docker = runtime.get("docker", harness)
    assert isinstance(docker, compose.DockerRuntime) and docker.run_dir() == tmp_path.resolve()
    assert runtime.get("native").StackError is StackError  # callers catch `runtime.get(name).StackError`
    with pytest.raises(ValueError, match="native or docker"):
        runtime.get("podman")


def test_unknown_arch_names_the_choices(native):
    with pytest.raises(StackError, match="unknown ARCH 'nope': choose one of embedded, flask"):
        native.up("nope", stack_settings(), log=QUIET)


def test_a_service_that_fails_to_start_rolls_the_stack_back(dummy, native, tmp_path, monkeypatch):
    monkeypatch.setattr(stack, "service_healthy", lambda svc, settings: svc.name == SLEEPER)
    lines = []
    with pytest.raises(StackError, match=rf"{CRASHER} exited with code 3 while starting; last lines of .*\nboom"):
        native.up(dummy, stack_settings(), log=lines.append)
    (line,) = lines
    assert line.startswith(f"  {SLEEPER:<10} healthy on 127.0.0.1:")
    sleeper = int(line.rsplit("pid ", 1)[1].rstrip(")"))
    assert _gone(sleeper), "the service started before the failure is still running"
    assert native.state() is None and not (tmp_path / "stack.json").exists()


def test_ctrl_c_while_waiting_rolls_the_stack_back(dummy, native, monkeypatch):
    started = []

    def interrupted(self, st, pending):
        started.extend(svc["pid"] for svc in st.doc["services"].values())
        raise KeyboardInterrupt

    monkeypatch.setattr(stack.NativeRuntime, "_poll", interrupted)
    with pytest.raises(KeyboardInterrupt):
        native.up(dummy, stack_settings(), log=QUIET)
    assert len(started) == 1 and _gone(started[0])
    assert native.state() is None


def test_a_busy_port_is_refused_with_its_knob_named(native):
    settings = stack_settings()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", settings.fastapi_port))
        blocker.listen()
        with pytest.raises(StackError, match=rf"port {settings.fastapi_port} \(SB_FASTAPI_PORT\) .* in use"):
            native.up("fastapi", settings, log=QUIET)
    assert native.state() is None


def test_an_unmet_need_gives_its_message(dummy, native):
    with pytest.raises(StackError, match=f"install {MISSING} from the moon"):
        native.up(DUMMY + "-needy", stack_settings(), log=QUIET)


def test_tfserving_without_its_binary_says_how_to_get_it(native, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(StackError, match="no `tensorflow_model_server` on PATH.*RUNTIME=docker"):
        native.up("tfserving-rest", stack_settings(), log=QUIET)


def _record(tmp_path, pid: int) -> None:
    doc = {"arch": "embedded", "runtime": "native", "url": "http://127.0.0.1:1", "knobs": {},
           "services": {"frontend": {"pid": pid, "port": 1, "command": [], "log": ""}}}
    (tmp_path / "stack.json").write_text(json.dumps(doc))


def test_a_running_stack_is_not_started_twice(native, tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _record(tmp_path, sleeper.pid)
        with pytest.raises(StackError, match=r"a embedded stack is already running \(native: frontend up; .*make down"):
            native.up("flask", stack_settings(), log=QUIET)
        assert native.state() is not None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_stale_record_is_cleared(native, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _record(tmp_path, dead.pid)
    settings = stack_settings()
    with socket.socket() as blocker:  # stop at the port check, after the existing-state check
        blocker.bind(("127.0.0.1", settings.port))
        blocker.listen()
        with pytest.raises(StackError, match=r"\(SB_PORT\)"):
            native.up("embedded", settings, log=QUIET)
    assert not (tmp_path / "stack.json").exists()


def test_a_recorded_stack_gives_back_its_settings(tmp_path):
    settings = stack_settings(frontend_workers=3, allowed_hosts="a.example,b.example", tfserving_batching=True,
                              secret_key="not-recorded")
    doc = {"arch": "flask", "knobs": settings.knob_env(), "services": {}}
    assert "not-recorded" not in json.dumps(doc)
    again = StackState(tmp_path, json.loads(json.dumps(doc))).knob_settings()
    assert again.knob_env() == settings.knob_env() and again.arch == "flask"
    assert again.secret_key is None


def test_the_cli_offers_every_registered_architecture(dummy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SB_RUN_DIR", str(tmp_path))
    assert runtime.main(["down", DUMMY]) == 0
    assert "no native stack is running" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        runtime.main(["up", "sb-unknown"])
    assert exc.value.code == 2
    assert runtime.main(["status"]) == 1


def test_compose_gets_the_settings_and_not_the_callers_strays(monkeypatch):
    monkeypatch.setenv("SB_POISON", "1")
    monkeypatch.setenv("SB_FLASK_PORT", "1")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock")
    settings = stack_settings()
    rt = compose.DockerRuntime(HarnessSettings(compose_project="sbunit", base_image="img:1"))
    env = rt.compose_env("flask", settings, "s3cret")
    assert "SB_POISON" not in env and env["DOCKER_HOST"] == "unix:///nowhere.sock"
    assert env["SB_FLASK_PORT"] == str(settings.flask_port) and env["ARCH"] == "flask"
    assert env["SB_SECRET_KEY"] == "s3cret" and env["BASE_IMAGE"] == "img:1"
    assert env["SB_COMPOSE_PROJECT"] == "sbunit" and env["SB_NGINX_PREFIX"] == "/tmp/servebench-nginx"
    assert {k: env[k] for k in settings.knob_env()} == settings.knob_env()


def test_docker_without_an_engine_says_how_to_start_one(tmp_path):
    if compose.engine_answers():
        pytest.skip("a Docker engine answers here")
    with pytest.raises(StackError, match="no Docker engine answers"):
        compose.DockerRuntime(HarnessSettings(run_dir=tmp_path)).up("embedded", Settings.from_env({}), log=QUIET)


def test_one_health_probe():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        assert not health.probe(f"http://127.0.0.1:{port}/healthz", timeout=1)
        assert not health.accepts("127.0.0.1", port, timeout=1)
        assert health.main([f"http://127.0.0.1:{port}/healthz"]) == 1
    assert health.main([]) == 2


# ------------------------------------------------------------------ a set of services in a network namespace
def test_services_in_a_namespace_are_launched_and_probed_inside_it(dummy, native, monkeypatch):
    """``up_services(..., netns=)``: launched with ``ip netns exec``, probed from inside the namespace on its
    address, recorded; the host's ports are not checked (they say nothing about the namespace's)."""
    launched, probed = [], []
    real_launch = stack.processes.launch

    def launch(argv, *, netns=None, **kw):
        launched.append(netns)
        return real_launch(argv, **kw)  # on the host: no namespace is needed to test the hook

    monkeypatch.setattr(stack.processes, "launch", launch)
    monkeypatch.setattr(runtime, "probe_in_namespace", lambda ns, target: probed.append((ns, target)) or True)
    settings = stack_settings()
    lines = []
    with socket.socket() as blocker:  # busy on the host, free in the namespace
        blocker.bind(("127.0.0.1", settings.flask_port))
        blocker.listen()
        st = native.up_services([registry.service(SLEEPER)], settings, name="in-ns", log=lines.append,
                                netns="sb-test-ns", netns_host="169.254.9.1")
    try:
        rec = native.state().doc["services"][SLEEPER]
        assert launched == ["sb-test-ns"]
        assert probed == [("sb-test-ns", f"tcp://169.254.9.1:{settings.flask_port}")]
        assert rec["netns"] == "sb-test-ns" and rec["host"] == "169.254.9.1" and st.doc["netns"] == "sb-test-ns"
        assert lines[0].endswith(f"healthy on 169.254.9.1:{settings.flask_port} in network namespace sb-test-ns "
                                 f"(pid {rec['pid']})")
    finally:
        native.down(log=QUIET)
    assert _gone(rec["pid"]) and native.state() is None


def test_the_namespace_probe_runs_the_health_module_under_ip_netns_exec(monkeypatch):
    ran = []
    monkeypatch.setattr(runtime.subprocess, "run", lambda argv, **kw: ran.append(argv) or
                        subprocess.CompletedProcess(argv, 0))
    assert runtime.service_healthy(Service(name="x", port_field="flask_port", command=(), health_path="/h"),
                                   Settings.from_env({"SB_FLASK_PORT": "5999"}), netns="sb-n", host="169.254.3.1")
    (argv,) = ran
    assert argv[:4] == ["ip", "netns", "exec", "sb-n"] and argv[-2:] == [health.__file__, "http://169.254.3.1:5999/h"]


def test_only_the_native_runtime_starts_services_in_a_namespace(dummy, tmp_path):
    docker = runtime.get("docker", HarnessSettings(run_dir=tmp_path))
    with pytest.raises(StackError, match="docker runtime cannot start services in a network namespace"):
        docker.up_services([registry.service(SLEEPER)], stack_settings(), name="in-ns", log=QUIET, netns="sb-x")


def test_the_health_module_probes_a_tcp_target():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert health.target("127.0.0.1", port, None) == f"tcp://127.0.0.1:{port}"
        assert health.main([health.target("127.0.0.1", port, None)]) == 0
    assert health.main([f"tcp://127.0.0.1:{port}"]) == 1
    assert health.target("h", 1, "/healthz") == "http://h:1/healthz" and not health.check("tcp://h:x")
