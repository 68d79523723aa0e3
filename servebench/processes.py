"""Local processes: every process servebench starts goes through :func:`launch`, and stops by its group.

    proc = launch(["python", "-m", "x"], env=env, log_path=run / "x.log", limits=Limits(512, 1.0),
                  cgroup="x-1", netns="sb-link-s", marker=run)
    proc.pid, proc.poll(), proc.wait(5)
    proc.stop(grace_s=10)        # SIGTERM to its group, SIGKILL after the grace; the cgroup removed

A launched process leads a process group of its own: a terminal's Ctrl-C reaches
only the harness, which stops what it started, and a master's workers are
stopped with it (the group outlives its leader). Limits put it in a cgroup it
joins before it execs, so everything it does counts; ``netns`` runs it with
``ip netns exec``. A second Ctrl-C during a stop (:func:`servebench.interrupts.hurry`)
shortens every grace to a second. The marker variable in its environment lets
:func:`leftovers` find the strays of a run killed outright.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

import psutil

from servebench import cgroups, interrupts

__all__ = ["MARKER", "STOP_GRACE_S", "LaunchError", "Process", "executable", "launch", "stop_all", "stop_group",
           "stop_strays", "leftovers", "group_processes", "pid_alive", "leads_group"]

MARKER = "SERVEBENCH_STACK_DIR"  # the environment variable that ties a process to its run dir
STOP_GRACE_S = 10.0
HURRIED_GRACE_S = 1.0
POLL_S = 0.1
_ids = itertools.count()

# One stop step: a signal for the group (None: none, let it end on its own) and how long to wait after it.
Step = tuple["int | None", float]


class LaunchError(RuntimeError):
    """A process cannot be started; the message says why."""


def executable(name: str) -> str:
    """The program to run: the tools of the Python running us first (the project's virtual environment)."""
    if name == "python":
        return sys.executable
    if os.sep in name:
        return name
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise LaunchError(f"{name} not found on PATH")
    return found


@dataclass(eq=False)
class Process:
    """A launched process (the leader of its group), its cgroup if limited, and when it started."""

    popen: subprocess.Popen
    argv: list[str]
    started: float  # time.monotonic() just before the fork
    log_path: Path | None = None
    cgroup: cgroups.CGroup | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    @property
    def stdin(self) -> IO | None:
        return self.popen.stdin

    @property
    def stdout(self) -> IO | None:
        return self.popen.stdout

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole group at once (a timeout: nothing to wait for)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace_s: float = STOP_GRACE_S, first: int | None = signal.SIGTERM) -> int | None:
        """Stop the group (``first``, then SIGKILL after ``grace_s``), remove the cgroup, close the pipes."""
        stop_all([self], [(first, grace_s)])
        return self.returncode

    def close(self) -> None:
        """Remove the cgroup (what is still in it is killed) and close the pipes; idempotent."""
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            try:
                if f:
                    f.close()
            except OSError:
                pass


def launch(argv: Sequence[str], *, env: dict[str, str], cwd: str | Path | None = None,
           log_path: str | Path | None = None, stdin=subprocess.DEVNULL, stdout=None,
           limits: cgroups.Limits | None = None, cgroup: str | None = None, netns: str | None = None,
           marker: str | Path | None = None, text: bool = False) -> Process:
    """Start ``argv`` as the leader of a new process group and return its handle.

    ``argv[0]`` is resolved by :func:`executable`. ``env`` is the whole environment
    (plus the marker when given). ``log_path``: where stderr goes (appended), and stdout
    too unless ``stdout`` says otherwise (e.g. ``subprocess.PIPE``); None inherits ours.
    ``limits``: a cgroup named ``cgroup`` (default: one per launch) it joins before it execs.
    ``netns``: the network namespace it runs in.
    """
    argv = [executable(argv[0]), *argv[1:]]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = dict(env)
    if marker is not None:
        env[MARKER] = str(marker)
    group = None
    if limits is not None:
        group = cgroups.CGroup(cgroup or f"proc-{os.getpid()}-{next(_ids)}", limits)
    log = None
    try:
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            log = Path(log_path).open("ab")
        started = time.monotonic()
        popen = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=log if stdout is None else stdout,
                                 stderr=log if log is not None else None, text=text, start_new_session=True,
                                 preexec_fn=group.preexec() if group else None)
    except FileNotFoundError as exc:
        if group is not None:
            group.remove()
        raise LaunchError(f"cannot start {argv[0]}: {exc}") from None
    except BaseException:
        if group is not None:
            group.remove()
        raise
    finally:
        if log is not None:
            log.close()
    return Process(popen, argv, started, Path(log_path) if log_path is not None else None, group)


