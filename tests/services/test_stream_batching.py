"""The streaming core with batching on: a window's frames, and frames of several streams, run as one model
call; answers keep their frames' order and equal the unbatched ones; a bad frame fails alone; the model depth
and drop-oldest with batching. A counting stand-in model (no TensorFlow) records every call's batch."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from servebench.codecs import Prediction
from services.stream import frames
from services.stream.core import MODEL_DEPTH, StreamCore, model_depth

pytestmark = pytest.mark.unit

SHAPE = (4, 4, 3)
WINDOW = 8
TIMEOUT_MS = 200.0  # long enough that frames submitted together always share a call on a loaded machine


class CountingModelDouble:
    """A test double of the model: each row's answer depends on its pixels only (so batching cannot change it),
    every call's frame values are recorded, and an optional gate holds calls until the test lets them through."""

    shape = SHAPE

    def __init__(self, gated: bool = False):
        self.calls: list[list[int]] = []  # each call's frames, by their first pixel
        self.gate = threading.Semaphore(0) if gated else None

    def predict(self, images):
        if self.gate is not None:
            self.gate.acquire(timeout=10)
        values = images[:, 0, 0, 0].astype(int)
        self.calls.append(values.tolist())
        probs = np.stack([np.roll(np.linspace(0.0, 1.0, 10, dtype=np.float32), v) for v in values])
        return Prediction(classes=values % 10, probabilities=probs)


def frame(i, shape=SHAPE):
    return frames.split(frames.image_frame(i, i * 10, np.full(shape, i, np.uint8)), 1 << 20)


async def _send(core, ids, sent, bad=()):
    async def emit(reply):
        sent.append(reply)

    session = core.session(emit)
    for i in ids:
        assert await asyncio.wait_for(session.ready(), 5)
        await session.frame(*frame(i, (2, 2, 3) if i in bad else SHAPE))
    return session


def _stream(batch_max_size, ids, bad=(), gated=False):
    async def main():
        model = CountingModelDouble(gated)
        core = StreamCore(model, 1 << 20, WINDOW, False, batch_max_size, TIMEOUT_MS if batch_max_size > 1 else 0)
        sent: list[frames.Reply] = []
        session = await _send(core, ids, sent, bad)
        await session.finish(10)
        core.close()
        return sent, model, core

    return asyncio.run(main())


def test_a_window_of_frames_runs_as_one_model_call_with_the_unbatched_answers():
    ids = list(range(WINDOW))
    batched, model, core = _stream(8, ids)
    unbatched, model_1, _ = _stream(1, ids)
    assert max(len(c) for c in model.calls) > 1 and model.calls == [ids]  # one call of the whole window
    assert all(len(c) == 1 for c in model_1.calls)
    assert core.counters.model_calls == 1 and core.counters.model_frames == WINDOW
    assert [r.frame_id for r in batched] == ids and all(r.kind == frames.ANSWER for r in batched)
    assert [r.cls for r in batched] == [r.cls for r in unbatched] == [i % 10 for i in ids]
    assert np.array_equal(np.stack([r.probabilities for r in batched]), np.stack([r.probabilities for r in unbatched]))
    assert core.info()["model_depth"] == WINDOW and core.info()["batch_max_size"] == 8


def test_the_batcher_splits_what_is_waiting_at_batch_max_size():
    ids = list(range(WINDOW))
    sent, model, _ = _stream(4, ids, gated=False)
    assert [len(c) for c in model.calls] == [4, 4]
    assert [r.frame_id for r in sent] == ids


def test_a_bad_frame_fails_alone_and_its_batch_mates_are_answered_in_order():
    ids = list(range(WINDOW))
    sent, model, _ = _stream(8, ids, bad={3})
    (err,) = [r for r in sent if r.kind != frames.ANSWER]
    assert err.kind == frames.ERROR and err.code == frames.BAD_SHAPE and err.frame_id == 3 and err.capture_ns == 30
    answers = [r for r in sent if r.kind == frames.ANSWER]
    assert [r.frame_id for r in answers] == [0, 1, 2, 4, 5, 6, 7]
    assert [r.cls for r in answers] == [0, 1, 2, 4, 5, 6, 7]
    assert model.calls == [[0, 1, 2, 4, 5, 6, 7]]  # the bad frame never reached the model


def test_frames_of_two_streams_share_a_model_call():
    async def main():
        model = CountingModelDouble()
        core = StreamCore(model, 1 << 20, WINDOW, False, 8, TIMEOUT_MS)
        a, b = [], []
        sa = await _send(core, [1, 2, 3, 4], a)
        sb = await _send(core, [11, 12, 13, 14], b)
        await asyncio.gather(sa.finish(10), sb.finish(10))
        core.close()
        return model, a, b

    model, a, b = asyncio.run(main())
    assert any({1, 11} <= set(c) for c in model.calls)
    assert [r.frame_id for r in a] == [1, 2, 3, 4] and [r.frame_id for r in b] == [11, 12, 13, 14]
    assert [r.cls for r in b] == [1, 2, 3, 4]  # 11..14 % 10: each stream gets its own rows back


def test_the_model_depth_follows_the_batch_and_leaves_drop_oldest_a_slot():
    assert model_depth(8, 1, False) == model_depth(8, 1, True) == MODEL_DEPTH  # batching off: as before
    assert model_depth(8, 8, False) == 8 and model_depth(8, 8, True) == 7
    assert model_depth(32, 4, False) == 8  # one batch runs while the next gathers
    assert model_depth(1, 8, False) == model_depth(2, 8, True) == MODEL_DEPTH


def test_drop_oldest_with_batching_drops_only_frames_not_yet_handed_to_the_batcher():
    async def main():
        model = CountingModelDouble(gated=True)
        core = StreamCore(model, 1 << 20, WINDOW, True, 8, 1.0)
        sent: list[frames.Reply] = []
        session = await _send(core, list(range(11)), sent)
        await asyncio.sleep(0.1)
        for _ in range(11):
            model.gate.release()
        await session.finish(10)
        core.close()
        return sent, core.counters

    sent, counters = asyncio.run(main())
    dropped = [r.frame_id for r in sent if r.kind == frames.DROPPED]
    answered = [r.frame_id for r in sent if r.kind == frames.ANSWER]
    assert dropped == [7, 8, 9] and answered == [0, 1, 2, 3, 4, 5, 6, 10]  # 7 in the model; the newest wins
    assert counters.dropped == 3 and counters.model_frames == 8
