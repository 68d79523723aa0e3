"""TensorFlow Serving's REST and gRPC APIs: the client side, and the server side our servers speak.

Client side (what the front end sends TF Serving and reads back):

- REST: :func:`rest_predict_body` (TF Serving's row format), :func:`rest_predict_path`,
  :func:`parse_rest_response` and :class:`RestClient` (one keep-alive pool).
- gRPC: :func:`grpc_predict_request` (a ``PredictRequest`` built by hand),
  :func:`parse_grpc_response` and :class:`GrpcClient` (one channel).
- :func:`render_models_config`: the ``--model_config_file`` text for a base path.

Server side (our servers answering TF Serving's REST API, so that a client of
TF Serving can talk to any of them): :func:`decode_rest_request`,
:func:`encode_rest_response`, :func:`model_status`, :func:`model_metadata` and
:func:`rest_error_body`. The status and metadata answers are the JSON form of
TF Serving's GetModelStatus / GetModelMetadata protos as its REST handler
prints them; the tests build the protos and compare.

Every client failure raises :class:`TFServingError`, whose ``status`` is what the front
end answers with; :func:`upstream_error` is the one place that decides it.

The TensorFlow Serving protos import all of TensorFlow (seconds, hundreds of MB),
so they are imported only by the gRPC functions: a REST-only front end never
loads TensorFlow.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING

import grpc
import numpy as np
import urllib3

from servebench import wire
from servebench.codecs import CIFAR10_CARD, IMAGE_SHAPE, CodecError, Prediction, _show, load_json
from servebench.modelcard import ModelCard, TensorSpec, describe
from servebench.types import CLASS_NAMES, MODEL_NAME

if TYPE_CHECKING:
    from tensorflow_serving.apis import predict_pb2

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"
INPUT_KEY = "images"
PROBABILITIES = "probabilities"
CLASSES = "classes"
NUM_CLASSES = len(CLASS_NAMES)

# tensorflow/core/framework/types.proto; checked against types_pb2 in the tests.
DT_FLOAT, DT_UINT8, DT_INT64 = 1, 4, 9


class TFServingError(RuntimeError):
    """A call to TF Serving that failed; ``status`` is what the front end answers."""

    def __init__(self, message: str, status: int = 502, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail or message  # without the address: what a client of the front end may see


def upstream_error(address: str, upstream_status: int, detail: str) -> TFServingError:
    """The one mapping from a failed call to the front end's status.

    ``upstream_status`` is the failure in HTTP terms: what TF Serving answered,
    gRPC codes translated by TF Serving's own REST table, 502 when nothing
    answered, 504 when nothing answered in time. A 4xx blames the request (bad
    input, unknown model or version) and is kept; a timeout stays 504; any
    other failure of the upstream is a bad gateway.
    """
    status = upstream_status if 400 <= upstream_status < 500 or upstream_status == 504 else 502
    return TFServingError(f"tfserving at {address}: {detail}", status, detail)


# TF Serving's status-code -> HTTP table (model_servers/http_server.cc,
# ToHTTPStatusCode), so a gRPC failure reads as the same failure over REST.
_HTTP_STATUS_OF_GRPC = {
    "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400, "ABORTED": 409,
    "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503,
    "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


def _as_batch(images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"expected a uint8 batch [n, 32, 32, 3], got {images.dtype} {list(images.shape)}")
    return images


def _prediction(probabilities, classes=None) -> Prediction:
    """Check what TF Serving sent before the front end indexes CLASS_NAMES with it."""
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES:
        raise TFServingError(f"tfserving sent probabilities of shape {list(probs.shape)}, expected [batch, {NUM_CLASSES}]")
    if classes is None:  # single-output signature: the class is the most probable one
        ids = probs.argmax(axis=1).astype(np.int64)
    else:
        ids = np.asarray(classes, dtype=np.int64)
        if ids.shape != probs.shape[:1]:
            raise TFServingError(f"tfserving sent classes of shape {list(ids.shape)} for {probs.shape[0]} probability rows")
        if ids.size and (ids.min() < 0 or ids.max() >= NUM_CLASSES):
            raise TFServingError(f"tfserving sent a class id outside 0..{NUM_CLASSES - 1}")
    return Prediction(classes=ids, probabilities=probs)


# ---------------------------------------------------------------- REST
def rest_predict_body(images: np.ndarray, *, signature: str = SIGNATURE) -> bytes:
    """TF Serving's row-format request for a uint8 batch [n, 32, 32, 3]."""
    images = _as_batch(images)
    return json.dumps({"signature_name": signature, "instances": images.tolist()}, separators=(",", ":")).encode()


