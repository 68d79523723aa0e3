"""The edge-offloading wire protocol (issue 14): typed, length-prefixed messages on a TCP connection.

Every message is ``kind`` (4 ASCII bytes) | payload length (8 bytes, big-endian) | payload.

Upload connection (client -> server, in order): ``HELO`` {session, model, count, mode} answered by
``REDY`` {resume_from, built}; then ``PIEC`` (one piece, :mod:`bench.studies.offloading.pieces`) per piece; the
server sends ``BULT`` {built, ...} whenever its built prefix grows and ``ERRR`` {error} when it
refuses something; ``DONE`` {} says every piece was sent, answered by ``CMPL`` {built, ...} once
all are built. Query connection: ``QURY`` (a tensor) answered by ``RSLT`` (the tensor after the
server's built prefix, with how many pieces it ran). ``STAT`` {} is answered by ``STAT`` {state}.

Tensors travel as header length (4 bytes) | JSON header {dtype, shape, ...} | raw bytes.
"""
from __future__ import annotations

import json
import socket
import struct

import numpy as np

HEADER = struct.Struct(">4sQ")
_LEN = struct.Struct(">I")
MAX_MESSAGE = 1 << 30  # a piece of the largest model here is under 200 MB
HELLO, READY, PIECE, BUILT, DONE, COMPLETE, ERROR, QUERY, RESULT, STATUS = (
    b"HELO", b"REDY", b"PIEC", b"BULT", b"DONE", b"CMPL", b"ERRR", b"QURY", b"RSLT", b"STAT")
KINDS = {HELLO, READY, PIECE, BUILT, DONE, COMPLETE, ERROR, QUERY, RESULT, STATUS}


class ProtocolError(ValueError):
    """A message that is not one of ours."""


class Dropped(ConnectionError):
    """The peer went away; ``got`` of ``expected`` payload bytes of the message in progress had arrived."""

    def __init__(self, message: str, kind: bytes | None = None, got: int = 0, expected: int = 0):
        super().__init__(message)
        self.kind, self.got, self.expected = kind, got, expected


def send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> int:
    """Send one message; the bytes it took on the wire."""
    head = HEADER.pack(kind, len(payload))
    sock.sendall(head + payload if len(payload) < 1 << 16 else head)
    if len(payload) >= 1 << 16:
        sock.sendall(payload)
    return len(head) + len(payload)


def send_json(sock: socket.socket, kind: bytes, doc: dict) -> int:
    return send(sock, kind, json.dumps(doc).encode())


def _exactly(sock: socket.socket, n: int, kind: bytes | None) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], min(n - got, 1 << 20))
        except (ConnectionResetError, ConnectionAbortedError):
            # A peer that closes with our messages unread resets instead of closing: gone all the same.
            k = 0
        if k == 0:
            raise Dropped(f"connection closed after {got} of {n} bytes" + (f" of a {kind.decode()} message"
                                                                          if kind else ""), kind, got, n)
        got += k
    return bytes(buf)


def recv(sock: socket.socket) -> tuple[bytes, bytes]:
    """The next message (kind, payload); :class:`Dropped` when the connection ends, even mid-message."""
    try:
        kind, n = HEADER.unpack(_exactly(sock, HEADER.size, None))
    except Dropped as exc:
        if exc.got == 0:
            raise Dropped("connection closed") from None
        raise
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r}")
    if n > MAX_MESSAGE:
        raise ProtocolError(f"a {kind.decode()} message of {n} bytes is over the {MAX_MESSAGE}-byte limit")
    return kind, _exactly(sock, n, kind)


def parse_json(kind: bytes, payload: bytes) -> dict:
    try:
        doc = json.loads(payload or b"{}")
    except ValueError as exc:
        raise ProtocolError(f"{kind.decode()}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"{kind.decode()}: expected a JSON object")
    return doc


def encode_tensor(x: np.ndarray, **meta) -> bytes:
    x = np.ascontiguousarray(x)
    head = json.dumps({**meta, "dtype": x.dtype.str, "shape": list(x.shape)}).encode()
    return _LEN.pack(len(head)) + head + x.tobytes()


def decode_tensor(payload: bytes) -> tuple[np.ndarray, dict]:
    try:
        (n,) = _LEN.unpack_from(payload)
        meta = json.loads(payload[_LEN.size:_LEN.size + n])
        dtype, shape = np.dtype(meta.pop("dtype")), tuple(meta.pop("shape"))
        data = payload[_LEN.size + n:]
        if len(data) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise ValueError(f"{len(data)} bytes for a {dtype} tensor of shape {shape}")
        return np.frombuffer(data, dtype).reshape(shape), meta
    except (struct.error, KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"not a tensor: {exc}") from None
