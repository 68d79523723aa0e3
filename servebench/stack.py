"""The native runtime: an architecture's services as local processes on 127.0.0.1 (or any set of services in a
network namespace given at up time: launched with ``ip netns exec``, probed from inside it).

Driven through :mod:`servebench.runtime` (``make up|down|status``). Each
service is started by :func:`servebench.processes.launch` with exactly the
environment compose gives its container (:func:`servebench.topology.native_launch`:
its declared variables, its runtime paths, PATH/HOME/LANG/PYTHONPATH and the
stack marker); nothing else of the caller's environment reaches it. What was
started is written to ``<run dir>/stack.json`` (default ``run/``, ``SB_RUN_DIR``):
per service its pid (a process group leader), port, command and log, plus the
knobs it was started with. ``down`` and the harness's resource sampler read it.
"""
from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from servebench import cgroups, interrupts, processes, registry, topology
from servebench.registry import Service
from servebench.runtime import (Runtime, StackError, StackState, group_processes, secret_of,
                                service_healthy)
from servebench.settings import REPO_ROOT, HarnessSettings, Settings, inherited_env

__all__ = ["NativeRuntime", "NativeState", "StackError", "StackState", "group_processes", "leftovers",
           "up", "down", "state", "restart_service", "stop_service"]

STOP_GRACE_S = processes.STOP_GRACE_S
_LAUNCH_LOCK = threading.Lock()
STACK_MARKER = topology.STACK_MARKER


@dataclass
class NativeState(StackState):
    # The processes this process started (not written): their exit codes while they start.
    children: dict[str, processes.Process] = field(default_factory=dict, repr=False, compare=False)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class NativeRuntime(Runtime):
    name = "native"
    state_file = "stack.json"
    state_class = NativeState
    start_timeout_s = 120.0
    down_hint = "make down"
    runs_in_netns = True
    stop_grace_s = STOP_GRACE_S

    def __init__(self, harness: HarnessSettings | None = None, *, stop_grace_s: float | None = None,
                 down_hint: str | None = None):
        super().__init__(harness)
        if stop_grace_s is not None:
            self.stop_grace_s = stop_grace_s
        if down_hint is not None:
            self.down_hint = down_hint

    def _prepare(self, arch: str, settings: Settings, services: list[Service], log) -> None:
        limited = [s.name for s in services if s.limits_in(settings)]
        if limited and (why := cgroups.unavailable()):
            raise StackError(f"{', '.join(limited)} run under memory/CPU limits, which cannot be applied "
                             f"natively here: {why}. Unset the limit knobs, or use RUNTIME=docker.")
        # servebench.nginx_conf execs nginx from PATH or Debian's /usr/sbin (not on a user's PATH).
        if any(s.name == "nginx" for s in services) and not (
                shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
            raise StackError("nginx is not installed: run `make setup` (it installs Debian's nginx-light) "
                             "or `apt-get install nginx-light`")

    def _strays(self, rdir: Path) -> list[int]:
        return [p.pid for p in leftovers(rdir)]

    def _start(self, st: NativeState, services: list[Service], timeout_s: float, log) -> None:
        (st.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        for svc in services:  # in order: each one healthy before the next, which may call it
            self._launch(st, svc)
            self._await(st, [svc.name], timeout_s, log)

    def _launch(self, st: NativeState, svc: Service) -> None:
        """Start one service and record it in stack.json."""
        settings = st.knob_settings()
        argv, env = topology.native_launch(svc, st.arch, settings, st.run_dir,
                                           inherited_env(topology.PLATFORM_ENV), secret_of(settings))
        logfile = st.run_dir / "logs" / f"{svc.name}.log"
        netns = st.doc.get("netns")
        # Shielded: a process that is started is also recorded, so `down` finds it. Locked: threads may start
        # services of one stack at once (the ensemble coordinator's members), and each writes the state file.
        with interrupts.shielded(), _LAUNCH_LOCK:
            try:
                proc = processes.launch(argv, env=env, cwd=REPO_ROOT, log_path=logfile, netns=netns,
                                        limits=svc.limits_in(settings), cgroup=cgroup_name(st.run_dir, svc.name))
            except processes.LaunchError as exc:
                raise StackError(str(exc)) from None
            st.children[svc.name] = proc
            st.doc["services"][svc.name] = {"pid": proc.pid, "port": topology.port(svc, settings),
                                            "command": proc.argv, "log": str(logfile)}
            if netns:
                st.doc["services"][svc.name].update(netns=netns, host=st.doc["netns_host"])
            if proc.cgroup is not None:
                st.doc["services"][svc.name]["limits"] = proc.cgroup.recorded()
            self._write_state(st)

    def _poll(self, st: NativeState, pending: list[str]) -> dict[str, str]:
        ready = {}
        for name in pending:
            rec = st.doc["services"][name]
            inside = {"netns": rec["netns"], "host": rec["host"]} if "netns" in rec else {}
            if service_healthy(registry.service(name), st.knob_settings(), **inside):
                where = f"{rec['host']}:{rec['port']} in network namespace {rec['netns']}" if inside \
                    else f"127.0.0.1:{rec['port']}"
                ready[name] = f"on {where} (pid {rec['pid']})"
                continue
            proc = st.children[name]
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode} while starting; "
                                 f"{self._last_lines(st, name)}")
        return ready

    def _last_lines(self, st: StackState, name: str) -> str:
        logfile = Path(st.doc["services"][name]["log"])
        return f"last lines of {logfile}:\n{_log_tail(logfile)}"

    def stop_service(self, st: StackState, name: str) -> None:
        self._stop_service(st.run_dir, name, st.doc["services"][name])

    def _stop_service(self, rdir: Path, name: str, rec: dict) -> None:
        # By pid from the record: the stack may have been started by another process.
        processes.stop_group(rec["pid"], self.stop_grace_s)
        if "limits" in rec and not cgroups.unavailable():
            cgroups.CGroup(cgroup_name(rdir, name)).remove()

    def restart_service(self, st: StackState, name: str, timeout_s: float | None = None) -> None:
        """Start one service again with the stack's settings (the secret key only when this process started it)."""
        self._stop_service(st.run_dir, name, st.doc["services"][name])
        if not isinstance(st, NativeState):
            st = NativeState(st.run_dir, st.doc, st.settings)
        self._launch(st, registry.service(name))
        self._await(st, [name], timeout_s or self.start_timeout_s, log=lambda *_: None)

    def _down(self, rdir: Path, log) -> bool:
        """Stop every service of the stack in ``rdir``, and anything a dead run left behind there."""
        st = self.state(rdir)
        stopped = False
        if st is not None:
            for name in reversed(list(st.doc["services"])):
                self._stop_service(rdir, name, st.doc["services"][name])
                log(f"  stopped {name}")
            stopped = True
        stray = leftovers(rdir)
        if stray:
            # A service leads its own group: its workers (nginx's carry no marker) go with it.
            processes.stop_strays(stray, self.stop_grace_s)
            log(f"  stopped {len(stray)} stray process(es) of an earlier run: {[p.pid for p in stray]}")
        cgroups.remove_stale(cgroup_name(rdir, ""))
        (rdir / self.state_file).unlink(missing_ok=True)
        if not stopped and not stray:
            log("no native stack is running")
        return stopped or bool(stray)


