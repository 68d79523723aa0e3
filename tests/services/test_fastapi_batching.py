"""The FastAPI routes (services/fastapi_backend/routes.py) on a real uvicorn server: with batching on, requests
wait for their batch on the event loop, so a batch holds more requests than SB_BACKEND_THREADS; batching off,
the model runs in those threads."""
from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager

import anyio
import pytest
import uvicorn
from fastapi import FastAPI

from servebench import codecs, endpoint
from services.fastapi_backend.routes import add_protocol_routes
from tests.servebench import spec_cards
from tests.servebench.test_endpoint_specs import TensorCoreDouble
from tests.stacks import free_ports

pytestmark = pytest.mark.integration

CARD = spec_cards.card("default")


class SlowCoreDouble(TensorCoreDouble):
    """A test double of the inference core whose unbatched call takes a while, to see how many run at once."""

    def __init__(self, card, delay_s: float):
        super().__init__(card)
        self.delay_s, self.running, self.most = delay_s, 0, 0

    def timed_run(self, inputs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.delay_s)
        with self.lock:
            self.running -= 1
        return super().timed_run(inputs)


@contextmanager
def serving(target, backend_threads: int):
    """A uvicorn server of the FastAPI model server's routes over ``target``, on a free port."""
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        state["limiter"], state["model"] = anyio.CapacityLimiter(backend_threads), target
        yield
        state.clear()

    app = FastAPI(lifespan=lifespan)
    add_protocol_routes(app, state, "model", 1 << 20)
    port = free_ports(1)[0]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        target.close()


def predict(port: int, first_pixel: int) -> tuple[int, str, bytes]:
    images = spec_cards.inputs(CARD, 1, seed=first_pixel)[CARD.inputs[0].name]
    body, content_type = codecs.encode(images, "raw")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/predict", body, {"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Server-Timing") or "", resp.read()
    finally:
        conn.close()


def test_batching_on_a_batch_holds_more_requests_than_there_are_threads():
    core = TensorCoreDouble(CARD)
    target = endpoint.LocalModel(core, 8, batch_max_size=8, batch_timeout_ms=200)
    with serving(target, backend_threads=1) as port, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda k: predict(port, k), range(8)))
    assert core.batches == [8], core.batches  # one model call for all eight
    for status, timing, body in answers:
        assert status == 200, body
        names = [entry.split(";")[0] for entry in timing.split(", ")]
        assert names == ["decode", "queue", "model", "batch", "backend"] and "batch;desc=8" in timing


def test_batching_off_the_model_runs_in_the_limiters_threads():
    core = SlowCoreDouble(CARD, delay_s=0.05)
    target = endpoint.LocalModel(core, 8)
    with serving(target, backend_threads=2) as port, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda k: predict(port, k), range(6)))
    assert all(status == 200 and "batch;desc=1" in timing for status, timing, _ in answers)
    assert core.most == 2  # SB_BACKEND_THREADS bounds the model calls at once


def test_bad_input_on_the_event_loop_is_a_400():
    target = endpoint.LocalModel(TensorCoreDouble(CARD), 8, batch_max_size=8, batch_timeout_ms=0)
    with serving(target, backend_threads=1) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/predict", b"\x00" * 100, {"Content-Type": codecs.OCTET})
        resp = conn.getresponse()
        assert resp.status == 400 and b"3072" in resp.read()
        conn.close()
