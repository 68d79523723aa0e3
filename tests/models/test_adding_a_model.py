"""The README's "adding a model" path, followed as written: a new versioned SavedModel folder, exported by
``models.export``, served by a stack with ``SB_MODEL_BASE`` pointing at it; no file of the suite edited.

The model is tiny and untrained (random weights): timing only, its answers are not checked for accuracy.
"""
from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _tiny_model():
    import keras

    from models import cnn

    return keras.Sequential([
        keras.Input(shape=cnn.INPUT_SHAPE, name="images"),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])


@pytest.fixture(scope="module")
def tiny_model_base(tmp_path_factory):
    from models import export

    base = tmp_path_factory.mktemp("models") / "tiny_cnn"
    export.export(_tiny_model(), base / "3")  # any version number: the highest one present is served
    return base


def test_a_new_model_folder_is_served_by_a_stack(start_stack, tiny_model_base):
    st = start_stack("embedded", model_base=str(tiny_model_base), frontend_workers=1)
    base = st.doc["base_url"] if "base_url" in st.doc else f"http://127.0.0.1:{st.doc['services']['nginx']['port']}"
    body = json.dumps({"instances": np.zeros((2, 32, 32, 3), np.uint8).tolist()}).encode()
    req = urllib.request.Request(base + "/v1/predict", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        doc = json.load(r)
    assert len(doc["predictions"]) == 2
    assert all(len(p["probabilities"]) == 10 for p in doc["predictions"])
    with urllib.request.urlopen(base + "/v1/info", timeout=30) as r:
        info = json.load(r)
    assert "3" in json.dumps(info["model"])  # the version it found and loaded
