"""Resource limits on this machine's real isolation: cgroup v1 groups for memory and CPU.

A :class:`CGroup` is one group under ``servebench/`` in the memory, cpu and
cpuacct hierarchies: a memory limit (a process over it is OOM-killed by the
kernel, exit 137), a CFS CPU quota, and the accounting read back from the
kernel (peak memory, CPU seconds, OOM kills). Functions (serverless studies),
model processes under a CPU quota and a constrained client all use it; the
native runtime puts a registry service with ``limits`` into one.

:class:`Limits` is what is asked for; ``Limits.lambda_like(mb)`` gives CPU in
proportion to memory as AWS Lambda does (1,769 MB = one vCPU). Docker's
``--memory``/``--cpus`` take the same two numbers (see :meth:`Limits.docker_args`).
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path("/sys/fs/cgroup")
PARENT = "servebench"  # every group this project makes lives under it
CONTROLLERS = ("memory", "cpu", "cpuacct")
LAMBDA_MB_PER_VCPU = 1769  # AWS Lambda: CPU share proportional to memory, one vCPU at 1,769 MB
CFS_PERIOD_US = 100_000


def lambda_cpus(memory_mb: float) -> float:
    """The vCPUs Lambda gives a function of ``memory_mb``."""
    return memory_mb / LAMBDA_MB_PER_VCPU


@dataclass(frozen=True)
class Limits:
    """What a group may use; None means unlimited."""

    memory_mb: int | None = None
    cpus: float | None = None

    def __post_init__(self):
        if self.memory_mb is not None and self.memory_mb <= 0:
            raise ValueError(f"memory limit must be positive, not {self.memory_mb} MB")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError(f"CPU quota must be positive, not {self.cpus}")

    @classmethod
    def lambda_like(cls, memory_mb: int) -> "Limits":
        """Memory and the CPU Lambda gives with it."""
        return cls(memory_mb=memory_mb, cpus=lambda_cpus(memory_mb))

    @classmethod
    def of(cls, memory_mb: float | None, cpus: float | None) -> "Limits | None":
        """From knobs where 0 or None means unlimited; None when neither limits anything."""
        memory_mb = int(memory_mb) if memory_mb else None
        cpus = float(cpus) if cpus else None
        return cls(memory_mb, cpus) if (memory_mb or cpus) else None

    @property
    def unlimited(self) -> bool:
        return self.memory_mb is None and self.cpus is None

    def recorded(self) -> dict:
        return {"memory_mb": self.memory_mb, "cpus": None if self.cpus is None else round(self.cpus, 4)}

    def docker_args(self) -> list[str]:
        """The same limits for ``docker run``."""
        out = []
        if self.memory_mb is not None:
            out += [f"--memory={self.memory_mb}m", f"--memory-swap={self.memory_mb}m"]
        if self.cpus is not None:
            out.append(f"--cpus={self.cpus:g}")
        return out


def unavailable() -> str | None:
    """Why limits cannot be applied here (None when they can)."""
    if os.name != "posix":
        return "cgroups need Linux"
    missing = [c for c in CONTROLLERS if not (ROOT / c / "cgroup.procs").exists()]
    if missing:
        if (ROOT / "cgroup.controllers").exists():
            return "this machine runs cgroup v2 only; servebench's limits use the v1 memory/cpu/cpuacct hierarchies"
        return f"cgroup v1 controllers not mounted under {ROOT}: {', '.join(missing)}"
    if os.geteuid() != 0:
        return "creating cgroups needs root (run as root, or use RUNTIME=docker with --memory/--cpus)"
    return None


def _write(path: Path, value) -> None:
    path.write_text(f"{value}\n")


class CGroup:
    """One group under ``servebench/<name>`` in each controller; a context manager that removes it."""

    def __init__(self, name: str, limits: Limits | None = None):
        why = unavailable()
        if why:
            raise RuntimeError(f"cannot apply resource limits: {why}")
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad cgroup name {name!r}")
        self.name = name
        self.limits = limits or Limits()
        self.paths = {c: ROOT / c / PARENT / name for c in CONTROLLERS}
        for c, path in self.paths.items():
            path.mkdir(parents=True, exist_ok=True)
        mem = self.paths["memory"]
        if self.limits.memory_mb is not None:
            limit = self.limits.memory_mb * 1024 * 1024
            _write(mem / "memory.limit_in_bytes", limit)
            memsw = mem / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # no swapping around the limit: over it is out of memory, as on Lambda
                try:
                    _write(memsw, limit)
                except OSError:
                    pass
        cpu = self.paths["cpu"]
        if self.limits.cpus is not None:
            _write(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
            _write(cpu / "cpu.cfs_quota_us", max(1000, int(round(self.limits.cpus * CFS_PERIOD_US))))

    # -------------------------------------------------------------- membership
    def add(self, pid: int) -> None:
        for path in self.paths.values():
            _write(path / "cgroup.procs", pid)

    def preexec(self) -> Callable[[], None]:
        """For ``subprocess.Popen(preexec_fn=...)``: the child joins before it execs, so all it does counts."""
        files = [str(path / "cgroup.procs") for path in self.paths.values()]

        def join() -> None:
            pid = str(os.getpid()).encode()
            for f in files:
                fd = os.open(f, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)

        return join

    def pids(self) -> list[int]:
        try:
            text = (self.paths["memory"] / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        return [int(line) for line in text.split()]

    # -------------------------------------------------------------- accounting
    def _read(self, controller: str, name: str) -> str:
        return (self.paths[controller] / name).read_text()

    def memory_bytes(self) -> int:
        return int(self._read("memory", "memory.usage_in_bytes"))

    def peak_memory_bytes(self) -> int:
        return int(self._read("memory", "memory.max_usage_in_bytes"))

    def reset_peak(self) -> None:
        _write(self.paths["memory"] / "memory.max_usage_in_bytes", 0)

    def cpu_seconds(self) -> float:
        return int(self._read("cpuacct", "cpuacct.usage")) / 1e9

    def oom_kills(self) -> int:
        for line in self._read("memory", "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def throttled_s(self) -> float:
        """Time the CPU quota held the group back."""
        for line in self._read("cpu", "cpu.stat").splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_time":
                return int(value) / 1e9
        return 0.0

    def recorded(self) -> dict:
        return {"cgroup": f"{PARENT}/{self.name}", **self.limits.recorded()}

    # -------------------------------------------------------------- teardown
    def kill(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self, timeout_s: float = 10.0) -> None:
        """Kill what is left in the group and remove it (idempotent)."""
        deadline = time.monotonic() + timeout_s
        while self.pids() and time.monotonic() < deadline:
            self.kill()
            time.sleep(0.05)
        for path in self.paths.values():
            _rmdir(path, deadline)

    def __enter__(self) -> "CGroup":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _rmdir(path: Path, deadline: float) -> None:
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the last member is still exiting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def remove_stale(prefix: str = "") -> list[str]:
    """Remove the groups under ``servebench/`` whose names start with ``prefix`` (left by a dead run)."""
    if unavailable():
        return []
    names = set()
    for c in CONTROLLERS:
        parent = ROOT / c / PARENT
        if parent.is_dir():
            names |= {p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix)}
    for name in sorted(names):
        CGroup(name).remove()
    return sorted(names)
