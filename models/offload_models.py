"""The offloading study's models by name (issue 14), with the piece counts the study cut them into.

keras.applications ResNet152, ResNet50 and MobileNet and an AlexNet-style
network are built with random weights (``weights=None``: nothing is
downloaded), so their outputs mean nothing and every number measured with
them is labelled "timing only". The Table 1 CNN is the trained one
(``models/cifar10_cnn.keras``): its offloaded result is checked against the
local one on CIFAR-10 test images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras

from models import alexnet, cnn

TRAINED_CNN = Path(__file__).resolve().parent / "cifar10_cnn.keras"


@dataclass(frozen=True)
class OffloadModel:
    name: str
    title: str
    pieces: int  # the study's piece count (the Table 1 CNN: ours)
    input_shape: tuple[int, ...]
    timing_only: bool  # random weights: outputs mean nothing
    make: Callable[[], keras.Model]


def functional(seq: keras.Sequential, input_shape: tuple[int, ...]) -> keras.Model:
    """A Sequential model as a functional graph of fresh copies of its layers, weights included (the
    partitioner walks the graph's nodes; a Sequential's layers would carry a second graph's nodes)."""
    x = inputs = keras.Input(shape=input_shape, name="images")
    for layer in seq.layers:
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=seq.name)


def _trained_cnn() -> keras.Model:
    seq = keras.models.load_model(TRAINED_CNN, compile=False) if TRAINED_CNN.exists() else cnn.build()
    return functional(seq, cnn.INPUT_SHAPE)


MODELS: dict[str, OffloadModel] = {m.name: m for m in (
    OffloadModel("resnet152", "ResNet-152", 41, (224, 224, 3), True,
                 lambda: keras.applications.ResNet152(weights=None)),
    OffloadModel("resnet50", "ResNet-50", 11, (224, 224, 3), True,
                 lambda: keras.applications.ResNet50(weights=None)),
    OffloadModel("mobilenet", "MobileNet", 17, (224, 224, 3), True,
                 lambda: keras.applications.MobileNet(weights=None)),
    OffloadModel("alexnet", "AlexNet", 7, alexnet.INPUT_SHAPE, True,
                 lambda: functional(alexnet.build(), alexnet.INPUT_SHAPE)),
    OffloadModel("cifar10_cnn", "Table 1 CNN", 5, cnn.INPUT_SHAPE, False, _trained_cnn),
)}
STUDY_MODELS = ("resnet152", "resnet50", "mobilenet", "alexnet")  # the study's Table 1, in its order


def get(name: str) -> OffloadModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}") from None
