"""The standard protocols through every HTTP architecture of the registry, and server-side batching in a stack.

KServe v2 (JSON and binary tensors) and TF Serving's REST paths through nginx ->
Django -> backend, answered the same as POST /v1/predict and the in-process
core; every bad input the v1 endpoint rejects is rejected by v2 and TF Serving
REST too, with a 4xx in their error format. An architecture that cannot run here skips, saying why.
"""
from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from servebench import codecs, kserve, tfserving
from tests.conformance import atol, expected, forwarded_to, http_architectures, members_of, params, speaks_servebench
from tests.stacks import port_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "cifar10_cnn"
INFER = f"/v2/models/{MODEL}/infer"
TFS_PREDICT = f"/v1/models/{MODEL}:predict"


def call(st, method: str, path: str, body: bytes | None = None, headers: dict | None = None, port_name="nginx"):
    conn = http.client.HTTPConnection("127.0.0.1", port_of(st, port_name), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def arch_stack(http_stack):
    return http_stack


@pytest.fixture
def reference(arch_stack, core, test_split):
    images = test_split.images[:8]
    return images, expected(arch_stack.arch, images, core)


def v2_json_request(images: np.ndarray) -> bytes:
    """Written from the spec, not by our encoder: one input, flat data, no binary extension."""
    return json.dumps({
        "id": "t-1",
        "inputs": [{"name": "images", "shape": list(images.shape), "datatype": "UINT8",
                    "data": images.reshape(-1).tolist()}],
    }).encode()


def test_v2_json_matches_the_in_process_core(arch_stack, reference):
    images, want = reference
    status, headers, data = call(arch_stack, "POST", INFER, v2_json_request(images), {"Content-Type": codecs.JSON})
    assert status == 200, data
    doc = json.loads(data)
    assert doc["model_name"] == MODEL and doc["id"] == "t-1"
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["probabilities"]["datatype"] == "FP32" and outputs["probabilities"]["shape"] == [8, 10]
    probs = np.asarray(outputs["probabilities"]["data"], np.float32).reshape(8, 10)
    classes = np.asarray(outputs["classes"]["data"], np.int64).reshape(-1)
    np.testing.assert_array_equal(classes, want.classes)
    np.testing.assert_allclose(probs, want.probabilities, atol=atol(arch_stack.arch))
    assert "django;dur=" in headers["server-timing"]


def test_v2_binary_tensors_match_the_in_process_core(arch_stack, reference):
    images, want = reference
    body, headers = kserve.encode_infer_request(images, binary=True, binary_outputs=True)
    status, got_headers, data = call(arch_stack, "POST", INFER, body, headers)
    assert status == 200, data
    assert kserve.HEADER_LENGTH.lower() in got_headers
    pred = kserve.decode_infer_response(data, {k: v for k, v in got_headers.items()})
    np.testing.assert_array_equal(pred.classes, want.classes)
    np.testing.assert_allclose(pred.probabilities, want.probabilities, atol=atol(arch_stack.arch))


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columns"])
def test_tfserving_rest_predict_matches_the_in_process_core(arch_stack, reference, columnar):
    images, want = reference
    key = "inputs" if columnar else "instances"
    body = json.dumps({"signature_name": "serving_default", key: images.tolist()}).encode()
    status, _, data = call(arch_stack, "POST", TFS_PREDICT, body, {"Content-Type": codecs.JSON})
    assert status == 200, data
    pred = tfserving.parse_rest_response(data)
    np.testing.assert_array_equal(pred.classes, want.classes)
    np.testing.assert_allclose(pred.probabilities, want.probabilities, atol=atol(arch_stack.arch))


def test_metadata_health_and_config(arch_stack):
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
        status, _, data = call(arch_stack, "GET", path)
        assert status == 200, (path, data)
    status, _, data = call(arch_stack, "GET", f"/v2/models/{MODEL}")
    meta = json.loads(data)
    assert status == 200 and meta["name"] == MODEL
    assert meta["inputs"][0]["datatype"] == "UINT8" and meta["inputs"][0]["shape"][1:] == [32, 32, 3]
    status, _, data = call(arch_stack, "GET", f"/v2/models/{MODEL}/config")
    assert status == 200 and json.loads(data)["max_batch_size"] >= 1
    status, _, data = call(arch_stack, "GET", f"/v1/models/{MODEL}")
    assert status == 200 and json.loads(data)["model_version_status"][0]["state"] == "AVAILABLE"
    status, _, data = call(arch_stack, "GET", f"/v1/models/{MODEL}/metadata")
    assert status == 200 and "serving_default" in json.dumps(json.loads(data))


@pytest.mark.parametrize("path, method, status", [
    ("/v2/models/resnet50/infer", "POST", 404),
    (f"/v2/models/{MODEL}/versions/99/infer", "POST", 404),
    ("/v1/models/resnet50:predict", "POST", 404),
    (INFER, "GET", 405),
    (f"/v2/models/{MODEL}", "POST", 405),
    ("/v2/nowhere", "GET", 404),
])
def test_wrong_paths_and_methods(arch_stack, path, method, status):
    got, headers, data = call(arch_stack, method, path, b"{}" if method == "POST" else None,
                              {"Content-Type": codecs.JSON})
    assert got == status, data
    assert json.loads(data)["error"]
    if status == 405:
        assert headers["allow"]


def _v2_tensor(data, shape, datatype="UINT8") -> bytes:
    return json.dumps({"inputs": [{"name": "images", "shape": shape, "datatype": datatype, "data": data}]}).encode()


ONE = [0] * 3072
V2_BAD = [
    ("malformed json", b'{"inputs": [', 400),
    ("floats", _v2_tensor([0.5] * 3072, [1, 32, 32, 3]), 400),
    ("out of range", _v2_tensor([256] + ONE[1:], [1, 32, 32, 3]), 400),
    ("negative", _v2_tensor([-1] + ONE[1:], [1, 32, 32, 3]), 400),
    ("booleans", _v2_tensor([True] * 3072, [1, 32, 32, 3]), 400),
    ("strings", _v2_tensor(["a"] * 3072, [1, 32, 32, 3]), 400),
    ("wrong shape", _v2_tensor(ONE, [1, 16, 64, 3]), 400),
    ("data and shape disagree", _v2_tensor(ONE, [2, 32, 32, 3]), 400),
    ("empty batch", _v2_tensor([], [0, 32, 32, 3]), 400),
    ("batch too large", _v2_tensor(ONE, [100_000, 32, 32, 3]), 413),
    ("wrong datatype", _v2_tensor(ONE, [1, 32, 32, 3], "FP32"), 400),
    ("no inputs", b'{"outputs": []}', 400),
    ("wrong input name", json.dumps({"inputs": [{"name": "x", "shape": [1, 32, 32, 3], "datatype": "UINT8",
                                                 "data": ONE}]}).encode(), 400),
    ("NaN", b'{"inputs": [{"name": "images", "shape": [1,32,32,3], "datatype": "UINT8", "data": [NaN]}]}', 400),
    ("duplicate keys", b'{"inputs": [], "inputs": []}', 400),
]


@pytest.mark.parametrize("body, status", [(b, s) for _, b, s in V2_BAD], ids=[name for name, _, _ in V2_BAD])
def test_v2_rejects_what_v1_rejects(arch_stack, body, status):
    got, _, data = call(arch_stack, "POST", INFER, body, {"Content-Type": codecs.JSON})
    assert got == status, data
    assert json.loads(data)["error"]


def test_v2_binary_header_length_must_fit(arch_stack):
    body, headers = kserve.encode_infer_request(np.zeros((1, 32, 32, 3), np.uint8), binary=True)
    for bad in ("abc", str(len(body) + 10), "-1"):
        got, _, data = call(arch_stack, "POST", INFER, body, {**headers, kserve.HEADER_LENGTH: bad})
        assert 400 <= got < 500, (bad, data)


TFS_BAD = [
    ("floats", {"instances": np.full((1, 32, 32, 3), 0.5).tolist()}, 400),
    ("out of range", {"instances": np.full((1, 32, 32, 3), 300).tolist()}, 400),
    ("wrong shape", {"instances": np.zeros((1, 16, 16, 3), int).tolist()}, 400),
    ("empty", {"instances": []}, 400),
    ("both forms", {"instances": [], "inputs": []}, 400),
    ("other signature", {"signature_name": "train", "instances": np.zeros((1, 32, 32, 3), int).tolist()}, 400),
]


@pytest.mark.parametrize("doc, status", [(d, s) for _, d, s in TFS_BAD], ids=[n for n, _, _ in TFS_BAD])
def test_tfserving_rest_rejects_what_v1_rejects(arch_stack, doc, status):
    got, _, data = call(arch_stack, "POST", TFS_PREDICT, json.dumps(doc).encode(), {"Content-Type": codecs.JSON})
    assert got == status, data
    assert json.loads(data)["error"]


# ---------------------------------------------------------------- batching on, in a real stack
@pytest.fixture(scope="module", params=params(http_architectures()))
def batching_stack(request, start_stack):
    return start_stack(request.param, SB_BATCH_MAX_SIZE="8", SB_BATCH_TIMEOUT_MS="20",
                       SB_FRONTEND_WORKERS="1", SB_FRONTEND_THREADS="16", SB_BACKEND_WORKERS="1",
                       SB_BACKEND_THREADS="16")


def test_batching_in_a_stack_answers_every_request_right(batching_stack, core, test_split):
    images = test_split.images[:32]
    want = expected(batching_stack.arch, images, core)

    def one(i):
        body, ctype = codecs.encode(images[i:i + 1], "raw")
        return call(batching_stack, "POST", "/v1/predict", body, {"Content-Type": ctype})

    backend = forwarded_to(batching_stack.arch)
    # A server that says per request how its batch went (Server-Timing's queue and batch: ours, Ray Serve's
    # replicas behind a supervisor of ours) is checked by its answers; a third-party one (Triton) by its
    # KServe v2 statistics.
    probe = one(0)
    assert probe[0] == 200, probe[2]
    triton = (bool(backend) and not speaks_servebench(backend)
              and "queue" not in probe[1].get("server-timing", ""))
    # A coordinator's members batch behind it, and it reports no batch size per request: answers only.
    members = members_of(batching_stack.arch)
    before = triton and triton_counts(batching_stack)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(len(images))))
    sizes = []
    for i, (status, headers, data) in enumerate(answers):
        assert status == 200, data
        assert codecs.decode_predictions(data).classes[0] == want.classes[i]
        if not triton and not members:  # our servers say per request how big its batch was
            entries = dict(e.strip().split(";", 1) for e in headers["server-timing"].split(","))
            assert "queue" in entries
            sizes.append(int(entries["batch"].split("=")[1]))
    if triton:  # Triton says it in its statistics: fewer executions than inferences
        inferences, executions = (a - b for a, b in zip(triton_counts(batching_stack), before))
        assert inferences == len(images) and executions < inferences
    elif not members:
        assert max(sizes) > 1, f"12 concurrent requests never shared a model call: {sizes}"


def triton_counts(st) -> tuple[int, int]:
    """Triton's own count of images inferred and of model executions."""
    status, _, data = call(st, "GET", f"/v2/models/{MODEL}/stats", port_name=forwarded_to(st.arch))
    assert status == 200, data
    stats = json.loads(data)["model_stats"][0]
    return stats["inference_count"], stats["execution_count"]
