"""The runtime interface: native processes (:mod:`servebench.stack`) or docker compose (:mod:`servebench.compose`).

Both implement :class:`Runtime` (``up / up_services / down / state /
restart_service / stop_service``) and return a :class:`StackState` (``arch``,
``url``, ``doc``, ``processes()`` and ``health()`` per service). ``up`` starts
an architecture; ``up_services`` any set of registry services (a study's object
store, the offloading edge server). The steps they share live here once: the
existing-state check (strays too), the needs, the port check, the health wait,
and the rollback (``down``) when anything fails, Ctrl-C included. Processes are
started by :mod:`servebench.processes`; natively a set of services may run in a
network namespace (``up_services(..., netns=NAME)``), probed from inside it.

    python -m servebench.runtime up ARCH [--runtime native|docker]
    python -m servebench.runtime down|status [--runtime ...]
"""
from __future__ import annotations

import abc
import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit

import psutil

from servebench import health, interrupts, registry, topology
from servebench.processes import group_processes, pid_alive
from servebench.registry import RUNTIMES, Service
from servebench.settings import HarnessSettings, Settings, env_name, from_environment

__all__ = ["RUNTIMES", "Runtime", "StackError", "StackState", "get", "group_processes", "main", "pid_alive"]

IMPLEMENTATIONS = {"native": "servebench.stack:NativeRuntime", "docker": "servebench.compose:DockerRuntime"}
POLL_S = 0.2


def _quiet(*_args) -> None:
    pass


class StackError(RuntimeError):
    """Something stops the stack from starting; the message says what to do."""


# ------------------------------------------------------------------ state
@dataclass
class StackState:
    """A started stack: its record (``doc``, the state file) and, in the process that started it, its settings."""

    run_dir: Path
    doc: dict
    # Never written to the state file (it may hold the secret key); restart_service reuses it.
    settings: Settings | None = field(default=None, repr=False, compare=False)

    @property
    def arch(self) -> str:
        return self.doc["arch"]

    @property
    def url(self) -> str:
        return self.doc["url"]

    def pids(self) -> dict[str, int]:
        """Each service's main process (0 when it has none)."""
        return {name: svc["pid"] for name, svc in self.doc["services"].items()}

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Each service's live processes: its main process and descendants, or what is left of its group."""
        return {name: group_processes(pid) for name, pid in self.pids().items()}

    def health(self) -> dict[str, tuple[str, list[psutil.Process]]]:
        """Per service: "up" (main process alive), "degraded" (it is gone, workers left), or "dead"."""
        out = {}
        for name, pid in self.pids().items():
            procs = group_processes(pid)
            out[name] = ("up" if pid and pid_alive(pid) else ("degraded" if procs else "dead"), procs)
        return out

    def alive(self) -> bool:
        return all(pid and pid_alive(pid) for pid in self.pids().values())

    def knob_settings(self) -> Settings:
        """The settings the stack was started with: in memory, or rebuilt from the recorded knobs."""
        if self.settings is None:
            self.settings = Settings.from_env({**self.doc["knobs"], env_name("arch"): self.arch})
        return self.settings


# ------------------------------------------------------------------ shared steps
def _port_owner(port: int) -> str:
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        pass
    return ""


def check_port_free(host: str, port: int, knob: str, down_hint: str = "make down") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers do: connections in TIME_WAIT from a previous run must not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise StackError(
                f"port {port} ({knob}) on {host} is already in use{_port_owner(port)}: "
                f"stop that process, run `{down_hint}`, or choose another port with {knob}=..."
            ) from None


def service_healthy(svc: Service, settings: Settings, netns: str | None = None, host: str = "127.0.0.1") -> bool:
    """The service's health probe, from the host: its health path answers 200 (or its port accepts).
    In a network namespace it is probed from inside it (the host is not on its links), on ``host``."""
    port = topology.port(svc, settings)
    if netns:
        return probe_in_namespace(netns, health.target(host, port, svc.health_path_for(settings.model_name)))
    # The client-facing port is probed where clients reach it; the others listen on loopback.
    host = urlsplit(settings.base_url()).hostname if svc.port_field == "port" else "127.0.0.1"
    if svc.health_path is None:
        return health.accepts(host, port)
    return health.probe(f"http://{host}:{port}{svc.health_path_for(settings.model_name)}")


def probe_in_namespace(netns: str, target: str, timeout_s: float = 5.0) -> bool:
    """:mod:`servebench.health`'s probe of ``target`` (a URL, or tcp://host:port), run inside ``netns``."""
    argv = ["ip", "netns", "exec", netns, sys.executable, "-I", health.__file__, target]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout_s).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def secret_of(settings: Settings) -> str:
    return settings.secret_key.get_secret_value() if settings.secret_key else ""


