"""The CIFAR-10 CNN of the study's Table 1, layer for layer.

The model takes raw pixel values (0-255) and scales them itself, so every
caller (Keras, the SavedModel signature, TF Serving) preprocesses the same way.
"""
from __future__ import annotations

import keras
from keras import layers

NAME = "cifar10_cnn"
INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
DROPOUT = 0.5


def build() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="images"),
            layers.Rescaling(1.0 / 255, name="scale"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv1"),
            layers.Dropout(DROPOUT, name="drop1"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            layers.Dropout(DROPOUT, name="drop2"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(128, 3, padding="same", activation="relu", name="conv3"),
            layers.Dropout(DROPOUT, name="drop3"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Conv2D(256, 3, padding="same", activation="relu", name="conv4"),
            layers.Dropout(DROPOUT, name="drop4"),
            layers.MaxPooling2D(2, name="pool3"),
            layers.Flatten(name="flatten"),
            layers.Dense(512, activation="relu", name="dense1"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ],
        name=NAME,
    )
