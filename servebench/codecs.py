"""Request decoding and response encoding shared by every server and client.

Request formats (all carry uint8 images of shape [batch, H, W, C], the image
model's shape from its card; the default model's is [batch, 32, 32, 3]):

- ``json``: TF Serving's row format, ``{"instances": [image, ...]}`` where each
  image is a 32x32x3 nested list of integers 0-255. Content type application/json.
- ``b64``: ``{"b64": "<base64 of the raw uint8 bytes>", "shape": [n, 32, 32, 3]}``.
  Content type application/json.
- ``raw``: the raw uint8 bytes, C order; the batch size is the body length
  divided by 3072. Content type application/octet-stream.
- ``npy``: a NumPy ``.npy`` file of a uint8 array. Content type application/x-npy.

Every problem raises :class:`CodecError`, which carries the HTTP status a
server should answer with (4xx) and a message that names the problem.
:func:`decode` is total: any bytes and any content type give either a uint8
batch [n, 32, 32, 3] with 1 <= n <= max_batch or a CodecError, never another
exception. Declared shapes (b64 ``shape``, the .npy header) are checked before
anything is reshaped or allocated.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import logging

import numpy as np
import orjson

from servebench.modelcard import ModelCard, TensorSpec
from servebench.types import CLASS_NAMES, IMAGE_SHAPE, MODEL_NAME, Prediction

log = logging.getLogger(__name__)
IMAGE_BYTES = 32 * 32 * 3
DEFAULT_MAX_BATCH = 256

# The default model's card (the tests hold its tensors and class names to modelcard.read_card's), for the
# callers that name no card. Its outputs are in Triton's config's order; read_card's are by name (the
# protocols answer by name, so either order serves).
CIFAR10_CARD = ModelCard(
    name=MODEL_NAME, version=1, format="savedmodel", source="models/cifar10_cnn/1",
    inputs=(TensorSpec("images", "uint8", (None, *IMAGE_SHAPE)),),
    outputs=(TensorSpec("probabilities", "float32", (None, len(CLASS_NAMES))), TensorSpec("classes", "int64", (None,))),
    class_names=CLASS_NAMES, data="cifar10",
)


def _bytes(image) -> int:
    size = 1
    for d in image:
        size *= d
    return size

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


def media_type(content_type: str | bytes | None) -> str:
    if isinstance(content_type, (bytes, bytearray)):  # a raw header value: HTTP headers are latin-1
        content_type = bytes(content_type).decode("latin-1")
    return (content_type or "").split(";", 1)[0].strip().lower()


# ---------------------------------------------------------------- decoding
_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
    # 3.0 differs from 2.0 only in a UTF-8 header; a uint8 header is ASCII, so 2.0's reader fits.
    (3, 0): np.lib.format.read_array_header_2_0,
}
_NO_BAD_PIXEL = object()


def _show(value, limit: int = 60) -> str:
    """A short repr for messages: hostile values can be huge or unprintable."""
    try:
        text = repr(value)
    except Exception:  # e.g. an int over Python's digit limit
        text = f"<{type(value).__name__}>"
    return _clip(text, limit)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _dims(image) -> str:
    return "[batch, " + ", ".join(str(d) for d in image) + "]"


def _check_batch(images: np.ndarray, max_batch: int, image=IMAGE_SHAPE) -> np.ndarray:
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.ndim != 4 or images.shape[1:] != tuple(image):
        raise CodecError(f"wrong shape {list(images.shape)}: expected {_dims(image)}")
    n = images.shape[0]
    if n == 0:
        raise CodecError("empty batch: send at least one image")
    if n > max_batch:
        raise CodecError(f"batch too large: {n} images, the limit is {max_batch}", status=413)
    if images.dtype != np.uint8:
        raise CodecError(f"wrong dtype {images.dtype}: only uint8 is accepted")
    return images


def _batch_size(shape, max_batch: int, image=IMAGE_SHAPE) -> int:
    """The batch size a declared shape (list or tuple of ints) asks for, checked before any
    bytes are reshaped or allocated: only [n, H, W, C] or [H, W, C] with 1 <= n <= max_batch."""
    declared = list(shape)
    shape = tuple(declared)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[1:] != tuple(image) or shape[0] < 0:
        raise CodecError(f"wrong shape {_show(declared, 120)}: expected {_dims(image)}")
    n = shape[0]
    if n == 0:
        raise CodecError("empty batch: send at least one image")
    if n > max_batch:
        raise CodecError(f"batch too large: {_show(n)} images, the limit is {max_batch}", status=413)
    return n


def _first_bad_pixel(instances):
    """The first leaf that is not an int 0-255, else _NO_BAD_PIXEL (walked only when something is wrong or a body spells a boolean)."""
    stack = [instances]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 255:
            return item
    return _NO_BAD_PIXEL


_KIND_NAMES = {bool: "booleans", float: "floats", str: "strings", dict: "objects", type(None): "null"}


def _bad_pixel_error(item) -> CodecError:
    if isinstance(item, int) and not isinstance(item, bool):
        return CodecError(f"value out of range: pixel values must be 0-255, got {_show(item)}")
    kind = _KIND_NAMES.get(type(item), type(item).__name__)
    return CodecError(f"wrong dtype: pixel values must be integers 0-255, not {kind}")


def _from_instances(instances, max_batch: int, image=IMAGE_SHAPE) -> np.ndarray:
    hwc = "x".join(str(d) for d in image)
    if not isinstance(instances, list):
        raise CodecError(f'"instances" must be a list of {hwc} images')
    if len(instances) == 0:
        raise CodecError("empty batch: send at least one image")
    if len(instances) > max_batch:
        raise CodecError(f"batch too large: {len(instances)} images, the limit is {max_batch}", status=413)
    try:
        # Let numpy infer the dtype, so that floats, bools and out-of-range values can be named.
        arr = np.asarray(instances)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, or a value numpy cannot hold
        raise CodecError(f"wrong shape: instances are not a regular array of {hwc} images") from None
    if arr.ndim != 4 or arr.shape[1:] != tuple(image):
        raise CodecError(f"wrong shape {list(arr.shape)}: expected {_dims(image)}")
    if arr.dtype.kind not in "iu":
        # Floats, bools, strings, nulls, objects, ints beyond int64 or an int64/uint64 mix (which
        # numpy turns into floats): walk the lists (at most max_batch images) to name the culprit.
        bad = _first_bad_pixel(instances)
        if bad is _NO_BAD_PIXEL:
            raise CodecError(f"wrong dtype {arr.dtype}: pixel values must be integers 0-255")
        raise _bad_pixel_error(bad)
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high > 255:
        raise CodecError(f"value out of range: pixel values must be 0-255, got {low}..{high}")
    return arr.astype(np.uint8)


def _from_b64(doc: dict, max_batch: int, image=IMAGE_SHAPE) -> np.ndarray:
    shape = doc.get("shape")
    # type() is int excludes bools; floats, strings and nulls are refused here too.
    if not (isinstance(shape, list) and len(shape) in (3, 4) and all(type(d) is int for d in shape)):
        raise CodecError(f'"shape" must be {_dims(image)} alongside "b64"')
    dtype = doc.get("dtype", "uint8")
    if not (isinstance(dtype, str) and dtype == "uint8"):
        raise CodecError(f"wrong dtype {_show(dtype)}: only uint8 is accepted")
    if not isinstance(doc["b64"], str):
        raise CodecError('"b64" must be a base64 string')
    # Before decoding or reshaping: [0, 2**70, 32, 3] has 0 bytes, so a length check alone passes it.
    n = _batch_size(shape, max_batch, image)
    try:
        raw = base64.b64decode(doc["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise CodecError('malformed base64 in "b64"') from None
    expected = n * _bytes(image)
    if len(raw) != expected:
        raise CodecError(f"base64 payload is {len(raw)} bytes but shape {shape} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(n, *image)


def _refuse_constant(name: str):
    raise CodecError(f"malformed JSON: {name} is not a number (JSON has no NaN or Infinity)")


def _unique_keys(pairs: list) -> dict:
    # One call per JSON object (a valid body has one), so this costs nothing measurable.
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise CodecError(f"malformed JSON: duplicate key {_show(key)}")
            seen.add(key)
    return doc


def _quotes(doc) -> int:
    """Quote characters the JSON text of ``doc`` holds at least: two per key and per string, counted
    through objects and lists of objects or strings (a list of numbers or lists is not walked)."""
    if isinstance(doc, dict):
        return sum(2 + _quotes(value) for value in doc.values())
    if isinstance(doc, str):
        return 2
    if isinstance(doc, list) and doc and isinstance(doc[0], (dict, str)):
        return sum(_quotes(item) for item in doc)
    return 0


# Twenty digits in a row (after every digit is made a 0): a bytes search, many times faster than a regex.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_INTEGER = b"0" * 20


def load_json(body: bytes):
    """A request's JSON document, strictly: UTF-8 only, no duplicate keys, no NaN or Infinity.

    Shared by every protocol's decoder. UTF-8 only (RFC 8259): json.loads also takes
    UTF-16 and UTF-32 bytes, in which the scans for boolean pixels (b"true") find nothing.
    orjson parses first (a few times faster); its document is taken when nothing it does
    differently can be in play: no escapes, no integer beyond 64 bits (orjson makes it a float),
    and every quote in the text accounted for, so no duplicate key was dropped. Anything else,
    errors included, goes through the json module, whose hooks name the problem.
    """
    data = bytes(body)
    try:
        doc = orjson.loads(data)
        if (b"\\" not in data and _LONG_INTEGER not in data.translate(_DIGITS_TO_ZERO)
                and data.count(b'"') == _quotes(doc)):
            return doc
    except (orjson.JSONDecodeError, RecursionError):
        pass
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except RecursionError:  # the C scanner stops at the interpreter's recursion limit
        raise CodecError("malformed JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:  # CodecError from the hooks is a ValueError too
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"malformed JSON: {_clip(str(exc))}") from None


def decode_json(body: bytes, max_batch: int = DEFAULT_MAX_BATCH, image=IMAGE_SHAPE) -> np.ndarray:
    doc = load_json(body)
    if not isinstance(doc, dict):
        raise CodecError('JSON body must be an object with "instances" or "b64"')
    if "instances" in doc:
        images = _from_instances(doc["instances"], max_batch, image)
        # numpy reads [1, true] as [1, 1]; walk the lists only when the body spells a boolean
        if b"true" in body or b"false" in body:
            bad = _first_bad_pixel(doc["instances"])
            if bad is not _NO_BAD_PIXEL:
                raise _bad_pixel_error(bad)
        return images
    if "b64" in doc:
        try:
            return _from_b64(doc, max_batch, image)
        except CodecError:
            raise
        except Exception as exc:  # name the codec: both share application/json
            raise CodecError(f"malformed b64 body: {type(exc).__name__}") from None
    raise CodecError('JSON body needs "instances" (TF Serving row format) or "b64" with "shape"')


def decode_raw(body: bytes, max_batch: int = DEFAULT_MAX_BATCH, image=IMAGE_SHAPE) -> np.ndarray:
    size = _bytes(image)
    if len(body) == 0:
        raise CodecError("empty batch: send at least one image")
    if len(body) % size:
        hwc = "x".join(str(d) for d in image)
        raise CodecError(f"raw body is {len(body)} bytes, not a multiple of {size} (one {hwc} uint8 image)")
    n = len(body) // size
    if n > max_batch:
        raise CodecError(f"batch too large: {n} images, the limit is {max_batch}", status=413)
    return np.frombuffer(body, dtype=np.uint8).reshape(n, *image)


def decode_npy(body: bytes, max_batch: int = DEFAULT_MAX_BATCH, image=IMAGE_SHAPE) -> np.ndarray:
    # The header is read and checked here rather than by np.load, which allocates whatever
    # shape the header declares before it finds the data missing.
    if bytes(body[:4]) == b"PK\x03\x04":
        raise CodecError("malformed .npy body: expected one array, got an .npz archive")
    fp = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(fp)
        reader = _NPY_HEADER_READERS.get(version)
        if reader is None:
            raise ValueError(f"unknown .npy format version {version}")
        shape, fortran_order, dtype = reader(fp)
    except Exception as exc:  # numpy raises ValueError, RecursionError, ... for a bad header
        raise CodecError(f"malformed .npy body: {_clip(str(exc))}") from None
    if dtype.hasobject:
        raise CodecError("malformed .npy body: object arrays need pickle, which is refused; only uint8 is accepted")
    if dtype != np.uint8:
        raise CodecError(f"wrong dtype {_clip(str(dtype), 80)} in the .npy body: only uint8 is accepted")
    n = _batch_size(shape, max_batch, image)
    offset = fp.tell()
    expected = n * _bytes(image)
    if len(body) - offset != expected:
        raise CodecError(f"malformed .npy body: data is {len(body) - offset} bytes but shape {list(shape)} needs {expected}")
    flat = np.frombuffer(body, dtype=np.uint8, offset=offset)
    if fortran_order:
        return flat.reshape(tuple(image)[::-1] + (n,)).transpose()
    return flat.reshape(n, *image)


def decode(body: bytes, content_type: str | None, max_batch: int = DEFAULT_MAX_BATCH,
           image: tuple[int, int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Turn a request body into a uint8 batch [n, *image] (the card's ``image_shape``), or raise CodecError.

    Total: any bytes and any content type give one or the other, never another exception.
    """
    try:
        kind = media_type(content_type)
    except Exception:  # not text at all
        kind = ""
    if kind == JSON:
        decoder, name = decode_json, "JSON"
    elif kind == OCTET:
        decoder, name = decode_raw, "raw"
    elif kind in (NPY, "application/npy"):
        decoder, name = decode_npy, ".npy"
    else:
        raise CodecError(
            f"unsupported content type {_show(kind or '(none)', 80)}: use {JSON}, {OCTET} or {NPY}", status=415
        )
    try:
        # Constant-time check of the contract, whatever a decoder returned.
        return _check_batch(decoder(body, max_batch, image), max_batch, image)
    except CodecError:
        raise
    except Exception as exc:  # a case no decoder foresaw is still the client's bad body, not a 500
        log.warning("unexpected %s decoding a %s body", type(exc).__name__, name, exc_info=True)
        raise CodecError(f"malformed {name} body: {type(exc).__name__}") from None


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


