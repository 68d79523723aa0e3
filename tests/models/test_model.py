"""The CNN of Table 1, the committed SavedModel, and the inference core that serves it."""
from __future__ import annotations

import numpy as np
import pytest

from models import cnn
from servebench.inference import ModelNotFound, find_version
from servebench.settings import REPO_ROOT

pytestmark = pytest.mark.unit

MODEL_BASE = REPO_ROOT / "models" / "cifar10_cnn"
KERAS_FILE = REPO_ROOT / "models" / "cifar10_cnn.keras"

# Table 1, layer for layer: (type, filters/units/rate, output shape without the batch axis).
TABLE_1 = [
    ("Rescaling", None, (32, 32, 3)),  # scaling lives in the model, so every caller sends raw pixels
    ("Conv2D", 64, (32, 32, 64)),
    ("Dropout", 0.5, (32, 32, 64)),
    ("Conv2D", 64, (32, 32, 64)),
    ("Dropout", 0.5, (32, 32, 64)),
    ("MaxPooling2D", None, (16, 16, 64)),
    ("Conv2D", 128, (16, 16, 128)),
    ("Dropout", 0.5, (16, 16, 128)),
    ("MaxPooling2D", None, (8, 8, 128)),
    ("Conv2D", 256, (8, 8, 256)),
    ("Dropout", 0.5, (8, 8, 256)),
    ("MaxPooling2D", None, (4, 4, 256)),
    ("Flatten", None, (4096,)),
    ("Dense", 512, (512,)),
    ("Dense", 10, (10,)),
]
TABLE_1_PARAMS = 2_510_538  # 1,792 + 36,928 + 73,856 + 295,168 + 2,097,664 + 5,130


# Both depend on `core`: it sets TensorFlow's thread counts, which only the first TF op may do.
@pytest.fixture(scope="module")
def built(core):
    return cnn.build()


@pytest.fixture(scope="module")
def keras_model(core):
    import keras

    return keras.models.load_model(KERAS_FILE)


def test_architecture_matches_table_1(built):
    assert built.input_shape == (None, 32, 32, 3)
    assert len(built.layers) == len(TABLE_1)
    for layer, (kind, size, shape) in zip(built.layers, TABLE_1):
        assert type(layer).__name__ == kind, layer.name
        assert tuple(layer.output.shape[1:]) == shape, layer.name
        if kind == "Conv2D":
            assert layer.filters == size
            assert tuple(layer.kernel_size) == (3, 3)
            assert layer.padding == "same"
            assert layer.activation.__name__ == "relu"
        elif kind == "Dropout":
            assert layer.rate == size
        elif kind == "MaxPooling2D":
            assert tuple(layer.pool_size) == (2, 2)
        elif kind == "Dense":
            assert layer.units == size
            assert layer.activation.__name__ == ("softmax" if size == 10 else "relu")
        elif kind == "Rescaling":
            assert layer.scale == pytest.approx(1 / 255)


def test_dropout_follows_every_conv(built):
    kinds = [type(layer).__name__ for layer in built.layers]
    for i, kind in enumerate(kinds):
        if kind == "Conv2D":
            assert kinds[i + 1] == "Dropout"


def test_parameter_count(built):
    assert built.count_params() == TABLE_1_PARAMS


def test_committed_keras_model_is_the_table_1_model(built, keras_model):
    assert [layer.get_config() for layer in keras_model.layers] == [layer.get_config() for layer in built.layers]
    assert keras_model.count_params() == TABLE_1_PARAMS


# ---------------------------------------------------------------- the SavedModel
def test_serving_signature(core):
    import tensorflow as tf

    signature = tf.saved_model.load(str(find_version(MODEL_BASE))).signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert list(inputs) == ["images"]
    assert inputs["images"].dtype == tf.uint8
    assert inputs["images"].shape.as_list() == [None, 32, 32, 3]
    outputs = signature.structured_outputs
    assert outputs["probabilities"].shape.as_list() == [None, 10]
    assert outputs["classes"].dtype == tf.int64

    images = np.random.default_rng(3).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    out = signature(images=tf.constant(images))
    probs = out["probabilities"].numpy()
    assert probs.shape == (7, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["classes"].numpy(), probs.argmax(axis=1))

    with pytest.raises(tf.errors.InvalidArgumentError, match="uint8"):
        signature(images=tf.constant(images.astype(np.float32)))


def test_core_outputs(core):
    images = np.random.default_rng(4).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    pred = core.predict(images)
    assert pred.probabilities.shape == (3, 10)
    np.testing.assert_array_equal(pred.classes, pred.probabilities.argmax(axis=1))
    single, ms = core.timed_predict(images[:1])
    assert ms > 0
    np.testing.assert_allclose(single.probabilities, pred.probabilities[:1], atol=1e-5)
    info = core.info()
    assert (info["name"], info["version"]) == ("cifar10_cnn", 1)


@pytest.mark.dataset
def test_core_equals_keras_model(core, keras_model, test_split):
    images = test_split.images[:300]
    pred = core.predict(images)
    expected = keras_model(images.astype(np.float32), training=False).numpy()
    np.testing.assert_allclose(pred.probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(pred.classes, expected.argmax(axis=1))


@pytest.mark.dataset
@pytest.mark.slow
def test_accuracy_on_the_full_test_set(core, cifar_dir):
    from models.evaluate import TARGET_ACCURACY, evaluate
    from servebench import data

    result = evaluate(core, data.load_test(cifar_dir))
    assert result["test_images"] == 10000
    assert result["test_accuracy"] >= TARGET_ACCURACY


# ---------------------------------------------------------------- versions
def _version(base, name, complete=True):
    folder = base / name
    folder.mkdir(parents=True)
    if complete:
        (folder / "saved_model.pb").write_bytes(b"")


def test_find_version_picks_the_highest(tmp_path):
    for name in ("1", "2", "10"):
        _version(tmp_path, name)
    _version(tmp_path, "11", complete=False)  # being written: not servable yet
    _version(tmp_path, "latest")
    assert find_version(tmp_path) == tmp_path / "10"  # numeric order, not "2" > "10"
    assert find_version(tmp_path, 2) == tmp_path / "2"


def test_find_version_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelNotFound, match="no versioned SavedModel under"):
        find_version(tmp_path)
    with pytest.raises(ModelNotFound, match="no versioned SavedModel under"):
        find_version(tmp_path / "missing")
    _version(tmp_path, "1")
    _version(tmp_path, "2", complete=False)
    with pytest.raises(ModelNotFound, match="no SavedModel at"):
        find_version(tmp_path, 2)
    with pytest.raises(ModelNotFound, match="no SavedModel at"):
        find_version(tmp_path, 3)


def test_committed_model_version():
    assert find_version(MODEL_BASE) == MODEL_BASE / "1"
