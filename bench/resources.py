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
                 origin: float | None = None, pss_hz: float = DEFAULT_PSS_HZ):
        self.sources = sources
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
            seen: dict[tuple[int, float], float] = {}
            rss = pss = delta = 0.0
            for proc in procs:
                read = _read(proc, with_pss)
                if read is None:
                    continue
                key, cpu, p_rss, p_pss = read
                seen[key] = cpu
                rss += p_rss
                pss += p_pss or 0.0
                # A process born since the last sample brings all its CPU time with it.
                delta += cpu - svc.cpu_by_proc.get(key, 0.0)
            baseline = svc.last_t is None
            percent = None
            if not baseline:
                svc.cpu_seconds += max(delta, 0.0)
                percent = 100.0 * max(delta, 0.0) / max(now - svc.last_t, 1e-6)
                svc.cpu_percent.append(percent)
            svc.cpu_by_proc, svc.last_t = seen, now
            svc.n_procs_max = max(svc.n_procs_max, len(seen))
            svc.rss_mb.append(rss / MB)
            if with_pss:
                svc.pss_mb.append(pss / MB)
            if self.log is not None:
                self.log.row([f"{now - self.origin:.3f}", name, "" if percent is None else f"{percent:.1f}",
                              f"{svc.cpu_seconds:.3f}", f"{rss / MB:.1f}", f"{pss / MB:.1f}" if with_pss else "",
                              len(seen)])
        self.samples += 1

    def summary(self, images: int) -> dict:
        """Per service: mean CPU %, CPU-seconds per image, mean and max RSS, mean PSS."""
        out = {}
        for name, svc in self.services.items():
            out[name] = {
                "cpu_percent_mean": results.rounded(sum(svc.cpu_percent) / len(svc.cpu_percent), 1) if svc.cpu_percent else None,
                "cpu_seconds": results.rounded(svc.cpu_seconds, 3),
                "cpu_seconds_per_image": results.rounded(svc.cpu_seconds / images, 6) if images else None,
                "rss_mb_mean": results.rounded(sum(svc.rss_mb) / len(svc.rss_mb), 1) if svc.rss_mb else None,
                "rss_mb_max": results.rounded(max(svc.rss_mb), 1) if svc.rss_mb else None,
                "pss_mb_mean": results.rounded(sum(svc.pss_mb) / len(svc.pss_mb), 1) if svc.pss_mb else None,
                "n_procs_max": svc.n_procs_max,
            }
        return out
