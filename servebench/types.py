"""The names and shapes every layer shares, with no behaviour and no heavy imports.

The bottom of the import order (see ``.importlinter``): the model's name, its
input shape and classes, and the prediction every inference path returns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "cifar10_cnn"  # the name every protocol serves the default model under
IMAGE_SHAPE = (32, 32, 3)  # one image, channels last, uint8
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


@dataclass(frozen=True)
class Prediction:
    classes: "np.ndarray"  # int [n]
    probabilities: "np.ndarray"  # float32 [n, 10]
