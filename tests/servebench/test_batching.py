"""Server-side batching: answers split back right, the queue-delay bound, failures that stay alone."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from servebench import codecs, endpoint
from servebench.batching import Batcher, BatcherClosed
from servebench.codecs import Prediction

pytestmark = pytest.mark.unit


class FakeModel:
    """Test double of the model: class = the image's first pixel mod 10; records each call's batch size."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None):
        self.calls: list[int] = []
        self.delay_s = delay_s
        self.fail_on = fail_on  # a batch holding an image whose first pixel is this fails
        self.lock = threading.Lock()

    def predict(self, images: np.ndarray) -> Prediction:
        with self.lock:
            self.calls.append(len(images))
        time.sleep(self.delay_s)
        first = images.reshape(len(images), -1)[:, 0].astype(np.int64)
        if self.fail_on is not None and (first == self.fail_on).any():
            raise RuntimeError("model broke")
        probs = np.zeros((len(images), 10), np.float32)
        probs[np.arange(len(images)), first % 10] = 1.0
        return Prediction(classes=first % 10, probabilities=probs)

    # what LocalModel needs of a core
    name, version = "cifar10_cnn", 1

    def timed_predict(self, images):
        start = time.perf_counter()
        return self.predict(images), (time.perf_counter() - start) * 1000.0

    def info(self):
        return {"name": self.name, "version": self.version}


def image(first_pixel: int, n: int = 1) -> np.ndarray:
    imgs = np.zeros((n, 32, 32, 3), np.uint8)
    imgs[:, 0, 0, 0] = first_pixel
    return imgs


def concurrently(fn, args, workers=16):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, args))


def test_each_request_gets_its_own_rows_back():
    model = FakeModel(delay_s=0.01)
    batcher = Batcher(model.predict, max_size=8, timeout_ms=20)
    try:
        results = concurrently(lambda k: (k, batcher(image(k, n=1 + k % 3))), range(40))
    finally:
        batcher.close()
    for k, r in results:
        assert len(r.prediction.classes) == 1 + k % 3
        assert (r.prediction.classes == k % 10).all()
        assert r.batch_size <= 8 and r.queue_ms >= 0 and r.model_ms > 0
    assert max(model.calls) > 1, "requests that arrived together were not batched"
    assert sum(model.calls) == sum(1 + k % 3 for k in range(40))
    assert max(model.calls) <= 8


def test_a_lone_request_waits_for_the_timeout_then_runs():
    model = FakeModel()
    batcher = Batcher(model.predict, max_size=8, timeout_ms=60)
    try:
        r = batcher(image(3))
    finally:
        batcher.close()
    assert r.batch_size == 1
    # Held for batch-mates about the timeout, and not much longer (generous slack: shared machines).
    assert 50 <= r.queue_ms <= 60 + 500


def test_the_queue_delay_is_bounded_by_the_timeout_plus_the_batch_in_progress():
    model = FakeModel(delay_s=0.05)
    batcher = Batcher(model.predict, max_size=4, timeout_ms=10)
    try:
        results = concurrently(lambda k: batcher(image(k)), range(24), workers=24)
    finally:
        batcher.close()
    # A request waits at most the timeout for its batch to fill, plus the call the model thread is
    # busy with; 24 requests in batches of <= 4 mean up to 6 calls ahead in the worst case.
    worst = max(r.queue_ms for r in results)
    assert worst <= 6 * (10 + 50) + 500


def test_a_full_batch_does_not_wait_for_the_timeout():
    model = FakeModel()
    batcher = Batcher(model.predict, max_size=4, timeout_ms=5_000)
    try:
        start = time.perf_counter()
        results = concurrently(lambda k: batcher(image(k)), range(4), workers=4)
        elapsed = time.perf_counter() - start
    finally:
        batcher.close()
    assert elapsed < 4.0, "a full batch waited for the timeout"
    assert {r.batch_size for r in results} <= {1, 2, 3, 4}


def test_a_request_larger_than_the_batch_runs_alone_unsplit():
    model = FakeModel()
    batcher = Batcher(model.predict, max_size=4, timeout_ms=0)
    try:
        r = batcher(image(7, n=10))
    finally:
        batcher.close()
    assert r.batch_size == 10 and len(r.prediction.classes) == 10 and model.calls == [10]


def test_timeout_zero_takes_what_is_waiting_without_waiting():
    model = FakeModel()
    batcher = Batcher(model.predict, max_size=64, timeout_ms=0)
    try:
        r = batcher(image(1))
    finally:
        batcher.close()
    assert r.batch_size == 1 and r.queue_ms < 500


