"""ARCH=rayserve: a two-node Ray cluster in its own network namespace, behind nginx and Django.

One cluster (SB_RAY_NODES=2, SB_RAY_REPLICAS=2, batching on) is started for the module (Ray takes
tens of seconds on a busy 2-core machine): the three protocols answer as the in-process core does,
concurrent requests share model calls (``@serve.batch``) and get their own rows, a bad request
gets the shared 4xx, the replicas sit on both nodes (the GCS's tables), no Ray port
listens outside loopback or link-local (``ss``, on the host and in the namespace), ``make status``
lists nodes and replicas, and ``down`` leaves no process, namespace or temp folder. The shared
conformance tests (tests/conformance.py) run on rayserve too, on the run's shared stack (its record's
``slow_start`` keeps it out of those that start a stack per module or model); its cluster's own faults
(a replica, a worker node) are measured in tests/services/test_faults.py. The unit tests at the end start nothing.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest

from servebench import codecs, netns, registry, runtime, stack, tfserving
from servebench.settings import Settings
from services.rayserve import cluster as ray_cluster
from services.rayserve import exposure
from tests.stacks import port_of, stack_settings

ARCH = "rayserve"
MODEL = "cifar10_cnn"
QUIET = lambda *_: None  # noqa: E731
START_TIMEOUT_S = 600  # two Ray nodes, the Serve controller and two TensorFlow replicas on 2 busy cores


def _skip_unless_runnable():
    unmet = registry.get(ARCH).unmet("native")
    if unmet:
        pytest.skip(" ".join(unmet))


@pytest.fixture(scope="module")
def ray_stack():
    _skip_unless_runnable()
    run = Path(tempfile.mkdtemp(prefix="sbray-"))
    # Batching on (a wait long enough for concurrent requests to meet), so @serve.batch is checked too.
    st = stack.up(ARCH, stack_settings(ray_nodes=2, ray_replicas=2, batch_max_size=8, batch_timeout_ms=50), run,
                  log=QUIET, timeout_s=START_TIMEOUT_S)
    yield st
    stack.down(run, log=QUIET)
    shutil.rmtree(run, ignore_errors=True)


def call(st, method: str, path: str, body: bytes | None = None, headers: dict | None = None, port: int | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port or port_of(st, "nginx"), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def cluster_doc(st, what: str = "status") -> dict:
    url = f"http://127.0.0.1:{port_of(st, ARCH)}/{what}"
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=150) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(24).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)


@pytest.mark.integration
@pytest.mark.slow
def test_three_protocols_answer_as_the_in_process_core(ray_stack, images, core):
    want = core.predict(images)
    body, ctype = codecs.encode(images, "raw")
    status, headers, data = call(ray_stack, "POST", "/v1/predict", body, {"Content-Type": ctype})
    assert status == 200, data
    assert [p["class_id"] for p in json.loads(data)["predictions"]] == want.classes.tolist()
    # Every hop timed: the replica's model and its own time, the front end's forward over the veth, Django.
    names = {part.split(";")[0].strip() for part in headers["server-timing"].split(",")}
    assert {"decode", "model", "backend", "forward", "django"} <= names, headers["server-timing"]

    v2 = json.dumps({"inputs": [{"name": "images", "shape": list(images.shape), "datatype": "UINT8",
                                 "data": images.reshape(-1).tolist()}]}).encode()
    status, _, data = call(ray_stack, "POST", f"/v2/models/{MODEL}/infer", v2, {"Content-Type": codecs.JSON})
    assert status == 200, data
    outputs = {o["name"]: o for o in json.loads(data)["outputs"]}
    assert outputs["classes"]["data"] == want.classes.tolist()

    tfs = json.dumps({"instances": images.tolist()}).encode()
    status, _, data = call(ray_stack, "POST", f"/v1/models/{MODEL}:predict", tfs, {"Content-Type": codecs.JSON})
    assert status == 200, data
    pred = tfserving.parse_rest_response(data)
    np.testing.assert_array_equal(pred.classes, want.classes)
    np.testing.assert_allclose(pred.probabilities, want.probabilities, atol=2e-6)


@pytest.mark.integration
@pytest.mark.slow
def test_concurrent_requests_share_batches_and_get_their_own_rows(ray_stack, images, core):
    want = core.predict(images).classes

    def one(i):
        body, ctype = codecs.encode(images[i:i + 1], "raw")
        return call(ray_stack, "POST", "/v1/predict", body, {"Content-Type": ctype})

    with ThreadPoolExecutor(len(images)) as pool:
        answers = list(pool.map(one, list(range(len(images))) * 2))
    sizes = []
    for i, (status, headers, data) in enumerate(answers):
        assert status == 200, data
        assert json.loads(data)["predictions"][0]["class_id"] == want[i % len(images)]
        entries = dict(e.strip().split(";", 1) for e in headers["server-timing"].split(","))
        assert "queue" in entries
        sizes.append(int(entries["batch"].split("=")[1]))
    assert max(sizes) > 1, f"{len(answers)} concurrent requests never shared a model call: {sizes}"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("path,body,ctype,status,phrase", [
    ("/v1/predict", b'{"instances": [', codecs.JSON, 400, "malformed JSON"),
    ("/v1/predict", b"\x00" * 1000, codecs.OCTET, 400, "multiple of 3072"),
    (f"/v2/models/{MODEL}/infer", b'{"inputs": []}', codecs.JSON, 400, "inputs"),
    (f"/v1/models/{MODEL}:predict", b'{"foo": 1}', codecs.JSON, 400, "instances"),
    ("/v2/models/nope/infer", b"{}", codecs.JSON, 404, "not found"),
], ids=["v1-json", "v1-raw", "v2", "tfserving", "unknown-model"])
def test_bad_requests_get_the_shared_4xx(ray_stack, path, body, ctype, status, phrase):
    got, _, data = call(ray_stack, "POST", path, body, {"Content-Type": ctype})
    assert got == status, data
    assert phrase in json.loads(data)["error"], data


@pytest.mark.integration
@pytest.mark.slow
def test_replicas_land_on_both_nodes(ray_stack):
    doc = cluster_doc(ray_stack)
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert set(nodes) == {"sb_node_0", "sb_node_1"} and all(n["alive"] for n in nodes.values()), doc["nodes"]
    assert nodes["sb_node_0"]["head"] and not nodes["sb_node_1"]["head"]
    replicas = doc["replicas"]
    assert len(replicas) == 2 and {r["state"] for r in replicas} == {"ALIVE"}, replicas
    assert {r["node"] for r in replicas} == {"sb_node_0", "sb_node_1"}, replicas
    assert doc["serve"]["status"] == "RUNNING"


@pytest.mark.integration
@pytest.mark.slow
def test_no_ray_port_listens_outside_loopback_or_link_local(ray_stack):
    where = cluster_doc(ray_stack, "cluster")
    assert ray_cluster.ns_pids(where["namespace"]), "nothing runs in the cluster's namespace"
    doc = exposure.check(where["namespace"], ray_stack.pids()[ARCH])  # ss in the namespace and on the host
    assert doc["outside"] == [], doc
    assert where["host"] in doc["namespace_addresses"]
    # It saw the cluster: Ray's listeners inside, and at least the supervisor on the host's loopback.
    assert doc["namespace_listeners"] >= 3 and doc["host_listeners_of_cluster"] >= 1, doc


@pytest.mark.unit
def test_the_exposure_rule_flags_only_what_is_reachable_beyond_loopback_and_link_local():
    inside = [("[::]", 40001, set(), "replica grpc"), ("169.254.7.2", 8000, set(), "proxy"),
              ("127.0.0.1", 6379, set(), "gcs")]
    on_host = [("127.0.0.1", 8101, {1}, "supervisor")]
    assert exposure.outside(["127.0.0.1", "169.254.7.2"], inside, on_host) == []
    bad = exposure.outside(["127.0.0.1", "198.51.100.7"], inside + [("198.51.100.7", 6380, set(), "raylet")],
                           on_host + [("0.0.0.0", 10001, {2}, "client server"), ("*", 6400, {2}, "raylet"),
                                     ("[::1]", 1, {3}, "ok")])
    assert bad == ["namespace address 198.51.100.7", "namespace: raylet", "host: client server", "host: raylet"]


@pytest.mark.integration
@pytest.mark.slow
def test_status_lists_nodes_and_replicas(ray_stack, capsys, monkeypatch):
    monkeypatch.setenv("SB_RUN_DIR", str(ray_stack.run_dir))
    assert runtime.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "Serve app RUNNING" in out, out
    assert [line.split()[1] for line in out.splitlines() if line.split()[:1] == ["node"]] == ["sb_node_0", "sb_node_1"]
    replicas = [line for line in out.splitlines() if line.split()[:1] == ["replica"]]
    assert len(replicas) == 2 and all(" ALIVE " in line for line in replicas), out


@pytest.mark.integration
@pytest.mark.slow
def test_down_leaves_no_process_namespace_or_temp_folder(ray_stack):
    where = cluster_doc(ray_stack, "cluster")
    procs = [psutil.Process(pid) for pid in ray_cluster.ns_pids(where["namespace"])]
    procs += [p for group in ray_stack.processes().values() for p in group]
    assert Path(where["ray_dir"]).is_dir()
    stack.down(ray_stack.run_dir, log=QUIET)
    gone, alive = psutil.wait_procs(procs, timeout=10)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, alive
    assert where["namespace"] not in netns.namespaces()
    assert not Path(where["ray_dir"]).exists()
    assert not stack.leftovers(ray_stack.run_dir)


# ------------------------------------------------------------------ no cluster
@pytest.mark.unit
def test_each_node_has_ports_of_its_own_after_the_heads():
    s = Settings.from_env({"SB_RAY_PORT": "9600", "SB_RAY_NODES": "2"})
    ports = [set(range(p["min-worker"], p["max-worker"] + 1)) | {p[n] for n in ray_cluster.NODE_PORTS}
             for p in (ray_cluster.node_ports(s, 0), ray_cluster.node_ports(s, 1))]
    assert not ports[0] & ports[1]
    assert min(min(p) for p in ports) > s.ray_port + 1  # the GCS and the Ray client server come first
    assert max(max(p) for p in ports) < 9700


@pytest.mark.unit
@pytest.mark.parametrize("nodes,replicas,slots", [(1, 1, 1), (1, 3, 3), (2, 2, 1), (2, 3, 2), (2, 1, 1), (3, 4, 2)])
def test_replica_slots_spread_the_replicas_and_the_head_can_hold_them_all(nodes, replicas, slots):
    s = Settings.from_env({"SB_RAY_NODES": str(nodes), "SB_RAY_REPLICAS": str(replicas)})
    assert ray_cluster.node_resources(s, 0) == {"sb_node_0": 1, ray_cluster.REPLICA_SLOT: replicas}
    for node in range(1, nodes):
        assert ray_cluster.node_resources(s, node) == {f"sb_node_{node}": 1, ray_cluster.REPLICA_SLOT: slots}


@pytest.mark.unit
def test_the_ray_folder_fits_rays_socket_paths():
    short, long = Path("/tmp/run"), Path("/tmp") / ("x" * 60)
    assert ray_cluster.ray_dir(short) == short / "ray"
    assert len(str(ray_cluster.ray_dir(long))) <= ray_cluster.MAX_DIR_CHARS
    assert ray_cluster.ray_dir(long) != ray_cluster.ray_dir(long.with_name("y" * 60))
    c = ray_cluster.Cluster(Settings(), long / "ray", log=QUIET)
    with pytest.raises(ray_cluster.ClusterError, match="socket paths"):
        c.start(timeout_s=1)
    assert ray_cluster.link_name(Path("/a/ray")) == ray_cluster.link_name(Path("/a/ray"))
    assert ray_cluster.link_name(Path("/a/ray")) != ray_cluster.link_name(Path("/b/ray"))
    assert os.path.basename(ray_cluster.link_name(Path("/a/ray"))).startswith("ray")


@pytest.mark.unit
def test_docker_runtime_is_refused_saying_why():
    unmet = registry.get(ARCH).unmet("docker")
    assert len(unmet) == 1 and "RUNTIME=native" in unmet[0] and "Ray" in unmet[0], unmet


@pytest.mark.unit
def test_fault_measurement_from_the_answers():
    from services.rayserve import faults

    seen = [(9.0, 200, True), (10.1, 502, None), (10.2, 200, True), (10.4, 0, None), (10.5, 200, False),
            (10.9, 200, True)]
    doc = faults.window(seen, killed_at=10.0)
    assert doc["failed"] == 2 and doc["wrong_answers"] == 1
    assert doc["first_failure_s"] == 0.1 and doc["last_failure_s"] == 0.4 and doc["error_window_s"] == 0.3
    assert doc["recovered_s"] == 0.5
    assert faults.window([(9.0, 200, True), (10.3, 200, True)], 10.0)["recovered_s"] == 0.3
    nodes = [{"name": "sb_node_0", "alive": True, "head": True}, {"name": "sb_node_1", "alive": False, "head": False}]
    doc = {"nodes": nodes, "serve": {"status": "RUNNING"},
           "replicas": [{"replica": "a", "state": "ALIVE", "node": "sb_node_0", "pid": 1},
                        {"replica": "c", "state": "ALIVE", "node": "sb_node_0", "pid": 3}]}
    assert faults.back_to_target(doc, 2, killed=("b",), dead_node="sb_node_1")
    assert not faults.back_to_target(doc, 2, killed=("a",))
    nodes[1]["alive"] = True
    assert not faults.back_to_target(doc, 2, dead_node="sb_node_1")
    doc["replicas"].append({"replica": "b", "state": "ALIVE", "node": "sb_node_1", "pid": 2})
    assert faults.replica_to_kill(doc)["node"] == "sb_node_0"
    assert faults.worker_node(doc)["name"] == "sb_node_1"


@pytest.mark.unit
def test_slow_to_start_it_joins_the_shared_suites_and_skips_the_per_module_stacks_saying_why():
    from tests import conformance

    assert registry.get(ARCH).slow_start
    shared = {p.id: p for p in conformance.params(conformance.http_architectures(), once=True)}
    own = {p.id: p for p in conformance.params(conformance.http_architectures())}
    skips = lambda p: [m.kwargs["reason"] for m in p.marks]  # noqa: E731
    why = registry.get(ARCH).slow_start
    assert not any(why in r for r in skips(shared[ARCH])) and any(why in r for r in skips(own[ARCH])), skips(own[ARCH])
    fast = [a.name for a in conformance.http_architectures() if not a.slow_start]
    assert fast and all(skips(shared[n]) == skips(own[n]) for n in fast)
