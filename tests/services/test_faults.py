"""Faults while requests flow: what clients see, and that the stack recovers by itself.

For each HTTP architecture of the registry (its shared stack; one that cannot
run here skips): kill a worker of the service the front end forwards to, kill
that service's master, kill a Django worker, reload nginx. Clients may see 502/503/504 while
a part is gone, never another 5xx, never a wrong answer, and good answers
again afterwards without restarting the front end.

An architecture whose backend is a cluster of nodes and replicas (its package has a ``faults``
module: Ray Serve's) also gets its own faults, measured by that module on a two-node stack: a
replica killed, then a worker node lost; each recovers by itself with no wrong answer.
"""
from __future__ import annotations

import http.client
import importlib
import importlib.util
import os
import shutil
import tempfile
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest

from servebench import codecs, registry, stack
from tests.conformance import (START_TIMEOUT_S, expected, forwarded_to, http_architectures, params,
                               speaks_servebench)
from tests.stacks import port_of, stack_settings

pytestmark = pytest.mark.integration
GONE = {502, 503, 504}
RECOVERY_S = 60.0


@pytest.fixture
def arch_stack(http_stack):
    return http_stack


@pytest.fixture
def reference(arch_stack, core, test_split):
    images = test_split.images[:16]
    return images, expected(arch_stack.arch, images, core).classes


