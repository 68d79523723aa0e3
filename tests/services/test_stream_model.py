"""Which models the streaming server serves: image classifiers only; any other card is refused before a
port opens, with a message naming the model and why (no TensorFlow: the card reader is a test double)."""
from __future__ import annotations

import logging

import pytest

from servebench import modelcard
from servebench.modelcard import CardError, ModelCard, TensorSpec
from services.stream import core as stream_core

pytestmark = pytest.mark.unit

IMAGE = ModelCard(name="cifar10_cnn", version=1, format="savedmodel", source="models/cifar10_cnn/1",
                  inputs=(TensorSpec("images", "uint8", (None, 32, 32, 3)),),
                  outputs=(TensorSpec("probabilities", "float32", (None, 10)), TensorSpec("classes", "int64", (None,))))
TABULAR = ModelCard(name="breast_cancer", version=1, format="keras", source="models/breast_cancer.keras",
                    inputs=(TensorSpec("features", "float32", (None, 30)),),
                    outputs=(TensorSpec("probabilities", "float32", (None, 2)),))
# An image input, but nothing to answer a frame with (no class probabilities).
EMBEDDER = ModelCard(name="embedder", version=1, format="onnx", source="embedder.onnx",
                     inputs=(TensorSpec("images", "uint8", (None, 64, 64, 3)),),
                     outputs=(TensorSpec("embedding", "float32", (None, 8, 8)),))


def test_an_image_classifier_is_served():
    assert stream_core.image_card(IMAGE) is IMAGE


def test_a_non_image_model_is_refused_naming_the_model_and_why():
    with pytest.raises(CardError) as err:
        stream_core.image_card(TABULAR)
    message = str(err.value)
    assert "breast_cancer" in message and "models/breast_cancer.keras" in message
    assert "features float32 [-1, 30]" in message and "not one uint8 image" in message
    assert "/v2/models/<name>/infer" in message  # what to use instead


def test_an_image_model_without_class_probabilities_is_refused():
    with pytest.raises(CardError, match=r"embedder.*outputs \(embedding float32 \[-1, 8, 8\]\) hold no class"):
        stream_core.image_card(EMBEDDER)


class CardReaderDouble:
    """A test double of servebench.modelcard.read_card: answers one card, records what was asked."""

    def __init__(self, card):
        self.card = card
        self.asked = []

    def __call__(self, path, version=None):
        self.asked.append((path, version))
        return self.card


def test_the_server_refuses_to_start_before_loading_the_model(monkeypatch, caplog, tmp_path):
    from services.stream import server

    reader = CardReaderDouble(TABULAR)
    monkeypatch.setattr(modelcard, "read_card", reader, raising=False)

    class NoCoreDouble:  # a test double: loading a model would be a failure of this test
        @classmethod
        def from_settings(cls, settings):
            raise AssertionError("the model was loaded for a card the server cannot serve")

    import servebench.inference

    monkeypatch.setattr(servebench.inference, "InferenceCore", NoCoreDouble)
    monkeypatch.setenv("SB_MODEL_BASE", str(tmp_path / "breast_cancer"))
    monkeypatch.setattr("sys.argv", ["services.stream.server"])
    with caplog.at_level(logging.ERROR, logger="services.stream"):
        assert server.main() == 2
    assert reader.asked and str(reader.asked[0][0]).endswith("breast_cancer")
    assert "streaming server not started" in caplog.text and "breast_cancer" in caplog.text
