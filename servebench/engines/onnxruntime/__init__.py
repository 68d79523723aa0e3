"""ONNX Runtime: an ``.onnx`` model as it is; a TensorFlow model converted by tf2onnx from its signature."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from servebench.engines import tensors
from servebench.engines.base import EngineError, Runner, Threads

NAME = "onnxruntime"
RUNS = ("onnx",)
CONVERTS = ("savedmodel", "keras")
PRECISIONS = ("f32",)
OPSET = 17
MODEL_FILE = "model.onnx"


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("onnxruntime")


def convert(card, source, out_dir) -> None:
    """tf2onnx's own command line, run in this (child) process; it keeps the signature's tensor names."""
    from servebench.engines import tfgraph

    saved = tfgraph.saved_model_for(card, source, out_dir)
    from tf2onnx import convert as tf2onnx_convert

    argv = sys.argv
    sys.argv = ["tf2onnx.convert", "--saved-model", saved, "--signature_def", tfgraph.SIGNATURE, "--tag", "serve",
                "--opset", str(OPSET), "--output", str(Path(out_dir) / MODEL_FILE)]
    try:
        tf2onnx_convert.main()
    finally:
        sys.argv = argv
        if saved != str(source):
            shutil.rmtree(saved, ignore_errors=True)
    if not (Path(out_dir) / MODEL_FILE).is_file():
        raise EngineError(NAME, "tf2onnx wrote no model")
    _check_ops(Path(out_dir) / MODEL_FILE)


def _check_ops(path: Path) -> None:
    """tf2onnx copies an op it cannot convert as it is; ONNX Runtime would refuse the model at load."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    unknown = sorted({n.op_type for n in graph.node if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if unknown:
        raise EngineError(NAME, f"tf2onnx has no ONNX equivalent of the TensorFlow op(s) {', '.join(unknown)}")


class OrtRunner(Runner):
    """One InferenceSession; its run() is thread-safe."""

    def __init__(self, card, path: Path, threads: Threads):
        import onnxruntime as ort

        super().__init__(path, threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads.intra_op  # 0: ORT's default (one per core)
        opts.inter_op_num_threads = threads.inter_op
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        ins, outs = self._session.get_inputs(), self._session.get_outputs()
        self._in = [ins[i].name for i in tensors.match(NAME, "input", card.inputs, [t.name for t in ins])]
        out_order = tensors.match(NAME, "output", card.outputs, [t.name for t in outs])
        self._out = [outs[i].name for i in out_order]
        self._card = card

    def run(self, inputs: dict) -> dict:
        feeds = {name: inputs[s.name] for name, s in zip(self._in, self._card.inputs)}
        values = self._session.run(self._out, feeds)
        return {s.name: tensors.as_card(v, s) for s, v in zip(self._card.outputs, values)}


def load(card, artifact, threads, precision):
    path = Path(artifact)
    return OrtRunner(card, path / MODEL_FILE if path.is_dir() else path, threads)
