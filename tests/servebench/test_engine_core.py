"""The inference core on an engine: run() over the card's outputs, predict(), and what it records."""
from __future__ import annotations

import numpy as np
import pytest

from servebench.engines import EngineError
from servebench.inference import InferenceCore
from servebench.settings import Settings
from tests.servebench.test_engines import MODEL_BASE, cnn_card

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ort_core():
    return InferenceCore(MODEL_BASE, engine="onnxruntime", card=cnn_card())


@pytest.mark.slow
def test_run_gives_every_output_of_the_card(ort_core):
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    out, ms = ort_core.timed_run({"images": x})
    assert set(out) == {"classes", "probabilities"} and ms > 0
    assert out["classes"].dtype == np.int64 and out["probabilities"].shape == (5, 10)
    pred = ort_core.predict(x)
    np.testing.assert_array_equal(pred.classes, out["classes"])
    np.testing.assert_array_equal(pred.classes, pred.probabilities.argmax(axis=1))


@pytest.mark.slow
def test_info_records_engine_version_precision_and_card(ort_core):
    info = ort_core.info()
    assert info["engine"] == "onnxruntime" and info["engine_version"].startswith("1.")
    assert info["precision"] == "f32" and info["intra_op_threads"] == 1
    assert [t["name"] for t in info["card"]["outputs"]] == [s.name for s in ort_core.card.outputs]
    assert "source" not in info["card"]  # where the model lies stays out of what servers show


def test_keras_predict_is_tensorflow_s_alone():
    with pytest.raises(EngineError, match="engine litert: call path keras-predict is TensorFlow's"):
        InferenceCore(MODEL_BASE, call_path="keras-predict", engine="litert", card=cnn_card())


def test_the_engine_knobs_are_recorded_and_validated():
    settings = Settings.given(engine="openvino", openvino_precision="bf16")
    recorded = settings.recorded()
    assert recorded["engine"] == "openvino" and recorded["openvino_precision"] == "bf16"
    assert Settings().engine == "tensorflow" and Settings().openvino_precision == "f32"
    with pytest.raises(ValueError, match="engine"):
        Settings.given(engine="tensorrt")


@pytest.mark.slow
def test_keras_predict_still_answers_like_the_signature(ort_core):
    slow = InferenceCore(MODEL_BASE, call_path="keras-predict")
    x = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert slow.info()["engine"] == "tensorflow" and slow.info()["call_path"] == "keras-predict"
    assert set(slow.run({"images": x})) == {"classes", "probabilities"}
    np.testing.assert_allclose(slow.predict(x).probabilities, ort_core.predict(x).probabilities, atol=1e-3)
