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

from servebench.codecs import (
    _NO_BAD_PIXEL,
    IMAGE_SHAPE,
    CodecError,
    Prediction,
    _bad_pixel_error,
    _first_bad_pixel,
    _from_instances,
    _show,
    load_json,
)
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
def decode_rest_request(body: bytes, max_batch: int) -> tuple[np.ndarray, bool]:
    """A TF Serving predict request: the uint8 batch [n, 32, 32, 3] and whether it came columnar.

    Row format: ``{"instances": [image, ...]}`` or ``{"instances": [{"images": image}, ...]}``;
    columnar: ``{"inputs": [image, ...]}`` or ``{"inputs": {"images": [image, ...]}}``; an
    optional ``"signature_name"`` must name ``serving_default``. Total like
    :func:`servebench.codecs.decode`: the batch, or CodecError (4xx, naming the problem).
    """
    try:
        return _decode_rest_request(bytes(body), max_batch)
    except CodecError:
        raise
    except Exception as exc:  # a case nothing above foresaw is still the client's bad body, not a 500
        log.warning("unexpected %s decoding a TF Serving predict request", type(exc).__name__, exc_info=True)
        raise CodecError(f"malformed predict request: {type(exc).__name__}") from None




def _named_input(value: dict, where: str):
    """The tensor under the signature's one input key, refusing any other key."""
    unknown = sorted(str(k) for k in value if k != INPUT_KEY)
    if unknown:
        raise CodecError(f"unknown input {_show(unknown[0])} in {where}: the signature's only input is {INPUT_KEY!r}")
    if INPUT_KEY not in value:
        raise CodecError(f"missing input {INPUT_KEY!r} in {where}")
    return value[INPUT_KEY]


def _decode_rest_request(body: bytes, max_batch: int) -> tuple[np.ndarray, bool]:
    doc = load_json(body)
    if not isinstance(doc, dict):
        raise CodecError('predict request must be a JSON object with "instances" or "inputs"')
    signature = doc.get("signature_name", SIGNATURE)
    if signature not in (SIGNATURE, ""):  # TF Serving reads an empty name as the default
        raise CodecError(f"unknown signature_name {_show(signature)}: the model serves only {SIGNATURE!r}")
    if ("instances" in doc) == ("inputs" in doc):
        raise CodecError('predict request needs exactly one of "instances" (row format) or "inputs" (columnar)')
    columnar = "inputs" in doc
    if columnar:
        tensor = doc["inputs"]
        if isinstance(tensor, dict):
            tensor = _named_input(tensor, '"inputs"')
        if not isinstance(tensor, list):
            raise CodecError('"inputs" must be a [batch, 32, 32, 3] list or {"images": [...]}')
    else:
        tensor = doc["instances"]
        if not isinstance(tensor, list):
            raise CodecError('"instances" must be a list of 32x32x3 images')
        named = [isinstance(row, dict) for row in tensor]
        if any(named):
            if not all(named):
                raise CodecError('"instances" mixes {"images": ...} objects with bare images: use one form')
            tensor = [_named_input(row, '"instances"') for row in tensor]
    images = _from_instances(tensor, max_batch)
    # numpy reads [1, true] as [1, 1]; walk the lists only when the body spells a boolean
    if b"true" in body or b"false" in body:
        bad = _first_bad_pixel(tensor)
        if bad is not _NO_BAD_PIXEL:
            raise _bad_pixel_error(bad)
    return images, columnar


def encode_rest_response(pred: Prediction, columnar: bool) -> bytes:
    """TF Serving's answer for our two-output signature: row format for "instances", columnar for "inputs"."""
    probs = np.asarray(pred.probabilities, dtype=np.float32).tolist()
    classes = np.asarray(pred.classes, dtype=np.int64).tolist()
    if columnar:
        doc = {"outputs": {PROBABILITIES: probs, CLASSES: classes}}
    else:
        doc = {"predictions": [{PROBABILITIES: p, CLASSES: c} for p, c in zip(probs, classes)]}
    return json.dumps(doc, separators=(",", ":")).encode()


def model_status(version: int) -> dict:
    """GET /v1/models/cifar10_cnn[/versions/V]: GetModelStatusResponse as TF Serving's REST API prints it."""
    return {"model_version_status": [
        {"version": str(int(version)), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    ]}


def _tensor_info(name: str, dtype: str, dims: list[int]) -> dict:
    return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
            "name": name}


def model_metadata(version: int) -> dict:
    """GET /v1/models/cifar10_cnn[/versions/V]/metadata: GetModelMetadataResponse as TF Serving's REST API prints it.

    The signatures are those of models/cifar10_cnn/1 (the tests read the SavedModel
    and compare), including the init op every TF2 SavedModel carries.
    """
    serving_default = {
        "inputs": {INPUT_KEY: _tensor_info("serving_default_images:0", "DT_UINT8", [-1, *IMAGE_SHAPE])},
        "outputs": {
            CLASSES: _tensor_info("StatefulPartitionedCall:0", "DT_INT64", [-1]),
            PROBABILITIES: _tensor_info("StatefulPartitionedCall:1", "DT_FLOAT", [-1, NUM_CLASSES]),
        },
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
        "model_spec": {"name": MODEL_NAME, "signature_name": "", "version": str(int(version))},
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