def encode_predictions(pred: Prediction, model: dict | None = None, details: dict | None = None,
                       class_names: tuple[str, ...] | None = CLASS_NAMES) -> bytes:
    """The one response body every architecture returns (``details``: top-level additions, e.g. the ensemble's).

    ``class_names``: the card's; a classifier without them answers class ids only.
    """
    def row(c, probs) -> dict:
        named = {"class_name": class_names[c]} if class_names and 0 <= c < len(class_names) else {}
        return {"class_id": c, **named, "probabilities": [round(float(p), 6) for p in probs]}

    doc = {"predictions": [row(int(c), probs) for c, probs in zip(pred.classes, pred.probabilities)]}
    if model:
        doc["model"] = model
    if details:
        doc.update(details)
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_outputs(outputs: dict, card: ModelCard, model: dict | None = None, details: dict | None = None) -> bytes:
    """The v1 body of an image model that is not a classifier: each row's outputs by name."""
    names = [spec.name for spec in card.outputs if spec.name in outputs]
    lists = {name: np.asarray(outputs[name]).tolist() for name in names}
    n = len(lists[names[0]]) if names else 0
    doc: dict = {"predictions": [{name: lists[name][i] for name in names} for i in range(n)]}
    if model:
        doc["model"] = model
    if details:
        doc.update(details)
    return json.dumps(doc, separators=(",", ":")).encode()


