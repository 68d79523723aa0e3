"""The Ray cluster of ARCH=rayserve: one supervisor owns its network namespace, its nodes and its deployment.

    python -m services.rayserve.cluster --dir RUN_DIR/ray --host 127.0.0.1 --port 8060

Ray does not stay on loopback by itself (its GCS, raylets and agents listen on every
interface, and Serve's replicas on ``[::]``), so the whole cluster runs in a network
namespace of its own whose only interfaces are its loopback and a link-local veth to the
host (:class:`servebench.netns.ShapedLink`, unshaped). There, ``ray start --head`` on the
veth's address, ``SB_RAY_NODES - 1`` workers joining it (each node its ``num_cpus``, its
own ``sb_node_<i>`` resource and its share of replica slots, so placement is explicit),
then the deployment (:mod:`services.rayserve.driver`). The front end reaches Serve's
HTTP proxy over the veth, at the address ``GET /cluster`` gives.

On the host's loopback the supervisor answers ``GET /ready`` (200 once every node and
replica runs and Serve answers), ``GET /cluster`` and ``GET /status`` (nodes and
replicas with their state). On SIGTERM or SIGINT it stops every process in the namespace
by PID (``ip netns pids``; SIGKILL after :data:`STOP_GRACE_S`: the GCS ignores SIGTERM
for about 3 s, and ``ray start --block`` drains for up to 30 s), then removes the
namespace and the Ray temp folder. Never ``ray stop``: it kills by name, machine-wide.
Every Ray process stays in the supervisor's process group (Ray's own per-worker groups are
turned off), so a signal to the service reaches the whole cluster; and a watchdog (``--watch``,
its child) does the same teardown should the supervisor itself be killed outright.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from servebench import health, netns
from servebench.settings import REPO_ROOT, Settings, from_environment
from servebench.supervision import die_with_parent

REPLICA_SLOT = "sb_replica_slot"  # each node's custom resource: how many replicas it may hold
STOP_GRACE_S = 4.0
# Ray's Unix sockets live in <dir>/session_<date>_<pid>/sockets/plasma_store: 107 bytes at most (sun_path).
MAX_DIR_CHARS = 107 - len("/session_2026-12-02_15-54-25_229035_1234567/sockets/plasma_store")
# Each node's ports, after the GCS's (SB_RAY_PORT) and the Ray client server's (+1): +10 + 40 x node.
NODE_PORTS = ("node-manager", "object-manager", "metrics-export", "dashboard-agent-listen", "dashboard-agent-grpc",
              "runtime-env-agent")
WORKER_PORTS = (10, 39)  # the node's range for its worker processes


class ClusterError(RuntimeError):
    """The cluster cannot start; the message says why."""


def ray_dir(run_dir: Path) -> Path:
    """The Ray temp folder (RAY_TMPDIR) of the stack in ``run_dir``: ``<run_dir>/ray``, or where that is too long
    for Ray's socket paths (a test's run dir), ``<tmp>/sb-ray-<hash of run_dir>``; removed on stop either way."""
    inside = Path(run_dir).resolve() / "ray"
    if len(str(inside)) <= MAX_DIR_CHARS:
        return inside
    return Path(tempfile.gettempdir()) / f"sb-ray-{hashlib.sha1(str(inside).encode()).hexdigest()[:8]}"


def link_name(ray_dir: Path) -> str:
    """The link (and namespace, ``sb-<name>-c``) of the cluster in ``ray_dir``: one per run dir."""
    return "ray" + hashlib.sha1(str(Path(ray_dir).resolve()).encode()).hexdigest()[:6]


def node_ports(settings: Settings, node: int) -> dict[str, int]:
    base = settings.ray_port + 10 + 40 * node
    return {**{name: base + i for i, name in enumerate(NODE_PORTS)},
            "min-worker": base + WORKER_PORTS[0], "max-worker": base + WORKER_PORTS[1]}


def node_resources(settings: Settings, node: int) -> dict[str, float]:
    """A worker's share of the replica slots (evenly: every node holds some when R >= N); the head has room for
    every replica, so those of a lost worker are rescheduled there. Serve spreads replicas over the nodes
    (its SPREAD strategy), so the head's spare slots stay free while the workers live."""
    slots = settings.ray_replicas if node == 0 else math.ceil(settings.ray_replicas / settings.ray_nodes)
    return {f"sb_node_{node}": 1, REPLICA_SLOT: slots}


