"""make evaluate: an engine's answers against TensorFlow's (test doubles), and a real run on a few images."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from models import evaluate as ev
from servebench.modelcard import ModelCard, TensorSpec
from servebench.settings import REPO_ROOT

pytestmark = pytest.mark.unit

MODEL_BASE = REPO_ROOT / "models" / "cifar10_cnn"
CLASSES = tuple("abc")


def card(classifier: bool = True) -> ModelCard:
    outputs = (TensorSpec("probabilities", "float32", (None, 3)),) if classifier else (
        TensorSpec("value", "float32", (None,)), TensorSpec("count", "int64", (None,)))
    return ModelCard("double", 1, "onnx", "double.onnx", (TensorSpec("x", "float32", (None, 2)),), outputs,
                     class_names=CLASSES if classifier else None)


@dataclass
class CoreDouble:
    """A test double of InferenceCore: fixed answers per input row, optionally nudged."""

    card: ModelCard
    nudge: float = 0.0

    def run(self, inputs):
        x = inputs["x"]
        if self.card.probabilities is not None:
            p = np.stack([x[:, 0], x[:, 1], 1 - x[:, 0] - x[:, 1]], axis=1).astype(np.float32)
            return {"probabilities": p + self.nudge * np.array([1, -1, 0], np.float32)}
        return {"value": x[:, 0] + self.nudge, "count": np.arange(len(x))}


def inputs(labels=True, n=10) -> ev.TestInputs:
    x = np.array([[0.5, 0.3], [0.34, 0.33]] * (n // 2), np.float32)  # class 0, then a near tie
    return ev.TestInputs({"x": x}, np.zeros(n, np.int64) if labels else None, False, {"source": "test"})


def test_the_same_engine_changes_nothing():
    result = ev.compare(CoreDouble(card()), None, inputs(), batch=3)
    assert result["max_abs_diff"] == 0 and result["class_changed"] == 0 and result["accuracy_lost_points"] == 0
    assert result["test_accuracy"] == 1.0 and result["inputs"] == 10


def test_a_drifting_engine_changes_the_near_ties_and_costs_accuracy():
    result = ev.compare(CoreDouble(card(), nudge=0.02), CoreDouble(card()), inputs(), batch=4)
    assert result["max_abs_diff"] == pytest.approx(0.02, abs=1e-6)
    assert result["class_changed"] == 0  # 0.34+0.02 vs 0.33-0.02: still class 0
    result = ev.compare(CoreDouble(card(), nudge=-0.01), CoreDouble(card()), inputs(), batch=4)
    assert result["class_changed"] == 5 and result["class_changed_share"] == 0.5  # the ties flip to class 1
    assert result["test_accuracy"] == 0.5 and result["accuracy_lost_points"] == pytest.approx(50.0)


def test_without_labels_or_probabilities_only_the_difference_is_reported():
    result = ev.compare(CoreDouble(card(), nudge=-0.5), CoreDouble(card()), inputs(labels=False))
    assert result["test_accuracy"] is None and result["class_changed"] == 10
    other = card(classifier=False)
    result = ev.compare(CoreDouble(other, nudge=0.25), CoreDouble(other), inputs())
    assert result["compared_outputs"] == ["value"] and result["max_abs_diff"] == pytest.approx(0.25)
    assert result["class_changed_share"] is None and result["test_accuracy"] is None


def test_a_shape_mismatch_is_named():
    class Wrong(CoreDouble):
        def run(self, inputs):
            return {"probabilities": np.zeros((len(inputs["x"]), 2), np.float32)}

    with pytest.raises(ValueError, match="output probabilities"):
        ev.compare(CoreDouble(card()), Wrong(card()), inputs())


def test_labels_and_notes():
    assert ev.engine_label("openvino", "bf16") == "openvino-bf16" and ev.engine_label("xla", "f32") == "xla"
    synthetic = ev.TestInputs({"x": np.zeros((2, 2))}, None, True, {"source": "synthetic"})
    assert "synthetic inputs" in ev.accuracy_note(synthetic)
    jpeg = inputs()
    jpeg.provenance["note"] = "copy rebuilt from JPEG files; pixels differ"
    assert "rebuilt from JPEG files" in ev.accuracy_note(jpeg)


@pytest.mark.dataset
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["tensorflow", "onnxruntime"])
def test_evaluate_on_a_few_images_writes_a_run(tmp_path, cifar_dir, engine):
    rc = ev.main(["--model", str(MODEL_BASE), "--engine", engine, "--n", "40", "--out", str(tmp_path),
                  "--data-dir", str(cifar_dir)])
    assert rc == 0
    [folder] = list(tmp_path.glob(f"*-evaluate-cifar10_cnn-{engine}"))
    doc = json.loads((folder / "summary.json").read_text())
    assert doc["kind"] == "evaluate" and doc["inputs"] == 40 and doc["settings"]["engine"] == engine
    assert doc["model"]["engine"] == engine and doc["provenance"]["machine"]["logical_cpus"]
    assert doc["test_accuracy"] > 0.5 and "JPEG" in doc["data"]["note"]
    assert doc["max_abs_diff"] < 1e-4 and doc["class_changed_share"] <= 0.05
    if engine == "tensorflow":
        assert doc["max_abs_diff"] == 0 and doc["accuracy_lost_points"] == 0