def test_a_failing_model_call_fails_its_batch_only_and_the_batcher_goes_on():
    model = FakeModel(delay_s=0.02, fail_on=13)
    batcher = Batcher(model.predict, max_size=64, timeout_ms=30)
    try:
        futures = [batcher.submit(image(k)) for k in (1, 13, 2)]
        errors = [f.exception(timeout=10) for f in futures]
        assert all(isinstance(e, RuntimeError) for e in errors)  # one batch, one failed call
        assert batcher(image(4)).prediction.classes.tolist() == [4]
    finally:
        batcher.close()


def test_closed_batcher_refuses_new_requests():
    batcher = Batcher(FakeModel().predict, max_size=2, timeout_ms=0)
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(image(1))


@pytest.mark.parametrize("size, timeout", [(0, 1.0), (4, -1.0)])
def test_bad_batcher_settings_are_refused(size, timeout):
    with pytest.raises(ValueError):
        Batcher(FakeModel().predict, size, timeout)


# ---------------------------------------------------------------- through the endpoint
def _v1(k: int) -> tuple[bytes, dict]:
    body, ctype = codecs.encode(image(k), "raw")
    return body, {"Content-Type": ctype}


def test_a_bad_request_in_a_batch_fails_alone():
    model = FakeModel(delay_s=0.01)
    local = endpoint.LocalModel(model, max_batch=256, batch_max_size=16, batch_timeout_ms=50)
    bodies = [_v1(k) for k in range(15)] + [(b"\x00" * 100, {"Content-Type": codecs.OCTET})]
    try:
        replies = concurrently(lambda bh: endpoint.handle(local, "POST", "/v1/predict", bh[0], bh[1]), bodies)
    finally:
        local.close()
    *good, bad = replies
    assert bad.status == 400 and "not a multiple of 3072" in json.loads(bad.body)["error"]
    for k, reply in enumerate(good):
        assert reply.status == 200, reply.body
        assert json.loads(reply.body)["predictions"][0]["class_id"] == k % 10
        assert "queue;dur=" in reply.timing and "batch;desc=" in reply.timing
    assert max(model.calls) > 1


def test_without_batching_the_model_runs_in_the_request_thread():
    model = FakeModel()
    local = endpoint.LocalModel(model, max_batch=256, batch_max_size=1)
    assert local.batcher is None
    reply = endpoint.handle(local, "POST", "/v1/predict", *_v1(5))
    assert reply.status == 200 and "queue" not in reply.timing and "batch;desc=1" in reply.timing


@pytest.mark.slow
def test_batched_answers_equal_unbatched_ones_on_the_real_model(core, test_split):
    images = test_split.images[:48]
    alone = [core.predict(images[i:i + 1]) for i in range(len(images))]
    batcher = Batcher(core.predict, max_size=16, timeout_ms=20)
    try:
        together = concurrently(lambda i: batcher(images[i:i + 1]), range(len(images)))
    finally:
        batcher.close()
    assert max(r.batch_size for r in together) > 1
    for a, b in zip(alone, together):
        assert (a.classes == b.prediction.classes).all()
        np.testing.assert_allclose(a.probabilities, b.prediction.probabilities, atol=1e-5)


def test_an_idle_model_runs_a_lone_request_in_its_own_thread_and_batches_what_queues_meanwhile():
    seen = []

    class ThreadNotingModel(FakeModel):
        """Test double: also notes which thread ran each call."""

        def predict(self, images):
            seen.append(threading.get_ident())
            return super().predict(images)

    model = ThreadNotingModel(delay_s=0.2)
    batcher = Batcher(model.predict, max_size=8, timeout_ms=0)
    try:
        assert batcher.idle()
        with ThreadPoolExecutor(1) as first:
            lone = first.submit(lambda: (threading.get_ident(), batcher(image(3))))
            deadline = time.monotonic() + 5
            while batcher.idle():  # until the lone request is in the model, in its own thread
                assert time.monotonic() < deadline
                time.sleep(0.005)
            queued = [batcher.submit(image(k)) for k in (4, 5, 6)]
            me, r = lone.result(timeout=10)
        results = [f.result(timeout=10) for f in queued]
    finally:
        batcher.close()
    assert seen[0] == me and r.batch_size == 1 and r.prediction.classes.tolist() == [3]
    assert model.calls == [1, 3] and [x.batch_size for x in results] == [3, 3, 3]
    assert [x.prediction.classes.tolist() for x in results] == [[4], [5], [6]]