def ns_pids(ns: str) -> set[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30).stdout
    return {int(p) for p in out.split()}


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Cluster:
    def __init__(self, settings: Settings, ray_dir: Path, log=print):
        self.settings, self.dir, self.log = settings, Path(ray_dir).resolve(), log
        self.name = link_name(self.dir)
        self.link: netns.ShapedLink | None = None
        self.nodes: list[subprocess.Popen] = []
        self.watchdog: subprocess.Popen | None = None
        self.ready = False

    @property
    def ns(self) -> str:
        return f"{netns.PREFIX}{self.name}-c"

    @property
    def host(self) -> str:
        return self.link.client_addr if self.link else ""

    # -------------------------------------------------------------- start
    def start(self, timeout_s: float) -> dict:
        if len(str(self.dir)) > MAX_DIR_CHARS:
            raise ClusterError(f"the Ray temp folder {self.dir} is longer than {MAX_DIR_CHARS} characters: Ray's "
                               f"socket paths would not fit; choose a shorter --dir")
        self._remove_stale()
        self.dir.mkdir(parents=True)
        self._watch()
        self.link = netns.ShapedLink(self.name, rate_mbit=None)
        deadline = time.monotonic() + timeout_s
        self._node(0)
        while not health.accepts(self.host, self.settings.ray_port):
            self._check_nodes()
            if time.monotonic() > deadline:
                raise ClusterError(f"Ray's head did not open its GCS port within {timeout_s:.0f} s")
            time.sleep(0.5)
        for node in range(1, self.settings.ray_nodes):
            self._node(node)
        driver = self._driver("deploy", "--serve-host", self.host, "--timeout-s",
                              f"{max(deadline - time.monotonic(), 1):.0f}")
        doc = self._run_driver(driver, timeout_s=max(deadline - time.monotonic(), 1) + 30)
        self.ready = True
        return doc

    def _remove_stale(self) -> None:
        """A killed supervisor's namespace (its processes first) and temp folder, in this run dir."""
        if self.ns in netns.namespaces():
            self._stop_namespace()
            netns.remove_stale(self.name)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _env(self) -> dict[str, str]:
        # Workers in the raylet's process group, which is ours: a SIGSTOP or SIGKILL of the service's group
        # reaches Serve's proxy and replicas too.
        return {**os.environ, "RAY_TMPDIR": str(self.dir), "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_process_group_cleanup_enabled": "0", "PYTHONPATH": str(REPO_ROOT)}

    def _watch(self) -> None:
        """The watchdog: it holds our pipe and tears the cluster down when the pipe closes without a word."""
        argv = [sys.executable, "-m", "services.rayserve.cluster", "--watch", "--dir", str(self.dir), "--port", "0"]
        self.watchdog = subprocess.Popen(argv, stdin=subprocess.PIPE, env=self._env(), cwd=REPO_ROOT)

    def _node(self, node: int) -> None:
        s, ports = self.settings, node_ports(self.settings, node)
        ray = str(Path(sys.executable).parent / "ray")
        argv = [ray, "start", "--block", "--node-ip-address", self.host, "--num-cpus", str(s.ray_cpus_per_node),
                "--resources", json.dumps(node_resources(s, node)),
                "--object-store-memory", str(s.ray_object_store_mb * 10 ** 6), "--disable-usage-stats",
                *[x for name in NODE_PORTS for x in (f"--{name}-port", str(ports[name]))],
                "--min-worker-port", str(ports["min-worker"]), "--max-worker-port", str(ports["max-worker"])]
        if node == 0:
            argv += ["--head", "--port", str(s.ray_port), "--ray-client-server-port", str(s.ray_port + 1),
                     "--include-dashboard", "false", "--temp-dir", str(self.dir)]
        else:
            argv += ["--address", f"{self.host}:{s.ray_port}"]
        log = (self.dir / f"node-{node}.log").open("ab")
        with log:
            # In our process group (a stop of the service reaches them) and killed with us.
            self.nodes.append(subprocess.Popen(["ip", "netns", "exec", self.ns, *argv], env=self._env(),
                                               stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=REPO_ROOT,
                                               preexec_fn=lambda: die_with_parent(signal.SIGKILL)))
        self.log(f"ray node {node} started (pid {self.nodes[-1].pid}) in {self.ns} on {self.host}")

    def _check_nodes(self) -> None:
        for i, proc in enumerate(self.nodes):
            if proc.poll() is not None:
                # Its log goes with the temp folder: its end goes into the supervisor's own log.
                tail = (self.dir / f"node-{i}.log").read_text(errors="replace").splitlines()[-15:]
                raise ClusterError(f"Ray node {i} exited with code {proc.returncode}; its last lines:\n" + "\n".join(tail))

    def _driver(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, sys.executable, "-m", "services.rayserve.driver", *args,
                "--address", f"{self.host}:{self.settings.ray_port}"]

    def _run_driver(self, argv: list[str], timeout_s: float) -> dict:
        proc = subprocess.run(argv, env=self._env(), capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT)
        if proc.returncode != 0:
            raise ClusterError(f"{argv[6]} {argv[7]} failed: {proc.stderr.strip()[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    # -------------------------------------------------------------- serve
    def healthy(self) -> bool:
        """The head runs and Serve answers: a lost worker node leaves the cluster degraded (its replicas are
        rescheduled on the head; `make status` shows it DEAD), not down."""
        return (self.ready and self.nodes[0].poll() is None
                and health.probe(f"http://{self.host}:{self.settings.ray_serve_port}/-/healthz"))

    def where(self) -> dict:
        return {"host": self.host, "port": self.settings.ray_serve_port, "namespace": self.ns,
                "nodes": self.settings.ray_nodes, "replicas": self.settings.ray_replicas,
                "node_pids": [p.pid for p in self.nodes], "ray_dir": str(self.dir)}

    def status(self) -> dict:
        return {**self.where(), **self._run_driver(self._driver("status"), timeout_s=120)}

    # -------------------------------------------------------------- stop
    def _stop_namespace(self) -> None:
        """Every process in the namespace by PID: SIGTERM, then SIGKILL after the grace."""
        pids = ns_pids(self.ns) | {p.pid for p in self.nodes if p.poll() is None}
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            for p in self.nodes:
                p.poll()  # reap ours
            pids = {pid for pid in pids if _alive(pid)} | ns_pids(self.ns)
        for _ in range(3):  # a process may start while the first ones are killed (a worker being spawned)
            if not pids:
                break
            _signal_all(pids, signal.SIGKILL)
            time.sleep(0.5)
            for p in self.nodes:
                p.poll()
            pids = {pid for pid in pids if _alive(pid)} | ns_pids(self.ns)

    def stop(self) -> None:
        self.ready = False
        if self.link is not None or self.ns in netns.namespaces():
            self._stop_namespace()
        for p in self.nodes:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if self.link is not None:
            self.link.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.watchdog is not None:  # a clean stop: it is told so, and has nothing left to do
            try:
                self.watchdog.communicate(b"stopped\n", timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                self.watchdog.kill()


def watch(ray_dir: Path) -> None:
    """Wait for the supervisor's pipe to close; unless it said it stopped cleanly, kill what runs in the
    cluster's namespace, and remove the namespace and the temp folder."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stop of the service's group is the supervisor's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.stdin.buffer.read().strip() == b"stopped":
        return
    name = link_name(ray_dir)
    ns = f"{netns.PREFIX}{name}-c"
    for _ in range(5):
        pids = ns_pids(ns) if ns in netns.namespaces() else set()
        if not pids:
            break
        _signal_all(pids, signal.SIGKILL)
        time.sleep(0.3)
    netns.remove_stale(name)
    shutil.rmtree(ray_dir, ignore_errors=True)


def status_lines(record: dict, settings: Settings) -> list[str]:
    """``make status``'s lines for the cluster: its nodes and replicas with their state (asked of the supervisor
    in ``record``, the service's entry in the stack's state)."""
    url = f"http://127.0.0.1:{record['port']}/status"
    try:
        with urllib.request.urlopen(url, timeout=150) as resp:
            doc = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        return [f"cluster state unavailable ({url}): {exc}"]
    lines = [f"namespace {doc['namespace']}, Serve on {doc['host']}:{doc['port']}, "
             f"Serve app {doc['serve']['status']}"]
    for n in doc["nodes"]:
        lines.append(f"node    {n['name'] or n['node_id'][:12]:<10} {'ALIVE' if n['alive'] else 'DEAD':<8} "
                     f"{'head' if n['head'] else 'worker':<6} {n['address']}  {n['resources']}")
    for r in doc["replicas"]:
        lines.append(f"replica {r['replica']:<28} {r['state']:<8} on {r['node'] or r['node_id'][:12]} (pid {r['pid']})")
    return lines


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class _Handler(BaseHTTPRequestHandler):
    cluster: Cluster

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        c = self.cluster
        if self.path == "/ready":
            ok = c.healthy()
            self._json(200 if ok else 503, {"ready": ok})
        elif self.path in ("/cluster", "/status") and not c.ready:
            self._json(503, {"error": "the Ray cluster is not ready"})
        elif self.path == "/cluster":
            self._json(200, c.where())
        elif self.path == "/status":
            try:
                self._json(200, c.status())
            except (ClusterError, subprocess.SubprocessError, ValueError) as exc:
                self._json(502, {"error": f"the cluster's state could not be read: {exc}"})
        else:
            self._json(404, {"error": f"no such path {self.path}: GET /ready, /cluster or /status"})

    def _json(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _Stop(Exception):
    pass


def _raise_stop(signum, frame) -> None:
    raise _Stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True, help="the Ray temp folder (RAY_TMPDIR), removed on stop")
    p.add_argument("--host", default="127.0.0.1", help="where the supervisor answers (the host's loopback)")
    p.add_argument("--port", type=int, required=True, help="the supervisor's port")
    p.add_argument("--timeout-s", type=float, default=600.0, help="for every node and replica to be ready")
    p.add_argument("--watch", action="store_true", help="be the watchdog of the cluster in --dir (internal)")
    a = p.parse_args(argv)
    if a.watch:
        watch(Path(a.dir))
        return 0
    settings = from_environment()
    cluster = Cluster(settings, Path(a.dir), log=lambda msg: print(msg, flush=True))
    server = ThreadingHTTPServer((a.host, a.port), type("Handler", (_Handler,), {"cluster": cluster}))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _raise_stop)
    # Answering while the cluster starts: 503 on /ready and /cluster, so a front end that lost the cluster learns
    # at once that it is not back yet (a socket that listens unserved would hold its question until a timeout).
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        doc = cluster.start(a.timeout_s)
        print(f"ready: {json.dumps(doc)}", flush=True)
        while True:
            time.sleep(1.0)
    except _Stop:
        pass
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # the teardown runs to its end
        server.shutdown()
        server.server_close()
        cluster.stop()
        print("stopped: namespace and Ray temp folder removed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
