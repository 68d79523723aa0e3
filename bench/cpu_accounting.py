"""Where a level's CPU goes: every service's CPU time read at window edges, per image and per role, and the
model's own CPU per image at the batch sizes that ran (from the in-process curve).

A process born between two readings brings all its CPU time with it; one that
ended in between loses its last slice (as :class:`bench.resources.Sampler`
counts). The load generator (``client``) is reported apart, never in the
server's total.
"""
from __future__ import annotations

import numpy as np
import psutil

from bench import reference, results

CLIENT = "client"
SERVER_ROLES = ("nginx", "frontend", "backend")

Snapshot = dict[str, dict[tuple[int, float], float]]  # service -> (pid, create time) -> CPU seconds so far


def role(service: str) -> str:
    """nginx, frontend, client, or backend (whichever model server runs: flask, fastapi, triton, ...)."""
    return service if service in ("nginx", "frontend", CLIENT) else "backend"


def cpu_snapshot(trees: dict[str, list[psutil.Process]]) -> Snapshot:
    """CPU seconds (user + system) so far of every process of every service."""
    snap: Snapshot = {}
    for name, procs in trees.items():
        seen = snap.setdefault(name, {})
        for proc in procs:
            try:
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    seen[(proc.pid, proc.create_time())] = cpu.user + cpu.system
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
    return snap


def cpu_between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds each service used between two snapshots."""
    used = {}
    for name, procs in after.items():
        earlier = before.get(name, {})
        used[name] = sum(max(cpu - earlier.get(key, 0.0), 0.0) for key, cpu in procs.items())
    return used


def cpu_budget(cpu_s: dict[str, float], images: float, seconds: float) -> dict:
    """CPU per image per service (ms), the server side's total (every service but the client), the
    client's apart, and the cores each service kept busy."""
    if not images:
        return {"cpu_ms_per_image": {}, "cores_busy": {}, "server_cpu_ms_per_image": None,
                "client_cpu_ms_per_image": None}
    per = {name: results.rounded(s / images * 1000.0, 4) for name, s in cpu_s.items()}
    server = sum(s for name, s in cpu_s.items() if role(name) != CLIENT)
    return {
        "cpu_ms_per_image": per,
        "cores_busy": {name: results.rounded(s / seconds, 3) for name, s in cpu_s.items()} if seconds > 0 else {},
        "server_cpu_ms_per_image": results.rounded(server / images * 1000.0, 4),
        "client_cpu_ms_per_image": per.get(CLIENT),
    }


def by_role(cpu_ms_per_image: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, ms in cpu_ms_per_image.items():
        if ms is not None:
            out[role(name)] = out.get(role(name), 0.0) + ms
    return out


def model_cpu(sizes: list[int | None], points: list[dict] | None, batching_off: bool) -> float | None:
    """The model's own CPU ms per image at the batch sizes that ran, averaged over the requests
    (with batching off an answer that does not say ran alone)."""
    if not points:
        return None
    known = [1 if s is None else s for s in sizes] if batching_off else [s for s in sizes if s is not None]
    if not known:
        return None
    costs = {b: reference.cpu_ms_per_image_at(points, b) for b in set(known)}
    return results.rounded(float(np.mean([costs[b] for b in known])), 4)
