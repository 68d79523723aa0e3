"""The streaming server with batching on (SB_BATCH_MAX_SIZE 8, a window of 8): every transport answers as the
model does in process, in frame order, its model calls run several frames at once (its /v1/info counters), and a
bad frame among good ones in one window fails alone."""
from __future__ import annotations

import socket

import numpy as np
import pytest

from services.stream import frames
from tests.conformance import STREAM_TRANSPORTS, stream_architectures
from bench.studies.streaming import client as sc
from tests.services.test_stream_server import info, read_reply, run_stream, running_server

pytestmark = pytest.mark.integration

BATCH = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory, SB_STREAM_WINDOW=str(BATCH), SB_BATCH_MAX_SIZE=str(BATCH),
                        SB_BATCH_TIMEOUT_MS="5") as s:
        yield s


@pytest.fixture(scope="module")
def camera(test_split):
    return sc.Camera(test_split.images[:48], test_split.labels[:48])


TRANSPORTS = list(dict.fromkeys(STREAM_TRANSPORTS[a.protocol] for a in stream_architectures()))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_answers_in_order_as_the_model_does_with_batched_calls(server, camera, core, transport):
    before = info(server)["counters"]
    rs = run_stream(server, transport, camera, window=BATCH)
    after = info(server)["counters"]
    expected = core.predict(camera.images)
    assert [r.kind for r in rs] == ["answer"] * len(rs)
    assert [r.frame_id for r in rs] == list(range(len(rs)))
    assert np.array_equal([r.cls for r in rs], expected.classes)
    assert np.allclose(np.stack([r.probabilities for r in rs]), expected.probabilities, atol=1e-5)
    calls, frames_run = (after[k] - before[k] for k in ("model_calls", "model_frames"))
    assert frames_run == len(rs) and calls < frames_run  # some calls ran more than one frame


def test_a_bad_frame_in_a_batched_window_fails_alone(server, camera, core):
    sock = socket.create_connection(("127.0.0.1", server["tcp"]), timeout=30)
    small = np.zeros((16, 16, 3), np.uint8)
    sock.sendall(b"".join(frames.image_frame(k, k, small if k == 3 else camera.images[k]) for k in range(BATCH)))
    replies = [read_reply(sock) for _ in range(BATCH)]
    sock.close()
    (bad,) = [r for r in replies if r.kind != frames.ANSWER]
    assert bad.kind == frames.ERROR and bad.code == frames.BAD_SHAPE and bad.frame_id == 3
    good = [r for r in replies if r.kind == frames.ANSWER]
    assert [r.frame_id for r in good] == [0, 1, 2, 4, 5, 6, 7]
    expected = core.predict(camera.images[:BATCH]).classes
    assert [r.cls for r in good] == [expected[r.frame_id] for r in good]
