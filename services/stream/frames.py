"""The streaming wire format: versioned, length-prefixed binary frames (issue 11).

Every message on a stream, either way, is one frame: a fixed 32-byte header,
then ``length`` bytes of payload. Big-endian::

    offset size field
    0      2    magic       b"SB"
    2      1    version     1 (anything else is refused: no silent reinterpretation)
    3      1    kind        1 image, 2 answer, 3 error, 4 dropped
    4      1    encoding    0 raw (uint8 HxWxC, row-major), 1 JPEG; 0 for every kind but image
    5      1    flags       0 (reserved)
    6      8    frame_id    the sender's id; an answer, error or drop carries its image's id
    14     8    capture_ns  the camera's clock when the frame was taken; echoed unchanged in the
                            reply, so the client measures latency on its own clock alone
    22     2    height      image shape (0 for other kinds)
    24     2    width
    26     2    channels
    28     4    length      payload bytes that follow

Payloads: an image's pixels (raw or JPEG); an answer's
``!IIIiH`` (decode, queue and model time in microseconds, the class, n) then
n float32 probabilities; an error's ``!H`` code then a UTF-8 message; a drop's
nothing. The TCP and WebSocket servers carry these bytes as they are (one
WebSocket message is one frame); gRPC carries the same fields in
``services/stream/stream.proto`` and validates them here too.

Validation is strict and every failure is a :class:`FrameError` whose
``code`` says what was wrong and whose ``fatal`` says whether the stream can go
on (a bad header leaves the reader out of step with the frame boundaries, so
the connection is closed after the error frame; a bad image is answered and
the stream goes on).
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"SB"
VERSION = 1
HEADER = struct.Struct("!2sBBBBQQHHHI")
HEADER_SIZE = HEADER.size  # 32

IMAGE, ANSWER, ERROR, DROPPED = 1, 2, 3, 4
KINDS = {IMAGE: "image", ANSWER: "answer", ERROR: "error", DROPPED: "dropped"}
RAW, JPEG = 0, 1
ENCODINGS = {RAW: "raw", JPEG: "jpeg"}
ENCODING_IDS = {name: i for i, name in ENCODINGS.items()}

_ANSWER = struct.Struct("!IIIiH")
_ERROR = struct.Struct("!H")
_MAX_MESSAGE = 300

# Error codes: fatal ones break the framing, the connection is closed after saying so.
BAD_MAGIC, BAD_VERSION, BAD_KIND, BAD_ENCODING, TOO_LARGE, TRUNCATED = 1, 2, 3, 4, 5, 6
BAD_SHAPE, BAD_IMAGE, MODEL_FAILED, OVERLOADED = 10, 11, 12, 13
FATAL = {BAD_MAGIC, BAD_VERSION, BAD_KIND, BAD_ENCODING, TOO_LARGE, TRUNCATED}
CODE_NAMES = {BAD_MAGIC: "bad-magic", BAD_VERSION: "unknown-version", BAD_KIND: "bad-kind",
              BAD_ENCODING: "unknown-encoding", TOO_LARGE: "too-large", TRUNCATED: "truncated",
              BAD_SHAPE: "wrong-shape", BAD_IMAGE: "bad-image", MODEL_FAILED: "model-failed",
              OVERLOADED: "overloaded"}


class FrameError(ValueError):
    """A frame that cannot be accepted; ``frame_id`` when the header got that far."""

    def __init__(self, code: int, message: str, frame_id: int = 0, capture_ns: int = 0):
        super().__init__(message)
        self.code, self.message, self.frame_id, self.capture_ns = code, message, frame_id, capture_ns

    @property
    def fatal(self) -> bool:
        return self.code in FATAL

    @property
    def name(self) -> str:
        return CODE_NAMES.get(self.code, str(self.code))


@dataclass(frozen=True)
class Header:
    kind: int
    frame_id: int
    capture_ns: int
    encoding: int = RAW
    shape: tuple[int, int, int] = (0, 0, 0)
    length: int = 0
    version: int = VERSION

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, self.version, self.kind, self.encoding, 0, self.frame_id, self.capture_ns,
                           *self.shape, self.length)


@dataclass(frozen=True)
class Reply:
    """What the server says about one frame, whatever the transport."""

    kind: int  # ANSWER, ERROR or DROPPED
    frame_id: int
    capture_ns: int
    cls: int = -1
    probabilities: np.ndarray | None = field(default=None, compare=False)
    decode_us: int = 0
    queue_us: int = 0
    model_us: int = 0
    code: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == ANSWER


# ------------------------------------------------------------------ header
def parse_header(buf: bytes, max_payload: int) -> Header:
    """The header at the start of ``buf`` (at least HEADER_SIZE bytes), checked; FrameError otherwise."""
    if len(buf) < HEADER_SIZE:
        raise FrameError(TRUNCATED, f"truncated header: {len(buf)} of {HEADER_SIZE} bytes")
    magic, version, kind, encoding, _flags, frame_id, capture_ns, h, w, c, length = HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise FrameError(BAD_MAGIC, f"not a servebench frame: starts with {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise FrameError(BAD_VERSION, f"unknown frame version {version}: this server speaks version {VERSION}",
                         frame_id, capture_ns)
    if kind not in KINDS:
        raise FrameError(BAD_KIND, f"unknown frame kind {kind}: expected one of {sorted(KINDS)}", frame_id, capture_ns)
    if kind == IMAGE and encoding not in ENCODINGS:
        raise FrameError(BAD_ENCODING, f"unknown encoding {encoding}: 0 (raw) or 1 (jpeg)", frame_id, capture_ns)
    if length > max_payload:
        raise FrameError(TOO_LARGE, f"frame payload of {length} bytes is over the limit of {max_payload} bytes "
                                    f"(SB_STREAM_MAX_FRAME_KB)", frame_id, capture_ns)
    return Header(kind, frame_id, capture_ns, encoding, (h, w, c), length, version)


def check_image_header(header: Header, expected_shape: tuple[int, int, int]) -> None:
    """An image frame for this model: kind image, the model's shape (not fatal: the payload is skipped)."""
    if header.kind != IMAGE:
        raise FrameError(BAD_KIND, f"a client sends image frames (kind {IMAGE}), not {KINDS[header.kind]}",
                         header.frame_id, header.capture_ns)
    if tuple(header.shape) != tuple(expected_shape):
        raise FrameError(BAD_SHAPE, f"wrong shape {'x'.join(map(str, header.shape))}: this model takes "
                                    f"{'x'.join(map(str, expected_shape))}", header.frame_id, header.capture_ns)
    if header.encoding == RAW and header.length != int(np.prod(expected_shape)):
        raise FrameError(BAD_IMAGE, f"raw {'x'.join(map(str, expected_shape))} image is {int(np.prod(expected_shape))} "
                                    f"bytes, the frame carries {header.length}", header.frame_id, header.capture_ns)


