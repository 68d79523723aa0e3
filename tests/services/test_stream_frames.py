"""The streaming frame format: round trips, and every malformed frame refused with a clear FrameError."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from services.stream import frames
from services.stream.frames import FrameError

pytestmark = pytest.mark.unit

LIMIT = 64 * 1024
SHAPE = (32, 32, 3)


def image(seed=0, shape=SHAPE):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_raw_round_trip_keeps_pixels_id_and_capture_time():
    im = image()
    buf = frames.image_frame(7, 123456789, im)
    header, payload = frames.split(buf, LIMIT)
    assert (header.kind, header.frame_id, header.capture_ns, header.shape) == (frames.IMAGE, 7, 123456789, SHAPE)
    frames.check_image_header(header, SHAPE)
    assert np.array_equal(frames.decode_image(header, payload), im)
    assert len(buf) == frames.HEADER_SIZE + im.size == 32 + 3072


def test_jpeg_round_trip_is_close_and_smaller_for_a_smooth_image():
    im = np.tile(np.linspace(0, 255, 416, dtype=np.uint8)[None, :, None], (416, 1, 3))
    buf = frames.image_frame(1, 0, im, "jpeg", quality=90)
    header, payload = frames.split(buf, 1 << 20)
    assert header.encoding == frames.JPEG and len(payload) < im.size / 10
    out = frames.decode_image(header, payload)
    assert out.shape == im.shape and np.abs(out.astype(int) - im).mean() < 3


@pytest.mark.parametrize("reply", [
    frames.Reply(frames.ANSWER, 5, 99, 3, np.linspace(0, 1, 10, dtype=np.float32), 10, 20, 30),
    frames.Reply(frames.ERROR, 6, 100, code=frames.BAD_SHAPE, message="wrong-shape: 1x1x3"),
    frames.Reply(frames.DROPPED, 7, 101),
])
def test_replies_round_trip(reply):
    buf = frames.encode_reply(reply)
    got = frames.decode_reply(*frames.split(buf, LIMIT))
    assert (got.kind, got.frame_id, got.capture_ns, got.cls, got.code, got.message) == \
           (reply.kind, reply.frame_id, reply.capture_ns, reply.cls, reply.code, reply.message)
    if reply.probabilities is not None:
        assert np.allclose(got.probabilities, reply.probabilities)
        assert (got.decode_us, got.queue_us, got.model_us) == (10, 20, 30)


def bad(buf, limit=LIMIT):
    with pytest.raises(FrameError) as info:
        frames.split(buf, limit)
    return info.value


def test_malformed_header_is_fatal_and_says_so():
    err = bad(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\0\0\0\0\0\0")
    assert err.code == frames.BAD_MAGIC and err.fatal and "not a servebench frame" in str(err)


def test_unknown_version_is_refused_by_number():
    buf = bytearray(frames.image_frame(1, 2, image()))
    buf[2] = 9
    err = bad(bytes(buf))
    assert err.code == frames.BAD_VERSION and err.fatal and "version 9" in str(err) and err.frame_id == 1


def test_frame_over_the_size_limit_is_refused_before_its_payload_is_read():
    header = frames.Header(frames.IMAGE, 3, 0, frames.RAW, SHAPE, LIMIT + 1).pack()
    err = bad(header)  # the header alone: the limit is checked first
    assert err.code == frames.TOO_LARGE and "over the limit" in str(err) and str(LIMIT) in str(err)


@pytest.mark.parametrize("cut", [0, 5, 31, 32, 100, 3103])
def test_truncated_frames(cut):
    err = bad(frames.image_frame(1, 2, image())[:cut])
    assert err.code == frames.TRUNCATED and "truncated" in str(err)


def test_bytes_after_the_payload_are_refused():
    err = bad(frames.image_frame(1, 2, image()) + b"x")
    assert err.code == frames.TRUNCATED and "after the frame" in str(err)


def test_unknown_kind_and_encoding():
    buf = bytearray(frames.image_frame(1, 2, image()))
    buf[3] = 77
    assert bad(bytes(buf)).code == frames.BAD_KIND
    buf = bytearray(frames.image_frame(1, 2, image()))
    buf[4] = 5
    assert bad(bytes(buf)).code == frames.BAD_ENCODING


def test_wrong_shape_is_not_fatal():
    header, _ = frames.split(frames.image_frame(4, 2, image(shape=(16, 16, 3))), LIMIT)
    with pytest.raises(FrameError) as info:
        frames.check_image_header(header, SHAPE)
    assert info.value.code == frames.BAD_SHAPE and not info.value.fatal and info.value.frame_id == 4
    assert "16x16x3" in str(info.value) and "32x32x3" in str(info.value)


def test_raw_size_that_does_not_match_the_shape():
    payload = bytes(100)
    header = frames.Header(frames.IMAGE, 1, 0, frames.RAW, SHAPE, len(payload))
    with pytest.raises(FrameError) as info:
        frames.check_image_header(header, SHAPE)
    assert info.value.code == frames.BAD_IMAGE and "3072" in str(info.value)


def test_a_payload_that_is_not_a_jpeg():
    payload = b"\xff\xd8 not really a jpeg"
    header = frames.Header(frames.IMAGE, 1, 0, frames.JPEG, SHAPE, len(payload))
    with pytest.raises(FrameError) as info:
        frames.decode_image(header, payload)
    assert info.value.code == frames.BAD_IMAGE and not info.value.fatal


def test_a_jpeg_of_another_size_than_its_header_says():
    payload = frames.encode_image(image(shape=(8, 8, 3)), "jpeg")
    header = frames.Header(frames.IMAGE, 1, 0, frames.JPEG, SHAPE, len(payload))
    with pytest.raises(FrameError) as info:
        frames.decode_image(header, payload)
    assert info.value.code == frames.BAD_SHAPE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_either_parse_or_raise_frame_error(buf):
    try:
        header, payload = frames.split(buf, LIMIT)
        if header.kind == frames.IMAGE:
            frames.check_image_header(header, SHAPE)
            frames.decode_image(header, payload)
    except FrameError as exc:
        assert exc.code in frames.CODE_NAMES and str(exc)
