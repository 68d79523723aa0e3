"""The parts of a Ray cluster the harness reports CPU and memory for (the rayserve service's ``parts`` hook).

Ray's processes name themselves: native ``gcs_server`` and ``raylet``, and workers whose title is
``ray::<actor class>`` (Serve's replicas, its HTTP proxy, its controller). Everything else Ray runs
beside them (agents, monitors, the client server, idle workers) is one part, and so is ours (the
supervisor, its watchdog, the ``ray start --block`` parents).
"""
from __future__ import annotations

import psutil

GCS, RAYLETS, PROXY, REPLICAS, CONTROLLER, AGENTS, SUPERVISOR = (
    "gcs", "raylets", "proxy", "replicas", "controller", "agents", "supervisor")
PARTS = (GCS, RAYLETS, PROXY, REPLICAS, CONTROLLER, AGENTS, SUPERVISOR)
_TITLES = (("ray::ServeReplica", REPLICAS), ("ray::ProxyActor", PROXY), ("ray::ServeController", CONTROLLER))


def part_of(proc: psutil.Process) -> str:
    name = proc.name()
    if name == "gcs_server":
        return GCS
    if name == "raylet":
        return RAYLETS
    argv = proc.cmdline()
    title = argv[0] if argv else name
    for prefix, part in _TITLES:
        if title.startswith(prefix):
            return part
    joined = " ".join(argv[:4])
    if "services.rayserve.cluster" in joined or (len(argv) > 2 and argv[1].endswith("/ray") and argv[2] == "start"):
        return SUPERVISOR
    return AGENTS
