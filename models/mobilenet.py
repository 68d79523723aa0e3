"""A MobileNetV2-style CIFAR-10 classifier adapted to 32x32 inputs, ensemble member.

Inverted residual blocks (expand 1x1, depthwise 3x3, linear 1x1 projection;
Sandler et al. 2018) as in MobileNetV2, but the ImageNet stem's stride 2 and
the 160/320-channel stages are dropped and only the first block runs at full
resolution, so a 32x32 image goes 32 -> 16 -> 8 -> 4 and the network trains
on a 2-core CPU in tens of minutes (depthwise convolutions train slowly there). Raw pixels in (0-255), scaled in
the graph, so the exported uint8 signature matches the other members.
"""
from __future__ import annotations

import keras
from keras import layers

from models.cnn import INPUT_SHAPE, NUM_CLASSES

NAME = "cifar10_mobilenetv2"
STEM = 32
# (expansion t, output channels c, repeats n, first stride s) as in the paper's Table 2.
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 2, 2),
    (6, 64, 2, 2),
    (6, 96, 1, 1),
)
HEAD = 512
WEIGHT_DECAY = 4e-5


def _inverted_residual(x, expansion: int, filters: int, stride: int, name: str):
    inputs = x
    channels = x.shape[-1]
    if expansion != 1:
        x = layers.Conv2D(channels * expansion, 1, use_bias=False, name=f"{name}_expand",
                          kernel_regularizer=keras.regularizers.l2(WEIGHT_DECAY))(x)
        x = layers.ReLU(6.0, name=f"{name}_expand_relu")(layers.BatchNormalization(name=f"{name}_expand_bn")(x))
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(layers.BatchNormalization(name=f"{name}_dw_bn")(x))
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project",
                      kernel_regularizer=keras.regularizers.l2(WEIGHT_DECAY))(x)
    x = layers.BatchNormalization(name=f"{name}_project_bn")(x)  # linear bottleneck: no activation
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def build() -> keras.Model:
    images = keras.Input(shape=INPUT_SHAPE, name="images")
    x = layers.Rescaling(1.0 / 255, name="scale")(images)
    x = layers.Conv2D(STEM, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.ReLU(6.0, name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))
    for stage, (t, c, n, s) in enumerate(STAGES):
        for i in range(n):
            x = _inverted_residual(x, t, c, s if i == 0 else 1, f"b{stage + 1}_{i + 1}")
    x = layers.Conv2D(HEAD, 1, use_bias=False, name="head_conv")(x)
    x = layers.ReLU(6.0, name="head_relu")(layers.BatchNormalization(name="head_bn")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="drop")(x)
    probs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(images, probs, name=NAME)
