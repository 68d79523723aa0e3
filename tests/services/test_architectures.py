"""Each HTTP architecture of the registry, natively, end to end through nginx (one that cannot run here skips).

Real nginx, gunicorn, Django and the model servers on loopback; real CIFAR-10
test images; predictions compared with the in-process core's. The stacks are
the session's shared ones (tests/conftest.py http_stack).
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import time

import numpy as np
import pytest

from servebench import codecs, stack
from tests.conformance import HTTP_STACK_KNOBS, atol, expected, forwarded_to, members_of, speaks_servebench
from tests.stacks import port_of

pytestmark = pytest.mark.integration


def post(st, body: bytes, content_type: str | None, path: str = "/v1/predict", method: str = "POST", timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port_of(st, "nginx"), timeout=timeout)
    headers = {"Content-Type": content_type} if content_type else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


@pytest.fixture
def arch_stack(http_stack):
    return http_stack


@pytest.fixture
def reference(arch_stack, core, test_split):
    images = test_split.images[:24]
    return images, expected(arch_stack.arch, images, core)


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_predictions_match_in_process_core(arch_stack, reference, codec):
    images, want = reference
    # One image per request (the study's workload) and one batch of several.
    for batch in (images[:1], images[1:9]):
        body, ctype = codecs.encode(batch, codec)
        status, headers, data = post(arch_stack, body, ctype)
        assert status == 200, data
        got = codecs.decode_predictions(data)
        n = len(batch)
        start = 0 if n == 1 else 1
        np.testing.assert_array_equal(got.classes, want.classes[start:start + n])
        np.testing.assert_allclose(got.probabilities, want.probabilities[start:start + n], atol=atol(arch_stack.arch))


def test_every_hop_reports_its_time(arch_stack, reference):
    body, ctype = codecs.encode(reference[0][:1], "raw")
    status, headers, _ = post(arch_stack, body, ctype)
    assert status == 200
    names = {part.split(";")[0].strip() for part in headers["Server-Timing"].split(",")}
    assert {"decode", "django"} <= names
    backend = forwarded_to(arch_stack.arch)
    if backend:
        assert "forward" in names
    if not backend or speaks_servebench(backend):  # a third-party server (Triton) does not time itself for us
        assert {"model"} | ({"backend"} if backend else set()) <= names
    assert float(headers["X-Upstream-Header-Time"]) > 0


def _assert_error(status, data, expected_status, phrase):
    assert status == expected_status, data
    doc = json.loads(data)
    assert phrase in doc["error"], doc


BAD_INPUTS = [
    ("malformed json", b'{"instances": [', codecs.JSON, 400, "malformed JSON"),
    ("no instances", b'{"foo": 1}', codecs.JSON, 400, "instances"),
    ("wrong shape", json.dumps({"instances": np.zeros((1, 28, 28, 3), int).tolist()}).encode(), codecs.JSON, 400, "wrong shape"),
    ("floats", json.dumps({"instances": np.full((1, 32, 32, 3), 0.5).tolist()}).encode(), codecs.JSON, 400, "wrong dtype"),
    ("out of range", json.dumps({"instances": np.full((1, 32, 32, 3), 300).tolist()}).encode(), codecs.JSON, 400, "out of range"),
    ("empty batch", b'{"instances": []}', codecs.JSON, 400, "empty batch"),
    ("bad base64", b'{"b64": "***", "shape": [1, 32, 32, 3]}', codecs.JSON, 400, "base64"),
    ("raw length", b"\x00" * 1000, codecs.OCTET, 400, "multiple of 3072"),
    ("raw empty", b"", codecs.OCTET, 400, "empty batch"),
    ("npy float", codecs.encode(np.zeros((1, 32, 32, 3), np.uint8), "npy")[0].replace(b"|u1", b"<f4"), codecs.NPY, 400, ".npy"),
    ("batch too large", b"\x00" * 3072 * 257, codecs.OCTET, 413, "batch too large"),
    ("content type", b"hello", "text/plain", 415, "unsupported content type"),
    ("no content type", b"hello", None, 415, "unsupported content type"),
]


@pytest.mark.parametrize("name,body,ctype,status,phrase", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_a_clear_4xx(arch_stack, name, body, ctype, status, phrase):
    got, _, data = post(arch_stack, body, ctype)
    _assert_error(got, data, status, phrase)


def test_body_over_the_limit_is_refused_by_nginx(arch_stack):
    got, _, data = post(arch_stack, b"\x00" * (17 * 1024 * 1024), codecs.OCTET)
    _assert_error(got, data, 413, "too large")


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/v1/predict", 405), ("PUT", "/v1/predict", 405), ("POST", "/nope", 404),
    ("GET", "/admin/", 404), ("DELETE", "/healthz", 405),
])
def test_unknown_paths_and_methods(arch_stack, method, path, status):
    got, _, data = post(arch_stack, b"", None, path=path, method=method)
    assert got == status, data
    assert "error" in json.loads(data)


def test_garbage_never_gives_a_5xx(arch_stack):
    rng = np.random.default_rng(0)
    for i in range(30):
        body = rng.integers(0, 256, int(rng.integers(0, 9000)), dtype=np.uint8).tobytes()
        ctype = [codecs.JSON, codecs.OCTET, codecs.NPY, "application/json; charset=utf-8"][i % 4]
        got, _, data = post(arch_stack, body, ctype)
        assert 400 <= got < 500, (ctype, got, data[:200])
    assert arch_stack.alive()


def _backend(arch: str) -> str:
    name = forwarded_to(arch)
    if not name:
        pytest.skip(f"{arch} has no separate backend")
    return name


def test_backend_down_gives_502_then_recovers(arch_stack, reference):
    name = _backend(arch_stack.arch)
    body, ctype = codecs.encode(reference[0][:1], "raw")
    stack.stop_service(arch_stack, name)
    got, _, data = post(arch_stack, body, ctype)
    assert got in (502, 503), data
    assert name in json.loads(data)["error"]
    stack.restart_service(arch_stack, name)
    got, _, data = post(arch_stack, body, ctype)
    assert got == 200, data


def test_backend_timeout_gives_504_then_recovers(arch_stack, reference):
    name = _backend(arch_stack.arch)
    body, ctype = codecs.encode(reference[0][:1], "raw")
    pid = arch_stack.doc["services"][name]["pid"]
    os.killpg(pid, signal.SIGSTOP)  # a hung backend: accepts nothing, answers nothing
    try:
        started = time.monotonic()
        got, _, data = post(arch_stack, body, ctype)
        assert got == 504, data
        assert name in json.loads(data)["error"]
        assert time.monotonic() - started < HTTP_STACK_KNOBS["backend_timeout_s"] + 5
    finally:
        os.killpg(pid, signal.SIGCONT)
    for _ in range(20):  # the front end recovers by itself
        got, _, data = post(arch_stack, body, ctype)
        if got == 200:
            break
        time.sleep(0.2)
    assert got == 200, data


def test_settings_in_force_are_readable(arch_stack):
    got, _, data = post(arch_stack, b"", None, path="/v1/info", method="GET")
    assert got == 200
    doc = json.loads(data)
    assert doc["arch"] == arch_stack.arch
    assert doc["settings"]["backend_timeout_s"] == HTTP_STACK_KNOBS["backend_timeout_s"]
    backend = forwarded_to(arch_stack.arch)
    if backend and speaks_servebench(backend) and not members_of(arch_stack.arch):
        assert doc["backend"]["model"]["version"] == 1
    elif backend:  # a coordinator of members, or a third-party server: its own description
        assert doc["backend"]
    else:
        assert doc["model"]["version"] == 1
