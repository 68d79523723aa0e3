"""Triton (ARCH=triton's backend) alone on loopback, started by the native runtime from .venv-triton.

KServe v2 requests written by hand (JSON, ``data`` a flat list) get the
in-process core's answers, one at a time and under 8 concurrent requests, with
batching off (no dynamic batcher) and on (SB_BATCH_MAX_SIZE=8); stopping it
leaves no tritonserver or Python backend stub behind. Each configuration is
started once (TensorFlow and Triton take several seconds). Without
.venv-triton (``make setup-triton``) everything here skips.
"""
from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest

from servebench import registry, stack
from servebench.registry import Architecture
from servebench.settings import REPO_ROOT
from services.triton.declaration import TRITON_VENV
from services.triton.server import model_calls
from tests.stacks import port_of, stack_settings

pytestmark = pytest.mark.integration

TRITON_PYTHON = REPO_ROOT / TRITON_VENV / "bin" / "python"
ALONE = "sb-triton-alone"  # a test double: the triton service without the front end
MODEL = "cifar10_cnn"
N_IMAGES = 8
QUIET = lambda *_: None  # noqa: E731
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
# Batching on with a long delay, so that 8 concurrent requests surely meet in one batch.
CONFIGS = {"batching-off": {}, "batching-8": {"batch_max_size": 8, "batch_timeout_ms": 200}}


def _get(st, path: str) -> dict:
    with _OPENER.open(f"http://127.0.0.1:{port_of(st, 'triton')}{path}", timeout=30) as resp:
        return json.load(resp)


def infer(st, images: np.ndarray) -> dict[str, tuple[str, list[int], np.ndarray]]:
    """One KServe v2 JSON inference: output name -> (datatype, shape, data as an array of that shape)."""
    body = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": list(images.shape),
                        "data": images.ravel().tolist()}]}
    req = urllib.request.Request(f"http://127.0.0.1:{port_of(st, 'triton')}/v2/models/{MODEL}/infer",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with _OPENER.open(req, timeout=60) as resp:
        doc = json.load(resp)
    assert doc["model_name"] == MODEL
    return {o["name"]: (o["datatype"], o["shape"], np.array(o["data"]).reshape(o["shape"])) for o in doc["outputs"]}


def _executions(st) -> int:
    (stats,) = _get(st, f"/v2/models/{MODEL}/stats")["model_stats"]
    return int(stats["execution_count"])


@pytest.fixture(scope="module", params=list(CONFIGS))
def triton(request, tmp_path_factory):
    if not TRITON_PYTHON.exists():
        pytest.skip("no .venv-triton: create it with `make setup-triton`")
    # Only the service under test: an architecture of one, removed afterwards (the service stays registered).
    triton_arch = registry.get("triton")
    registry.register(Architecture(
        name=ALONE, title="Triton alone", color=triton_arch.color, services=("triton",), profile=ALONE,
        backend=triton_arch.backend, backend_port=triton_arch.backend_port, protocol=triton_arch.protocol,
        needs=triton_arch.needs, description="a test double: Triton without the front end"))
    run = tmp_path_factory.mktemp(f"run-triton-{request.param}")
    try:
        yield stack.up(ALONE, stack_settings(**CONFIGS[request.param]), run, log=QUIET)
    finally:
        stack.down(run, log=QUIET)
        registry.unregister(ALONE)


@pytest.fixture(scope="module")
def reference(core, test_split):
    images = test_split.images[:N_IMAGES]
    return images, core.predict(images)


def _assert_same(outputs, expected, rows: slice) -> None:
    n = rows.stop - rows.start
    dtype, shape, probabilities = outputs["probabilities"]
    assert (dtype, shape) == ("FP32", [n, 10])
    dtype, shape, classes = outputs["classes"]
    assert (dtype, shape) == ("INT64", [n, 1])
    np.testing.assert_array_equal(classes[:, 0], expected.classes[rows])
    np.testing.assert_allclose(probabilities, expected.probabilities[rows], atol=2e-6)


@pytest.mark.slow
def test_model_config_is_the_batching_asked_for(triton):
    settings = triton.knob_settings()
    config = _get(triton, f"/v2/models/{MODEL}/config")
    assert config["max_batch_size"] == settings.max_batch
    assert [i["dims"] for i in config["input"]] == [[32, 32, 3]]
    if settings.batch_max_size == 1:
        assert "dynamic_batching" not in config  # each request runs as it came
    else:
        batcher = config["dynamic_batching"]
        assert batcher["preferred_batch_size"] == [settings.batch_max_size]
        assert int(batcher["max_queue_delay_microseconds"]) == round(settings.batch_timeout_ms * 1000)
    # Both endpoints on loopback only (gRPC's socket is IPv6, bound to the IPv4-mapped loopback address).
    listening = {(c.laddr.ip.removeprefix("::ffff:"), c.laddr.port) for p in triton.processes()["triton"]
                 for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", settings.triton_http_port), ("127.0.0.1", settings.triton_grpc_port)}


@pytest.mark.slow
def test_kserve_v2_answers_equal_the_in_process_core(triton, reference):
    images, expected = reference
    _assert_same(infer(triton, images), expected, slice(0, N_IMAGES))
    _assert_same(infer(triton, images[:1]), expected, slice(0, 1))


@pytest.mark.slow
def test_concurrent_requests_get_their_own_answers(triton, reference):
    images, expected = reference
    before = _executions(triton)
    with ThreadPoolExecutor(N_IMAGES) as pool:
        answers = list(pool.map(lambda i: infer(triton, images[i:i + 1]), range(N_IMAGES)))
    for i, outputs in enumerate(answers):
        _assert_same(outputs, expected, slice(i, i + 1))
    executions = _executions(triton) - before
    if triton.knob_settings().batch_max_size == 1:
        assert executions == N_IMAGES  # never combined
    else:
        assert executions < N_IMAGES  # the dynamic batcher combined some


def test_model_calls_hold_at_most_the_batch_size_and_never_split_a_request():
    assert model_calls([1] * 5, 1) == [[0], [1], [2], [3], [4]]
    assert model_calls([1] * 10, 8) == [list(range(8)), [8, 9]]
    assert model_calls([3, 20, 2, 4, 3], 8) == [[0], [1], [2, 3], [4]]
    assert model_calls([8, 8], 8) == [[0], [1]]


@pytest.mark.slow
def test_stopping_leaves_no_triton_process(triton):
    """Last for each configuration: it stops the service (the fixture's own `down` then finds nothing)."""
    procs = triton.processes()["triton"]
    names = {p.name() for p in procs}
    assert {"tritonserver", "triton_python_backend_stub"} <= names, names
    assert stack.down(triton.run_dir, log=QUIET)
    gone, alive = psutil.wait_procs(procs, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
    # Nothing started for this stack is left, whatever its process group (found by the stack's marker).
    assert not stack.leftovers(triton.run_dir)
