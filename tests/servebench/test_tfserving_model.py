"""The model as TF Serving sees it: the status and metadata answers our servers give, checked against the
official tensorflow-serving-api protos; models.config and batching.config as TF Serving parses them; the
exported SavedModel's serving signature fed our request. TF Serving itself cannot run here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow.core.protobuf import error_codes_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from servebench import topology, tfserving
from servebench.settings import Settings
from servebench.tfserving import grpc_predict_request, parse_grpc_response, render_models_config
from tests.servebench.tfserving_samples import sample_images, with_value_fields

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "services" / "tfserving"
MODEL_VERSION_DIR = REPO / "models" / "cifar10_cnn" / "1"


# ---------------------------------------------------------------- status and metadata answers
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
    images = sample_images(2)
    tensor = grpc_predict_request(images).inputs["images"]
    outputs = serving_signature(images=tf.constant(tf.make_ndarray(tensor)))
    resp = predict_pb2.PredictResponse()
    for key, value in outputs.items():
        resp.outputs[key].CopyFrom(with_value_fields(tf.make_tensor_proto(value.numpy())))
    pred = parse_grpc_response(resp)
    assert np.array_equal(pred.classes, outputs["classes"].numpy())
    assert np.allclose(pred.probabilities.sum(axis=1), 1.0, atol=1e-4)