def classifier_prediction(outputs: dict, card: ModelCard) -> Prediction:
    """A classifier's answer from its outputs: the card's probabilities, and ``classes`` or else their argmax."""
    probs = np.asarray(outputs[card.probabilities.name], dtype=np.float32)
    classes = outputs.get("classes")
    if classes is None:
        classes = probs.argmax(axis=1)
    classes = np.asarray(classes)
    if classes.ndim == 2 and classes.shape[1] == 1:  # a batched scalar, as Triton answers it
        classes = classes[:, 0]
    return Prediction(classes=classes.astype(np.int64), probabilities=probs)


def decode_predictions(body: bytes | str) -> Prediction:
    """Client side: parse a response body back into arrays."""
    doc = json.loads(body)
    preds = doc["predictions"]
    return Prediction(
        classes=np.array([p["class_id"] for p in preds], dtype=np.int64),
        probabilities=np.array([p["probabilities"] for p in preds], dtype=np.float32),
    )


def decode_classes(body: bytes | str) -> np.ndarray:
    """Client side: only the predicted classes of a response body (what an answer check needs)."""
    return np.array([p["class_id"] for p in json.loads(body)["predictions"]], dtype=np.int64)


def error_body(message: str, **extra) -> bytes:
    return json.dumps({"error": message, **extra}).encode()
