"""A detector-sized network with the layer structure of YOLO v3 tiny at 416x416: random weights, TIMING ONLY.

The study ran YOLO v3 tiny; its trained weights cannot be downloaded here, so
this is the same stack of layers (Redmon's yolov3-tiny.cfg: thirteen 3x3/1x1
convolutions with batch norm folded into a bias and leaky ReLU, six max-pools,
one upsample and route, two 255-channel heads at 13x13 and 26x26; about 5.6
GFLOPs and 8.9 M parameters) with seeded random weights. Its per-frame compute
is that of the study's CPU case; its answers mean nothing. Every number
measured with it is labelled "timing only".

Its :meth:`YoloTiny.predict` has the inference core's interface (uint8 images
in, a :class:`~servebench.codecs.Prediction` out: per image the best of the 80
class scores over cells and anchors), so the streaming server runs it exactly
as it runs the CIFAR-10 CNN.
"""
from __future__ import annotations

import os
import time

import numpy as np

from servebench.codecs import Prediction

NAME = "yolo_tiny"
INPUT_SHAPE = (416, 416, 3)
NUM_CLASSES = 80
ANCHORS_PER_HEAD = 3
LABEL = "timing only (random weights)"


def build(seed: int = 0):
    """The Keras model: uint8-range pixels in, the two heads (13x13x255, 26x26x255) out."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)

    def conv(x, filters, size, name):
        x = layers.Conv2D(filters, size, padding="same", use_bias=True, name=name)(x)  # batch norm folded in
        return layers.LeakyReLU(negative_slope=0.1, name=name + "_leaky")(x)

    inp = keras.Input(shape=INPUT_SHAPE, name="images")
    x = layers.Rescaling(1.0 / 255, name="scale")(inp)
    for i, filters in enumerate((16, 32, 64, 128), start=1):
        x = conv(x, filters, 3, f"conv{i}")
        x = layers.MaxPooling2D(2, 2, name=f"pool{i}")(x)
    route26 = conv(x, 256, 3, "conv5")  # 26x26x256, joined again after the upsample
    x = layers.MaxPooling2D(2, 2, name="pool5")(route26)
    x = conv(x, 512, 3, "conv6")
    x = layers.MaxPooling2D(2, 1, padding="same", name="pool6")(x)  # size 2, stride 1: stays 13x13
    x = conv(x, 1024, 3, "conv7")
    route13 = conv(x, 256, 1, "conv8")
    x = conv(route13, 512, 3, "conv9")
    head13 = layers.Conv2D(ANCHORS_PER_HEAD * (5 + NUM_CLASSES), 1, name="head13")(x)
    x = conv(route13, 128, 1, "conv10")
    x = layers.UpSampling2D(2, name="upsample")(x)
    x = layers.Concatenate(name="route")([x, route26])
    x = conv(x, 256, 3, "conv11")
    head26 = layers.Conv2D(ANCHORS_PER_HEAD * (5 + NUM_CLASSES), 1, name="head26")(x)
    return keras.Model(inp, [head13, head26], name=NAME)


class YoloTiny:
    """The network behind a compiled graph, called like :class:`servebench.inference.InferenceCore`."""

    name = NAME
    version = 0
    shape = INPUT_SHAPE

    def __init__(self, intra_op_threads: int = 1, inter_op_threads: int = 1, seed: int = 0):
        import tensorflow as tf

        from servebench.inference import configure_threads

        configure_threads(intra_op_threads, inter_op_threads)
        self._tf = tf
        model = build(seed)
        self._model = model

        @tf.function(input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.uint8)], jit_compile=False)
        def scores(images):
            head13, _head26 = model(tf.cast(images, tf.float32), training=False)
            n = tf.shape(head13)[0]
            cells = tf.reshape(head13, [n, -1, 5 + NUM_CLASSES])
            objectness = tf.sigmoid(cells[..., 4:5])
            best = tf.reduce_max(tf.sigmoid(cells[..., 5:]) * objectness, axis=1)  # [n, 80]
            return best

        self._scores = scores
        self.intra_op_threads = tf.config.threading.get_intra_op_parallelism_threads()
        self.inter_op_threads = tf.config.threading.get_inter_op_parallelism_threads()
        for _ in range(2):  # trace and allocate before the first frame
            self.predict(np.zeros((1, *INPUT_SHAPE), np.uint8))

    def predict(self, images: np.ndarray) -> Prediction:
        best = self._scores(self._tf.constant(images, dtype=self._tf.uint8)).numpy()
        return Prediction(classes=best.argmax(axis=1), probabilities=best.astype(np.float32))

    def timed_predict(self, images: np.ndarray) -> tuple[Prediction, float]:
        start = time.perf_counter()
        pred = self.predict(images)
        return pred, (time.perf_counter() - start) * 1000.0

    def info(self) -> dict:
        import tensorflow as tf

        return {"name": NAME, "version": self.version, "weights": LABEL, "input_shape": list(INPUT_SHAPE),
                "parameters": int(self._model.count_params()), "intra_op_threads": self.intra_op_threads,
                "inter_op_threads": self.inter_op_threads, "tensorflow": tf.__version__}


def scale_up(images: np.ndarray, size: int = INPUT_SHAPE[0]) -> np.ndarray:
    """CIFAR-10 images scaled up to the detector's input (what the study's camera would send), bilinear."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
