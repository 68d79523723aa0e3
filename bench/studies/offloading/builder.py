"""Pieces into runnable models, on the edge server and on the client alike.

Building is what the study times on the server: deserialise each piece's
configuration, load its weights, and make one warm-up call (which traces the
graph, so later calls run compiled). Several consecutive pieces can be built
as one unit (the follow-up's build thread does when pieces wait): one chained
model, one trace, one warm-up call.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from bench.studies.offloading.pieces import Piece


@dataclass
class Unit:
    """Consecutive pieces ``first``..``last`` (0-based, inclusive) built into one callable."""

    first: int
    last: int
    run: object  # x (batch, ...) -> y
    build_s: float

    @property
    def pieces(self) -> int:
        return self.last - self.first + 1


def build(pieces: list[Piece]) -> Unit:
    """One runnable unit of consecutive ``pieces``: deserialise, load weights, chain, one warm-up call."""
    start = time.perf_counter()
    models = [p.build() for p in pieces]
    if len(models) == 1:
        model = models[0]
    else:
        x = inputs = keras.Input(shape=pieces[0].input_shape)
        for m in models:
            x = m(x)
        model = keras.Model(inputs, x)
    spec = tf.TensorSpec((None, *pieces[0].input_shape), tf.float32)
    run = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    run(np.zeros((1, *pieces[0].input_shape), np.float32))  # the warm-up call
    return Unit(pieces[0].index, pieces[-1].index, run, time.perf_counter() - start)


def run_chain(units: list[Unit], x: np.ndarray) -> np.ndarray:
    for unit in units:
        x = unit.run(x)
    return np.asarray(x)
