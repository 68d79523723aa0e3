"""The Open Inference Protocol (KServe v2) over REST: the server's request and response codecs.

Pure functions, no server. The servers answer ``/v2/...`` with these; the
client half (the load generator, the front end talking to Triton) is
:mod:`servebench.kserve_client`, re-exported here. What is implemented:

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

The tensors are the model's own, from its card (:class:`servebench.modelcard.ModelCard`;
without one, the default model's: input ``images`` UINT8 [-1, 32, 32, 3], outputs
``probabilities`` FP32 [-1, 10] and ``classes`` INT64 [-1]).

:func:`decode_infer_request` is total like :func:`servebench.codecs.decode`:
any bytes and any header values give an :class:`InferRequest` or a
:class:`~servebench.codecs.CodecError` (4xx, a message naming the tensor and
the problem). Every declared size is checked before anything is allocated. The
request's Content-Type is not consulted: Triton ignores it and its clients send
none or a form type.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from servebench import wire
from servebench.codecs import CIFAR10_CARD, CodecError, _show, load_json
from servebench import kserve_client
from servebench.kserve_client import _DIGITS, HEADER_LENGTH, JSON, OCTET
from servebench.modelcard import ModelCard, TensorSpec

# The client half, re-exported: callers name one module for the protocol.
KServeError = kserve_client.KServeError
Outputs = kserve_client.Outputs
encode_infer_request = kserve_client.encode_infer_request
decode_infer_response = kserve_client.decode_infer_response

log = logging.getLogger(__name__)

INPUT_NAME = "images"  # the default model's
OUTPUT_NAMES = tuple(spec.name for spec in CIFAR10_CARD.outputs)
PLATFORMS = {"savedmodel": "tensorflow_savedmodel", "keras": "tensorflow_savedmodel", "onnx": "onnxruntime_onnx"}
PLATFORM = PLATFORMS["savedmodel"]
EXTENSIONS = ("binary_tensor_data", "model_configuration")
# Parameters that ask for something this server does not do; refused rather than silently ignored.
_UNSUPPORTED = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset", "classification")


@dataclass(frozen=True)
class InferRequest:
    inputs: dict  # name -> array of the card's dtype, batch first, every input the same batch
    id: str | None
    outputs: tuple[str, ...]  # the outputs to answer with, in the order asked
    binary: frozenset[str]  # those of them the client wants as binary data

    @property
    def images(self) -> np.ndarray:
        """The one input of a single-input model (an image model's batch)."""
        (arr,) = self.inputs.values()
        return arr


# ---------------------------------------------------------------- server side: requests
def decode_infer_request(body: bytes, content_type: str | None, header_length: str | bytes | None,
                         max_batch: int, card: ModelCard | None = None) -> InferRequest:
    """An inference request from its body and its Inference-Header-Content-Length value, or CodecError."""
    del content_type  # not consulted (see the module docstring)
    try:
        return _decode_infer_request(bytes(body), header_length, max_batch, card or CIFAR10_CARD)
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


def _names(specs) -> str:
    return ", ".join(repr(spec.name) for spec in specs)


def _decode_infer_request(body: bytes, header_length, max_batch: int, card: ModelCard) -> InferRequest:
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
        raise CodecError(f'"inputs" must be a non-empty list holding the model\'s inputs {_names(card.inputs)}')
    known = {spec.name: spec for spec in card.inputs}
    seen = set()
    for entry in inputs:
        name = _name(entry, '"inputs"')
        if name not in known:
            raise CodecError(f"unknown input {_show(name)}: the model's inputs are {_names(card.inputs)}")
        if name in seen:
            raise CodecError(f"duplicate input {name!r}")
        seen.add(name)
    outputs, wanted_binary = _requested_outputs(doc.get("outputs"), binary_default, card)
    may_hold_bools = text.count(b"true") + text.count(b"false") > _bools_outside_data(doc)
    rows = wire.noun(card)
    arrays, offset, declared = {}, 0, False
    for entry in inputs:
        spec = known[entry["name"]]
        arr, used = _input_tensor(entry, spec, binary, offset, max_batch, may_hold_bools, rows)
        declared = declared or used is not None
        offset += used or 0
        arrays[spec.name] = arr
    if declared and offset != len(binary):
        raise CodecError(f"binary data after the JSON header is {len(binary)} bytes but the inputs declare {offset}"
                         f" (is {HEADER_LENGTH} right?)")
    if not declared and len(binary):
        raise CodecError(f"{len(binary)} bytes follow the JSON header but no input declares \"binary_data_size\"")
    arrays = wire.validate(card, arrays, max_batch)
    return InferRequest(inputs=arrays, id=request_id, outputs=outputs, binary=wanted_binary)


def _input_tensor(entry: dict, spec: TensorSpec, binary: memoryview, offset: int, max_batch: int,
                  may_hold_bools: bool, rows: str) -> tuple[np.ndarray, int | None]:
    """The tensor and the binary bytes it used (None: it came as JSON "data")."""
    what = f"input {spec.name!r}"
    datatype = entry.get("datatype")
    if datatype != spec.datatype:
        raise CodecError(f"wrong datatype {_show(datatype)} for {what}: only {spec.datatype} is accepted")
    # The v2 shape is the whole tensor's, batch dimension included; checked before any allocation.
    shape = wire.declared_shape(entry.get("shape"), spec, max_batch, what, rows)
    params = _object(entry.get("parameters"), f'the "parameters" of {what}')
    _refuse_unsupported(params, f'the "parameters" of {what}')
    count = wire.element_count(shape)

    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if type(size) is not int or size < 0:
            raise CodecError(f'"binary_data_size" of {what} must be a byte count, got {_show(size)}')
        if "data" in entry:
            raise CodecError(f'{what} has both "data" and "binary_data_size": send one')
        expected = count * spec.np_dtype.itemsize
        if size != expected:
            raise CodecError(f'"binary_data_size" of {what} is {_show(size)} but shape {list(shape)} needs {expected} bytes')
        if offset + size > len(binary):
            raise CodecError(f"binary data after the JSON header is {len(binary)} bytes but the inputs declare"
                             f" {offset + size} (is {HEADER_LENGTH} right?)")
        return wire.binary_values(binary[offset:offset + size], spec, shape, what), size

    if "data" not in entry:
        raise CodecError(f'{what} needs "data" or, with the binary extension, "binary_data_size"')
    return _json_data(entry["data"], spec, shape, count, what, may_hold_bools, rows), None


def _json_data(data, spec: TensorSpec, shape: tuple[int, ...], count: int, what: str, may_hold_bools: bool,
               rows: str) -> np.ndarray:
    """The tensor from its JSON "data": flat (row-major) or nested exactly as the declared shape.

    numpy reads [1, true] as [1, 1], so the values are walked for a boolean when
    the JSON text spells more booleans than the request holds outside "data"
    (a walk costs more than the parse; parameters such as "binary_data" are common).
    """
    if not isinstance(data, list):
        raise CodecError(f'"data" of {what} must be a list of {wire.takes(spec)}')
    nested = len(shape) > 1 and bool(data) and isinstance(data[0], list)
    expected = shape if nested else (count,)
    if len(data) != expected[0]:  # before numpy walks it
        if nested:
            raise CodecError(f'"data" of {what} holds {len(data)} {rows} but "shape" declares {shape[0]}')
        raise CodecError(f'"data" of {what} holds {len(data)} values but "shape" needs {count}'
                         " (flat, row-major) or a list nested as the shape")
    ragged = f'wrong shape: "data" of {what} is not a regular array of shape {list(shape)}'
    arr = wire.json_values(data, spec, what, may_hold_bools, ragged)
    if arr.shape != expected:
        raise CodecError(f'wrong shape: "data" of {what} has shape {list(arr.shape)};'
                         f" send it flat or nested as {list(shape)}")
    return arr.reshape(shape)


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


def _requested_outputs(value, binary_default: bool, card: ModelCard) -> tuple[tuple[str, ...], frozenset[str]]:
    names_all = tuple(spec.name for spec in card.outputs)
    if value is None or value == []:  # none asked for: all of them, as the request's default says
        return names_all, frozenset(names_all) if binary_default else frozenset()
    if not isinstance(value, list):
        raise CodecError('"outputs" must be a list of requested outputs')
    names: list[str] = []
    binary = set()
    for entry in value:
        name = _name(entry, '"outputs"')
        if name not in names_all:
            raise CodecError(f"unknown output {_show(name)}: the model's outputs are {', '.join(names_all)}")
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
def encode_infer_response(outputs, req: InferRequest, model_version: int | str,
                          card: ModelCard | None = None) -> tuple[bytes, dict[str, str]]:
    """The inference response body and its headers, binary outputs after the JSON header.

    ``outputs``: the model's outputs by name (a :class:`Prediction` is read as the default model's).
    """
    card = card or CIFAR10_CARD
    outputs = wire.output_dict(outputs, card)
    entries, blobs = [], []
    for name in req.outputs:
        spec = card.output(name)
        arr = np.ascontiguousarray(outputs[name], dtype=wire.le_dtype(spec))
        entry = {"name": name, "datatype": spec.datatype, "shape": list(arr.shape)}
        if name in req.binary:
            raw = arr.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = arr.ravel().tolist()
        entries.append(entry)
    doc = {"model_name": card.name, "model_version": str(model_version)}
    if req.id is not None:
        doc["id"] = req.id
    doc["outputs"] = entries
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, {"Content-Type": JSON}
    return b"".join([header, *blobs]), {"Content-Type": OCTET, HEADER_LENGTH: str(len(header))}


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


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


def _dims(shape) -> list[int]:
    return [-1 if d is None else d for d in shape]


def model_metadata(version: int | str, card: ModelCard | None = None) -> dict:
    """GET /v2/models/<name>[/versions/V]: the card's tensors."""
    card = card or CIFAR10_CARD
    return {
        "name": card.name,
        "versions": [str(version)],
        "platform": PLATFORMS.get(card.format, PLATFORM),
        "inputs": [{"name": s.name, "datatype": s.datatype, "shape": _dims(s.shape)} for s in card.inputs],
        "outputs": [{"name": s.name, "datatype": s.datatype, "shape": _dims(s.shape)} for s in card.outputs],
    }


def _config_tensor(spec: TensorSpec, is_input: bool) -> dict:
    """One tensor of Triton's config: dims without the batch; a batched scalar is ``dims: [1]`` reshaped to []."""
    dims = _dims(spec.item_shape)
    entry = {"name": spec.name, "data_type": "TYPE_" + ("STRING" if spec.datatype == "BYTES" else spec.datatype),
             "dims": dims or [1]}
    if not dims:
        entry["reshape"] = {"shape": []}
    if is_input:
        entry.update({"format": "FORMAT_NONE", "is_shape_tensor": False, "allow_ragged_batch": False,
                      "optional": False, "is_non_linear_format_io": False})
    else:
        entry.update({"label_filename": "", "is_shape_tensor": False, "is_non_linear_format_io": False})
    return entry


def model_config(max_batch_size: int, dynamic_batching: bool = False, max_queue_delay_us: int = 0,
                 card: ModelCard | None = None) -> dict:
    """GET /v2/models/<name>[/versions/V]/config: Triton's model-config JSON, from the card.

    What Triton answers for the model: the ModelConfig proto (model_config.proto)
    after Triton's normalisation, printed with every non-message field and its
    64-bit integers as numbers. A batched scalar (the default model's
    ``classes``) is spelled ``dims: [1]`` with ``reshape: {shape: []}``. The
    tests compare the default model's with the JSON the official proto prints
    (fixtures/kserve).
    """
    card = card or CIFAR10_CARD
    onnx = card.format == "onnx"
    config = {
        "name": card.name,
        "platform": PLATFORMS.get(card.format, PLATFORM),
        "backend": "onnxruntime" if onnx else "tensorflow",
        "runtime": "",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_batch_size,
        "input": [_config_tensor(spec, True) for spec in card.inputs],
        "output": [_config_tensor(spec, False) for spec in card.outputs],
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
            "name": card.name, "kind": "KIND_CPU", "count": 1, "gpus": [], "secondary_devices": [], "profile": [],
            "passive": False, "host_policy": "",
        }],
        "default_model_filename": "model.onnx" if onnx else "model.savedmodel",
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
