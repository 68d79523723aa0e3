"""TF Serving's models.config and batching.config generated from a model card (services/tfserving/config.py),
parsed by the official ModelServerConfig proto and TF Serving's BatchingParameters fields; the committed files
are what the generator gives for the default model. TF Serving itself cannot run here.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format

from servebench.modelcard import CardError, ModelCard, TensorSpec
from servebench.settings import REPO_ROOT, Settings
from services.tfserving import config

pytestmark = pytest.mark.unit

CONFIG_DIR = REPO_ROOT / "services" / "tfserving"
DEFAULT_MODEL = REPO_ROOT / "models" / "cifar10_cnn"


def _card(name="tabular", format="savedmodel", source="x/1", item=(30,)) -> ModelCard:
    return ModelCard(name=name, version=1, format=format, source=source,
                     inputs=(TensorSpec("features", "float32", (None, *item)),),
                     outputs=(TensorSpec("probabilities", "float32", (None, 2)),))


def _model_server_config(text: str):
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def _batching_parameters(text: str):
    """Parsed as TF Serving's BatchingParameters (session_bundle_config.proto): the official message when the
    wheel ships it, else a mirror of its fields (names, numbers, types), so a mistyped field still fails."""
    try:
        from tensorflow_serving.servables.tensorflow.session_bundle_config_pb2 import BatchingParameters
        return text_format.Parse(text, BatchingParameters())
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="h5_session_bundle_config_mirror.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    for number, (name, wrapper) in enumerate([
        ("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
        ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
        ("thread_pool_name", "StringValue"),
    ], start=1):
        message.field.add(name=name, number=number, label=field.LABEL_OPTIONAL,
                          type=field.TYPE_MESSAGE, type_name=f".google.protobuf.{wrapper}")
    message.field.add(name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED, type=field.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=field.LABEL_OPTIONAL, type=field.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))
    return text_format.Parse(text, cls())


def test_models_config_for_a_versioned_folder_serves_its_latest_version():
    parsed = _model_server_config(config.models_config(_card(), '/srv/a "b"\\c/tabular', header=True))
    (model,) = parsed.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("tabular", '/srv/a "b"\\c/tabular', "tensorflow")
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1


def test_models_config_for_one_version_pins_it_under_the_served_name():
    parsed = _model_server_config(config.models_config(_card(), "/models/tabular", version=7, name="served"))
    (model,) = parsed.model_config_list.config
    assert model.name == "served"
    assert model.model_version_policy.WhichOneof("policy_choice") == "specific"
    assert list(model.model_version_policy.specific.versions) == [7]


def test_layout_of_a_versioned_folder_and_of_one_version(tmp_path):
    (tmp_path / "m" / "3").mkdir(parents=True)
    (tmp_path / "m" / "3" / "saved_model.pb").write_bytes(b"")
    assert config.saved_model_layout(_card(), tmp_path / "m") == (tmp_path / "m", None)
    assert config.saved_model_layout(_card(), tmp_path / "m", version=3) == (tmp_path / "m", 3)
    assert config.saved_model_layout(_card(), tmp_path / "m" / "3") == (tmp_path / "m", 3)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(CardError, match="export.*not a version number"):
        config.saved_model_layout(_card(), tmp_path / "export")


@pytest.mark.parametrize("fmt,path", [("keras", "m.keras"), ("onnx", "m.onnx")])
def test_a_model_tf_serving_cannot_load_is_refused_naming_the_file(fmt, path):
    with pytest.raises(CardError, match=rf"{path}: TF Serving serves SavedModels only.*{fmt}"):
        config.saved_model_layout(_card(format=fmt, source=path), path)


def test_batching_config_parses_and_fits_the_largest_request():
    settings = Settings(max_batch=64)
    params = _batching_parameters(config.batching_config(_card(), settings))
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        assert params.HasField(name), name
    assert params.max_batch_size.value == 64  # TF Serving rejects a request larger than one batch
    assert 1 <= params.num_batch_threads.value <= 2  # 2 cores
    assert not params.pad_variable_length_inputs  # never made-up values in a request


def test_batching_a_variable_dimension_is_refused_naming_the_tensor():
    with pytest.raises(CardError, match=r"input features float32 \[-1, -1\].*SB_TFSERVING_BATCHING=false"):
        config.batching_config(_card(item=(None,)), Settings())


def test_write_puts_both_files_in_the_folder(tmp_path):
    (tmp_path / "tabular" / "2").mkdir(parents=True)
    (tmp_path / "tabular" / "2" / "saved_model.pb").write_bytes(b"")
    settings = Settings(model_name="tabular")
    models, batching = config.write(_card(), settings, tmp_path / "tabular" / "2", str(tmp_path / "tabular"),
                                    tmp_path / "out")
    (model,) = _model_server_config(models.read_text()).model_config_list.config
    assert model.base_path == str(tmp_path / "tabular") and list(model.model_version_policy.specific.versions) == [2]
    assert _batching_parameters(batching.read_text()).max_batch_size.value == settings.max_batch
    assert config.write(_card(), settings, tmp_path / "tabular", "/m", tmp_path / "only", batching=False) == [
        tmp_path / "only" / "models.config"]


@pytest.fixture(scope="module")
def default_card():
    from servebench.modelcard import read_card

    if not (DEFAULT_MODEL / "1" / "saved_model.pb").is_file():
        pytest.skip(f"no exported SavedModel at {DEFAULT_MODEL}")
    return read_card(DEFAULT_MODEL)


def test_the_committed_files_are_what_the_default_card_generates(default_card):
    settings = Settings()
    assert (CONFIG_DIR / "models.config").read_text() == config.models_config(
        default_card, "/models/cifar10_cnn", name=settings.model_name, header=True)
    assert (CONFIG_DIR / "batching.config").read_text() == config.batching_config(default_card, settings)


def test_the_command_prints_the_default_models_config(default_card, capsys, tmp_path: Path):
    assert config.main(["--model", str(DEFAULT_MODEL), "--base-path", "/abs/cifar10_cnn"]) == 0
    (model,) = _model_server_config(capsys.readouterr().out).model_config_list.config
    assert model.base_path == "/abs/cifar10_cnn" and model.name == "cifar10_cnn"
    assert config.main(["--model", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