# ------------------------------------------------------------------ the interface
class Runtime(abc.ABC):
    """Starts an architecture's services, tells their health, stops them; see :func:`get`."""

    name: str
    state_file: str  # in the run dir
    state_class: type[StackState] = StackState
    start_timeout_s: float
    down_hint: str  # the command that stops a stack of this runtime
    runs_in_netns = False  # whether up_services can start services in a network namespace
    StackError = StackError  # `runtime.get(name).StackError`, for callers that catch it

    def __init__(self, harness: HarnessSettings | None = None):
        self.harness = harness if harness is not None else HarnessSettings()

    def run_dir(self, path: str | Path | None = None) -> Path:
        return Path(path or self.harness.run_dir).resolve()

    def state(self, run_dir: str | Path | None = None) -> StackState | None:
        rdir = self.run_dir(run_dir)
        f = rdir / self.state_file
        if not f.is_file():
            return None
        return self.state_class(rdir, json.loads(f.read_text()))

    def up(self, arch: str, settings: Settings | None = None, run_dir: str | Path | None = None,
           log=print, timeout_s: float | None = None) -> StackState:
        """Start ``arch`` with ``settings`` (default: ``Settings()``); on any failure nothing is left running."""
        try:
            record = registry.get(arch)
        except ValueError as exc:
            raise StackError(str(exc)) from None
        settings = (settings if settings is not None else Settings()).model_copy(update={"arch": arch})
        return self.up_services(registry.services_for(arch), settings, run_dir, name=arch, log=log,
                                timeout_s=timeout_s, unmet=lambda: record.unmet(self.name))

    def up_services(self, services: Sequence[Service], settings: Settings, run_dir: str | Path | None = None, *,
                    name: str, log=print, timeout_s: float | None = None,
                    unmet: Callable[[], list[str]] = list, ports: Sequence[tuple[int, str]] = (),
                    netns: str | None = None, netns_host: str = "127.0.0.1") -> StackState:
        """Start any set of registry services (an architecture's, a study's object store) as one stack in
        ``run_dir``, recorded under ``name``: the existing-state check, ``unmet`` (the needs), the port check
        (each service's port, and ``ports``: more (port, knob) pairs a service takes), the health wait; on any
        failure, Ctrl-C included, it is rolled back and nothing is left running. ``netns``: the network
        namespace (an existing one, e.g. a :class:`servebench.netns.ShapedLink`'s) they all run in, natively
        only; they are probed from inside it on ``netns_host`` (the address their settings bind them to)."""
        rdir = self.run_dir(run_dir)
        services = list(services)
        if netns and not self.runs_in_netns:
            raise StackError(f"the {self.name} runtime cannot start services in a network namespace ({netns})")
        self._check_runtime()
        self._check_existing(rdir)
        missing = unmet()
        if missing:
            raise StackError("\n".join(missing))
        # Skipped in a namespace: the host's ports say nothing about its own, and one is made per run, so they
        # are free (a server that still held one would fail to bind, and the health wait shows its log).
        if not netns:
            for svc in services:
                check_port_free("127.0.0.1", topology.port(svc, settings), env_name(svc.port_field), self.down_hint)
            for port, knob in ports:
                check_port_free("127.0.0.1", port, knob, self.down_hint)
        self._prepare(name, settings, services, log)
        doc = {
            "arch": name,
            "runtime": self.name,
            "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "url": settings.base_url(),
            "knobs": settings.knob_env(),
            "services": {},
            **({"netns": netns, "netns_host": netns_host} if netns else {}),
        }
        st = self.state_class(rdir, doc, settings)
        try:
            rdir.mkdir(parents=True, exist_ok=True)
            self._start(st, services, timeout_s or self.start_timeout_s, log)
        except BaseException:
            self.down(rdir, log=_quiet)
            raise
        return st

    def down(self, run_dir: str | Path | None = None, log=print) -> bool:
        """Stop every service of the stack in ``run_dir``; True when something was running.

        It always finishes: further Ctrl-C only shortens the grace periods.
        """
        with interrupts.shielded():
            return self._down(self.run_dir(run_dir), log)

    @abc.abstractmethod
    def restart_service(self, st: StackState, name: str, timeout_s: float | None = None) -> None:
        """Start one service again with the settings it was started with, and wait until it is healthy."""

    @abc.abstractmethod
    def stop_service(self, st: StackState, name: str) -> None:
        """Stop one service of a running stack (fault tests; the rest keeps running)."""

    # -------------------------------------------------------------- what each runtime does its own way
    def _check_runtime(self) -> None:
        """Refuse early when the runtime itself cannot run here."""

    def _prepare(self, arch: str, settings: Settings, services: list[Service], log) -> None:
        """What must be there before anything starts (images, programs)."""

    def _strays(self, rdir: Path) -> list[int]:
        """Processes a dead run in ``rdir`` left running without a record (pids)."""
        return []

    @abc.abstractmethod
    def _start(self, st: StackState, services: list[Service], timeout_s: float, log) -> None:
        """Start the services, record them in ``st.doc`` and the state file, and wait for their health."""

    @abc.abstractmethod
    def _poll(self, st: StackState, pending: list[str]) -> dict[str, str]:
        """Of ``pending``, those now healthy (name -> where, for the log); StackError for one that died."""

    @abc.abstractmethod
    def _last_lines(self, st: StackState, name: str) -> str:
        """The end of a service's log, introduced by where it comes from."""

    @abc.abstractmethod
    def _down(self, rdir: Path, log) -> bool:
        """Stop what the stack in ``rdir`` runs (shielded by :meth:`down`) and remove its state file."""

    # -------------------------------------------------------------- shared
    def _check_existing(self, rdir: Path) -> None:
        existing = self.state(rdir)
        if existing is None:
            strays = self._strays(rdir)
            if strays:
                raise StackError(f"processes of an earlier run in {rdir} are still running (pids {strays}): "
                                 f"run `{self.down_hint}` first")
            return
        live = {name: h for name, (h, _) in existing.health().items() if h != "dead"}
        if live:
            what = ", ".join(f"{name} {h}" for name, h in live.items())
            raise StackError(f"a {existing.arch} stack is already running ({self.name}: {what}; state in {rdir}): "
                             f"run `{self.down_hint}` first")
        (rdir / self.state_file).unlink()  # a stale record of a stack that is gone

    def _await(self, st: StackState, names: list[str], timeout_s: float, log) -> None:
        """Wait until every service of ``names`` is healthy; StackError when one dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        pending = list(names)
        while True:
            for name, where in self._poll(st, pending).items():
                pending.remove(name)
                log(f"  {name:<10} healthy {where}")
            if not pending:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(self._last_lines(st, name) for name in pending)
                raise StackError(f"{', '.join(pending)} did not become healthy within {timeout_s:.0f} s; {tails}")
            time.sleep(POLL_S)

    def _write_state(self, st: StackState) -> None:
        tmp = st.run_dir / (self.state_file + ".tmp")
        tmp.write_text(json.dumps(st.doc, indent=2))
        os.replace(tmp, st.run_dir / self.state_file)


def get(name: str, harness: HarnessSettings | None = None) -> Runtime:
    """The runtime called ``name`` (native or docker), with the harness settings (default: ``HarnessSettings()``)."""
    if name not in RUNTIMES:
        raise ValueError(f"unknown RUNTIME {name!r}: choose {' or '.join(RUNTIMES)}")
    return registry.found(IMPLEMENTATIONS[name])(harness)


def service_details(st: StackState, name: str) -> list[str]:
    """A service's own lines for `make status` (its record's ``status`` hook), or none."""
    hook = registry.services()[name].status if name in registry.services() else ""
    if not hook:
        return []
    return list(registry.found(hook)(st.doc["services"][name], st.knob_settings()))


def part_classifiers(st: StackState) -> dict[str, Callable]:
    """Per service that is reported in parts (its record's ``parts`` hook): the function naming a process's part."""
    out = {}
    for name in st.doc["services"]:
        hook = registry.services()[name].parts if name in registry.services() else ""
        if hook:
            out[name] = registry.found(hook)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=("up", "down", "status"))
    p.add_argument("arch", nargs="?", choices=registry.names())
    p.add_argument("--runtime", default="native", choices=RUNTIMES)
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    rt = get(args.runtime, HarnessSettings())
    try:
        if args.cmd == "up":
            if not args.arch:
                p.error("up needs an ARCH")
            print(f"starting {args.arch} ({args.runtime}) ...", flush=True)
            st = rt.up(args.arch, from_environment())
            print(f"{args.arch} is up ({args.runtime}): POST {st.url}/v1/predict   stop with `make down RUNTIME={args.runtime}`")
        elif args.cmd == "down":
            rt.down()
        else:
            st = rt.state()
            if st is None:
                print(f"no {args.runtime} stack is running")
                return 1
            healthy = True
            for name, (state, procs) in st.health().items():
                pids = [p.pid for p in procs]
                if state == "up":
                    print(f"{name:<10} up        pids {pids}")
                    for line in service_details(st, name):
                        print(f"{'':<10} {line}")
                elif state == "degraded":
                    healthy = False
                    print(f"{name:<10} DEGRADED  master gone, {len(procs)} orphaned process(es) still running "
                          f"{pids}: `make down RUNTIME={args.runtime}` stops them")
                else:
                    healthy = False
                    print(f"{name:<10} DEAD")
            if not healthy:
                return 1
    except rt.StackError as exc:  # the class the runtime raises, also when this module runs as __main__
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