@dataclass
class Traffic:
    """Closed-loop clients on keep-alive connections, bounded in time; every answer is checked."""

    st: stack.StackState
    images: np.ndarray
    expected: np.ndarray
    clients: int = 2
    seen: list = field(default_factory=list)  # (monotonic time, status, correct or None)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(k,), daemon=True) for k in range(self.clients)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self, k: int) -> None:
        port = port_of(self.st, "nginx")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        deadline = time.monotonic() + 120  # bounded whatever happens
        i = k
        while not self._stop.is_set() and time.monotonic() < deadline:
            j = i % len(self.images)
            body, ctype = codecs.encode(self.images[j:j + 1], "raw")
            status, correct = self._send(conn, body, ctype, int(self.expected[j]))
            if status == -1:  # a kept-alive connection closed by a graceful nginx reload: reconnect
                conn.close()
                status, correct = self._send(conn, body, ctype, int(self.expected[j]))
            with self._lock:
                self.seen.append((time.monotonic(), status, correct))
            i += self.clients
            if status != 200:
                time.sleep(0.05)
        conn.close()

    @staticmethod
    def _send(conn, body, ctype, expected: int) -> tuple[int, bool | None]:
        try:
            conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            conn.close()
            return -1, None
        except (OSError, http.client.HTTPException):
            conn.close()
            return 0, None
        if resp.status != 200:
            return resp.status, None
        return 200, codecs.decode_predictions(data).classes[0] == expected

    def count_after(self, t: float) -> int:
        with self._lock:
            return sum(1 for when, _, _ in self.seen if when > t)

    def wait_for_good_answers(self, since: float, n: int = 10, timeout_s: float = RECOVERY_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                tail = [s for when, s, _ in self.seen if when > since][-n:]
            if len(tail) == n and all(s == 200 for s in tail):
                return
            time.sleep(0.1)
        raise AssertionError(f"no recovery within {timeout_s:.0f} s: {Counter(s for _, s, _ in self.seen)}")

    def check(self, allowed: set[int]) -> Counter:
        statuses = Counter(s for _, s, _ in self.seen)
        assert not [c for _, s, c in self.seen if s == 200 and not c], "a wrong answer"
        assert set(statuses) <= {200} | allowed, statuses
        return statuses


def _workers(st, name: str) -> list[psutil.Process]:
    return psutil.Process(st.doc["services"][name]["pid"]).children(recursive=False)


def _run_with_fault(arch_stack, reference, fault, allowed: set[int]) -> Counter:
    images, expected = reference
    with Traffic(arch_stack, images, expected) as traffic:
        traffic.wait_for_good_answers(since=0.0, n=5)
        t = time.monotonic()
        fault()
        traffic.wait_for_good_answers(since=t + 0.5)
    statuses = traffic.check(allowed)
    assert arch_stack.health()["frontend"][0] == "up"
    return statuses


def _backend(arch: str) -> str:
    name = forwarded_to(arch)
    if not name:
        pytest.skip(f"{arch} has no separate backend")
    return name


def test_backend_worker_killed(arch_stack, reference):
    name = _backend(arch_stack.arch)
    if cluster_faults(arch_stack.arch):
        pytest.skip(f"{name}'s children are a cluster's nodes: test_cluster_fault_recovers_with_no_wrong_answer "
                    "kills its replicas and nodes")
    if not _workers(arch_stack, name):
        pytest.skip(f"{name} runs as one process: no worker to kill")
    if not speaks_servebench(name):
        # Found by this test (Triton): the wrapper's child is the server itself, not a worker it replaces;
        # killed, the service stays "up" and answers 502 until restarted. Not waited for (60 s): known.
        pytest.xfail(f"{name}: a third-party server's child is not a worker its master replaces")
    frontend_pid = arch_stack.doc["services"]["frontend"]["pid"]

    def kill_one_worker():
        _workers(arch_stack, name)[0].kill()

    _run_with_fault(arch_stack, reference, kill_one_worker, GONE)
    assert arch_stack.doc["services"]["frontend"]["pid"] == frontend_pid


def test_backend_master_killed_then_restarted(arch_stack, reference, request):
    name = _backend(arch_stack.arch)
    if not speaks_servebench(name) and not cluster_faults(arch_stack.arch):  # a cluster behind our supervisor is ours
        # Found by this test (Triton): while the restarted server loads its model, the front end passes its
        # 404 (model unknown) on to clients instead of a 503.
        request.applymarker(pytest.mark.xfail(reason=f"{name}: a 404 while its model loads after a restart"))
    frontend_pid = arch_stack.doc["services"]["frontend"]["pid"]
    images, expected = reference
    with Traffic(arch_stack, images, expected) as traffic:
        traffic.wait_for_good_answers(since=0.0, n=5)
        os.kill(arch_stack.doc["services"][name]["pid"], signal.SIGKILL)
        # Its workers follow their master: nothing serves unsupervised.
        deadline = time.monotonic() + 15
        while arch_stack.processes()[name] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert arch_stack.health()[name][0] == "dead", arch_stack.health()[name]
        t = time.monotonic()
        while traffic.count_after(t) < 4:  # clients see the backend gone
            time.sleep(0.05)
        stack.restart_service(arch_stack, name)
        traffic.wait_for_good_answers(since=time.monotonic())
    statuses = traffic.check(GONE)
    assert statuses[502] + statuses[503] > 0, statuses
    # the front end was never restarted
    assert arch_stack.doc["services"]["frontend"]["pid"] == frontend_pid
    assert arch_stack.health()["frontend"][0] == "up"


def test_django_worker_killed(arch_stack, reference):
    def kill_one_worker():
        _workers(arch_stack, "frontend")[0].kill()

    # A worker killed after nginx had its response headers but not all of its body leaves nginx
    # nothing to answer with: it closes the client's connection (status 0 here), never a wrong answer.
    _run_with_fault(arch_stack, reference, kill_one_worker, GONE | {0})


def test_nginx_reload_loses_nothing(arch_stack, reference):
    def reload():
        os.kill(arch_stack.doc["services"]["nginx"]["pid"], signal.SIGHUP)

    statuses = _run_with_fault(arch_stack, reference, reload, set())
    assert set(statuses) == {200}


# ---------------------------------------------------------------- a cluster's own faults, measured
def cluster_faults(arch: str):
    """The ``faults`` module beside the status hook of the service the front end forwards to, or None."""
    name = forwarded_to(arch)
    hook = registry.service(name).status if name else ""
    package = hook.split(":")[0].rpartition(".")[0]
    if not package or importlib.util.find_spec(f"{package}.faults") is None:
        return None
    return importlib.import_module(f"{package}.faults")


CLUSTERS = [a for a in http_architectures() if cluster_faults(a.name)]


@pytest.fixture(scope="module", params=params(CLUSTERS, once=True))  # these faults need a cluster of two nodes
def cluster_stack(request):
    """Two nodes, two replicas (one on each), so that both faults can be made; started once for the module."""
    run = Path(tempfile.mkdtemp(prefix="sbfault-"))
    st = stack.up(request.param, stack_settings(ray_nodes=2, ray_replicas=2), run, log=lambda *_: None,
                  timeout_s=START_TIMEOUT_S)
    yield st
    stack.down(run, log=lambda *_: None)
    shutil.rmtree(run, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["replica", "node"])  # in this order: the node fault leaves one node
def test_cluster_fault_recovers_with_no_wrong_answer(cluster_stack, core, test_split, fault):
    faults = cluster_faults(cluster_stack.arch)
    images = test_split.images[:16]
    doc = faults.run_fault(cluster_stack, fault, images, core.predict(images).classes, clients=2, before_s=1.0,
                           timeout_s=150.0, log=lambda *_: None)
    print(fault, doc)
    assert doc["wrong_answers"] == 0, doc
    assert doc["recovered_s"] is not None and doc["replicas_back_s"] is not None, doc
    placed = {r["node"] for r in doc["replicas_after"] if r["state"] == "ALIVE"}
    if fault == "replica":  # its successor where it was: the replicas still on both nodes
        assert placed == {r["node"] for r in doc["replicas_before"]} == {"sb_node_0", "sb_node_1"}, doc
    else:  # the worker's replicas rescheduled on the head, which alone is left
        assert {n["name"] for n in doc["nodes_after"] if n["alive"]} == {"sb_node_0"}, doc
        assert placed == {"sb_node_0"} and len(doc["replicas_after"]) == doc["target_replicas"], doc
    assert cluster_stack.health()["frontend"][0] == "up"