def _model_path(model: str, version: int | None) -> str:
    return f"/v1/models/{model}" if version is None else f"/v1/models/{model}/versions/{int(version)}"


def rest_predict_path(model: str = MODEL_NAME, version: int | None = None) -> str:
    return _model_path(model, version) + ":predict"


def parse_rest_response(body: bytes) -> Prediction:
    """A predict answer in any of TF Serving's documented response forms.

    Row format answers ``{"predictions": [{"probabilities": [...], "classes": 3}, ...]}``
    for a multi-output signature and ``{"predictions": [[...], ...]}`` for a
    single output; columnar requests get ``{"outputs": {...}}`` (or a bare list).
    """
    try:
        doc = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise TFServingError(f"tfserving sent malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise TFServingError("tfserving sent JSON that is not an object")
    if "error" in doc:
        raise TFServingError(f"tfserving error: {doc['error']}")
    try:
        if "predictions" in doc:
            rows = doc["predictions"]
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                return _prediction([r[PROBABILITIES] for r in rows], [r[CLASSES] for r in rows])
            return _prediction(rows)
        if "outputs" in doc:
            outputs = doc["outputs"]
            if isinstance(outputs, dict):
                return _prediction(outputs[PROBABILITIES], outputs[CLASSES])
            return _prediction(outputs)
    except KeyError as exc:
        raise TFServingError(f"tfserving response lacks the output {exc}") from None
    except (TypeError, ValueError) as exc:  # ragged or non-numeric values
        raise TFServingError(f"tfserving sent unreadable outputs: {exc}") from None
    raise TFServingError('tfserving response has neither "predictions" nor "outputs"')


def encode_predict_request(inputs, card: ModelCard, *, signature: str = SIGNATURE) -> bytes:
    """A predict request for the model's inputs (a dict by name, or the one input's array): row format
    for a single-input model, as TF Serving's own examples send it; columnar for several inputs."""
    if not isinstance(inputs, dict):
        if len(card.inputs) != 1:
            raise ValueError(f"{card.name} takes {len(card.inputs)} inputs: pass a dict of arrays by name")
        inputs = {card.inputs[0].name: inputs}
    arrays = {}
    for spec in card.inputs:
        arr = np.asarray(inputs[spec.name])
        if arr.ndim == len(spec.shape) - 1:
            arr = arr[np.newaxis]
        if arr.dtype != spec.np_dtype or arr.ndim != len(spec.shape):
            raise ValueError(f"expected {spec.name} {spec.dtype} of rank {len(spec.shape)}, got {arr.dtype} {list(arr.shape)}")
        arrays[spec.name] = arr.tolist()
    if len(arrays) == 1:
        doc = {"signature_name": signature, "instances": next(iter(arrays.values()))}
    else:
        doc = {"signature_name": signature, "inputs": arrays}
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_predict_response(body: bytes, card: ModelCard) -> dict:
    """The model's outputs by name from a predict answer in any of TF Serving's forms, checked against the card."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise TFServingError(f"tfserving sent malformed JSON: {exc}") from None
    if not isinstance(doc, dict) or "error" in doc:
        raise TFServingError(f"tfserving error: {doc.get('error') if isinstance(doc, dict) else 'not an object'}")
    names = [spec.name for spec in card.outputs]
    try:
        if "predictions" in doc:
            rows = doc["predictions"]
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                found = {name: [row[name] for row in rows] for name in rows[0]}
            else:
                found = {names[0]: rows}
        elif "outputs" in doc:
            found = doc["outputs"] if isinstance(doc["outputs"], dict) else {names[0]: doc["outputs"]}
        else:
            raise TFServingError('tfserving response has neither "predictions" nor "outputs"')
        outputs = {}
        for name, values in found.items():
            if name not in names:
                raise TFServingError(f"tfserving sent an output {name!r} the model does not have")
            spec = card.output(name)
            arr = np.asarray(values, dtype=spec.np_dtype)
            if arr.ndim != len(spec.shape) or any(w is not None and d != w for d, w in zip(arr.shape[1:], spec.item_shape)):
                raise TFServingError(f"tfserving sent {name} of shape {list(arr.shape)}, the model's is {wire.dims_text(spec.shape)}")
            outputs[name] = arr
        return outputs
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # missing keys, ragged or non-numeric values
        raise TFServingError(f"tfserving sent unreadable outputs: {_show(exc, 200)}") from None


def _error_text(body: bytes, fallback: str) -> str:
    """TF Serving's own message from an error body ({"error": "..."})."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip() or fallback


_JSON_HEADERS = {"Content-Type": "application/json"}


class RestClient:
    """TF Serving's REST API over one keep-alive connection pool (one per worker)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8501, *, model: str = MODEL_NAME,
                 version: int | None = None, signature: str = SIGNATURE,
                 timeout_s: float = 10.0, pool_size: int = 8):
        self.address = f"{host}:{port}"
        self.timeout_s = timeout_s
        self.signature = signature
        # block=False: a burst beyond pool_size opens extra connections instead of
        # queueing; retries=False: a failure is reported, never silently repeated.
        self._pool = urllib3.HTTPConnectionPool(
            host, port, maxsize=pool_size, block=False, retries=False,
            timeout=urllib3.Timeout(total=timeout_s),
        )
        self._predict_path = rest_predict_path(model, version)
        self._status_path = _model_path(model, version)

    def _call(self, method: str, path: str, body: bytes | None = None) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.urlopen(method, path, body=body, headers=_JSON_HEADERS, redirect=False)
        except urllib3.exceptions.NewConnectionError as exc:  # before TimeoutError: it subclasses it
            raise upstream_error(self.address, 502, f"cannot connect ({exc.__cause__ or exc}); is TF Serving running?") from None
        except urllib3.exceptions.TimeoutError:
            raise upstream_error(self.address, 504, f"no answer within {self.timeout_s:g} s") from None
        except urllib3.exceptions.HTTPError as exc:
            raise upstream_error(self.address, 502, f"connection failed ({exc})") from None

    def predict(self, images: np.ndarray) -> tuple[Prediction, float]:
        """The prediction and the round trip in ms (request sent to answer read)."""
        body = rest_predict_body(images, signature=self.signature)
        start = time.perf_counter()
        resp = self._call("POST", self._predict_path, body)
        round_trip_ms = (time.perf_counter() - start) * 1000.0
        if resp.status != 200:
            raise upstream_error(self.address, resp.status, f"answered {resp.status}: {_error_text(resp.data, resp.reason or '')}")
        return parse_rest_response(resp.data), round_trip_ms

    def infer(self, inputs, card: ModelCard) -> tuple[dict, float]:
        """The model's outputs by name and the round trip in ms, for any model."""
        body = encode_predict_request(inputs, card, signature=self.signature)
        start = time.perf_counter()
        resp = self._call("POST", self._predict_path, body)
        round_trip_ms = (time.perf_counter() - start) * 1000.0
        if resp.status != 200:
            raise upstream_error(self.address, resp.status, f"answered {resp.status}: {_error_text(resp.data, resp.reason or '')}")
        return decode_predict_response(resp.data, card), round_trip_ms

    def health(self) -> bool:
        """True once TF Serving reports a version of the model AVAILABLE."""
        try:
            resp = self._call("GET", self._status_path)
            if resp.status != 200:
                return False
            versions = json.loads(resp.data).get("model_version_status") or []
            return any(v.get("state") == "AVAILABLE" for v in versions)
        except (TFServingError, ValueError, AttributeError):
            return False

    def close(self) -> None:
        self._pool.close()


# ---------------------------------------------------------------- REST, server side
def decode_rest_request(body: bytes, max_batch: int, card: ModelCard | None = None) -> tuple[dict, bool]:
    """A TF Serving predict request: the model's inputs by name, and whether it came columnar.

    Row format: ``{"instances": [{"name": value, ...}, ...]}``, or for a model with one
    input ``{"instances": [value, ...]}`` too; columnar: ``{"inputs": {"name": [...], ...}}``,
    or for one input ``{"inputs": [...]}``. An optional ``"signature_name"`` must name
    ``serving_default``. Total like :func:`servebench.codecs.decode`: the inputs, or
    CodecError (4xx, naming the tensor and the problem).
    """
    try:
        return _decode_rest_request(bytes(body), max_batch, card or CIFAR10_CARD)
    except CodecError:
        raise
    except Exception as exc:  # a case nothing above foresaw is still the client's bad body, not a 500
        log.warning("unexpected %s decoding a TF Serving predict request", type(exc).__name__, exc_info=True)
        raise CodecError(f"malformed predict request: {type(exc).__name__}") from None


def _named_inputs(value: dict, where: str, card: ModelCard) -> dict:
    """The tensors under the signature's input keys, refusing any other key."""
    names = [spec.name for spec in card.inputs]
    unknown = sorted(str(k) for k in value if k not in names)
    if unknown:
        raise CodecError(f"unknown input {_show(unknown[0])} in {where}: the signature's inputs are"
                         f" {', '.join(repr(n) for n in names)}")
    for name in names:
        if name not in value:
            raise CodecError(f"missing input {name!r} in {where}")
    return value


def _decode_rest_request(body: bytes, max_batch: int, card: ModelCard) -> tuple[dict, bool]:
    doc = load_json(body)
    if not isinstance(doc, dict):
        raise CodecError('predict request must be a JSON object with "instances" or "inputs"')
    signature = doc.get("signature_name", SIGNATURE)
    if signature not in (SIGNATURE, ""):  # TF Serving reads an empty name as the default
        raise CodecError(f"unknown signature_name {_show(signature)}: the model serves only {SIGNATURE!r}")
    if ("instances" in doc) == ("inputs" in doc):
        raise CodecError('predict request needs exactly one of "instances" (row format) or "inputs" (columnar)')
    single = card.inputs[0].name if len(card.inputs) == 1 else None
    columnar = "inputs" in doc
    if columnar:
        value = doc["inputs"]
        if isinstance(value, dict):
            tensors = _named_inputs(value, '"inputs"', card)
        elif isinstance(value, list) and single:
            tensors = {single: value}
        else:
            form = f'a list (the batch of {single!r}) or ' if single else ""
            raise CodecError(f'"inputs" must be {form}an object of each input\'s batch by name')
    else:
        rows = doc["instances"]
        if not isinstance(rows, list):
            raise CodecError('"instances" must be a list of rows')
        named = [isinstance(row, dict) for row in rows]
        if any(named):
            if not all(named):
                raise CodecError('"instances" mixes {"name": value} objects with bare values: use one form')
            rows = [_named_inputs(row, '"instances"', card) for row in rows]
            tensors = {spec.name: [row[spec.name] for row in rows] for spec in card.inputs}
        elif single or not rows:
            tensors = {single or card.inputs[0].name: rows}
        else:
            raise CodecError(f'"instances" of a model with several inputs are objects {{"name": value}}:'
                             f" {describe(card.inputs)}")
    may_hold_bools = b"true" in body or b"false" in body
    arrays = {name: _tensor(values, card.input(name), max_batch, may_hold_bools, wire.noun(card))
              for name, values in tensors.items()}
    return wire.validate(card, arrays, max_batch), columnar


def _tensor(values, spec: TensorSpec, max_batch: int, may_hold_bools: bool, rows: str) -> np.ndarray:
    what = f"input {spec.name!r}"
    if not isinstance(values, list):
        raise CodecError(f"{what} must be a list of {rows}, batch first")
    if not values:
        raise CodecError(f"empty batch: send at least one of {what}'s {rows}")
    if len(values) > max_batch:  # before numpy walks it
        raise CodecError(f"batch too large: {len(values)} {rows}, the limit is {max_batch}", status=413)
    ragged = f"wrong shape: {what} is not a regular array of shape {wire.dims_text(spec.shape)}"
    arr = wire.json_values(values, spec, what, may_hold_bools, ragged)
    if arr.ndim != len(spec.shape) or any(w is not None and d != w for d, w in zip(arr.shape[1:], spec.item_shape)):
        raise CodecError(f"wrong shape {list(arr.shape)} for {what}: expected {wire.dims_text(spec.shape)}")
    return arr


def encode_rest_response(outputs, columnar: bool, card: ModelCard | None = None) -> bytes:
    """TF Serving's answer: row format for "instances", columnar for "inputs"; one output's bare, several by name."""
    card = card or CIFAR10_CARD
    outputs = wire.output_dict(outputs, card)
    lists = {spec.name: np.asarray(outputs[spec.name], dtype=spec.np_dtype).tolist()
             for spec in card.outputs if spec.name in outputs}
    if columnar:
        doc = {"outputs": next(iter(lists.values())) if len(lists) == 1 else lists}
    elif len(lists) == 1:
        doc = {"predictions": next(iter(lists.values()))}
    else:
        n = len(next(iter(lists.values())))
        doc = {"predictions": [{name: values[i] for name, values in lists.items()} for i in range(n)]}
    return json.dumps(doc, separators=(",", ":")).encode()


def model_status(version: int) -> dict:
    """GET /v1/models/<name>[/versions/V]: GetModelStatusResponse as TF Serving's REST API prints it."""
    return {"model_version_status": [
        {"version": str(int(version)), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    ]}


def _tensor_info(name: str, dtype: str, dims: list[int]) -> dict:
    return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
            "name": name}


_DT_NAMES = {"bool": "DT_BOOL", "uint8": "DT_UINT8", "uint16": "DT_UINT16", "uint32": "DT_UINT32",
             "uint64": "DT_UINT64", "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64",
             "float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE"}


def model_metadata(version: int, card: ModelCard | None = None) -> dict:
    """GET /v1/models/<name>[/versions/V]/metadata: GetModelMetadataResponse as TF Serving's REST API prints it.

    The signature is the card's, with the tensor names a TF2 export gives (the
    tests read models/cifar10_cnn/1 and compare), and the init op every TF2
    SavedModel carries.
    """
    card = card or CIFAR10_CARD
    dims = lambda spec: [-1 if d is None else d for d in spec.shape]  # noqa: E731
    serving_default = {
        "inputs": {spec.name: _tensor_info(f"serving_default_{spec.name}:0", _DT_NAMES[spec.dtype], dims(spec))
                   for spec in card.inputs},
        # A TF2 export names the outputs of its one call in the order of their sorted keys.
        "outputs": {spec.name: _tensor_info(f"StatefulPartitionedCall:{i}", _DT_NAMES[spec.dtype], dims(spec))
                    for i, spec in enumerate(sorted(card.outputs, key=lambda s: s.name))},
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }
    init_op = {
        "inputs": {},
        "outputs": {"__saved_model_init_op": {"dtype": "DT_INVALID", "tensor_shape": {"dim": [], "unknown_rank": True},
                                              "name": "NoOp"}},
        "method_name": "",
        "defaults": {},
    }
    return {
        "model_spec": {"name": card.name, "signature_name": "", "version": str(int(version))},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: serving_default, "__saved_model_init_op": init_op}}},
    }


