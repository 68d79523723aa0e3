"""The native runner with real servers: clear failures, `down` stops exactly what `up` started, and each
service receives exactly the environment compose gives its container."""
from __future__ import annotations

import json
import os
import subprocess

import psutil
import pytest

from servebench import netns, processes, registry, runtime, stack, topology
from servebench.registry import Architecture, Service
from servebench.settings import REPO_ROOT
from tests.stacks import free_ports, is_listening, stack_settings

pytestmark = pytest.mark.integration

QUIET = lambda *_: None  # noqa: E731
SECRET = "k3y-" + "".join(chr(ord("a") + i % 26) for i in range(60))


def test_backend_that_fails_to_start_is_reported(tmp_path):
    settings = stack_settings(backend_workers=1).model_copy(update={"model_base": tmp_path / "no-model"})
    with pytest.raises(stack.StackError, match="flask exited with code"):
        stack.up("flask", settings, tmp_path, log=QUIET, timeout_s=60)
    assert stack.state(tmp_path) is None


def test_down_stops_everything_it_started(tmp_path):
    settings = stack_settings()
    st = stack.up("embedded", settings, tmp_path, log=QUIET)
    try:
        pids = [p.pid for procs in st.processes().values() for p in procs]
        assert len(pids) >= 3 and st.alive()
        with pytest.raises(stack.StackError, match="already running"):
            stack.up("embedded", stack_settings(), tmp_path, log=QUIET)
    finally:  # a failed assertion must not leave the stack running
        assert stack.down(tmp_path, log=QUIET)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert not is_listening(settings.port)
    assert stack.state(tmp_path) is None


def test_down_without_a_state_file_still_stops_every_process(tmp_path):
    """The state file lost (a deleted run folder's, a run killed while writing it): strays are found anyway."""
    st = stack.up("embedded", stack_settings(frontend_workers=1), tmp_path, log=QUIET)
    try:
        pids = [p.pid for procs in st.processes().values() for p in procs]
        assert any("nginx: worker" in " ".join(psutil.Process(p).cmdline()) for p in pids)
        (tmp_path / "stack.json").unlink()
        assert stack.down(tmp_path, log=QUIET)
        psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=15)
        left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert not left, [psutil.Process(p).cmdline() for p in left]
    finally:
        for name, pid in st.pids().items():
            processes.stop_group(pid, grace_s=2)


def _received(st, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """What the service's main process really received: (its own variables, the platform's and the marker)."""
    env = psutil.Process(st.doc["services"][name]["pid"]).environ()
    platform = {k: env.pop(k) for k in (*topology.PLATFORM_ENV, topology.STACK_MARKER) if k in env}
    return env, platform


def _compose_gives(st, name: str, settings) -> dict[str, str]:
    """The environment compose gives the service's container for the same settings, with the native paths."""
    svc = registry.service(name)
    subst = topology.compose_substitutions(st.arch, settings, SECRET)
    env = {k: topology.resolve(v, subst) for k, v in topology.compose_document()["services"][name]["environment"].items()}
    # The one variable whose value is the runtime's: a path (the checkout's model, the image's model).
    env.update({k: v for k, v in topology.runtime_values(svc, "native", settings, st.run_dir).items()
                if k in svc.runtime_env})
    return env


@pytest.mark.parametrize("arch", ["embedded", "flask"])
def test_each_service_receives_exactly_what_compose_gives_it(arch, tmp_path, monkeypatch):
    """Drift test: the real environment of each running process, inherited variables included."""
    settings = stack_settings(frontend_workers=1, backend_workers=1, secret_key=SECRET)
    # Strays in the caller's environment: none may reach a service, only the settings do.
    monkeypatch.setenv("SB_POISON", "1")
    monkeypatch.setenv("SB_FLASK_PORT", str(free_ports(1)[0]))
    monkeypatch.setenv("SB_FRONTEND_WORKERS", "3")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "nowhere.settings")
    st = stack.up(arch, settings, tmp_path, log=QUIET)
    try:
        assert SECRET not in (tmp_path / "stack.json").read_text()
        # nginx writes its process title over its environment: its variables are checked statically
        # (tests/servebench/test_topology.py), its settings by its health on the settings' port.
        checked = [name for name in st.doc["services"] if name != "nginx"]
        assert checked == [svc.name for svc in registry.services_for(arch) if svc.name != "nginx"]
        for name in checked:
            env, platform = _received(st, name)
            expected = _compose_gives(st, name, settings)
            assert set(env) == set(topology.compose_document()["services"][name]["environment"]), name
            assert env == expected, name
            assert platform[topology.STACK_MARKER] == str(tmp_path.resolve())
            assert platform["PYTHONPATH"] == str(REPO_ROOT)
        # A service restarted from the recorded state (another process: no secret) gets the same variables.
        name = checked[0]
        stack.restart_service(stack.state(tmp_path), name)
        st = stack.state(tmp_path)
        env, _ = _received(st, name)
        expected = _compose_gives(st, name, settings)
        if "SB_SECRET_KEY" in expected:
            expected["SB_SECRET_KEY"] = ""
        assert env == expected, name
        assert json.loads((tmp_path / "stack.json").read_text())["knobs"] == settings.knob_env()
    finally:
        stack.down(tmp_path, log=QUIET)


def test_a_service_in_a_link_namespace_is_probed_there_and_stopped_by_down(tmp_path):
    """The host is not on the link: the probe runs inside the server's namespace, on the link's address."""
    if why := netns.unavailable():
        pytest.skip(f"needs network namespaces: {why}")
    settings = stack_settings()
    with netns.ShapedLink(f"rt{os.getpid()}", None, server_ns=True) as link:
        listener = Service(name="sb-ns-listener", port_field="flask_port", health_path=None, command=(
            "python", "-c", "import socket, sys, time; s = socket.create_server((sys.argv[1], int(sys.argv[2]))); "
                            "time.sleep(120)", link.server_addr, str(settings.flask_port)))
        registry.register_service(listener)
        # Registered as a dummy architecture's, so that unregistering it removes the service again.
        registry.register(Architecture(name="sb-in-ns", title="In a namespace", color="k", services=(listener.name,),
                                       profile="sb-in-ns", backend="tests.nowhere:Nothing"))
        native = stack.NativeRuntime(stop_grace_s=2)
        try:
            st = native.up_services([listener], settings, tmp_path, name="in-ns", log=QUIET, timeout_s=30,
                                    netns=link.namespace("server"), netns_host=link.server_addr)
            pid = st.pids()[listener.name]
            in_ns = subprocess.run(["ip", "netns", "pids", link.namespace("server")], capture_output=True, text=True)
            assert str(pid) in in_ns.stdout.split()
            assert runtime.service_healthy(listener, settings, link.namespace("server"), link.server_addr)
            assert not runtime.service_healthy(listener, settings)  # not on the host's loopback
        finally:
            native.down(tmp_path, log=QUIET)
            registry.unregister("sb-in-ns")
        assert not processes.pid_alive(pid) and native.state(tmp_path) is None
