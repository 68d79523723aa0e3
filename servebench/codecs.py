"""Request decoding and response encoding shared by every server and client.

Request formats (all carry uint8 images of shape [batch, 32, 32, 3]):

- ``json``: TF Serving's row format, ``{"instances": [image, ...]}`` where each
  image is a 32x32x3 nested list of integers 0-255. Content type application/json.
- ``b64``: ``{"b64": "<base64 of the raw uint8 bytes>", "shape": [n, 32, 32, 3]}``.
  Content type application/json.
- ``raw``: the raw uint8 bytes, C order; the batch size is the body length
  divided by 3072. Content type application/octet-stream.
- ``npy``: a NumPy ``.npy`` file of a uint8 array. Content type application/x-npy.

Every problem raises :class:`CodecError`, which carries the HTTP status a
server should answer with and a message that names the problem.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
from dataclasses import dataclass

import numpy as np

IMAGE_SHAPE = (32, 32, 3)
IMAGE_BYTES = 32 * 32 * 3
DEFAULT_MAX_BATCH = 256
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

JSON = "application/json"
OCTET = "application/octet-stream"
NPY = "application/x-npy"
CODECS = ("json", "b64", "raw", "npy")
CONTENT_TYPES = {"json": JSON, "b64": JSON, "raw": OCTET, "npy": NPY}


class CodecError(ValueError):
    """A request that cannot be turned into a valid image batch."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


# ---------------------------------------------------------------- decoding
def _check_batch(images: np.ndarray, max_batch: int) -> np.ndarray:
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise CodecError(f"wrong shape {list(images.shape)}: expected [batch, 32, 32, 3]")
    n = images.shape[0]
    if n == 0:
        raise CodecError("empty batch: send at least one image")
    if n > max_batch:
        raise CodecError(f"batch too large: {n} images, the limit is {max_batch}", status=413)
    return images


def _from_instances(instances, max_batch: int) -> np.ndarray:
    if not isinstance(instances, list):
        raise CodecError('"instances" must be a list of 32x32x3 images')
    if len(instances) == 0:
        raise CodecError("empty batch: send at least one image")
    if len(instances) > max_batch:
        raise CodecError(f"batch too large: {len(instances)} images, the limit is {max_batch}", status=413)
    try:
        # Let numpy infer the dtype, so that floats, bools and out-of-range values can be named.
        arr = np.asarray(instances)
    except ValueError as exc:  # ragged nesting
        raise CodecError(f"wrong shape: instances are not a regular array ({exc})") from None
    if arr.dtype == object or arr.dtype.kind in "US":
        raise CodecError("wrong dtype: pixel values must be integers 0-255")
    if arr.dtype.kind == "b":
        raise CodecError("wrong dtype: pixel values must be integers 0-255, not booleans")
    if arr.dtype.kind == "f":
        raise CodecError("wrong dtype: pixel values must be integers 0-255, not floats")
    if arr.ndim != 4 or arr.shape[1:] != IMAGE_SHAPE:
        raise CodecError(f"wrong shape {list(arr.shape)}: expected [batch, 32, 32, 3]")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise CodecError(f"value out of range: pixel values must be 0-255, got {int(arr.min())}..{int(arr.max())}")
    return arr.astype(np.uint8)


