"""The bundled tabular model (models/tabular.py): its committed export, card, test split and accuracy."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models import tabular
from servebench.settings import REPO_ROOT

pytestmark = pytest.mark.unit

MODEL_BASE = REPO_ROOT / "models" / tabular.NAME
VERSION_DIR = MODEL_BASE / "1"
METRICS = REPO_ROOT / "models" / f"{tabular.NAME}.metrics.json"


@pytest.fixture(scope="module")
def signature():
    return tabular.serve_signature(VERSION_DIR)


@pytest.fixture(scope="module")
def test_npz():
    with np.load(MODEL_BASE / tabular.TEST_FILE) as f:
        return dict(f)


def test_signature_takes_float_features_and_gives_probabilities_and_classes(signature):
    [inputs] = [spec for spec in signature.structured_input_signature[1].values()]
    assert (inputs.name, inputs.dtype.name, inputs.shape.as_list()) == ("features", "float32", [None, 30])
    outputs = {name: (spec.dtype.name, spec.shape.as_list()) for name, spec in signature.structured_outputs.items()}
    assert outputs == {"probabilities": ("float32", [None, 2]), "classes": ("int64", [None])}


def test_card_sidecar_names_classes_and_data():
    card = json.loads((MODEL_BASE / "card.json").read_text())
    assert card["class_names"] == ["malignant", "benign"]
    assert card["data"] == "npz:test.npz"


def test_test_split_is_named_after_the_input_and_matches_the_seeded_split(test_npz):
    assert set(test_npz) == {"features", "labels"}
    assert test_npz["features"].dtype == np.float32 and test_npz["features"].shape == (114, 30)
    assert test_npz["labels"].dtype == np.int64 and set(np.unique(test_npz["labels"])) == {0, 1}
    _, _, x_test, y_test = tabular.load_split()
    np.testing.assert_array_equal(test_npz["features"], x_test)
    np.testing.assert_array_equal(test_npz["labels"], y_test)


def test_split_is_deterministic_and_disjoint():
    first, second = tabular.load_split(), tabular.load_split()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    x_train, _, x_test, _ = first
    assert len(x_train) + len(x_test) == 569
    train_rows = {row.tobytes() for row in x_train}
    assert not any(row.tobytes() in train_rows for row in x_test)
    other = tabular.load_split(seed=tabular.SEED + 1)[2]
    assert not np.array_equal(other, x_test)


def test_accuracy_on_the_test_split_is_far_above_the_majority_class(signature, test_npz):
    out = signature(features=test_npz["features"])
    probs, classes = out["probabilities"].numpy(), out["classes"].numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(classes, probs.argmax(axis=1))
    accuracy = float(np.mean(classes == test_npz["labels"]))
    majority = max(np.mean(test_npz["labels"] == k) for k in (0, 1))
    assert majority < 0.65 and accuracy > tabular.TARGET_ACCURACY
    # The committed metrics are what the committed model scores.
    metrics = json.loads(METRICS.read_text())
    assert metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert metrics["test_rows"] == len(classes)


def test_normalisation_lives_in_the_model(signature, test_npz):
    """Raw features (areas in the hundreds to thousands) go in; nothing is scaled by the caller."""
    assert float(test_npz["features"].max()) > 1000
    one = signature(features=test_npz["features"][:1])["probabilities"].numpy()
    assert one.shape == (1, 2) and np.all(np.isfinite(one))
