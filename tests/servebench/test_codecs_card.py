"""The v1 codecs with an image shape from a card, and the default model's card the protocols fall back on."""
from __future__ import annotations

import numpy as np
import pytest

from servebench import codecs
from servebench.codecs import CIFAR10_CARD, CodecError
from tests.servebench import spec_cards

pytestmark = pytest.mark.unit
GRAY = (8, 6, 1)


def test_the_default_card_is_what_the_default_model_reads():
    """Same tensors (read_card lists outputs by name; the fallback keeps Triton's config order) and class names."""
    read = spec_cards.card("cifar10_cnn")
    assert CIFAR10_CARD.name == read.name and CIFAR10_CARD.class_names == read.class_names
    assert set(CIFAR10_CARD.inputs) == set(read.inputs) and set(CIFAR10_CARD.outputs) == set(read.outputs)
    assert CIFAR10_CARD.image_shape == read.image_shape and CIFAR10_CARD.probabilities == read.probabilities


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_every_codec_reads_another_image_shape(codec):
    images = np.arange(3 * 48, dtype=np.uint8).reshape(3, *GRAY)
    body, content_type = codecs.encode(images, codec)
    np.testing.assert_array_equal(codecs.decode(body, content_type, 8, GRAY), images)


@pytest.mark.parametrize("codec", ["json", "b64", "npy"])
def test_a_cifar_image_is_the_wrong_shape_for_another_model(codec):
    body, content_type = codecs.encode(np.zeros((1, 32, 32, 3), np.uint8), codec)
    with pytest.raises(CodecError, match=r"expected \[batch, 8, 6, 1\]"):
        codecs.decode(body, content_type, 8, GRAY)


def test_raw_bodies_are_whole_images_of_the_shape():
    with pytest.raises(CodecError, match="not a multiple of 48"):
        codecs.decode(bytes(50), codecs.OCTET, 8, GRAY)
    with pytest.raises(CodecError) as info:
        codecs.decode(bytes(48 * 9), codecs.OCTET, 8, GRAY)
    assert info.value.status == 413


def test_predictions_name_classes_only_when_the_card_has_names():
    pred = codecs.Prediction(classes=np.array([1]), probabilities=np.array([[0.2, 0.8]], np.float32))
    assert b"class_name" not in codecs.encode_predictions(pred, class_names=None)
    assert b'"class_name":"benign"' in codecs.encode_predictions(pred, class_names=("malignant", "benign"))