# ------------------------------------------------------------------ stopping
def _group_alive(pid: int, reap: Callable[[], object]) -> bool:
    reap()  # our own child must not linger as a zombie (a zombie leader keeps the group "alive")
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # Another process's child (a service the ensemble coordinator stops, started by the harness) stays a
    # zombie until its parent reaps it: the group has ended when nothing else in it runs.
    return not _only_a_zombie_left(pid)


def _only_a_zombie_left(pgid: int) -> bool:
    try:
        if psutil.Process(pgid).status() != psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return False
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.pid != pgid and os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return False
        except (ProcessLookupError, psutil.Error):
            continue
    return True


def _reap_pid(pid: int) -> Callable[[], None]:
    def reap() -> None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return reap


def _stop_groups(groups: list[tuple[int, Callable[[], object]]], steps: Iterable[Step]) -> None:
    """Each step: signal every live group, wait up to its grace for all to end; then SIGKILL what is left."""
    for sig, grace_s in [*steps, (signal.SIGKILL, 5.0)]:
        alive = [(pid, reap) for pid, reap in groups if _group_alive(pid, reap)]
        if not alive:
            return
        if sig is not None:
            for pid, _ in alive:
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            time.sleep(POLL_S)
            alive = [(pid, reap) for pid, reap in alive if _group_alive(pid, reap)]
            if sig != signal.SIGKILL and interrupts.hurry():  # Ctrl-C again: a second for a clean exit
                deadline = min(deadline, time.monotonic() + HURRIED_GRACE_S)


def stop_group(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group ``pid`` leads (by its pid: it may be another process's child), SIGKILL after
    the grace. The group outlives its leader: workers of a killed master are still in it."""
    _stop_groups([(pid, _reap_pid(pid))], [(signal.SIGTERM, grace_s)])


def stop_all(procs: Iterable[Process], steps: Iterable[Step] = ((signal.SIGTERM, STOP_GRACE_S),)) -> None:
    """Stop launched processes together, step by step (e.g. SIGINT, then SIGTERM), SIGKILL last; then close them."""
    procs = list(procs)
    _stop_groups([(p.pid, p.popen.poll) for p in procs], steps)
    for p in procs:
        try:
            p.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        p.close()


# ------------------------------------------------------------------ finding processes
def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def group_processes(pid: int) -> list[psutil.Process]:
    """The live processes of the group ``pid`` leads.

    While the leader lives: it and its descendants. Once it is gone: whatever is left
    in its process group (workers orphaned by a killed master).
    """
    if not pid:
        return []
    if pid_alive(pid):
        try:
            leader = psutil.Process(pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    left = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pid and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return left


def leftovers(marker: str | Path, argument: str | None = None) -> list[psutil.Process]:
    """Live processes launched with ``marker`` (whatever their group), or with ``argument`` on their command line
    (for a program that writes its title over its environment, as nginx does)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid():
                continue
            if proc.environ().get(MARKER) == str(marker) or (
                    argument and argument in " ".join(proc.cmdline()).split()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def stop_strays(strays: list[psutil.Process], grace_s: float = STOP_GRACE_S) -> None:
    """Stop processes a dead run left: a group leader with its group, any other alone."""
    for proc in strays:
        if leads_group(proc.pid):
            stop_group(proc.pid, grace_s)
        else:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
    psutil.wait_procs(strays, timeout=5)
