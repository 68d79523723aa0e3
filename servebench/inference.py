"""The inference core: one SavedModel per process, called on its fast path.

Every in-process server (embedded Django, Flask, FastAPI) and the in-process
reference benchmark call :meth:`InferenceCore.predict`, so they all pay the
same cost per call: the SavedModel's ``serving_default`` signature (a compiled
graph), never ``model.predict`` (tens of milliseconds of Python per call).
"""
from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import numpy as np

from servebench.types import IMAGE_SHAPE, Prediction

SIGNATURE = "serving_default"
INPUT_KEY = "images"


class ModelNotFound(RuntimeError):
    pass


def find_version(base: Path, version: int | None = None) -> Path:
    """The version folder to serve: the one asked for, else the highest (as TF Serving does)."""
    base = Path(base)
    if version is not None:
        path = base / str(version)
        if not (path / "saved_model.pb").is_file():
            raise ModelNotFound(f"no SavedModel at {path}")
        return path
    versions = sorted(
        (int(p.name) for p in base.glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file()),
    )
    if not versions:
        raise ModelNotFound(f"no versioned SavedModel under {base} (expected {base}/<version>/saved_model.pb)")
    return base / str(versions[-1])


_threads_configured = False
_threads_lock = threading.Lock()


def configure_threads(intra_op: int, inter_op: int) -> None:
    """TensorFlow reads these once, before its first op; later calls are ignored."""
    global _threads_configured
    import tensorflow as tf

    with _threads_lock:
        if _threads_configured:
            return
        try:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        except RuntimeError:
            pass  # TF already initialised in this process; the recorded values say what was asked
        _threads_configured = True


CALL_PATHS = ("signature", "keras-predict")


class InferenceCore:
    """``call_path="keras-predict"`` calls ``model.predict`` on the Keras file instead of the
    signature: the slow path many tutorials (and, by its numbers, the study) use. It is a
    knob so that its cost can be measured in the same stack, never the default."""

    def __init__(self, base: Path | str, version: int | None = None, intra_op_threads: int = 1,
                 inter_op_threads: int = 1, call_path: str = "signature"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        if call_path not in CALL_PATHS:
            raise ValueError(f"unknown call path {call_path!r}: choose one of {', '.join(CALL_PATHS)}")
        configure_threads(intra_op_threads, inter_op_threads)
        self.path = find_version(Path(base), version)
        self.name = Path(base).name
        self.version = int(self.path.name)
        self.call_path = call_path
        self._tf = tf
        if call_path == "keras-predict":
            import keras

            self._keras = keras.models.load_model(Path(base).parent / f"{self.name}.keras")
        else:
            loaded = tf.saved_model.load(str(self.path))
            self._loaded = loaded  # keeps the variables alive
            self._fn = loaded.signatures[SIGNATURE]
        self.intra_op_threads = tf.config.threading.get_intra_op_parallelism_threads()
        self.inter_op_threads = tf.config.threading.get_inter_op_parallelism_threads()
        self.warm_up()
        # TensorFlow leaves ~350k Python objects; a full collection walks them all (~250 ms),
        # which a request pays every thousand or so. Freezing them keeps collections small.
        gc.collect()
        gc.freeze()

    @classmethod
    def from_settings(cls, settings) -> "InferenceCore":
        return cls(settings.model_base, settings.model_version, settings.intra_op_threads,
                   settings.inter_op_threads, settings.call_path)

    def warm_up(self, batch_sizes=(1, 8)) -> None:
        # The first calls trace and allocate; pay that before the first request.
        for n in batch_sizes:
            for _ in range(3):
                self.predict(np.zeros((n, *IMAGE_SHAPE), np.uint8))

    def predict(self, images: np.ndarray) -> Prediction:
        if self.call_path == "keras-predict":
            probs = self._keras.predict(images.astype(np.float32), verbose=0)
            return Prediction(classes=probs.argmax(axis=1), probabilities=probs)
        out = self._fn(**{INPUT_KEY: self._tf.constant(images, dtype=self._tf.uint8)})
        return Prediction(classes=out["classes"].numpy(), probabilities=out["probabilities"].numpy())

    def timed_predict(self, images: np.ndarray) -> tuple[Prediction, float]:
        """The prediction and the model's own time in milliseconds."""
        start = time.perf_counter()
        pred = self.predict(images)
        return pred, (time.perf_counter() - start) * 1000.0

    def info(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "call_path": self.call_path,
            "tensorflow": self._tf.__version__,
        }
