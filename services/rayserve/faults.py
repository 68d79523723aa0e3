"""Faults in a running rayserve stack, measured while requests flow through nginx.

    python -m services.rayserve.faults replica|node [--clients 2] [--before-s 3] [--timeout-s 180] [--out FILE]

Against the stack in ``SB_RUN_DIR`` (``make up ARCH=rayserve``; ``node`` needs ``SB_RAY_NODES=2``):

- ``replica``: a Serve replica's actor is SIGKILLed (its PID from the GCS's actor table, as
  ``make status`` lists it; one on the head, whose successor lands there again); Serve starts another.
- ``node``: the worker node's raylet is SIGKILLed (its PID: the raylet in the cluster's namespace
  listening on the node manager port the GCS gives for that node); the node dies, and its
  replicas are rescheduled on the head (which has a slot for every replica).

Closed-loop clients send one CIFAR-10 test image each per request, before, during and after the
fault; every 200 is checked against the in-process core's class for that image. Measured:
the error window (first to last failed request), the recovery time (kill to the first good
answer after the last failure), the time until the replicas are back to the target count, all
ALIVE on live nodes with the killed one gone (polled through the supervisor's ``/status``,
which reads the GCS: its resolution is one poll, ``status_poll_s``), and the wrong answers.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import psutil

from servebench import codecs, stack
from servebench.settings import Settings
from services.rayserve.knobs import RAY

FAULTS = ("replica", "node")


class FaultError(RuntimeError):
    """The fault cannot be made on this stack; the message says why."""


# ------------------------------------------------------------------ the cluster, through its supervisor
def cluster_status(st) -> dict:
    """The supervisor's ``/status``: nodes, replicas (with PIDs), Serve's state; from the GCS."""
    url = f"http://127.0.0.1:{st.doc['services'][RAY]['port']}/status"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=150) as resp:
        return json.load(resp)


def replica_to_kill(doc: dict) -> dict:
    """A live replica, one on the head when there is one: the workers' slots are full, so Serve starts its
    successor on the head again and the placement over the nodes stays as it was (a worker's replica could
    come back on the head's spare slots: Serve's SPREAD is best-effort)."""
    heads = {n["name"] for n in doc["nodes"] if n["head"]}
    alive = [r for r in doc["replicas"] if r["state"] == "ALIVE" and r.get("pid")]
    if not alive:
        raise FaultError(f"no live replica to kill: {doc['replicas']}")
    return sorted(alive, key=lambda r: r["node"] not in heads)[0]


def worker_node(doc: dict) -> dict:
    workers = [n for n in doc["nodes"] if not n["head"] and n["alive"]]
    if not workers:
        raise FaultError("no live worker node: start the stack with SB_RAY_NODES=2 or more")
    return workers[0]


def raylet_pid(namespace: str, node: dict) -> int:
    """The raylet of ``node`` (from the GCS's node table): the process in the cluster's namespace named raylet
    whose command line gives that node's node manager port."""
    from services.rayserve.cluster import ns_pids

    port = node["address"].rpartition(":")[2]
    for pid in ns_pids(namespace):
        try:
            p = psutil.Process(pid)
            if p.name() == "raylet" and f"--node_manager_port={port}" in p.cmdline():
                return pid
        except psutil.Error:
            continue
    raise FaultError(f"no raylet with node manager port {port} in {namespace}")


def back_to_target(doc: dict, target: int, killed: tuple[str, ...] = (), dead_node: str = "") -> bool:
    """Every replica ALIVE on a live node, as many as the target, the killed ones gone, Serve RUNNING; and
    ``dead_node`` known dead to the GCS."""
    live = {n["name"] for n in doc["nodes"] if n["alive"]}
    alive = [r for r in doc["replicas"] if r["state"] == "ALIVE" and r["node"] in live]
    return (len(alive) == target and not set(killed) & {r["replica"] for r in alive}
            and doc["serve"]["status"] == "RUNNING" and dead_node not in live)


# ------------------------------------------------------------------ the load
class Clients:
    """Closed-loop clients on keep-alive connections; each answer is (monotonic time, status, correct or None)."""

    def __init__(self, port: int, images: np.ndarray, classes: np.ndarray, clients: int = 2,
                 limit_s: float = 600.0):
        self.port, self.images, self.classes = port, images, classes
        self.seen: list[tuple[float, int, bool | None]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._limit_s = limit_s
        self._threads = [threading.Thread(target=self._loop, args=(k, clients), daemon=True) for k in range(clients)]

    def __enter__(self) -> "Clients":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def _loop(self, k: int, step: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        deadline = time.monotonic() + self._limit_s  # bounded whatever happens
        i = k
        while not self._stop.is_set() and time.monotonic() < deadline:
            j = i % len(self.images)
            body, ctype = codecs.encode(self.images[j:j + 1], "raw")
            try:
                conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": ctype})
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                correct = (codecs.decode_predictions(data).classes[0] == self.classes[j]) if status == 200 else None
            except (OSError, http.client.HTTPException):
                conn.close()  # reconnects on the next request
                status, correct = 0, None
            with self._lock:
                self.seen.append((time.monotonic(), status, correct))
            i += step
            if status != 200:
                time.sleep(0.05)
        conn.close()

    def good_since(self, t: float, n: int) -> bool:
        """The last ``n`` answers after ``t`` all good."""
        with self._lock:
            tail = [s for when, s, _ in self.seen if when > t][-n:]
        return len(tail) == n and all(s == 200 for s in tail)


def window(seen: list[tuple[float, int, bool | None]], killed_at: float) -> dict:
    """The error window and recovery from the answers (times in s from the kill)."""
    after = sorted(x for x in seen if x[0] >= killed_at)
    failed = [when for when, s, _ in after if s != 200]
    out = {"requests": len(seen), "statuses": {str(k): v for k, v in sorted(Counter(s for _, s, _ in seen).items())},
           "failed": len(failed), "wrong_answers": sum(1 for _, s, c in seen if s == 200 and not c)}
    if not failed:
        out.update(error_window_s=0.0, first_failure_s=None, last_failure_s=None,
                   recovered_s=round(next((w for w, s, _ in after if s == 200), killed_at) - killed_at, 3))
        return out
    first, last = failed[0], failed[-1]
    good = next((w for w, s, _ in after if s == 200 and w > last), None)
    out.update(first_failure_s=round(first - killed_at, 3), last_failure_s=round(last - killed_at, 3),
               error_window_s=round(last - first, 3),
               recovered_s=None if good is None else round(good - killed_at, 3))
    return out


# ------------------------------------------------------------------ one fault
def run_fault(st, fault: str, images: np.ndarray, classes: np.ndarray, *, clients: int = 2, before_s: float = 3.0,
              settle_n: int = 10, timeout_s: float = 180.0, log=print) -> dict:
    """Load, the fault, recovery: the measured numbers (see the module's doc)."""
    if fault not in FAULTS:
        raise FaultError(f"fault is one of {FAULTS}, not {fault!r}")
    settings = st.knob_settings()
    target = settings.ray_replicas
    doc = cluster_status(st)
    if not back_to_target(doc, target):
        raise FaultError(f"the cluster is not at its target of {target} replicas before the fault: {doc['replicas']}")
    before = doc["replicas"]
    with Clients(st.doc["services"]["nginx"]["port"], images, classes, clients, limit_s=before_s + timeout_s + 60) \
            as load:
        deadline = time.monotonic() + 60
        while not load.good_since(0.0, 5):
            if time.monotonic() > deadline:
                raise FaultError("no good answers before the fault")
            time.sleep(0.1)
        time.sleep(before_s)
        dead_node = ""
        if fault == "replica":
            victim = replica_to_kill(doc)
            killed, pid = (victim["replica"],), victim["pid"]
            what = f"replica {victim['replica']} on {victim['node']}"
        else:
            node = worker_node(doc)
            pid, dead_node = raylet_pid(doc["namespace"], node), node["name"]
            killed = tuple(r["replica"] for r in doc["replicas"] if r["node"] == node["name"])
            if not killed:
                raise FaultError(f"no replica on {node['name']} to reschedule: {doc['replicas']}")
            what = f"raylet of {node['name']} (replicas {', '.join(killed)})"
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        log(f"killed {what}, pid {pid}")
        polls, target_at = [], None
        deadline = killed_at + timeout_s
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                doc = cluster_status(st)
            except (OSError, ValueError) as exc:  # the GCS may be busy noticing the loss: the next poll says
                log(f"status: {exc}")
                time.sleep(0.5)
                continue
            polls.append(time.monotonic() - started)
            if target_at is None and back_to_target(doc, target, killed, dead_node):
                target_at = time.monotonic()
            if target_at is not None and load.good_since(max(target_at, killed_at), settle_n):
                break
            time.sleep(0.5)
        seen = list(load.seen)
    out = {"fault": fault, "killed": what, "pid": pid, "clients": clients, "target_replicas": target,
           "nodes": settings.ray_nodes, "replicas_before": [{k: r[k] for k in ("replica", "node")} for r in before],
           **window(seen, killed_at),
           "replicas_back_s": None if target_at is None else round(target_at - killed_at, 3),
           "status_poll_s": round(float(np.median(polls)), 3) if polls else None,
           "replicas_after": [{k: r[k] for k in ("replica", "state", "node")} for r in doc["replicas"]],
           "nodes_after": [{k: n[k] for k in ("name", "alive", "head")} for n in doc["nodes"]]}
    return out


def reference(settings: Settings, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 test images and the in-process core's classes for them (what every answer must say)."""
    from servebench import data
    from servebench.inference import InferenceCore

    split = data.load_test(data.default_dir(), limit=n)
    return split.images, InferenceCore.from_settings(settings).predict(split.images).classes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fault", choices=FAULTS)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--before-s", type=float, default=3.0, help="load before the fault")
    p.add_argument("--timeout-s", type=float, default=180.0, help="for recovery, from the kill")
    p.add_argument("--out", type=Path, help="also write the numbers here (JSON)")
    a = p.parse_args(argv)
    st = stack.state()
    if st is None or st.arch != "rayserve":
        print("error: no rayserve stack in SB_RUN_DIR: start one with `make up ARCH=rayserve`", file=sys.stderr)
        return 2
    try:
        images, classes = reference(st.knob_settings())
        doc = run_fault(st, a.fault, images, classes, clients=a.clients, before_s=a.before_s, timeout_s=a.timeout_s,
                        log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except FaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(doc, indent=2)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    print(text)
    return 0 if doc["wrong_answers"] == 0 and doc["recovered_s"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
