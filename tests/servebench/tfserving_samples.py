"""Sample images and tensors shared by the TF Serving format tests (test_tfserving_*.py).

expected_answer is what both test doubles (FakeTFServingREST, FakeTFServingGRPC)
answer; with_value_fields writes a tensor the way TF Serving sends it.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2


def sample_images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def expected_answer(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What both test doubles answer: a class that depends on the pixels, so a mix-up shows."""
    classes = (images.reshape(len(images), -1).sum(axis=1) % 10).astype(np.int64)
    probs = np.full((len(images), 10), 0.01, dtype=np.float32)
    probs[np.arange(len(images)), classes] = 0.91
    return classes, probs


def with_value_fields(proto):
    """The same tensor as float_val/int64_val: what TF Serving sends (Tensor::AsProtoField)."""
    array = tf.make_ndarray(proto)
    field = {types_pb2.DT_FLOAT: proto.float_val, types_pb2.DT_INT64: proto.int64_val}[proto.dtype]
    proto.ClearField("tensor_content")
    field.extend(array.ravel().tolist())
    return proto
