"""The Open Inference Protocol (KServe v2) over REST: request and response codecs.

Pure functions, no server. The servers answer ``/v2/...`` with these; the
clients (the load generator, the front end talking to Triton) use the client
half. What is implemented:

- the inference request and response JSON objects, with tensor ``data`` flat
  (row-major) or nested as the declared shape;
- the binary tensor data extension: a JSON header of
  ``Inference-Header-Content-Length`` bytes, then the raw tensors
  (little-endian, row-major) in the order the JSON lists them. Inputs say
  ``"parameters": {"binary_data_size": k}``; outputs are asked for in binary
  with ``"binary_data": true`` on a requested output, or for all of them with
  ``"binary_data_output": true`` among the request's parameters;
- server and model metadata, and the model-configuration extension (Triton's
  model-config JSON, which perf_analyzer reads).

The model: input ``images`` UINT8 [-1, 32, 32, 3]; outputs ``probabilities``
FP32 [-1, 10] and ``classes`` INT64 [-1].

:func:`decode_infer_request` is total like :func:`servebench.codecs.decode`:
any bytes and any header values give an :class:`InferRequest` or a
:class:`~servebench.codecs.CodecError` (4xx, a message naming the problem).
Every declared size is checked before anything is allocated. The request's
Content-Type is not consulted: Triton ignores it and its clients send none or
a form type.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from servebench.codecs import (
    _NO_BAD_PIXEL,
    IMAGE_BYTES,
    IMAGE_SHAPE,
    CodecError,
    Prediction,
    _bad_pixel_error,
    _batch_size,
    _clip,
    _first_bad_pixel,
    _show,
    load_json,
)
from servebench.types import CLASS_NAMES, MODEL_NAME

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = ("probabilities", "classes")
HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "tensorflow_savedmodel"
NUM_CLASSES = len(CLASS_NAMES)
EXTENSIONS = ("binary_tensor_data", "model_configuration")

JSON = "application/json"
OCTET = "application/octet-stream"

# Output name -> (datatype, little-endian numpy dtype, shape after the batch dimension).
_OUTPUTS = {"probabilities": ("FP32", np.dtype("<f4"), [NUM_CLASSES]), "classes": ("INT64", np.dtype("<i8"), [])}
# What a response may carry (client side): Triton answers in the model's types, others may widen.
_NP_TYPES = {
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
}
_DIGITS = re.compile(r"[0-9]{1,18}")
# Parameters that ask for something this server does not do; refused rather than silently ignored.
_UNSUPPORTED = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset", "classification")


class KServeError(ValueError):
    """A v2 response the client cannot read (``status`` is what a front end answers)."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InferRequest:
    images: np.ndarray  # uint8 [n, 32, 32, 3], 1 <= n <= max_batch
    id: str | None
    outputs: tuple[str, ...]  # the outputs to answer with, in the order asked
    binary: frozenset[str]  # those of them the client wants as binary data


# ---------------------------------------------------------------- server side: requests
def decode_infer_request(body: bytes, content_type: str | None, header_length: str | bytes | None,
                         max_batch: int) -> InferRequest:
    """An inference request from its body and its Inference-Header-Content-Length value, or CodecError."""
    del content_type  # not consulted (see the module docstring)
    try:
        return _decode_infer_request(bytes(body), header_length, max_batch)
    except CodecError:
        raise
    except Exception as exc:  # a case nothing above foresaw is still the client's bad body, not a 500
        log.warning("unexpected %s decoding a v2 inference request", type(exc).__name__, exc_info=True)
        raise CodecError(f"malformed inference request: {type(exc).__name__}") from None


def _json_length(header_length: str | bytes | None, body_length: int) -> int:
    if header_length is None:
        return body_length
    if isinstance(header_length, (bytes, bytearray)):
        header_length = bytes(header_length).decode("latin-1")
    text = str(header_length).strip()
    if not _DIGITS.fullmatch(text):
        raise CodecError(f"{HEADER_LENGTH} must be a byte count, got {_show(text)}")
    length = int(text)
    if length > body_length:
        raise CodecError(f"{HEADER_LENGTH} is {length} but the body has only {body_length} bytes")
    return length




