"""The Open Inference Protocol (KServe v2) over REST: the client's half.

What the load generator and the front end (talking to Triton) send and read:
:func:`encode_infer_request` builds a request for a model's inputs (byte for
byte what tritonclient.http generates; the tests hold it to that) and
:func:`decode_infer_response` reads any v2 answer (JSON or binary outputs)
into the model's outputs by name. Given the card, the outputs are checked
against it; :meth:`Outputs.prediction` reads a classifier's answer.
Re-exported by :mod:`servebench.kserve`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import numpy as np

from servebench.codecs import CIFAR10_CARD, Prediction, _clip, _show
from servebench.modelcard import ModelCard

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON = "application/json"
OCTET = "application/octet-stream"

# What a response may carry: Triton answers in the model's types, others may widen.
_NP_TYPES = {
    "BOOL": "?", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
}
_DIGITS = re.compile(r"[0-9]{1,18}")


class KServeError(ValueError):
    """A v2 response the client cannot read (``status`` is what a front end answers)."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------- requests
def _as_inputs(inputs, card: ModelCard) -> dict:
    """The request's tensors by name, in the card's order; an array is the one input of a single-input model."""
    if not isinstance(inputs, Mapping):
        if len(card.inputs) != 1:
            raise ValueError(f"{card.name} takes {len(card.inputs)} inputs: pass a dict of arrays by name")
        inputs = {card.inputs[0].name: inputs}
    unknown = set(inputs) - {spec.name for spec in card.inputs}
    if unknown:
        raise ValueError(f"unknown input {sorted(unknown)[0]!r} for {card.name}")
    arrays = {}
    for spec in card.inputs:
        if spec.name not in inputs:
            raise ValueError(f"missing input {spec.name!r} for {card.name}")
        arr = np.ascontiguousarray(inputs[spec.name])
        if arr.ndim == len(spec.shape) - 1:  # one row without its batch axis
            arr = arr[np.newaxis]
        if arr.dtype != spec.np_dtype or arr.ndim != len(spec.shape):
            raise ValueError(f"expected {spec.name} {spec.dtype} of rank {len(spec.shape)}, got {arr.dtype} {list(arr.shape)}")
        arrays[spec.name] = arr
    return arrays


def encode_infer_request(inputs, card: ModelCard | None = None, binary: bool = True,
                         outputs: Sequence[str] | None = None, *, binary_outputs: bool = True,
                         request_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A request body and its headers for the model's inputs (a dict by name, or the one input's array).

    ``outputs=None`` names every output of the card; ``outputs=()`` asks for every
    output through ``binary_data_output`` instead of naming them. Without a card,
    the default model's. Byte for byte what tritonclient.http generates.
    """
    card = card or CIFAR10_CARD
    arrays = _as_inputs(inputs, card)
    tensors, blobs = [], []
    for spec in card.inputs:
        arr = arrays[spec.name]
        tensor: dict = {"name": spec.name, "shape": list(arr.shape), "datatype": spec.datatype}
        if binary:
            raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = arr.ravel().tolist()
        tensors.append(tensor)
    doc: dict = {}
    if request_id:
        doc["id"] = request_id
    doc["inputs"] = tensors
    if outputs is None:
        outputs = [spec.name for spec in card.outputs]
    if outputs:
        doc["outputs"] = [{"name": name, "parameters": {"binary_data": binary_outputs}} for name in outputs]
    else:
        doc["parameters"] = {"binary_data_output": binary_outputs}
    header = json.dumps(doc, separators=(",", ":")).encode()  # compact ASCII, as tritonclient's rapidjson writes it
    if not binary:
        return header, {"Content-Type": JSON}
    return b"".join([header, *blobs]), {"Content-Type": OCTET, HEADER_LENGTH: str(len(header))}


# ---------------------------------------------------------------- responses
class Outputs(dict):
    """A v2 answer's tensors by name. :meth:`prediction` (and ``.classes``/``.probabilities``) read a classifier's."""

    card: ModelCard | None = None

    def prediction(self) -> Prediction:
        """The classifier's answer, checked before anyone indexes class names with it."""
        card = self.card or CIFAR10_CARD
        name = card.probabilities.name if card.probabilities else "probabilities"
        width = len(card.class_names) if card.class_names else card.probabilities.shape[1] if card.probabilities else None
        return _prediction(self, name, width)

    @property
    def probabilities(self) -> np.ndarray:
        return self.prediction().probabilities

    @property
    def classes(self) -> np.ndarray:
        return self.prediction().classes


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict: look the name up without regard to case, as HTTP does
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return value


