"""LiteRT: TFLiteConverter from the SavedModel's signature; ai_edge_litert's interpreter runs it.

The converted model keeps float32 (no quantization). An interpreter is not
thread-safe, so each calling thread has its own; its inputs are resized to the
batch when the batch changes.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from servebench.engines import tensors
from servebench.engines.base import EngineError, Runner, Threads

NAME = "litert"
RUNS: tuple[str, ...] = ()
CONVERTS = ("savedmodel", "keras")  # not .onnx: no ONNX -> LiteRT converter here
PRECISIONS = ("f32",)
MODEL_FILE = "model.tflite"


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("ai-edge-litert")


def convert(card, source, out_dir) -> None:
    import tensorflow as tf

    from servebench.engines import tfgraph

    saved = tfgraph.saved_model_for(card, source, out_dir)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[tfgraph.SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no TF ops: LiteRT alone runs it
    (Path(out_dir) / MODEL_FILE).write_bytes(converter.convert())


class _Interpreter:
    """One thread's interpreter with the signature's tensor indices."""

    def __init__(self, path: Path, threads: Threads, card):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=threads.intra_op or None)
        runner = self.interp.get_signature_runner()
        ins, outs = runner.get_input_details(), runner.get_output_details()
        in_names, out_names = list(ins), list(outs)
        self.inputs = [ins[in_names[i]]["index"] for i in tensors.match(NAME, "input", card.inputs, in_names)]
        self.outputs = [outs[out_names[i]]["index"] for i in tensors.match(NAME, "output", card.outputs, out_names)]
        self.shapes: list = [None] * len(self.inputs)


class LiteRtRunner(Runner):
    def __init__(self, card, path: Path, threads: Threads):
        super().__init__(path, threads)
        self._card = card
        self._local = threading.local()
        self._interpreter()  # fail here, not on the first request

    def _interpreter(self) -> _Interpreter:
        it = getattr(self._local, "it", None)
        if it is None:
            it = self._local.it = _Interpreter(self.artifact, self.threads, self._card)
        return it

    def run(self, inputs: dict) -> dict:
        it = self._interpreter()
        arrays = [np.ascontiguousarray(inputs[s.name]) for s in self._card.inputs]
        if any(a.shape != s for a, s in zip(arrays, it.shapes)):
            for index, a in zip(it.inputs, arrays):
                it.interp.resize_tensor_input(index, a.shape, strict=False)
            it.interp.allocate_tensors()
            it.shapes = [a.shape for a in arrays]
        for index, a in zip(it.inputs, arrays):
            it.interp.set_tensor(index, a)
        it.interp.invoke()
        return {s.name: tensors.as_card(it.interp.get_tensor(i), s) for s, i in zip(self._card.outputs, it.outputs)}


def load(card, artifact, threads, precision):
    path = Path(artifact)
    if not path.is_dir():
        raise EngineError(NAME, f"{path} is not a converted model folder")
    return LiteRtRunner(card, path / MODEL_FILE, threads)
