"""The event-loop path of a model that batches (endpoint.handle_async, what FastAPI awaits) answers exactly as
the thread path (endpoint.handle): the same status, body, headers and Server-Timing entries on every protocol,
bad input included, while a waiting request holds no thread."""
from __future__ import annotations

import asyncio
import json
import re
import threading

import numpy as np
import pytest

from servebench import codecs, endpoint, kserve, tfserving
from tests.servebench import spec_cards
from tests.servebench.test_endpoint_specs import TensorCoreDouble

pytestmark = pytest.mark.unit

CARD = spec_cards.card("default")
NAME = CARD.name
IMAGES = spec_cards.inputs(CARD, 2)[CARD.inputs[0].name]


def _v2(binary: bool):
    return kserve.encode_infer_request(spec_cards.inputs(CARD, 2), CARD, binary=binary, binary_outputs=binary)


REQUESTS = {
    # name: (method, path, body, headers)
    "v1 raw": ("POST", "/v1/predict", *codecs.encode(IMAGES[:1], "raw")),
    "v1 json": ("POST", "/v1/predict", *codecs.encode(IMAGES, "json")),
    "v1 npy": ("POST", "/v1/predict", *codecs.encode(IMAGES, "npy")),
    "v2 json": ("POST", f"/v2/models/{NAME}/infer", *_v2(False)),
    "v2 binary": ("POST", f"/v2/models/{NAME}/infer", *_v2(True)),
    "tfserving": ("POST", f"/v1/models/{NAME}:predict", tfserving.rest_predict_body(IMAGES), codecs.JSON),
    # bad input
    "v1 short raw": ("POST", "/v1/predict", b"\x00" * 100, codecs.OCTET),
    "v1 bad json": ("POST", "/v1/predict", b"{not json", codecs.JSON),
    "v1 too many": ("POST", "/v1/predict", *codecs.encode(np.zeros((9, 32, 32, 3), np.uint8), "raw")),
    "v2 bad json": ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "nope"}]}', codecs.JSON),
    "tfserving bad": ("POST", f"/v1/models/{NAME}:predict", b'{"instances": [[1, 2]]}', codecs.JSON),
    "unknown model": ("POST", "/v2/models/other/infer", *_v2(False)),
    "wrong method": ("GET", "/v1/predict", b"", None),
    "no such path": ("POST", "/v2/nope/infer", b"", None),
    "v2 metadata": ("GET", f"/v2/models/{NAME}", b"", None),
    "v2 ready": ("GET", "/v2/health/ready", b"", None),
}


def _headers(h) -> dict:
    if h is None:
        return {}
    return dict(h) if isinstance(h, dict) else {"Content-Type": h}


def timing_names(timing: str) -> list[str]:
    return re.findall(r"(?:^|, )([a-z]+);", timing)


@pytest.fixture
def batching():
    target = endpoint.LocalModel(TensorCoreDouble(CARD), 8, batch_max_size=4, batch_timeout_ms=0)
    yield target
    target.close()


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_event_loop_path_answers_as_the_thread_path(batching, name):
    method, path, body, headers = REQUESTS[name]
    headers = _headers(headers)
    assert endpoint.waits_for_batches(batching)
    sync = endpoint.handle(batching, method, path, body, headers)
    on_loop = asyncio.run(endpoint.handle_async(batching, method, path, body, headers))
    assert (on_loop.status, on_loop.body, on_loop.content_type, on_loop.headers) == \
           (sync.status, sync.body, sync.content_type, sync.headers), name
    assert timing_names(on_loop.timing) == timing_names(sync.timing)
    if sync.status == 200 and method == "POST":
        assert timing_names(sync.timing) == ["decode", "queue", "model", "batch"]
    if name.endswith(("bad json", "short raw", "bad")):
        assert sync.status == 400 and json.loads(sync.body)["error"]


def test_a_failing_model_is_the_same_500_on_the_event_loop():
    target = endpoint.LocalModel(TensorCoreDouble(CARD, fail=True), 8, batch_max_size=4, batch_timeout_ms=0)
    try:
        method, path, body, headers = REQUESTS["v2 json"]
        sync = endpoint.handle(target, method, path, body, _headers(headers))
        on_loop = asyncio.run(endpoint.handle_async(target, method, path, body, _headers(headers)))
    finally:
        target.close()
    assert on_loop == sync and sync.status == 500 and json.loads(sync.body) == {"error": "inference failed: RuntimeError"}


def test_unbatched_models_stay_on_the_thread_path():
    target = endpoint.LocalModel(TensorCoreDouble(CARD), 8)
    assert target.submit(spec_cards.inputs(CARD, 1)) is None and not endpoint.waits_for_batches(target)


def test_requests_waiting_on_the_event_loop_hold_no_thread():
    core = TensorCoreDouble(CARD)
    target = endpoint.LocalModel(core, 8, batch_max_size=8, batch_timeout_ms=2000)
    method, path, body, headers = REQUESTS["v1 raw"]

    async def eight():
        return await asyncio.gather(*(endpoint.handle_async(target, method, path, body, _headers(headers))
                                      for _ in range(8)))

    threads = threading.active_count()
    try:
        replies = asyncio.run(eight())  # one loop thread: eight requests wait for one batch at once
    finally:
        target.close()
    assert threading.active_count() <= threads
    assert core.batches == [8] and all(r.status == 200 and "batch;desc=8" in r.timing for r in replies)
