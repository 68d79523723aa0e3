"""A ResNet-20-class CIFAR-10 classifier (He et al. 2016, section 4.2), ensemble member.

Three stages of three basic residual blocks at 16, 32 and 64 channels
(32x32, 16x16, 8x8), global average pooling, one dense layer: 20 weight
layers, about 0.27 M parameters. Like the Table 1 CNN it takes raw pixels
(0-255) and scales them itself, so the exported uint8 signature is the same.
"""
from __future__ import annotations

import keras
from keras import layers

from models.cnn import INPUT_SHAPE, NUM_CLASSES

NAME = "cifar10_resnet20"
WIDTHS = (16, 32, 64)
BLOCKS_PER_STAGE = 3
WEIGHT_DECAY = 1e-4


def _conv(filters: int, stride: int, name: str) -> layers.Conv2D:
    return layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer=keras.regularizers.l2(WEIGHT_DECAY), name=name,
    )


def _block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = _conv(filters, stride, f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 1, f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        # Projection shortcut (option B) where the shape changes.
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def build() -> keras.Model:
    images = keras.Input(shape=INPUT_SHAPE, name="images")
    x = layers.Rescaling(1.0 / 255, name="scale")(images)
    x = _conv(WIDTHS[0], 1, "stem_conv")(x)
    x = layers.ReLU(name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))
    for stage, filters in enumerate(WIDTHS):
        for block in range(BLOCKS_PER_STAGE):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _block(x, filters, stride, f"s{stage + 1}b{block + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    probs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(images, probs, name=NAME)