def rest_error_body(message: str) -> bytes:
    """TF Serving's error body."""
    return json.dumps({"error": message}).encode()


# ---------------------------------------------------------------- gRPC
def grpc_predict_request(images: np.ndarray, *, model: str = MODEL_NAME, version: int | None = None,
                         signature: str = SIGNATURE) -> predict_pb2.PredictRequest:
    """A PredictRequest carrying the batch as raw bytes.

    Built field by field (several times cheaper than tf.make_tensor_proto, and
    no TensorFlow on the call path): tensor_content is the raw C-order buffer.
    """
    from tensorflow_serving.apis import predict_pb2

    images = _as_batch(images)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    tensor = request.inputs[INPUT_KEY]
    tensor.dtype = DT_UINT8
    dims = tensor.tensor_shape.dim
    for size in images.shape:
        dims.add(size=size)
    tensor.tensor_content = images.tobytes()
    return request


def _output_array(outputs, key: str, dtype: int, np_dtype, values_field: str) -> np.ndarray:
    if key not in outputs:
        raise TFServingError(f"tfserving response lacks the output {key!r} (has {sorted(outputs)})")
    tensor = outputs[key]
    if tensor.dtype != dtype:
        raise TFServingError(f"tfserving output {key!r} has dtype enum {tensor.dtype}, expected {dtype}")
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    count = int(np.prod(shape))
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype=np_dtype)
    else:
        values = np.array(getattr(tensor, values_field), dtype=np_dtype)
        if 0 < values.size < count:  # TensorProto convention: the last value repeats
            values = np.pad(values, (0, count - values.size), mode="edge")
    if values.size != count:
        raise TFServingError(f"tfserving output {key!r} holds {values.size} values for shape {list(shape)}")
    return values.reshape(shape)