def decode_infer_response(body: bytes, headers: Mapping[str, str], card: ModelCard | None = None) -> Outputs:
    """The outputs in a v2 inference response (JSON or binary), checked against ``card`` when given; or KServeError."""
    try:
        outputs = _decode_infer_response(bytes(body), headers)
        if card is not None:
            _check_against(outputs, card)
            outputs.card = card
        return outputs
    except KServeError:
        raise
    except Exception as exc:  # anything unreadable is the server's fault
        raise KServeError(f"unreadable v2 inference response: {type(exc).__name__}: {_clip(str(exc))}") from None


def _decode_infer_response(body: bytes, headers: Mapping[str, str]) -> Outputs:
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
    arrays = Outputs()
    for out in outputs:
        arr, used = _response_tensor(out, binary, offset)
        offset += used
        arrays[out["name"]] = arr
    if offset != len(binary):
        raise KServeError(f"v2 response carries {len(binary)} bytes of binary data but its outputs declare {offset}")
    return arrays


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


def _check_against(outputs: Outputs, card: ModelCard) -> None:
    """Each output the card names: its dtype kind, rank and fixed dims, one batch for all (Triton's [n, 1] scalars flattened)."""
    batch = None
    for name in list(outputs):
        try:
            spec = card.output(name)
        except KeyError:
            raise KServeError(f"v2 response has an output {name!r} the model does not have") from None
        arr = outputs[name]
        if not spec.item_shape and arr.ndim == 2 and arr.shape[1] == 1:
            arr = outputs[name] = arr[:, 0]
        if (arr.dtype.kind == "f") != (spec.np_dtype.kind == "f") or (arr.dtype.kind == "b") != (spec.np_dtype.kind == "b"):
            raise KServeError(f"v2 output {name!r} holds {arr.dtype} values, the model's are {spec.dtype}")
        if arr.ndim != len(spec.shape) or any(w is not None and d != w for d, w in zip(arr.shape, spec.shape)):
            raise KServeError(f"v2 output {name!r} has shape {list(arr.shape)}, the model's is "
                              f"{[-1 if d is None else d for d in spec.shape]}")
        if batch is not None and arr.shape[0] != batch:
            raise KServeError(f"v2 outputs disagree on the batch size ({name!r} has {arr.shape[0]}, another {batch})")
        batch = arr.shape[0]


def _prediction(arrays: Mapping[str, np.ndarray], name: str, width: int | None) -> Prediction:
    if name not in arrays:
        raise KServeError(f"v2 response lacks the output {name!r} (has {sorted(arrays)})")
    probs = np.asarray(arrays[name]).astype(np.float32)
    if probs.ndim != 2 or (width is not None and probs.shape[1] != width):
        raise KServeError(f"v2 output {name!r} has shape {list(probs.shape)}, expected [batch, {width}]")
    k = probs.shape[1]
    if "classes" not in arrays:  # not asked for: the class is the most probable one
        return Prediction(classes=probs.argmax(axis=1).astype(np.int64), probabilities=probs)
    classes = np.asarray(arrays["classes"])
    if classes.dtype.kind not in "iu":
        raise KServeError(f"v2 output 'classes' holds {classes.dtype} values, expected integers")
    if classes.ndim == 2 and classes.shape[1] == 1:  # Triton's batched scalar: dims [1]
        classes = classes[:, 0]
    if classes.shape != probs.shape[:1]:
        raise KServeError(f"v2 output 'classes' has shape {list(classes.shape)} for {probs.shape[0]} probability rows")
    classes = classes.astype(np.int64)
    if classes.size and (classes.min() < 0 or classes.max() >= k):
        raise KServeError(f"v2 output 'classes' holds a class id outside 0..{k - 1}")
    return Prediction(classes=classes, probabilities=probs)