def _object(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CodecError(f'{what} must be a JSON object, not {type(value).__name__}')
    return value


def _flag(params: dict, key: str, what: str) -> bool | None:
    value = params.get(key)
    if value is not None and not isinstance(value, bool):
        raise CodecError(f'"{key}" in {what} must be true or false, got {_show(value)}')
    return value


def _refuse_unsupported(params: dict, what: str) -> None:
    for key in _UNSUPPORTED:
        if key in params:
            raise CodecError(f'"{key}" in {what} is not supported by this server')


def _name(entry, what: str) -> str:
    if not isinstance(entry, dict):
        raise CodecError(f"each of {what} must be a JSON object, not {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str):
        raise CodecError(f'each of {what} needs a "name" string')
    return name


def _decode_infer_request(body: bytes, header_length, max_batch: int) -> InferRequest:
    json_length = _json_length(header_length, len(body))
    text = body[:json_length]
    doc = load_json(text)
    binary = memoryview(body)[json_length:]
    if not isinstance(doc, dict):
        raise CodecError('inference request must be a JSON object with "inputs"')
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise CodecError(f'"id" must be a string, got {_show(request_id)}')
    params = _object(doc.get("parameters"), 'the request\'s "parameters"')
    _refuse_unsupported(params, 'the request\'s "parameters"')
    binary_default = bool(_flag(params, "binary_data_output", 'the request\'s "parameters"'))

    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise CodecError(f'"inputs" must be a non-empty list holding the input "{INPUT_NAME}"')
    seen = set()
    for entry in inputs:
        name = _name(entry, '"inputs"')
        if name != INPUT_NAME:
            raise CodecError(f"unknown input {_show(name)}: the model's only input is {INPUT_NAME!r}")
        if name in seen:
            raise CodecError(f"duplicate input {name!r}")
        seen.add(name)
    outputs, wanted_binary = _requested_outputs(doc.get("outputs"), binary_default)
    may_hold_bools = text.count(b"true") + text.count(b"false") > _bools_outside_data(doc)
    images = _input_tensor(inputs[0], binary, max_batch, may_hold_bools)
    return InferRequest(images=images, id=request_id, outputs=outputs, binary=wanted_binary)


def _input_tensor(entry: dict, binary: memoryview, max_batch: int, may_hold_bools: bool) -> np.ndarray:
    what = f"input {INPUT_NAME!r}"
    datatype = entry.get("datatype")
    if datatype != "UINT8":
        raise CodecError(f"wrong datatype {_show(datatype)} for {what}: only UINT8 is accepted")
    shape = entry.get("shape")
    if not (isinstance(shape, list) and all(type(d) is int for d in shape)):
        raise CodecError(f'"shape" of {what} must be a list of integers [batch, 32, 32, 3]')
    if len(shape) != 4:  # the v2 shape is the whole tensor's, batch dimension included
        raise CodecError(f"wrong shape {_show(shape, 120)} for {what}: expected [batch, 32, 32, 3]")
    n = _batch_size(shape, max_batch)  # checks dims, emptiness and the limit (413) before any allocation
    params = _object(entry.get("parameters"), f'the "parameters" of {what}')
    _refuse_unsupported(params, f'the "parameters" of {what}')

    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if type(size) is not int or size < 0:
            raise CodecError(f'"binary_data_size" of {what} must be a byte count, got {_show(size)}')
        if "data" in entry:
            raise CodecError(f'{what} has both "data" and "binary_data_size": send one')
        expected = n * IMAGE_BYTES
        if size != expected:
            raise CodecError(f'"binary_data_size" of {what} is {size} but shape {shape} needs {expected} bytes')
        if len(binary) != size:
            raise CodecError(f"binary data after the JSON header is {len(binary)} bytes but the inputs declare {size}"
                             f" (is {HEADER_LENGTH} right?)")
        return np.frombuffer(binary, dtype=np.uint8).reshape(n, *IMAGE_SHAPE)

    if len(binary):
        raise CodecError(f"{len(binary)} bytes follow the JSON header but no input declares \"binary_data_size\"")
    if "data" not in entry:
        raise CodecError(f'{what} needs "data" or, with the binary extension, "binary_data_size"')
    return _json_pixels(entry["data"], n, what, may_hold_bools)


def _json_pixels(data, n: int, what: str, may_hold_bools: bool) -> np.ndarray:
    """The tensor from its JSON "data": flat (row-major) or nested exactly as [n, 32, 32, 3].

    numpy reads [1, true] as [1, 1], so the pixels are walked for a boolean when
    the JSON text spells more booleans than the request holds outside "data"
    (a walk costs more than the parse; parameters such as "binary_data" are common).
    """
    if not isinstance(data, list):
        raise CodecError(f'"data" of {what} must be a list of integers 0-255')
    nested = bool(data) and isinstance(data[0], list)
    expected = (n, *IMAGE_SHAPE) if nested else (n * IMAGE_BYTES,)
    if len(data) != expected[0]:  # before numpy walks it
        if nested:
            raise CodecError(f'"data" of {what} holds {len(data)} images but "shape" declares {n}')
        raise CodecError(f'"data" of {what} holds {len(data)} values but "shape" needs {n * IMAGE_BYTES}'
                         " (flat, row-major) or a list nested as the shape")
    try:
        # Let numpy infer the dtype, so that floats, bools and out-of-range values can be named.
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, or a value numpy cannot hold
        raise CodecError(f'wrong shape: "data" of {what} is not a regular array of shape [{n}, 32, 32, 3]') from None
    if arr.shape != expected:
        raise CodecError(f'wrong shape: "data" of {what} has shape {list(arr.shape)};'
                         f" send it flat or nested as {[n, *IMAGE_SHAPE]}")
    if arr.dtype.kind not in "iu":
        # Floats, bools, strings, nulls, objects, ints beyond int64: walk the lists to name the culprit.
        bad = _first_bad_pixel(data)
        if bad is _NO_BAD_PIXEL:
            raise CodecError(f"wrong dtype {arr.dtype}: pixel values must be integers 0-255")
        raise _bad_pixel_error(bad)
    if may_hold_bools:
        bad = _first_bad_pixel(data)
        if bad is not _NO_BAD_PIXEL:
            raise _bad_pixel_error(bad)
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high > 255:
        raise CodecError(f"value out of range: pixel values must be 0-255, got {low}..{high}")
    return arr.astype(np.uint8).reshape(n, *IMAGE_SHAPE)


def _bools_outside_data(doc: dict) -> int:
    """How many JSON booleans the request holds outside the inputs' "data" (parameters, mostly)."""
    inputs = doc.get("inputs") if isinstance(doc.get("inputs"), list) else []
    skip = {id(e["data"]) for e in inputs if isinstance(e, dict) and isinstance(e.get("data"), list)}
    count, stack = 0, [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            count += 1
        elif isinstance(item, list) and id(item) not in skip:
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return count


def _requested_outputs(value, binary_default: bool) -> tuple[tuple[str, ...], frozenset[str]]:
    if value is None or value == []:  # none asked for: all of them, as the request's default says
        return OUTPUT_NAMES, frozenset(OUTPUT_NAMES) if binary_default else frozenset()
    if not isinstance(value, list):
        raise CodecError('"outputs" must be a list of requested outputs')
    names: list[str] = []
    binary = set()
    for entry in value:
        name = _name(entry, '"outputs"')
        if name not in OUTPUT_NAMES:
            raise CodecError(f"unknown output {_show(name)}: the model's outputs are {', '.join(OUTPUT_NAMES)}")
        if name in names:
            raise CodecError(f"duplicate output {name!r}")
        what = f'the "parameters" of output {name!r}'
        params = _object(entry.get("parameters"), what)
        _refuse_unsupported(params, what)
        flag = _flag(params, "binary_data", what)
        if binary_default if flag is None else flag:
            binary.add(name)
        names.append(name)
    return tuple(names), frozenset(binary)


# ---------------------------------------------------------------- server side: responses
def _output_array(pred: Prediction, name: str) -> np.ndarray:
    _, dtype, _ = _OUTPUTS[name]
    arr = pred.probabilities if name == "probabilities" else pred.classes
    return np.ascontiguousarray(arr, dtype=dtype)


def encode_infer_response(pred: Prediction, req: InferRequest, model_version: int | str) -> tuple[bytes, dict[str, str]]:
    """The inference response body and its headers, binary outputs after the JSON header."""
    outputs, blobs = [], []
    for name in req.outputs:
        arr = _output_array(pred, name)
        entry = {"name": name, "datatype": _OUTPUTS[name][0], "shape": list(arr.shape)}
        if name in req.binary:
            raw = arr.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = arr.ravel().tolist()
        outputs.append(entry)
    doc = {"model_name": MODEL_NAME, "model_version": str(model_version)}
    if req.id is not None:
        doc["id"] = req.id
    doc["outputs"] = outputs
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, {"Content-Type": JSON}
    return b"".join([header, *blobs]), {"Content-Type": OCTET, HEADER_LENGTH: str(len(header))}


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


# ---------------------------------------------------------------- client side
def encode_infer_request(images: np.ndarray, *, binary: bool = True, binary_outputs: bool = True,
                         request_id: str | None = None, outputs: Sequence[str] | None = OUTPUT_NAMES) -> tuple[bytes, dict[str, str]]:
    """A request body and its headers for a uint8 batch [n, 32, 32, 3].

    Byte for byte what tritonclient.http generates for the same request (the
    tests hold it to that); ``outputs=()`` asks for every output through
    ``binary_data_output`` instead of naming them.
    """
    images = np.ascontiguousarray(images)
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"expected a uint8 batch [n, 32, 32, 3], got {images.dtype} {list(images.shape)}")
    tensor: dict = {"name": INPUT_NAME, "shape": list(images.shape), "datatype": "UINT8"}
    raw = None
    if binary:
        raw = images.tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
    else:
        tensor["data"] = images.ravel().tolist()
    doc: dict = {}
    if request_id:
        doc["id"] = request_id
    doc["inputs"] = [tensor]
    if outputs:
        doc["outputs"] = [{"name": name, "parameters": {"binary_data": binary_outputs}} for name in outputs]
    else:
        doc["parameters"] = {"binary_data_output": binary_outputs}
    header = json.dumps(doc, separators=(",", ":")).encode()  # compact ASCII, as tritonclient's rapidjson writes it
    if raw is None:
        return header, {"Content-Type": JSON}
    return header + raw, {"Content-Type": OCTET, HEADER_LENGTH: str(len(header))}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict: look the name up without regard to case, as HTTP does
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return value


def decode_infer_response(body: bytes, headers: Mapping[str, str]) -> Prediction:
    """The prediction in a v2 inference response (JSON or binary outputs), or KServeError."""
    try:
        return _decode_infer_response(bytes(body), headers)
    except KServeError:
        raise
    except Exception as exc:  # anything unreadable is the server's fault
        raise KServeError(f"unreadable v2 inference response: {type(exc).__name__}: {_clip(str(exc))}") from None


def _decode_infer_response(body: bytes, headers: Mapping[str, str]) -> Prediction:
    length_text = _header(headers, HEADER_LENGTH)
    json_length = len(body)
    if length_text is not None:
        text = str(length_text).strip()
        if not _DIGITS.fullmatch(text) or int(text) > len(body):
            raise KServeError(f"v2 response has a bad {HEADER_LENGTH}: {_show(text)} for a {len(body)}-byte body")
        json_length = int(text)
    try:
        doc = json.loads(body[:json_length])
    except ValueError as exc:
        raise KServeError(f"v2 response is not JSON: {_clip(str(exc))}") from None
    if not isinstance(doc, dict):
        raise KServeError("v2 response is not a JSON object")
    if "error" in doc:
        raise KServeError(f"v2 server error: {_clip(str(doc['error']))}")
    outputs = doc.get("outputs")
    if not isinstance(outputs, list):
        raise KServeError('v2 response has no "outputs" list')
    binary = memoryview(body)[json_length:]
    offset = 0
    arrays: dict[str, np.ndarray] = {}
    for out in outputs:
        arr, used = _response_tensor(out, binary, offset)
        offset += used
        arrays[out["name"]] = arr
    if offset != len(binary):
        raise KServeError(f"v2 response carries {len(binary)} bytes of binary data but its outputs declare {offset}")
    return _prediction(arrays)


def _response_tensor(out, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    if not (isinstance(out, dict) and isinstance(out.get("name"), str)):
        raise KServeError("v2 response output without a name")
    name, datatype, shape = out["name"], out.get("datatype"), out.get("shape")
    if datatype not in _NP_TYPES:
        raise KServeError(f"v2 output {name!r} has datatype {_show(datatype)}, expected a number type")
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise KServeError(f"v2 output {name!r} has a bad shape {_show(shape)}")
    dtype = np.dtype(_NP_TYPES[datatype])
    count = int(np.prod(shape, dtype=object))
    size = (out.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize or offset + size > len(binary):
            raise KServeError(f"v2 output {name!r} declares {_show(size)} bytes of binary data for shape {shape}")
        return np.frombuffer(binary[offset:offset + size], dtype=dtype).reshape(shape), size
    data = out.get("data")
    if not isinstance(data, list):
        raise KServeError(f"v2 output {name!r} has neither data nor binary_data_size")
    arr = np.asarray(data, dtype=dtype)
    if arr.size != count:
        raise KServeError(f"v2 output {name!r} holds {arr.size} values for shape {shape}")
    return arr.reshape(shape), 0


def _prediction(arrays: dict[str, np.ndarray]) -> Prediction:
    """Check what the server sent before anyone indexes CLASS_NAMES with it."""
    if "probabilities" not in arrays:
        raise KServeError(f"v2 response lacks the output 'probabilities' (has {sorted(arrays)})")
    probs = arrays["probabilities"].astype(np.float32)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES:
        raise KServeError(f"v2 output 'probabilities' has shape {list(probs.shape)}, expected [batch, {NUM_CLASSES}]")
    if "classes" not in arrays:  # not asked for: the class is the most probable one
        return Prediction(classes=probs.argmax(axis=1).astype(np.int64), probabilities=probs)
    classes = arrays["classes"]
    if classes.dtype.kind not in "iu":
        raise KServeError(f"v2 output 'classes' holds {classes.dtype} values, expected integers")
    if classes.ndim == 2 and classes.shape[1] == 1:  # Triton's batched scalar: dims [1]
        classes = classes[:, 0]
    if classes.shape != probs.shape[:1]:
        raise KServeError(f"v2 output 'classes' has shape {list(classes.shape)} for {probs.shape[0]} probability rows")
    classes = classes.astype(np.int64)
    if classes.size and (classes.min() < 0 or classes.max() >= NUM_CLASSES):
        raise KServeError(f"v2 output 'classes' holds a class id outside 0..{NUM_CLASSES - 1}")
    return Prediction(classes=classes, probabilities=probs)


# ---------------------------------------------------------------- metadata
@lru_cache(maxsize=1)
def _server_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("servebench")
    except metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "1"


def server_metadata() -> dict:
    """GET /v2."""
    return {"name": "servebench", "version": _server_version(), "extensions": list(EXTENSIONS)}


def model_metadata(version: int | str) -> dict:
    """GET /v2/models/cifar10_cnn[/versions/V]."""
    return {
        "name": MODEL_NAME,
        "versions": [str(version)],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, *IMAGE_SHAPE]}],
        "outputs": [{"name": name, "datatype": _OUTPUTS[name][0], "shape": [-1, *_OUTPUTS[name][2]]}
                    for name in OUTPUT_NAMES],
    }


def model_config(max_batch_size: int, dynamic_batching: bool = False, max_queue_delay_us: int = 0) -> dict:
    """GET /v2/models/cifar10_cnn[/versions/V]/config: Triton's model-config JSON.

    What Triton answers for this model: the ModelConfig proto (model_config.proto)
    after Triton's normalisation, printed with every non-message field and its
    64-bit integers as numbers. ``classes`` is a batched scalar, which a Triton
    config spells ``dims: [1]`` with ``reshape: {shape: []}``. The tests compare
    it with the JSON the official proto prints (fixtures/kserve).
    """
    def tensor(name: str, data_type: str, dims: list[int], **extra) -> dict:
        return {"name": name, "data_type": data_type, "dims": dims, **extra}

    config = {
        "name": MODEL_NAME,
        "platform": PLATFORM,
        "backend": "tensorflow",
        "runtime": "",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_batch_size,
        "input": [{
            "name": INPUT_NAME, "data_type": "TYPE_UINT8", "format": "FORMAT_NONE", "dims": list(IMAGE_SHAPE),
            "is_shape_tensor": False, "allow_ragged_batch": False, "optional": False, "is_non_linear_format_io": False,
        }],
        "output": [
            {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [NUM_CLASSES], "label_filename": "",
             "is_shape_tensor": False, "is_non_linear_format_io": False},
            {"name": "classes", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}, "label_filename": "",
             "is_shape_tensor": False, "is_non_linear_format_io": False},
        ],
        "batch_input": [],
        "batch_output": [],
        "optimization": {
            "priority": "PRIORITY_DEFAULT",
            "input_pinned_memory": {"enable": True},
            "output_pinned_memory": {"enable": True},
            "gather_kernel_buffer_threshold": 0,
            "eager_batching": False,
        },
        "instance_group": [{
            "name": MODEL_NAME, "kind": "KIND_CPU", "count": 1, "gpus": [], "secondary_devices": [], "profile": [],
            "passive": False, "host_policy": "",
        }],
        "default_model_filename": "model.savedmodel",
        "cc_model_filenames": {},
        "metric_tags": {},
        "parameters": {},
        "model_warmup": [],
    }
    if dynamic_batching:
        config["dynamic_batching"] = {
            # Triton fills an empty preferred_batch_size with max_batch_size.
            "preferred_batch_size": [max_batch_size] if max_batch_size > 0 else [],
            "max_queue_delay_microseconds": max_queue_delay_us,
            "preserve_ordering": False,
            "priority_levels": 0,
            "default_priority_level": 0,
            "priority_queue_policy": {},
        }
    return config