def parse_grpc_response(resp: predict_pb2.PredictResponse) -> Prediction:
    """Both outputs, from float_val/int64_val (TF Serving's default) or tensor_content."""
    outputs = resp.outputs
    probs = _output_array(outputs, PROBABILITIES, DT_FLOAT, np.float32, "float_val")
    classes = _output_array(outputs, CLASSES, DT_INT64, np.int64, "int64_val")
    return _prediction(probs, classes)


def _grpc_error(address: str, exc: grpc.RpcError, timeout_s: float) -> TFServingError:
    code = exc.code()
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        detail = f"no answer within {timeout_s:g} s"
    elif code is grpc.StatusCode.UNAVAILABLE:
        detail = f"unavailable ({exc.details()}); is TF Serving running?"
    else:
        detail = f"{code.name}: {exc.details()}"
    return upstream_error(address, _HTTP_STATUS_OF_GRPC.get(code.name, 500), detail)


class GrpcClient:
    """TF Serving's PredictionService over one channel (one per worker process)."""

    def __init__(self, address: str = "127.0.0.1:8500", *, model: str = MODEL_NAME,
                 version: int | None = None, signature: str = SIGNATURE, timeout_s: float = 10.0):
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.address = address
        self.timeout_s = timeout_s
        self.model, self.version, self.signature = model, version, signature
        self._channel = grpc.insecure_channel(address)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, images: np.ndarray, timeout_s: float | None = None) -> tuple[Prediction, float]:
        """The prediction and the round trip in ms (call made to answer decoded)."""
        request = grpc_predict_request(images, model=self.model, version=self.version, signature=self.signature)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        start = time.perf_counter()
        try:
            response = self._stub.Predict(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise _grpc_error(self.address, exc, timeout) from None
        round_trip_ms = (time.perf_counter() - start) * 1000.0
        return parse_grpc_response(response), round_trip_ms

    def close(self) -> None:
        self._channel.close()


# ---------------------------------------------------------------- server config
def render_models_config(base_path: str) -> str:
    """The ModelServerConfig text TF Serving loads (services/tfserving/models.config).

    Compose mounts the model at /models/cifar10_cnn; the native runner passes
    the local absolute path instead.
    """
    quoted = base_path.replace("\\", "\\\\").replace('"', '\\"')
    return (
        "model_config_list {\n"
        "  config {\n"
        f'    name: "{MODEL_NAME}"\n'
        f'    base_path: "{quoted}"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy {\n"
        "      latest {\n"
        "        num_versions: 1\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "}\n"
    )


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "models-config":
        sys.stdout.write(render_models_config(argv[1]))
        return 0
    print("usage: python -m servebench.tfserving models-config BASE_PATH", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
