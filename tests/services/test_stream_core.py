"""The streaming core's session logic with a stand-in model (no TensorFlow): window, backpressure, drop policy."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from servebench.codecs import Prediction
from services.stream import frames
from services.stream.core import StreamCore

pytestmark = pytest.mark.unit

SHAPE = (4, 4, 3)


class GatedModel:
    """Predicts only when let through: the test decides when the model 'finishes'."""

    shape = SHAPE

    def __init__(self):
        self.gate = threading.Semaphore(0)
        self.calls = 0

    def predict(self, images):
        self.gate.acquire(timeout=10)
        self.calls += 1
        return Prediction(classes=np.zeros(len(images), int), probabilities=np.full((len(images), 10), 0.1, np.float32))


def frame(i):
    header, payload = frames.split(frames.image_frame(i, i, np.zeros(SHAPE, np.uint8)), 1 << 20)
    return header, payload


async def _session(drop: bool, window: int = 3):
    model = GatedModel()
    core = StreamCore(model, 1 << 20, window, drop)
    sent: list[frames.Reply] = []

    async def emit(reply):
        sent.append(reply)

    return core, model, core.session(emit), sent


def test_keep_policy_stops_reading_at_the_window():
    async def main():
        core, model, session, sent = await _session(drop=False)
        for i in range(3):
            assert await asyncio.wait_for(session.ready(), 1)
            await session.frame(*frame(i))
        with pytest.raises(asyncio.TimeoutError):  # full: the transport reads nothing more
            await asyncio.wait_for(session.ready(), 0.3)
        model.gate.release()
        assert await asyncio.wait_for(session.ready(), 5)  # one answered: room for one
        for _ in range(2):
            model.gate.release()
        await session.finish(5)
        core.close()
        return sent

    sent = asyncio.run(main())
    assert [r.frame_id for r in sent] == [0, 1, 2] and all(r.kind == frames.ANSWER for r in sent)


def test_drop_oldest_answers_the_oldest_waiting_frame_dropped():
    async def main():
        core, model, session, sent = await _session(drop=True)
        for i in range(6):  # 2 go to the model, the rest wait; the window (3) is exceeded three times
            assert await asyncio.wait_for(session.ready(), 1)
            await session.frame(*frame(i))
        await asyncio.sleep(0.1)
        for _ in range(6):
            model.gate.release()
        await session.finish(5)
        core.close()
        return sent, core.counters

    sent, counters = asyncio.run(main())
    dropped = [r.frame_id for r in sent if r.kind == frames.DROPPED]
    answered = [r.frame_id for r in sent if r.kind == frames.ANSWER]
    assert dropped == [2, 3, 4] and answered == [0, 1, 5]  # in the model: never dropped; the newest wins
    assert counters.dropped == 3


def test_a_bad_image_is_answered_and_counted_in_the_window():
    async def main():
        core, model, session, sent = await _session(drop=False)
        header, payload = frames.split(frames.image_frame(9, 0, np.zeros((2, 2, 3), np.uint8)), 1 << 20)
        await session.frame(header, payload)
        await session.finish(5)
        core.close()
        return sent

    (reply,) = asyncio.run(main())
    assert reply.kind == frames.ERROR and reply.code == frames.BAD_SHAPE and reply.frame_id == 9