def cgroup_name(rdir: Path, service: str) -> str:
    """The cgroup of a limited service: one per stack directory and service."""
    return f"stack-{hashlib.sha1(str(Path(rdir).resolve()).encode()).hexdigest()[:8]}-{service}"


def leftovers(rdir: Path) -> list[psutil.Process]:
    """Processes started for the stack in ``rdir`` that are still alive, whatever their group.

    Found by the marker in their environment; nginx writes its process title over
    its environment, so it is found by its prefix (``-p <rdir>/nginx``, the
    registry's native SB_NGINX_PREFIX) instead.
    """
    return processes.leftovers(rdir, argument=str(Path(rdir) / "nginx"))


# The native runtime's methods as functions (tests and scripts), with the environment's harness settings.
def up(arch: str, settings: Settings | None = None, run_dir: str | Path | None = None, log=print,
       timeout_s: float | None = None) -> StackState:
    return NativeRuntime().up(arch, settings, run_dir, log, timeout_s)


def down(run_dir: str | Path | None = None, log=print) -> bool:
    return NativeRuntime().down(run_dir, log)


def state(run_dir: str | Path | None = None) -> StackState | None:
    return NativeRuntime().state(run_dir)


def restart_service(st: StackState, name: str, timeout_s: float | None = None) -> None:
    NativeRuntime().restart_service(st, name, timeout_s)


def stop_service(st: StackState, name: str) -> None:
    NativeRuntime().stop_service(st, name)
