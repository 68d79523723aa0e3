"""The inference core: one model per process, on one engine, called on its fast path.

Every in-process server (embedded Django, Flask, FastAPI, Triton's Python
backend, the streaming server, the ensemble's members) and the in-process
reference benchmark call :meth:`InferenceCore.run` (or :meth:`predict` for an
image classifier), so they all pay the same cost per call. What the model takes
and gives is its card (:mod:`servebench.modelcard`); what executes it is the
engine (``SB_ENGINE``, :mod:`servebench.engines`): TensorFlow's compiled
signature by default, never ``model.predict`` (tens of milliseconds of Python
per call) unless ``call_path="keras-predict"`` asks for that slow path.
"""
from __future__ import annotations

import gc
import os
import time
from importlib.metadata import PackageNotFoundError, version as dist_version
from pathlib import Path

import numpy as np

from servebench import engines, modelcard
from servebench.engines import EngineError, Runner, Threads
from servebench.engines.tfgraph import configure_threads
from servebench.types import Prediction

__all__ = ["InferenceCore", "EngineError", "ModelNotFound", "find_version", "configure_threads", "CALL_PATHS",
           "ENGINES"]

ENGINES = engines.ENGINES
CALL_PATHS = ("signature", "keras-predict")

# The card module finds versions now; these names stay importable from here for existing callers.
find_version = modelcard.find_version
ModelNotFound = getattr(modelcard, "ModelNotFound", modelcard.CardError)


class KerasPredictRunner(Runner):
    """``model.predict`` on the Keras file (an image classifier's): the slow path, measured, never the default."""

    def __init__(self, card, threads: Threads):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        configure_threads(threads.intra_op, threads.inter_op)
        import keras
        import tensorflow as tf

        source = Path(card.source)
        home = Path(card.extra.get("home") or source.parent)  # a SavedModel's base folder: <base>.keras beside it
        path = source if card.format == "keras" else home.parent / f"{home.name}.keras"
        if not card.is_classifier or len(card.inputs) != 1:
            raise ValueError(f"call path keras-predict serves one-input classifiers; {card.name} is not one")
        super().__init__(path, Threads(tf.config.threading.get_intra_op_parallelism_threads(),
                                       tf.config.threading.get_inter_op_parallelism_threads()))
        self._card = card
        self._model = keras.models.load_model(path)

    def run(self, inputs: dict) -> dict:
        probs = self._model.predict(inputs[self._card.inputs[0].name].astype(np.float32), verbose=0)
        probs_spec = self._card.probabilities
        return {s.name: probs.astype(s.np_dtype, copy=False) if s is probs_spec
                else probs.argmax(axis=1).astype(s.np_dtype) for s in self._card.outputs}


class InferenceCore:
    """``engine``: one of :data:`ENGINES`; ``precision``: what the engine computes in (OpenVINO: ``f32`` or
    ``bf16``; the others run the model's own dtypes, ``f32``). ``call_path="keras-predict"`` calls
    ``model.predict`` on the Keras file instead of the signature: the slow path many tutorials use
    (tensorflow engine only). ``card``: the model's card when the caller has read it already."""

    def __init__(self, base: Path | str, version: int | None = None, intra_op_threads: int = 1,
                 inter_op_threads: int = 1, call_path: str = "signature", engine: str = engines.DEFAULT,
                 precision: str | None = None, card: modelcard.ModelCard | None = None):
        if call_path not in CALL_PATHS:
            raise ValueError(f"unknown call path {call_path!r}: choose one of {', '.join(CALL_PATHS)}")
        if call_path == "keras-predict" and engine != "tensorflow":
            raise EngineError(engine, "call path keras-predict is TensorFlow's; use call path signature")
        self.card = card if card is not None else modelcard.read_card(Path(base), version)
        self.path = Path(self.card.source)
        self.name = self.card.name
        self.version = self.card.version
        self.call_path = call_path
        self.engine = engine
        self._engine = engines.get(engine)
        threads = Threads(intra_op_threads, inter_op_threads)
        if call_path == "keras-predict":
            self._runner = KerasPredictRunner(self.card, threads)
        else:
            self._runner = engines.open_engine(self.card, engine, threads, precision)
        self.intra_op_threads = self._runner.threads.intra_op
        self.inter_op_threads = self._runner.threads.inter_op
        self.precision = self._runner.precision
        self.warm_up()
        # TensorFlow leaves ~350k Python objects; a full collection walks them all (~250 ms),
        # which a request pays every thousand or so. Freezing them keeps collections small.
        gc.collect()
        gc.freeze()

    @classmethod
    def from_settings(cls, settings) -> "InferenceCore":
        engine = getattr(settings, "engine", engines.DEFAULT)
        # The precision knob is OpenVINO's; every other engine runs the model's own dtypes.
        precision = getattr(settings, "openvino_precision", None) if engine == "openvino" else None
        return cls(settings.model_base, settings.model_version, settings.intra_op_threads,
                   settings.inter_op_threads, settings.call_path, engine=engine, precision=precision)

    def warm_up(self, batch_sizes=(1, 8)) -> None:
        # The first calls trace, compile (XLA: per batch size) and allocate; pay that before the first request.
        for n in batch_sizes:
            inputs = modelcard.synthetic_inputs(self.card, n)
            for _ in range(3):
                self.run(inputs)

    # ------------------------------------------------------------------ calls
    def run(self, inputs: dict) -> dict:
        """Every output of the card, named as in the card, batch first. ``inputs``: validated, one per input."""
        return self._runner.run(inputs)

    def timed_run(self, inputs: dict) -> tuple[dict, float]:
        """The outputs and the model's own time in milliseconds."""
        start = time.perf_counter()
        out = self._runner.run(inputs)
        return out, (time.perf_counter() - start) * 1000.0

    def predict(self, images: np.ndarray) -> Prediction:
        """An image classifier's answer: classes (its ``classes`` output, else the argmax) and probabilities."""
        probs_spec = self.card.probabilities
        if len(self.card.inputs) != 1 or probs_spec is None:
            raise modelcard.CardError(f"{self.name} is not an image classifier: {modelcard.describe(self.card.inputs)}"
                                      f" -> {modelcard.describe(self.card.outputs)}")
        out = self._runner.run({self.card.inputs[0].name: images})
        probs = out[probs_spec.name]
        classes = out["classes"] if "classes" in out else probs.argmax(axis=1)
        return Prediction(classes=classes, probabilities=probs)

    def timed_predict(self, images: np.ndarray) -> tuple[Prediction, float]:
        """The prediction and the model's own time in milliseconds."""
        start = time.perf_counter()
        pred = self.predict(images)
        return pred, (time.perf_counter() - start) * 1000.0

    def info(self) -> dict:
        card = self.card.to_dict()
        card.pop("source", None)  # where it lies on disk: "path" says that, and servers leave it out
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "call_path": self.call_path,
            "engine": self.engine,
            "engine_version": self._engine.version(),
            "precision": self.precision,
            "tensorflow": _installed("tensorflow"),
            "card": card,
        }


def _installed(dist: str) -> str | None:
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return None