def split(buf: bytes, max_payload: int) -> tuple[Header, bytes]:
    """One whole frame (a WebSocket message): its header and payload; FrameError when it is not exactly one."""
    header = parse_header(buf, max_payload)
    got = len(buf) - HEADER_SIZE
    if got < header.length:
        raise FrameError(TRUNCATED, f"truncated frame: {got} of {header.length} payload bytes",
                         header.frame_id, header.capture_ns)
    if got > header.length:
        raise FrameError(TRUNCATED, f"{got - header.length} bytes after the frame's {header.length}-byte payload",
                         header.frame_id, header.capture_ns)
    return header, buf[HEADER_SIZE:]


# ------------------------------------------------------------------ images
def encode_image(image: np.ndarray, encoding: str = "raw", quality: int = 90) -> bytes:
    """A camera's bytes for one HxWxC uint8 image."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if encoding == "raw":
        return image.tobytes()
    if encoding == "jpeg":
        from PIL import Image

        out = io.BytesIO()
        Image.fromarray(image).save(out, format="JPEG", quality=int(quality))
        return out.getvalue()
    raise ValueError(f"unknown encoding {encoding!r}: raw or jpeg")


def image_frame(frame_id: int, capture_ns: int, image: np.ndarray, encoding: str = "raw",
                quality: int = 90) -> bytes:
    payload = encode_image(image, encoding, quality)
    h, w, c = image.shape
    return Header(IMAGE, frame_id, capture_ns, ENCODING_IDS[encoding], (h, w, c), len(payload)).pack() + payload


def decode_image(header: Header, payload: bytes) -> np.ndarray:
    """The HxWxC uint8 pixels of an image frame whose header passed :func:`check_image_header`."""
    h, w, c = header.shape
    if len(payload) != header.length:
        raise FrameError(TRUNCATED, f"truncated frame: {len(payload)} of {header.length} payload bytes",
                         header.frame_id, header.capture_ns)
    if header.encoding == RAW:
        return np.frombuffer(payload, np.uint8).reshape(h, w, c)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as im:
            if im.format != "JPEG":
                raise FrameError(BAD_IMAGE, f"payload is {im.format}, not JPEG", header.frame_id, header.capture_ns)
            im = im.convert("RGB") if c == 3 else im.convert("L")
            pixels = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise FrameError(BAD_IMAGE, f"payload is not a readable JPEG: {str(exc)[:120]}",
                         header.frame_id, header.capture_ns) from None
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], c)
    if pixels.shape != (h, w, c):
        raise FrameError(BAD_SHAPE, f"the JPEG is {'x'.join(map(str, pixels.shape))}, the header says "
                                    f"{h}x{w}x{c}", header.frame_id, header.capture_ns)
    return pixels


# ------------------------------------------------------------------ replies
def encode_reply(reply: Reply) -> bytes:
    if reply.kind == ANSWER:
        probs = np.asarray(reply.probabilities if reply.probabilities is not None else (), ">f4")
        payload = _ANSWER.pack(_us(reply.decode_us), _us(reply.queue_us), _us(reply.model_us), reply.cls,
                               len(probs)) + probs.tobytes()
    elif reply.kind == ERROR:
        payload = _ERROR.pack(reply.code) + reply.message.encode("utf-8")[:_MAX_MESSAGE]
    elif reply.kind == DROPPED:
        payload = b""
    else:
        raise ValueError(f"not a reply kind: {reply.kind}")
    return Header(reply.kind, reply.frame_id, reply.capture_ns, length=len(payload)).pack() + payload


def decode_reply(header: Header, payload: bytes) -> Reply:
    """A server's reply frame, checked (the client's side)."""
    if header.kind == ANSWER:
        if len(payload) < _ANSWER.size:
            raise FrameError(TRUNCATED, f"answer payload of {len(payload)} bytes is shorter than {_ANSWER.size}")
        decode_us, queue_us, model_us, cls, n = _ANSWER.unpack_from(payload)
        if len(payload) != _ANSWER.size + 4 * n:
            raise FrameError(TRUNCATED, f"answer says {n} probabilities, payload holds {len(payload) - _ANSWER.size} bytes")
        probs = np.frombuffer(payload, ">f4", count=n, offset=_ANSWER.size).astype(np.float32)
        return Reply(ANSWER, header.frame_id, header.capture_ns, cls, probs, decode_us, queue_us, model_us)
    if header.kind == ERROR:
        if len(payload) < _ERROR.size:
            raise FrameError(TRUNCATED, "error frame without its code")
        (code,) = _ERROR.unpack_from(payload)
        return Reply(ERROR, header.frame_id, header.capture_ns, code=code,
                     message=payload[_ERROR.size:].decode("utf-8", "replace"))
    if header.kind == DROPPED:
        return Reply(DROPPED, header.frame_id, header.capture_ns)
    raise FrameError(BAD_KIND, f"a server sends answers, errors or drops, not {KINDS[header.kind]}")


def error_reply(exc: FrameError) -> Reply:
    return Reply(ERROR, exc.frame_id, exc.capture_ns, code=exc.code, message=f"{exc.name}: {exc.message}")


def _us(value: float) -> int:
    return max(0, min(int(value), 0xFFFFFFFF))
