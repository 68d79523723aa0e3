"""TF Serving's gRPC API: our PredictRequest and the PredictResponse we parse, checked against the official
tensorflow-serving-api protos, and GrpcClient against a test double. TF Serving itself cannot run here.

FakeTFServingGRPC below is an in-process test double on 127.0.0.1 answering
PredictionService/Predict. It exercises our client's transport and error handling
only; it is never TF Serving and never appears in a benchmark.
"""
from __future__ import annotations

import threading
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from servebench import tfserving
from servebench.tfserving import GrpcClient, TFServingError, grpc_predict_request, parse_grpc_response
from tests.servebench.tfserving_samples import expected_answer, sample_images, with_value_fields
from tests.stacks import free_ports

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------- gRPC formats
def test_dtype_constants_match_tensorflow():
    assert (tfserving.DT_FLOAT, tfserving.DT_UINT8, tfserving.DT_INT64) == (
        types_pb2.DT_FLOAT, types_pb2.DT_UINT8, types_pb2.DT_INT64)


def test_grpc_request_is_a_valid_predict_request():
    images = sample_images(4)
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
    request = grpc_predict_request(sample_images(1)[0], model="m", signature="s")
    assert not request.model_spec.HasField("version")  # TF Serving then picks the latest
    assert (request.model_spec.name, request.model_spec.signature_name) == ("m", "s")
    assert [d.size for d in request.inputs["images"].tensor_shape.dim] == [1, 32, 32, 3]


def _response(classes, probs, *, value_fields: bool) -> predict_pb2.PredictResponse:
    resp = predict_pb2.PredictResponse()
    resp.model_spec.name = "cifar10_cnn"
    for key, proto in (("probabilities", tf.make_tensor_proto(probs)), ("classes", tf.make_tensor_proto(classes))):
        resp.outputs[key].CopyFrom(with_value_fields(proto) if value_fields else proto)
    return predict_pb2.PredictResponse.FromString(resp.SerializeToString())


@pytest.mark.parametrize("value_fields", [True, False], ids=["float_val-int64_val", "tensor_content"])
def test_parse_grpc_response(value_fields):
    classes, probs = expected_answer(sample_images(5))
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
    resp = _response(*expected_answer(sample_images(2)), value_fields=True)
    del resp.outputs[missing]
    with pytest.raises(TFServingError, match=f"lacks the output '{missing}'") as info:
        parse_grpc_response(resp)
    assert info.value.status == 502


def test_parse_grpc_response_wrong_dtype_or_shape():
    classes, probs = expected_answer(sample_images(2))
    resp = _response(classes, probs, value_fields=False)
    resp.outputs["classes"].CopyFrom(tf.make_tensor_proto(classes.astype(np.int32)))
    with pytest.raises(TFServingError, match="'classes' has dtype"):
        parse_grpc_response(resp)
    resp = _response(classes, probs, value_fields=False)
    resp.outputs["probabilities"].tensor_shape.dim[1].size = 11
    with pytest.raises(TFServingError, match="holds 20 values for shape"):
        parse_grpc_response(resp)


# ---------------------------------------------------------------- error mapping
def test_grpc_code_table_covers_every_code():
    codes = {c.name for c in grpc.StatusCode} - {"OK"}
    assert set(tfserving._HTTP_STATUS_OF_GRPC) == codes


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
        classes, probs = expected_answer(tf.make_ndarray(tensor))
        resp = predict_pb2.PredictResponse()
        resp.model_spec.CopyFrom(request.model_spec)
        resp.outputs["probabilities"].CopyFrom(with_value_fields(tf.make_tensor_proto(probs)))
        resp.outputs["classes"].CopyFrom(with_value_fields(tf.make_tensor_proto(classes)))
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
    images = sample_images(4)
    pred, ms = client.predict(images, timeout_s=5)
    classes, probs = expected_answer(images)
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
        client.predict(sample_images(1), timeout_s=5)
    assert info.value.status == status
    assert "message from TF Serving" in info.value.message
    assert f"tfserving at 127.0.0.1:{fake_grpc.port}" in info.value.message
    client.close()


def test_grpc_client_deadline_is_504(fake_grpc):
    fake_grpc.delay.clear()
    client = GrpcClient(f"127.0.0.1:{fake_grpc.port}")
    with pytest.raises(TFServingError) as info:
        client.predict(sample_images(1), timeout_s=0.3)
    assert info.value.status == 504 and "no answer within 0.3 s" in info.value.message
    client.close()


def test_grpc_client_unreachable_is_502():
    address = f"127.0.0.1:{free_ports(1)[0]}"
    client = GrpcClient(address, timeout_s=2)
    with pytest.raises(TFServingError) as info:
        client.predict(sample_images(1))
    assert info.value.status in (502, 503)
    assert f"tfserving at {address}" in info.value.message
    client.close()
