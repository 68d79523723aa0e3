"""Format tests: TF Serving itself cannot run here; these check our bodies and protos against the official tensorflow-serving-api protos and TF Serving's documented REST formats.

The two servers below (FakeTFServingREST, FakeTFServingGRPC) are test doubles
on 127.0.0.1 that answer in TF Serving's documented formats. They exercise our
clients' transport and error handling only; they are never TF Serving and never
appear in a benchmark.
"""
from __future__ import annotations

import json
import socket
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format, text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import error_codes_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from servebench.settings import Settings
from servebench import codecs, topology, tfserving
from servebench.tfserving import (
    GrpcClient,
    RestClient,
    TFServingError,
    grpc_predict_request,
    parse_grpc_response,
    parse_rest_response,
    render_models_config,
    rest_predict_body,
    rest_predict_path,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "services" / "tfserving"
MODEL_VERSION_DIR = REPO / "models" / "cifar10_cnn" / "1"


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _expected(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What both test doubles answer: a class that depends on the pixels, so a mix-up shows."""
    classes = (images.reshape(len(images), -1).sum(axis=1) % 10).astype(np.int64)
    probs = np.full((len(images), 10), 0.01, dtype=np.float32)
    probs[np.arange(len(images)), classes] = 0.91
    return classes, probs


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- REST formats
def test_rest_body_round_trip():
    images = _images()
    doc = json.loads(rest_predict_body(images))
    assert doc["signature_name"] == "serving_default"
    instances = np.asarray(doc["instances"])
    assert instances.dtype.kind == "i"  # integers, not floats: TF Serving casts them to uint8
    assert instances.shape == (3, 32, 32, 3)
    assert np.array_equal(instances.astype(np.uint8), images)
    # Our own servers accept the very same row-format body.
    assert np.array_equal(codecs.decode_json(rest_predict_body(images)), images)
    assert json.loads(rest_predict_body(images, signature="other"))["signature_name"] == "other"


def test_rest_body_takes_one_image_and_refuses_other_dtypes():
    assert np.asarray(json.loads(rest_predict_body(_images(1)[0]))["instances"]).shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="uint8"):
        rest_predict_body(_images().astype(np.float32))
    with pytest.raises(ValueError, match=r"\[n, 32, 32, 3\]"):
        rest_predict_body(np.zeros((2, 28, 28, 1), dtype=np.uint8))


def test_rest_predict_path():
    assert rest_predict_path() == "/v1/models/cifar10_cnn:predict"
    assert rest_predict_path(version=3) == "/v1/models/cifar10_cnn/versions/3:predict"
    assert rest_predict_path("other", 12) == "/v1/models/other/versions/12:predict"


def test_parse_rest_row_format_multi_output():
    body = json.dumps({"predictions": [
        {"probabilities": [0.1] * 9 + [0.1], "classes": 3},
        {"probabilities": [0.0] * 9 + [1.0], "classes": 9},
    ]}).encode()
    pred = parse_rest_response(body)
    assert pred.classes.dtype == np.int64 and pred.classes.tolist() == [3, 9]
    assert pred.probabilities.dtype == np.float32 and pred.probabilities.shape == (2, 10)


def test_parse_rest_row_format_single_output_uses_argmax():
    rows = [[0.0] * 10 for _ in range(2)]
    rows[0][7], rows[1][2] = 0.9, 0.8
    pred = parse_rest_response(json.dumps({"predictions": rows}).encode())
    assert pred.classes.tolist() == [7, 2]
    assert pred.probabilities[0, 7] == pytest.approx(0.9)


def test_parse_rest_columnar_format():
    probs = [[0.1] * 10, [0.2] * 10]
    pred = parse_rest_response(json.dumps({"outputs": {"probabilities": probs, "classes": [1, 5]}}).encode())
    assert pred.classes.tolist() == [1, 5]
    assert np.allclose(pred.probabilities, probs)
    single = [[0.0] * 9 + [1.0]]
    assert parse_rest_response(json.dumps({"outputs": single}).encode()).classes.tolist() == [9]


@pytest.mark.parametrize("body, fragment", [
    (b'{"error": "Servable not found for request: Latest(nope)"}', "Servable not found"),
    (b"<html>bad gateway</html>", "malformed JSON"),
    (b"\xff\xfe", "malformed JSON"),
    (b"[1, 2]", "not an object"),
    (b'{"result": []}', "neither"),
    (b'{"predictions": [{"probabilities": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}]}', "'classes'"),
    (b'{"outputs": {"classes": [1]}}', "'probabilities'"),
    (b'{"predictions": [[0.5, 0.5]]}', "shape [1, 2]"),
    (b'{"predictions": []}', "shape [0]"),
    (b'{"predictions": [[0.1], [0.1, 0.2]]}', "unreadable"),
    (b'{"predictions": 3}', "shape []"),
    (b'{"outputs": {"probabilities": [[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]], "classes": [12]}}', "outside 0..9"),
    (b'{"outputs": {"probabilities": [[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]], "classes": [1, 2]}}', "classes of shape [2]"),
])
def test_parse_rest_errors_are_bad_gateway(body, fragment):
    with pytest.raises(TFServingError) as info:
        parse_rest_response(body)
    assert info.value.status == 502
    assert isinstance(info.value, RuntimeError)
    assert fragment in info.value.message


# ---------------------------------------------------------------- REST, server side (our servers speaking TF Serving's API)
def _server_prediction(n: int = 3) -> codecs.Prediction:
    classes, probs = _expected(_images(n))
    probs[0, 0] = 1e-7  # a value a 6-decimal rounding would lose
    return codecs.Prediction(classes=classes, probabilities=probs)


def _decode_rest(doc, max_batch: int = 256):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return tfserving.decode_rest_request(body, max_batch)


@pytest.mark.parametrize(
    "make, columnar",
    [
        (lambda x: {"instances": x.tolist()}, False),
        (lambda x: {"signature_name": "serving_default", "instances": x.tolist()}, False),
        (lambda x: {"signature_name": "", "instances": x.tolist()}, False),
        (lambda x: {"instances": [{"images": image.tolist()} for image in x]}, False),
        (lambda x: {"inputs": x.tolist()}, True),
        (lambda x: {"inputs": {"images": x.tolist()}, "signature_name": "serving_default"}, True),
        (lambda x: {"instances": x.tolist(), "unrelated": True}, False),
    ],
    ids=["rows", "rows-signature", "rows-empty-signature", "rows-named", "columnar", "columnar-named", "extra-key"],
)
def test_decode_rest_request_forms(make, columnar):
    images = _images(3)
    decoded, was_columnar = _decode_rest(make(images))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, images)
    assert was_columnar is columnar


def test_decode_rest_request_reads_our_own_client_body():
    images = _images(2)
    decoded, columnar = tfserving.decode_rest_request(rest_predict_body(images), 8)
    assert np.array_equal(decoded, images) and columnar is False


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columnar"])
def test_encode_rest_response_reads_back_with_parse_rest_response(columnar):
    pred = _server_prediction()
    body = tfserving.encode_rest_response(pred, columnar)
    doc = json.loads(body)
    if columnar:
        assert set(doc) == {"outputs"} and set(doc["outputs"]) == {"probabilities", "classes"}
        assert doc["outputs"]["classes"] == pred.classes.tolist()
    else:
        assert set(doc) == {"predictions"} and len(doc["predictions"]) == 3
        assert doc["predictions"][1] == {"probabilities": pred.probabilities[1].tolist(), "classes": int(pred.classes[1])}
    back = parse_rest_response(body)
    assert np.array_equal(back.classes, pred.classes)
    assert np.array_equal(back.probabilities, pred.probabilities)  # float32 survives exactly


def _named_pixel(value):
    images = _images(1).tolist()
    images[0][3][4][2] = value
    return images


TF_HOSTILE = [
    ("truncated", b'{"instances": [', "malformed JSON"),
    ("empty", b"", "malformed JSON"),
    ("not-utf8", b"\xff\xfe\x00", "malformed JSON"),
    ("utf-16-with-true-pixel", json.dumps({"instances": _named_pixel(True)}).encode("utf-16"), "malformed JSON"),
    ("nan", b'{"instances": [[[[NaN]]]]}', "NaN or Infinity"),
    ("duplicate-key", b'{"instances": [], "instances": []}', "duplicate key 'instances'"),
    ("deep", b'{"instances": ' + b"[" * 100_000 + b"0" + b"]" * 100_000 + b"}", "nested too deeply"),
    ("array", b"[1, 2]", "JSON object"),
    ("neither", {"signature_name": "serving_default"}, 'exactly one of "instances"'),
    ("both", {"instances": [], "inputs": []}, 'exactly one of "instances"'),
    ("unknown-signature", {"signature_name": "predict", "instances": []}, "unknown signature_name 'predict'"),
    ("signature-not-string", {"signature_name": 3, "instances": []}, "unknown signature_name 3"),
    ("instances-not-list", {"instances": {"images": []}}, '"instances" must be a list'),
    ("inputs-not-list", {"inputs": 5}, '"inputs" must be'),
    ("inputs-unknown-name", {"inputs": {"image": []}}, "unknown input 'image'"),
    ("inputs-extra-name", {"inputs": {"images": [], "mask": []}}, "unknown input 'mask'"),
    ("inputs-empty-object", {"inputs": {}}, "missing input 'images'"),
    ("rows-unknown-name", {"instances": [{"image": []}]}, "unknown input 'image'"),
    ("rows-missing-name", {"instances": [{}]}, "missing input 'images'"),
    ("rows-mixed", {"instances": [{"images": []}, []]}, "mixes"),
    ("rows-b64", {"instances": [{"b64": "AAAA"}]}, "unknown input 'b64'"),
    ("empty-batch", {"instances": []}, "empty batch"),
    ("empty-columnar", {"inputs": []}, "empty batch"),
    ("wrong-shape", {"instances": np.zeros((1, 32, 32, 4), int).tolist()}, "wrong shape"),
    ("no-batch-axis", {"inputs": np.zeros((32, 32, 3), int).tolist()}, "wrong shape"),
    ("ragged", {"instances": [np.zeros((32, 32, 3), int).tolist(), [[0, 0, 0]]]}, "wrong shape"),
    ("floats", {"instances": np.full((1, 32, 32, 3), 0.5).tolist()}, "not floats"),
    ("one-float", {"instances": _named_pixel(1.0)}, "not floats"),
    ("one-true", {"instances": _named_pixel(True)}, "not booleans"),
    ("one-true-named", {"instances": [{"images": _named_pixel(False)[0]}]}, "not booleans"),
    ("one-true-columnar", {"inputs": {"images": _named_pixel(True)}}, "not booleans"),
    ("string", {"instances": _named_pixel("7")}, "not strings"),
    ("null", {"inputs": _named_pixel(None)}, "not null"),
    ("out-of-range", {"instances": _named_pixel(256)}, "out of range"),
    ("negative", {"instances": _named_pixel(-1)}, "out of range"),
    ("huge", {"instances": _named_pixel(2**70)}, "out of range"),
]


@pytest.mark.parametrize("doc, phrase", [c[1:] for c in TF_HOSTILE], ids=[c[0] for c in TF_HOSTILE])
def test_decode_rest_request_refuses_with_a_4xx_naming_the_problem(doc, phrase):
    with pytest.raises(codecs.CodecError) as info:
        _decode_rest(doc)
    assert info.value.status == 400, info.value.message
    assert phrase in info.value.message, info.value.message


@pytest.mark.parametrize("doc", [lambda x: {"instances": x.tolist()}, lambda x: {"inputs": {"images": x.tolist()}},
                                 lambda x: {"instances": [{"images": i.tolist()} for i in x]}], ids=["rows", "columnar", "named"])
def test_decode_rest_request_batch_too_large_is_413(doc):
    with pytest.raises(codecs.CodecError) as info:
        _decode_rest(doc(_images(5)), max_batch=4)
    assert info.value.status == 413 and "batch too large: 5 images, the limit is 4" in info.value.message


def test_decode_rest_request_is_total_whatever_goes_wrong_inside(monkeypatch):
    def boom(*_):
        raise ZeroDivisionError("a bug no body should turn into a 500")

    monkeypatch.setattr(tfserving, "_from_instances", boom)
    with pytest.raises(codecs.CodecError) as info:
        _decode_rest({"instances": _images(1).tolist()})
    assert info.value.status == 400 and info.value.message == "malformed predict request: ZeroDivisionError"


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=st.one_of(
    st.binary(max_size=256),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(
                     st.sampled_from(["instances", "inputs", "images", "signature_name", "x"]), c, max_size=3),
                 max_leaves=20).map(lambda doc: json.dumps(doc).encode()),
))
def test_decode_rest_request_fuzz_is_total(body):
    try:
        images, columnar = tfserving.decode_rest_request(body, 4)
    except codecs.CodecError as exc:
        assert 400 <= exc.status < 500 and exc.message.strip() and len(exc.message) < 1000
        return
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3) and 1 <= len(images) <= 4
    assert isinstance(columnar, bool)


def _tf_serving_json(message) -> dict:
    """A proto as TF Serving's REST handler prints it: every field with no presence, proto field names."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)


def test_model_status_is_the_get_model_status_proto_as_json():
    response = get_model_status_pb2.GetModelStatusResponse()
    status = response.model_version_status.add()
    status.version = 7
    status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    status.status.error_code = error_codes_pb2.OK  # TF Serving sets it, so it is printed
    assert tfserving.model_status(7) == _tf_serving_json(response)
    # And our own client reads it as healthy.
    assert tfserving.model_status(1)["model_version_status"][0]["state"] == "AVAILABLE"


def test_model_metadata_is_the_get_model_metadata_proto_of_the_saved_model():
    if not (MODEL_VERSION_DIR / "saved_model.pb").is_file():
        pytest.skip(f"no exported SavedModel at {MODEL_VERSION_DIR} (run the export first)")
    saved = saved_model_pb2.SavedModel.FromString((MODEL_VERSION_DIR / "saved_model.pb").read_bytes())
    (graph,) = saved.meta_graphs
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in graph.signature_def.items():
        signatures.signature_def[key].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = "cifar10_cnn"
    response.model_spec.version.value = 1
    response.metadata["signature_def"].Pack(signatures)
    # TF Serving prints model_spec and the unpacked SignatureDefMap separately (no "@type"; http_rest_api_util.cc).
    expected = {"model_spec": _tf_serving_json(response.model_spec), "metadata": {"signature_def": _tf_serving_json(signatures)}}
    assert tfserving.model_metadata(1) == expected
    assert tfserving.model_metadata(3)["model_spec"] == {"name": "cifar10_cnn", "signature_name": "", "version": "3"}


def test_model_metadata_reads_as_perf_analyzer_reads_it():
    """perf_analyzer's TF Serving backend reads metadata.signature_def.signature_def.serving_default inputs."""
    inputs = tfserving.model_metadata(1)["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    image = inputs["images"]
    assert image["dtype"] == "DT_UINT8" and image["tensor_shape"]["unknown_rank"] is False
    assert [int(d["size"]) for d in image["tensor_shape"]["dim"]] == [-1, 32, 32, 3]


def test_rest_error_body():
    assert json.loads(tfserving.rest_error_body('bad "x"')) == {"error": 'bad "x"'}


# ---------------------------------------------------------------- gRPC formats
def test_dtype_constants_match_tensorflow():
    assert (tfserving.DT_FLOAT, tfserving.DT_UINT8, tfserving.DT_INT64) == (
        types_pb2.DT_FLOAT, types_pb2.DT_UINT8, types_pb2.DT_INT64)


def test_grpc_request_is_a_valid_predict_request():
    images = _images(4)
    request = predict_pb2.PredictRequest.FromString(grpc_predict_request(images, version=2).SerializeToString())
    assert request.model_spec.name == "cifar10_cnn"
    assert request.model_spec.signature_name == "serving_default"
    assert request.model_spec.version.value == 2
    assert list(request.inputs) == ["images"]
    tensor = request.inputs["images"]
    assert tensor.dtype == types_pb2.DT_UINT8
    assert [d.size for d in tensor.tensor_shape.dim] == [4, 32, 32, 3]
    decoded = tf.make_ndarray(tensor)  # TensorFlow's own decoder, as TF Serving's
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, images)


def test_grpc_request_without_version_and_with_other_names():
    request = grpc_predict_request(_images(1)[0], model="m", signature="s")
    assert not request.model_spec.HasField("version")  # TF Serving then picks the latest
    assert (request.model_spec.name, request.model_spec.signature_name) == ("m", "s")
    assert [d.size for d in request.inputs["images"].tensor_shape.dim] == [1, 32, 32, 3]


def _with_value_fields(proto):
    """The same tensor as float_val/int64_val: what TF Serving sends (Tensor::AsProtoField)."""
    array = tf.make_ndarray(proto)
    field = {types_pb2.DT_FLOAT: proto.float_val, types_pb2.DT_INT64: proto.int64_val}[proto.dtype]
    proto.ClearField("tensor_content")
    field.extend(array.ravel().tolist())
    return proto


def _response(classes, probs, *, value_fields: bool) -> predict_pb2.PredictResponse:
    resp = predict_pb2.PredictResponse()
    resp.model_spec.name = "cifar10_cnn"
    for key, proto in (("probabilities", tf.make_tensor_proto(probs)), ("classes", tf.make_tensor_proto(classes))):
        resp.outputs[key].CopyFrom(_with_value_fields(proto) if value_fields else proto)
    return predict_pb2.PredictResponse.FromString(resp.SerializeToString())


@pytest.mark.parametrize("value_fields", [True, False], ids=["float_val-int64_val", "tensor_content"])
def test_parse_grpc_response(value_fields):
    classes, probs = _expected(_images(5))
    resp = _response(classes, probs, value_fields=value_fields)
    assert bool(resp.outputs["probabilities"].tensor_content) is not value_fields
    pred = parse_grpc_response(resp)
    assert pred.classes.dtype == np.int64 and np.array_equal(pred.classes, classes)
    assert pred.probabilities.dtype == np.float32 and np.array_equal(pred.probabilities, probs)


def test_parse_grpc_response_repeats_the_last_value_as_tensorflow_does():
    resp = predict_pb2.PredictResponse()
    resp.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(np.float32(0.1), shape=[2, 10]))
    resp.outputs["classes"].CopyFrom(tf.make_tensor_proto(np.int64(4), shape=[2]))
    assert len(resp.outputs["probabilities"].float_val) == 1
    pred = parse_grpc_response(resp)
    assert np.array_equal(pred.probabilities, tf.make_ndarray(resp.outputs["probabilities"]))
    assert pred.classes.tolist() == [4, 4]


@pytest.mark.parametrize("missing", ["probabilities", "classes"])
def test_parse_grpc_response_missing_output(missing):
    resp = _response(*_expected(_images(2)), value_fields=True)
    del resp.outputs[missing]
    with pytest.raises(TFServingError, match=f"lacks the output '{missing}'") as info:
        parse_grpc_response(resp)
    assert info.value.status == 502


def test_parse_grpc_response_wrong_dtype_or_shape():
    classes, probs = _expected(_images(2))
    resp = _response(classes, probs, value_fields=False)
    resp.outputs["classes"].CopyFrom(tf.make_tensor_proto(classes.astype(np.int32)))
    with pytest.raises(TFServingError, match="'classes' has dtype"):
        parse_grpc_response(resp)
    resp = _response(classes, probs, value_fields=False)
    resp.outputs["probabilities"].tensor_shape.dim[1].size = 11
    with pytest.raises(TFServingError, match="holds 20 values for shape"):
        parse_grpc_response(resp)


# ---------------------------------------------------------------- error mapping
@pytest.mark.parametrize("upstream, status", [
    (400, 400), (404, 404), (429, 429), (500, 502), (501, 502), (503, 502), (504, 504), (502, 502),
])
def test_upstream_error_status(upstream, status):
    err = tfserving.upstream_error("127.0.0.1:8501", upstream, "detail")
    assert err.status == status
    assert err.message == "tfserving at 127.0.0.1:8501: detail"


def test_grpc_code_table_covers_every_code():
    codes = {c.name for c in grpc.StatusCode} - {"OK"}
    assert set(tfserving._HTTP_STATUS_OF_GRPC) == codes


# ---------------------------------------------------------------- server configuration
def _uncommented(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def test_models_config_parses_and_names_the_mounted_model():
    text = (CONFIG_DIR / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == Settings().model_name == tfserving.MODEL_NAME
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1
    # The base path is where compose mounts the model folder, which exists here.
    mounts = dict(v.rsplit(":", 2)[:2][::-1] for v in topology.compose_document()["services"]["tfserving"]["volumes"])
    assert model.base_path in mounts
    assert (REPO / mounts[model.base_path]).resolve() == (REPO / "models" / "cifar10_cnn").resolve()
    # ...and the file itself is mounted where the command looks for it.
    assert "/models/models.config" in mounts and mounts["/models/models.config"].endswith("services/tfserving/models.config")


def test_committed_models_config_is_the_rendered_one():
    text = (CONFIG_DIR / "models.config").read_text()
    assert text.startswith("#")  # the header says where it comes from
    assert _uncommented(text) == render_models_config("/models/cifar10_cnn")


def test_render_models_config_with_a_local_path(capsys):
    path = '/home/a user/odd "dir"\\x/models/cifar10_cnn'
    config = text_format.Parse(render_models_config(path), model_server_config_pb2.ModelServerConfig())
    assert config.model_config_list.config[0].base_path == path
    # The command the README shows for the native run.
    assert tfserving.main(["models-config", "/abs/models/cifar10_cnn"]) == 0
    assert capsys.readouterr().out == render_models_config("/abs/models/cifar10_cnn")


def _batching_parameters_class():
    """TF Serving's BatchingParameters message.

    The tensorflow-serving-api wheel ships only apis/ and config/, not
    servables/tensorflow/session_bundle_config_pb2. Without it, this mirrors the
    message's fields (names, numbers, types) from TF Serving's
    session_bundle_config.proto, so an unknown or mistyped field still fails.
    """
    try:
        from tensorflow_serving.servables.tensorflow.session_bundle_config_pb2 import BatchingParameters
        return BatchingParameters
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    for number, (name, wrapper) in enumerate([
        ("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
        ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
        ("thread_pool_name", "StringValue"),
    ], start=1):
        message.field.add(name=name, number=number, label=field.LABEL_OPTIONAL,
                          type=field.TYPE_MESSAGE, type_name=f".google.protobuf.{wrapper}")
    message.field.add(name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED, type=field.TYPE_INT64)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def test_batching_config_parses_and_fits_the_largest_request():
    params = text_format.Parse((CONFIG_DIR / "batching.config").read_text(), _batching_parameters_class()())
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        assert params.HasField(name), name
    # TF Serving rejects a request larger than one batch (no large-batch splitting).
    assert params.max_batch_size.value >= Settings().max_batch
    assert 1 <= params.num_batch_threads.value <= 2  # 2 cores
    assert params.max_enqueued_batches.value >= 1


# ---------------------------------------------------------------- the exported model
@pytest.fixture(scope="module")
def serving_signature():
    if not (MODEL_VERSION_DIR / "saved_model.pb").is_file():
        pytest.skip(f"no exported SavedModel at {MODEL_VERSION_DIR} (run the export first)")
    return tf.saved_model.load(str(MODEL_VERSION_DIR)).signatures["serving_default"]


def test_saved_model_has_the_signature_tf_serving_serves(serving_signature):
    args, kwargs = serving_signature.structured_input_signature
    assert args == () and list(kwargs) == ["images"]
    spec = kwargs["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 32, 32, 3] and spec.name == "images"
    outputs = serving_signature.structured_outputs
    assert set(outputs) == {"probabilities", "classes"}
    assert outputs["probabilities"].dtype == tf.float32 and outputs["probabilities"].shape.as_list() == [None, 10]
    assert outputs["classes"].dtype == tf.int64 and outputs["classes"].shape.as_list() == [None]


def test_our_request_feeds_the_signature_and_its_outputs_parse(serving_signature):
    """What TF Serving does with our request: decode the tensor, run the signature, encode the outputs."""
    images = _images(2)
    tensor = grpc_predict_request(images).inputs["images"]
    outputs = serving_signature(images=tf.constant(tf.make_ndarray(tensor)))
    resp = predict_pb2.PredictResponse()
    for key, value in outputs.items():
        resp.outputs[key].CopyFrom(_with_value_fields(tf.make_tensor_proto(value.numpy())))
    pred = parse_grpc_response(resp)
    assert np.array_equal(pred.classes, outputs["classes"].numpy())
    assert np.allclose(pred.probabilities.sum(axis=1), 1.0, atol=1e-4)


# ---------------------------------------------------------------- RestClient against a test double
class FakeTFServingREST:
    """TEST DOUBLE, not TF Serving: a loopback http.server answering TF Serving's documented REST formats."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict, bytes]] = []  # method, path, headers, body
        self.client_ports: set[int] = set()
        self.answer: tuple[int, dict] | None = None  # a fixed (status, body) instead of predicting
        self.state = "AVAILABLE"
        self.delay = threading.Event()  # set: answer at once; clear: stall until set (or 5 s)
        self.delay.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving

            def _reply(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up first (timeout test)
                    pass

            def do_GET(self):
                fake.client_ports.add(self.client_address[1])
                if self.path != "/v1/models/cifar10_cnn":
                    return self._reply(404, {"error": f"Could not find any versions of model {self.path}"})
                self._reply(200, {"model_version_status": [
                    {"version": "1", "state": fake.state, "status": {"error_code": "OK", "error_message": ""}}]})

            def do_POST(self):
                fake.client_ports.add(self.client_address[1])
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.requests.append(("POST", self.path, dict(self.headers), body))
                fake.delay.wait(5)
                if fake.answer:
                    return self._reply(*fake.answer)
                if self.path != "/v1/models/cifar10_cnn:predict":
                    return self._reply(404, {"error": "Servable not found for request: Specific(cifar10_cnn, 7)"})
                doc = json.loads(body)
                if doc.get("signature_name", "serving_default") != "serving_default":
                    return self._reply(400, {"error": f"Serving signature name: \"{doc['signature_name']}\" not found in signature def"})
                classes, probs = _expected(np.asarray(doc["instances"], dtype=np.uint8))
                self._reply(200, {"predictions": [
                    {"probabilities": p.tolist(), "classes": int(c)} for c, p in zip(classes, probs)]})

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.delay.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_rest():
    with FakeTFServingREST() as fake:
        yield fake


def test_rest_client_predicts_over_one_kept_alive_connection(fake_rest):
    client = RestClient("127.0.0.1", fake_rest.port, pool_size=2)
    images = _images(3)
    for _ in range(3):
        pred, ms = client.predict(images)
        classes, probs = _expected(images)
        assert np.array_equal(pred.classes, classes) and np.allclose(pred.probabilities, probs)
        assert ms > 0
    method, path, headers, body = fake_rest.requests[0]
    assert path == "/v1/models/cifar10_cnn:predict"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["signature_name"] == "serving_default"
    assert len(fake_rest.client_ports) == 1  # the pool reused its connection
    client.close()


def test_rest_client_health(fake_rest):
    client = RestClient("127.0.0.1", fake_rest.port)
    assert client.health() is True
    fake_rest.state = "LOADING"
    assert client.health() is False
    assert RestClient("127.0.0.1", _free_port()).health() is False


@pytest.mark.parametrize("answer, status, fragment", [
    ((400, {"error": "Expected tensor of type uint8 but got float"}), 400, "Expected tensor of type uint8"),
    ((404, {"error": "Servable not found for request: Latest(cifar10_cnn)"}), 404, "Servable not found"),
    ((500, {"error": "Internal: kernel failed"}), 502, "kernel failed"),
    ((503, {"error": "The batch scheduling queue to which this task was submitted is full"}), 502, "queue"),
    ((200, {"unexpected": True}), 502, "neither"),
])
def test_rest_client_maps_tf_serving_errors(fake_rest, answer, status, fragment):
    fake_rest.answer = answer
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", fake_rest.port).predict(_images(1))
    assert info.value.status == status
    assert fragment in info.value.message


def test_rest_client_keeps_tf_serving_status_for_wrong_version_and_signature(fake_rest):
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", fake_rest.port, version=7).predict(_images(1))
    assert info.value.status == 404 and "answered 404: Servable not found" in info.value.message
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", fake_rest.port, signature="nope").predict(_images(1))
    assert info.value.status == 400 and '"nope" not found' in info.value.message


def test_rest_client_connection_refused_is_502():
    port = _free_port()
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", port, timeout_s=2).predict(_images(1))
    assert info.value.status == 502
    assert f"tfserving at 127.0.0.1:{port}" in info.value.message
    assert "refused" in info.value.message.lower()


def test_rest_client_slow_answer_is_504(fake_rest):
    fake_rest.delay.clear()
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", fake_rest.port, timeout_s=0.3).predict(_images(1))
    assert info.value.status == 504
    assert "no answer within 0.3 s" in info.value.message


# ---------------------------------------------------------------- GrpcClient against a test double
class FakeTFServingGRPC(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TEST DOUBLE, not TF Serving: an in-process grpc.server answering PredictionService/Predict."""

    def __init__(self):
        self.requests: list[predict_pb2.PredictRequest] = []
        self.abort_with: tuple[grpc.StatusCode, str] | None = None
        self.delay = threading.Event()
        self.delay.set()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def Predict(self, request, context):
        self.requests.append(request)
        self.delay.wait(5)
        if self.abort_with:
            context.abort(*self.abort_with)
        tensor = request.inputs["images"]
        if tensor.dtype != types_pb2.DT_UINT8:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be uint8")
        classes, probs = _expected(tf.make_ndarray(tensor))
        resp = predict_pb2.PredictResponse()
        resp.model_spec.CopyFrom(request.model_spec)
        resp.outputs["probabilities"].CopyFrom(_with_value_fields(tf.make_tensor_proto(probs)))
        resp.outputs["classes"].CopyFrom(_with_value_fields(tf.make_tensor_proto(classes)))
        return resp

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.delay.set()
        self.server.stop(grace=None).wait(5)


@pytest.fixture
def fake_grpc():
    with FakeTFServingGRPC() as fake:
        yield fake


def test_grpc_client_predicts(fake_grpc):
    client = GrpcClient(f"127.0.0.1:{fake_grpc.port}", version=1)
    images = _images(4)
    pred, ms = client.predict(images, timeout_s=5)
    classes, probs = _expected(images)
    assert np.array_equal(pred.classes, classes) and np.allclose(pred.probabilities, probs)
    assert ms > 0
    (request,) = fake_grpc.requests
    assert request.model_spec.name == "cifar10_cnn" and request.model_spec.version.value == 1
    assert request.model_spec.signature_name == "serving_default"
    client.close()


@pytest.mark.parametrize("code, status", [
    (grpc.StatusCode.INVALID_ARGUMENT, 400),
    (grpc.StatusCode.NOT_FOUND, 404),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (grpc.StatusCode.INTERNAL, 502),
    (grpc.StatusCode.UNAVAILABLE, 502),
])
def test_grpc_client_maps_status_codes(fake_grpc, code, status):
    fake_grpc.abort_with = (code, "message from TF Serving")
    client = GrpcClient(f"127.0.0.1:{fake_grpc.port}")
    with pytest.raises(TFServingError) as info:
        client.predict(_images(1), timeout_s=5)
    assert info.value.status == status
    assert "message from TF Serving" in info.value.message
    assert f"tfserving at 127.0.0.1:{fake_grpc.port}" in info.value.message
    client.close()


def test_grpc_client_deadline_is_504(fake_grpc):
    fake_grpc.delay.clear()
    client = GrpcClient(f"127.0.0.1:{fake_grpc.port}")
    with pytest.raises(TFServingError) as info:
        client.predict(_images(1), timeout_s=0.3)
    assert info.value.status == 504 and "no answer within 0.3 s" in info.value.message
    client.close()


def test_grpc_client_unreachable_is_502():
    address = f"127.0.0.1:{_free_port()}"
    client = GrpcClient(address, timeout_s=2)
    with pytest.raises(TFServingError) as info:
        client.predict(_images(1))
    assert info.value.status in (502, 503)
    assert f"tfserving at {address}" in info.value.message
    client.close()
