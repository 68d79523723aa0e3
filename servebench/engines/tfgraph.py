"""TensorFlow's half, shared by the tensorflow and xla engines: threads, and a model as one graph function."""
from __future__ import annotations

import os
import threading

from servebench.engines import tensors
from servebench.engines.base import EngineError, Runner, Threads

SIGNATURE = "serving_default"

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


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("tensorflow")


def _specs(card):
    import tensorflow as tf

    return [tf.TensorSpec(s.shape, tf.as_dtype(s.dtype), name=s.name) for s in card.inputs]


def graph_function(card, source, jit: bool):
    """(the callable taking the card's inputs in order, the objects it needs kept alive)."""
    import tensorflow as tf

    names = [s.name for s in card.inputs]
    if card.format == "savedmodel":
        loaded = tf.saved_model.load(str(source))
        if SIGNATURE not in loaded.signatures:
            raise EngineError("xla" if jit else "tensorflow", f"{source} has no {SIGNATURE} signature")
        signature = loaded.signatures[SIGNATURE]
        if not jit:
            return (lambda *args: signature(**dict(zip(names, args)))), loaded
        fn = tf.function(lambda *args: signature(**dict(zip(names, args))), input_signature=_specs(card),
                         jit_compile=True)
        return fn, loaded
    import keras

    model = keras.models.load_model(source)

    def call(*args):
        return model(list(args) if len(args) > 1 else args[0], training=False)

    return tf.function(call, input_signature=_specs(card), jit_compile=jit), model


class GraphRunner(Runner):
    """The model as a TensorFlow graph function (thread-safe: TF runs concurrent calls)."""

    def __init__(self, card, source, threads: Threads, jit: bool):
        import tensorflow as tf

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        configure_threads(threads.intra_op, threads.inter_op)
        super().__init__(source, Threads(tf.config.threading.get_intra_op_parallelism_threads(),
                                         tf.config.threading.get_inter_op_parallelism_threads()))
        self._tf = tf
        self._engine = "xla" if jit else "tensorflow"
        self._card = card
        self._dtypes = [tf.as_dtype(s.dtype) for s in card.inputs]
        self._fn, self._keep = graph_function(card, source, jit)  # _keep: the variables stay alive
        self._order = None  # (output names) -> card order, found on the first call

    def run(self, inputs: dict) -> dict:
        tf = self._tf
        out = self._fn(*(tf.constant(inputs[s.name], dtype=d) for s, d in zip(self._card.inputs, self._dtypes)))
        if isinstance(out, dict):
            keys = list(out)
            values = [out[k] for k in keys]
        else:
            values = list(out) if isinstance(out, (list, tuple)) else [out]
            keys = [s.name for s in self._card.outputs]
        if self._order is None:
            self._order = tensors.match(self._engine, "output", self._card.outputs, keys)
        return {s.name: tensors.as_card(values[i].numpy(), s) for s, i in zip(self._card.outputs, self._order)}



def saved_model_for(card, source, work) -> str:
    """A SavedModel of ``card``'s model for a converter: the source itself, or a ``.keras`` file exported."""
    if card.format == "savedmodel":
        return str(source)
    if card.format != "keras":
        raise EngineError("tensorflow", f"{source} is not a TensorFlow model ({card.format})")
    import keras

    target = os.path.join(str(work), "keras-savedmodel")
    keras.models.load_model(source).export(target, format="tf_saved_model", verbose=False)
    return target
