"""CPU and memory of every service (and of the client) while a run goes on.

A thread samples, several times a second, each service's process tree as the
stack reports it (re-read every time: workers come and go) plus the client's
own process, and writes one row per service per sample to ``resources.csv``:

- ``t``: seconds since the run's origin (the same clock as ``requests.csv``);
- ``cpu_percent``: CPU (user + system) used since the previous sample, in
  percent of one core (empty on the first sample, which is the baseline);
- ``cpu_seconds``: CPU used since the sampler started, summed over the tree;
- ``rss_mb``, ``pss_mb``: resident and proportional set size summed over the
  tree (PSS shares pages between the processes that map them, so it does not
  count shared libraries and forked copies twice; RSS when PSS is not readable).
  PSS is read once a second, not at every sample, and left empty in between:
  the kernel walks a process's whole page table to compute it, about 17 ms of
  CPU for one TensorFlow worker, which at 5 Hz would load the machine being
  measured;
- ``n_procs``: processes in the tree.

A service may be split into parts (``parts``: service -> a function naming a
process's part, e.g. a Ray cluster's GCS, raylets, proxy and replicas): each
part gets the same figures in the summary, under the service's ``parts``; the
service's own figures stay its whole tree's.

The sampler's own CPU time is kept apart (:attr:`Sampler.cpu_seconds`): it
runs in the client's process and is part of the client's figures.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import psutil

from bench import results

COLUMNS = ["t", "service", "cpu_percent", "cpu_seconds", "rss_mb", "pss_mb", "n_procs"]
DEFAULT_HZ = 5.0
DEFAULT_PSS_HZ = 1.0
MB = 1024 * 1024

Sources = Callable[[], dict[str, list[psutil.Process]]]
PartOf = Callable[[psutil.Process], str]  # a process -> the name of its part of a service


def client_process() -> list[psutil.Process]:
    """This process alone: its children may be the stack itself (tests start it from here)."""
    return [psutil.Process()]


class _Service:
    """What is known of one service between samples."""

    def __init__(self):
        self.cpu_by_proc: dict[tuple[int, float], float] = {}
        self.cpu_seconds = 0.0
        self.last_t: float | None = None
        self.cpu_percent: list[float] = []
        self.rss_mb: list[float] = []
        self.pss_mb: list[float] = []
        self.n_procs_max = 0
        self.parts: dict[str, "_Service"] = {}

    def account(self, reads: list[tuple], now: float, with_pss: bool) -> tuple[float | None, float, float, int]:
        """One sample of this tree (``_read``'s tuples): its CPU % since the last (None on the first), RSS, PSS."""
        seen: dict[tuple[int, float], float] = {}
        rss = pss = delta = 0.0
        for key, cpu, p_rss, p_pss in reads:
            seen[key] = cpu
            rss += p_rss
            pss += p_pss or 0.0
            # A process born since the last sample brings all its CPU time with it.
            delta += cpu - self.cpu_by_proc.get(key, 0.0)
        percent = None
        if self.last_t is not None:
            self.cpu_seconds += max(delta, 0.0)
            percent = 100.0 * max(delta, 0.0) / max(now - self.last_t, 1e-6)
            self.cpu_percent.append(percent)
        self.cpu_by_proc, self.last_t = seen, now
        self.n_procs_max = max(self.n_procs_max, len(seen))
        self.rss_mb.append(rss / MB)
        if with_pss:
            self.pss_mb.append(pss / MB)
        return percent, rss, pss, len(seen)

    def summary(self, images: int) -> dict:
        return {
            "cpu_percent_mean": results.rounded(sum(self.cpu_percent) / len(self.cpu_percent), 1) if self.cpu_percent else None,
            "cpu_seconds": results.rounded(self.cpu_seconds, 3),
            "cpu_seconds_per_image": results.rounded(self.cpu_seconds / images, 6) if images else None,
            "rss_mb_mean": results.rounded(sum(self.rss_mb) / len(self.rss_mb), 1) if self.rss_mb else None,
            "rss_mb_max": results.rounded(max(self.rss_mb), 1) if self.rss_mb else None,
            "pss_mb_mean": results.rounded(sum(self.pss_mb) / len(self.pss_mb), 1) if self.pss_mb else None,
            "n_procs_max": self.n_procs_max,
            **({"parts": {name: part.summary(images) for name, part in sorted(self.parts.items())}}
               if self.parts else {}),
        }


def _read(proc: psutil.Process, with_pss: bool) -> tuple[tuple[int, float], float, float, float | None] | None:
    try:
        with proc.oneshot():
            key = (proc.pid, proc.create_time())
            cpu = proc.cpu_times()
            rss = proc.memory_info().rss
            pss = None
            if with_pss:
                try:
                    pss = getattr(proc.memory_full_info(), "pss", rss)
                except psutil.AccessDenied:
                    pss = rss
        return key, cpu.user + cpu.system, rss, pss
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


class Sampler:
    """``with Sampler(sources, log, origin=t0):`` samples until the block ends (and once more then)."""

    def __init__(self, sources: Sources, log: results.CsvLog | None = None, hz: float = DEFAULT_HZ,
                 origin: float | None = None, pss_hz: float = DEFAULT_PSS_HZ, parts: dict[str, PartOf] | None = None):
        self.sources = sources
        self.parts = parts or {}
        self._part_of: dict[tuple[int, float], str] = {}  # a process keeps its part (its command line is read once)
        self.log = log
        self.interval_s = 1.0 / hz
        self.pss_interval_s = 1.0 / pss_hz
        self._last_pss: float | None = None
        self.origin = time.perf_counter() if origin is None else origin
        self.services: dict[str, _Service] = {}
        self.samples = 0
        self.cpu_seconds = 0.0  # the sampler thread's own CPU time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        start_cpu = time.thread_time()
        try:
            while True:
                stopping = self._stop.is_set()
                self.sample()
                if stopping:
                    return
                self._stop.wait(self.interval_s)
        finally:
            self.cpu_seconds = time.thread_time() - start_cpu

    def sample(self) -> None:
        try:
            trees = self.sources()
        except Exception:  # the stack went away between samples: record nothing this time
            return
        now = time.perf_counter()
        with_pss = self._last_pss is None or now - self._last_pss >= self.pss_interval_s * 0.95
        if with_pss:
            self._last_pss = now
        for name, procs in trees.items():
            svc = self.services.setdefault(name, _Service())
            reads = [r for r in (_read(proc, with_pss) for proc in procs) if r is not None]
            previous_t = svc.last_t
            percent, rss, pss, n = svc.account(reads, now, with_pss)
            if name in self.parts:
                self._account_parts(svc, self.parts[name], procs, reads, previous_t, now, with_pss)
            if self.log is not None:
                self.log.row([f"{now - self.origin:.3f}", name, "" if percent is None else f"{percent:.1f}",
                              f"{svc.cpu_seconds:.3f}", f"{rss / MB:.1f}", f"{pss / MB:.1f}" if with_pss else "", n])
        self.samples += 1

    def _account_parts(self, svc: _Service, part_of: PartOf, procs: list[psutil.Process], reads: list[tuple],
                       previous_t: float | None, now: float, with_pss: bool) -> None:
        by_key = {}
        for proc in procs:
            try:
                by_key[(proc.pid, proc.create_time())] = proc
            except psutil.Error:
                continue
        grouped: dict[str, list[tuple]] = {name: [] for name in svc.parts}
        for read in reads:
            key = read[0]
            if key not in self._part_of and key in by_key:
                try:
                    self._part_of[key] = part_of(by_key[key])
                except psutil.Error:
                    continue
            if key in self._part_of:
                grouped.setdefault(self._part_of[key], []).append(read)
        for name, part_reads in grouped.items():
            if name not in svc.parts:
                # A part first seen after the baseline counts all its CPU, as a new process does.
                svc.parts[name] = _Service()
                svc.parts[name].last_t = previous_t
            svc.parts[name].account(part_reads, now, with_pss)

    def summary(self, images: int) -> dict:
        """Per service: mean CPU %, CPU-seconds per image, mean and max RSS, mean PSS (and the same per part)."""
        return {name: svc.summary(images) for name, svc in self.services.items()}
