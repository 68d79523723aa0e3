"""AlexNet (Krizhevsky et al., 2012) as the serverless study ran it: 227x227x3 in, 1,000 classes out.

Random weights: no trained AlexNet can be downloaded here, so its numbers are
for timing and memory only (labelled so wherever they appear). The study's
four functions are layer groups of this model (see :mod:`models.splits`).
CIFAR-10 test images are scaled up to 227x227 to feed it.
"""
from __future__ import annotations

import keras
from keras import layers

NAME = "alexnet"
INPUT_SHAPE = (227, 227, 3)
NUM_CLASSES = 1000
LABEL = "timing and memory only (random weights)"


def build(seed: int = 0) -> keras.Model:
    """The model with random (seeded) weights; pixels 0-255 in, scaled in the graph like the CNN."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="images"),
            layers.Rescaling(1.0 / 255, name="scale"),
            layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1"),
            layers.MaxPooling2D(3, strides=2, name="pool1"),
            layers.Conv2D(256, 5, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(3, strides=2, name="pool2"),
            layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3"),
            layers.Conv2D(384, 3, padding="same", activation="relu", name="conv4"),
            layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5"),
            layers.MaxPooling2D(3, strides=2, name="pool5"),
            layers.Flatten(name="flatten"),
            layers.Dense(4096, activation="relu", name="fc6"),
            layers.Dropout(0.5, name="drop6"),
            layers.Dense(4096, activation="relu", name="fc7"),
            layers.Dropout(0.5, name="drop7"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="fc8"),
        ],
        name=NAME,
    )
