"""One piece of a partitioned model on the wire: its Keras configuration and weights, with a checksum.

A piece is what the offloading client uploads to the edge server, one after
another (issue 14): a sub-model between two layer boundaries where exactly one
tensor flows. Its bytes are::

    MAGIC (8 bytes) | header length (4 bytes, big-endian) | header (JSON)
    | configuration (JSON) | weights (the arrays' raw bytes, in order) | SHA-256 of everything before it

The header names the model, the piece's index and count, the tensor shapes at
its two ends, the configuration's length and each weight array's dtype and
shape. The trailing digest covers every byte before it, so a piece damaged
anywhere is refused by :func:`decode` with :class:`PieceError` before anything
is deserialised or built.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"SBPIECE1"
DIGEST = hashlib.sha256
DIGEST_BYTES = 32
_LEN = struct.Struct(">I")


class PieceError(ValueError):
    """A piece that cannot be used: damaged, truncated, or not a piece at all. The message says which."""


@dataclass
class Piece:
    model: str  # which model it is a piece of
    index: int  # 0-based position in the chain
    count: int  # pieces in the whole model
    config: dict  # keras.saving.serialize_keras_object(sub-model)
    weights: list[np.ndarray] = field(default_factory=list)
    input_shape: tuple = ()  # one example's shape at its input (no batch axis)
    output_shape: tuple = ()

    @property
    def label(self) -> str:
        return f"piece {self.index + 1}/{self.count} of {self.model}"

    def build(self):
        """A runnable Keras model: deserialise the configuration, load the weights (no warm-up here)."""
        import copy

        import keras

        # Deserialising consumes the dict it is given: a piece may be built more than once.
        model = keras.saving.deserialize_keras_object(copy.deepcopy(self.config))
        model.set_weights(self.weights)
        return model


def encode(piece: Piece) -> bytes:
    config = json.dumps(piece.config, separators=(",", ":")).encode()
    arrays = [np.ascontiguousarray(w) for w in piece.weights]
    header = json.dumps({
        "model": piece.model, "index": piece.index, "count": piece.count,
        "input_shape": list(piece.input_shape), "output_shape": list(piece.output_shape),
        "config_bytes": len(config),
        "weights": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays],
    }, separators=(",", ":")).encode()
    body = b"".join([MAGIC, _LEN.pack(len(header)), header, config, *(a.tobytes() for a in arrays)])
    return body + DIGEST(body).digest()


def peek(blob: bytes) -> dict:
    """The header alone, unverified (to say which piece a damaged blob claims to be); {} when unreadable."""
    try:
        (n,) = _LEN.unpack_from(blob, len(MAGIC))
        return json.loads(blob[len(MAGIC) + _LEN.size:len(MAGIC) + _LEN.size + n])
    except (struct.error, ValueError):
        return {}


def decode(blob: bytes) -> Piece:
    """The piece in ``blob``, after its checksum is verified; :class:`PieceError` says what is wrong."""
    claimed = peek(blob)
    name = (f"piece {claimed['index'] + 1}/{claimed['count']} of {claimed['model']}"
            if {"index", "count", "model"} <= set(claimed) and isinstance(claimed["index"], int)
            and isinstance(claimed["count"], int) else "piece")
    if len(blob) < len(MAGIC) + _LEN.size + DIGEST_BYTES or not blob.startswith(MAGIC):
        raise PieceError(f"not a model piece ({len(blob)} bytes, no {MAGIC.decode()} header)")
    body, digest = blob[:-DIGEST_BYTES], blob[-DIGEST_BYTES:]
    actual = DIGEST(body).digest()
    if actual != digest:
        raise PieceError(f"{name} is corrupt: SHA-256 {actual.hex()[:16]}... does not match the "
                         f"{digest.hex()[:16]}... it was sent with ({len(blob)} bytes); rejected, not built")
    try:
        head = claimed
        pos = len(MAGIC) + _LEN.size + _LEN.unpack_from(blob, len(MAGIC))[0]
        config = json.loads(body[pos:pos + head["config_bytes"]])
        pos += head["config_bytes"]
        weights = []
        for spec in head["weights"]:
            dtype = np.dtype(spec["dtype"])
            n = int(np.prod(spec["shape"], dtype=np.int64)) * dtype.itemsize
            if pos + n > len(body):
                raise PieceError(f"{name}: its weights run past its end")
            weights.append(np.frombuffer(body, dtype, int(np.prod(spec["shape"], dtype=np.int64)), pos)
                           .reshape(spec["shape"]).copy())
            pos += n
        if pos != len(body):
            raise PieceError(f"{name}: {len(body) - pos} bytes left over after its weights")
        return Piece(model=head["model"], index=head["index"], count=head["count"], config=config,
                     weights=weights, input_shape=tuple(head["input_shape"]),
                     output_shape=tuple(head["output_shape"]))
    except PieceError:
        raise
    except (KeyError, TypeError, ValueError, struct.error) as exc:
        raise PieceError(f"{name}: malformed header or configuration ({exc})") from None


# ------------------------------------------------------------------ a model's pieces in one file
_BLOB_LEN = struct.Struct(">Q")


def write_bundle(path, blobs: list[bytes]) -> None:
    """The encoded pieces of one model, in order, each behind its length (what the client uploads)."""
    with open(path, "wb") as f:
        for blob in blobs:
            f.write(_BLOB_LEN.pack(len(blob)))
            f.write(blob)


def read_bundle(path) -> list[bytes]:
    data = open(path, "rb").read()
    blobs, pos = [], 0
    while pos < len(data):
        (n,) = _BLOB_LEN.unpack_from(data, pos)
        blobs.append(data[pos + _BLOB_LEN.size:pos + _BLOB_LEN.size + n])
        pos += _BLOB_LEN.size + n
    return blobs
