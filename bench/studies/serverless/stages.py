"""A Sequential Keras model split into consecutive stage models, and a stage packed for the object store.

A split names, for each stage in order, its last layer; each stage is a
Sequential of the layers after the previous stage's last, with the previous
output's shape as its input. Chained in order they compute exactly what the
whole model computes (a test checks it on the 10,000 test images).

A packed stage is one ``.npz``: the stage's architecture (Keras JSON) and its
weights. A cold function reads it from the store and builds the model from it
alone, so a function needs no model code, only Keras.
"""
from __future__ import annotations

import io
import json
from typing import Iterable

import numpy as np


class StageError(ValueError):
    """A split that does not fit the model, or a packed stage that cannot be read."""


def split(model, last_layers: dict[str, str]) -> list[tuple[str, object]]:
    """[(stage name, stage model)] of ``model`` cut after each stage's last layer (the last must be the model's)."""
    import keras

    names = [layer.name for layer in model.layers]
    if list(last_layers.values())[-1] != names[-1]:
        raise StageError(f"the last stage must end with the model's last layer {names[-1]!r}")
    stages, start = [], 0
    shape = tuple(model.inputs[0].shape[1:])
    for stage, last in last_layers.items():
        if last not in names:
            raise StageError(f"stage {stage}: no layer {last!r} in {model.name} (layers: {', '.join(names)})")
        end = names.index(last) + 1
        if end <= start:
            raise StageError(f"stage {stage} ends at {last!r}, before the previous stage's end")
        part = keras.Sequential([keras.Input(shape=shape, name=f"{stage.lower()}_in"), *model.layers[start:end]],
                                name=f"{model.name}_{stage.lower()}")
        stages.append((stage, part))
        shape = tuple(part.outputs[0].shape[1:])
        start = end
    return stages


def run(model, x: np.ndarray) -> np.ndarray:
    """One forward pass over the whole batch, inference mode (the study's functions ran a record at once)."""
    return np.asarray(model(x, training=False))


def run_chunks(model, chunks: Iterable[np.ndarray], total: int) -> np.ndarray:
    """Forward passes chunk by chunk into one preallocated output of ``total`` rows: what :func:`run` gives on
    the whole batch (a test checks it), holding one chunk's activations at a time instead of the batch's."""
    out, start = None, 0
    for x in chunks:
        y = run(model, x)
        if out is None:
            out = np.empty((total, *y.shape[1:]), y.dtype)
        if start + len(y) > total:
            raise StageError(f"more than the {total} rows announced")
        out[start:start + len(y)] = y
        start += len(y)
    if start != total:
        raise StageError(f"{start} rows, not the {total} announced")
    return out


def pack(model) -> bytes:
    buf = io.BytesIO()
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(buf, architecture=np.frombuffer(model.to_json().encode(), np.uint8), **arrays)
    return buf.getvalue()


def unpack(body: bytes):
    """The stage model from its packed bytes."""
    import keras

    try:
        with np.load(io.BytesIO(body)) as z:
            config = bytes(z["architecture"]).decode()
            weights = [z[f"w{i}"] for i in range(len(z.files) - 1)]
        model = keras.models.model_from_json(config)
        model.set_weights(weights)
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
        raise StageError(f"unreadable stage weights: {type(exc).__name__}: {str(exc)[:200]}") from None
    return model


def to_bytes(array: np.ndarray) -> bytes:
    """An intermediate (a stage's output) as .npy bytes."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def from_bytes(body: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StageError(f"unreadable intermediate: {type(exc).__name__}: {str(exc)[:200]}") from None