def _from_b64(doc: dict, max_batch: int) -> np.ndarray:
    shape = doc.get("shape")
    if not (isinstance(shape, list) and len(shape) in (3, 4) and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)):
        raise CodecError('"shape" must be [batch, 32, 32, 3] alongside "b64"')
    if doc.get("dtype", "uint8") != "uint8":
        raise CodecError(f'wrong dtype {doc.get("dtype")!r}: only uint8 is accepted')
    if not isinstance(doc["b64"], str):
        raise CodecError('"b64" must be a base64 string')
    try:
        raw = base64.b64decode(doc["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise CodecError('malformed base64 in "b64"') from None
    if any(d < 0 for d in shape):
        raise CodecError(f"wrong shape {shape}: expected [batch, 32, 32, 3]")
    expected = math.prod(shape)  # exact: np.prod wraps around for huge shapes, then reshape fails
    if len(raw) != expected:
        raise CodecError(f"base64 payload is {len(raw)} bytes but shape {shape} needs {expected}")
    return _check_batch(np.frombuffer(raw, dtype=np.uint8).reshape(shape), max_batch)


def _holds_bool(instances) -> bool:
    stack = [instances]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool):
            return True
    return False


def decode_json(body: bytes, max_batch: int = DEFAULT_MAX_BATCH) -> np.ndarray:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CodecError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CodecError('JSON body must be an object with "instances" or "b64"')
    if "instances" in doc:
        images = _from_instances(doc["instances"], max_batch)
        # numpy reads [1, true] as [1, 1]; walk the lists only when the body spells a boolean
        if (b"true" in body or b"false" in body) and _holds_bool(doc["instances"]):
            raise CodecError("wrong dtype: pixel values must be integers 0-255, not booleans")
        return images
    if "b64" in doc:
        return _from_b64(doc, max_batch)
    raise CodecError('JSON body needs "instances" (TF Serving row format) or "b64" with "shape"')


def decode_raw(body: bytes, max_batch: int = DEFAULT_MAX_BATCH) -> np.ndarray:
    if len(body) == 0:
        raise CodecError("empty batch: send at least one image")
    if len(body) % IMAGE_BYTES:
        raise CodecError(f"raw body is {len(body)} bytes, not a multiple of {IMAGE_BYTES} (one 32x32x3 uint8 image)")
    n = len(body) // IMAGE_BYTES
    if n > max_batch:
        raise CodecError(f"batch too large: {n} images, the limit is {max_batch}", status=413)
    return np.frombuffer(body, dtype=np.uint8).reshape(n, *IMAGE_SHAPE)


def decode_npy(body: bytes, max_batch: int = DEFAULT_MAX_BATCH) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad header
        raise CodecError(f"malformed .npy body: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise CodecError("malformed .npy body: expected one array")
    if arr.dtype != np.uint8:
        raise CodecError(f"wrong dtype {arr.dtype}: only uint8 is accepted")
    return _check_batch(arr, max_batch)


def decode(body: bytes, content_type: str | None, max_batch: int = DEFAULT_MAX_BATCH) -> np.ndarray:
    """Turn a request body into a uint8 batch [n, 32, 32, 3], or raise CodecError."""
    kind = media_type(content_type)
    if kind == JSON:
        return decode_json(body, max_batch)
    if kind == OCTET:
        return decode_raw(body, max_batch)
    if kind in (NPY, "application/npy"):
        return decode_npy(body, max_batch)
    raise CodecError(
        f"unsupported content type {kind or '(none)'!r}: use {JSON}, {OCTET} or {NPY}", status=415
    )


# ---------------------------------------------------------------- encoding
def encode(images: np.ndarray, codec: str) -> tuple[bytes, str]:
    """A request body and its content type for a uint8 batch (client side)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim == 3:
        images = images[np.newaxis]
    if codec == "json":
        body = json.dumps({"instances": images.tolist()}, separators=(",", ":")).encode()
    elif codec == "b64":
        body = json.dumps(
            {"b64": base64.b64encode(images.tobytes()).decode("ascii"), "shape": list(images.shape)},
            separators=(",", ":"),
        ).encode()
    elif codec == "raw":
        body = images.tobytes()
    elif codec == "npy":
        buf = io.BytesIO()
        np.save(buf, images, allow_pickle=False)
        body = buf.getvalue()
    else:
        raise ValueError(f"unknown codec {codec!r}: choose one of {', '.join(CODECS)}")
    return body, CONTENT_TYPES[codec]


@dataclass(frozen=True)
class Prediction:
    classes: np.ndarray  # int [n]
    probabilities: np.ndarray  # float32 [n, 10]


def encode_predictions(pred: Prediction, model: dict | None = None) -> bytes:
    """The one response body every architecture returns."""
    doc = {
        "predictions": [
            {"class_id": int(c), "class_name": CLASS_NAMES[int(c)], "probabilities": [round(float(p), 6) for p in probs]}
            for c, probs in zip(pred.classes, pred.probabilities)
        ]
    }
    if model:
        doc["model"] = model
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_predictions(body: bytes | str) -> Prediction:
    """Client side: parse a response body back into arrays."""
    doc = json.loads(body)
    preds = doc["predictions"]
    return Prediction(
        classes=np.array([p["class_id"] for p in preds], dtype=np.int64),
        probabilities=np.array([p["probabilities"] for p in preds], dtype=np.float32),
    )


def error_body(message: str, **extra) -> bytes:
    return json.dumps({"error": message, **extra}).encode()
