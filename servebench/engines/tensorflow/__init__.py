"""TensorFlow: the SavedModel's ``serving_default`` signature as it is (a ``.keras`` file: the model in a tf.function)."""
from __future__ import annotations

from servebench.engines import tfgraph

NAME = "tensorflow"
RUNS = ("savedmodel", "keras")
CONVERTS: tuple[str, ...] = ()  # an .onnx model cannot run here
PRECISIONS = ("f32",)  # the model's own dtypes


def version() -> str:
    return tfgraph.version()


def convert(card, source, out_dir) -> None:
    raise NotImplementedError("runs the model as it is")


def load(card, artifact, threads, precision):
    return tfgraph.GraphRunner(card, artifact, threads, jit=False)
