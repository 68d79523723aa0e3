"""XLA: the signature's function re-wrapped in ``tf.function(jit_compile=True)``, compiled once per batch size."""
from __future__ import annotations

from servebench.engines import tfgraph

NAME = "xla"
RUNS = ("savedmodel", "keras")
CONVERTS: tuple[str, ...] = ()
PRECISIONS = ("f32",)


def version() -> str:
    return tfgraph.version()  # XLA ships inside TensorFlow


def convert(card, source, out_dir) -> None:
    raise NotImplementedError("compiles in the serving process")


def load(card, artifact, threads, precision):
    return tfgraph.GraphRunner(card, artifact, threads, jit=True)
