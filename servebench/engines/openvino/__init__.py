"""OpenVINO: ``openvino.convert_model`` from the SavedModel (or the ``.onnx`` read as it is), on the CPU.

The precision is always set (``INFERENCE_PRECISION_HINT``): OpenVINO's silent
default on a CPU with bf16 units is bf16, which moves probabilities by ~1e-3.
The precision recorded is the one the compiled model reports. Thread pinning is
off: several worker processes with one thread each would otherwise pin to the
same core.
"""
from __future__ import annotations

import threading
from pathlib import Path

from servebench.engines import tensors
from servebench.engines.base import EngineError, Runner, Threads

NAME = "openvino"
RUNS = ("onnx",)
CONVERTS = ("savedmodel", "keras")
PRECISIONS = ("f32", "bf16")
MODEL_FILE = "model.xml"
_HINTS = {"f32": "f32", "bf16": "bf16"}


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("openvino")


def convert(card, source, out_dir) -> None:
    import openvino as ov

    from servebench.engines import tfgraph

    saved = tfgraph.saved_model_for(card, source, out_dir)
    try:
        model = ov.convert_model(saved)
    except Exception as exc:  # its first line is "Check 'false' failed at <file>": the reason follows
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("Check ")]
        raise EngineError(NAME, f"{type(exc).__name__}: {' '.join(lines[:3])}"[:500]) from None
    # f32 weights on disk; the precision is chosen when the model is compiled
    ov.save_model(model, str(Path(out_dir) / MODEL_FILE), compress_to_fp16=False)


def _names(port) -> set[str]:
    try:
        return set(port.get_names())
    except RuntimeError:  # a port without a name
        return set()


class OpenVinoRunner(Runner):
    """One compiled model, one infer request per calling thread (a request is not thread-safe)."""

    def __init__(self, card, path: Path, threads: Threads, precision: str):
        import openvino as ov

        super().__init__(path, threads)
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False,
                  "PERFORMANCE_HINT": "LATENCY"}
        if threads.intra_op > 0:
            config["INFERENCE_NUM_THREADS"] = threads.intra_op
        self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: f32, bf16
        self.precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        if self.precision != precision:
            raise EngineError(NAME, f"asked for {precision}, the CPU runs {self.precision}")
        ins, outs = self._compiled.inputs, self._compiled.outputs
        self._in = [ins[i] for i in tensors.match(NAME, "input", card.inputs, [_names(p) for p in ins])]
        self._out = [outs[i] for i in tensors.match(NAME, "output", card.outputs, [_names(p) for p in outs])]
        self._card = card
        self._local = threading.local()

    def run(self, inputs: dict) -> dict:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        # share_outputs stays False: the answers are copies, the request's buffers serve its next call
        result = request.infer({port: inputs[s.name] for port, s in zip(self._in, self._card.inputs)},
                               share_inputs=True)
        return {s.name: tensors.as_card(result[port], s) for port, s in zip(self._out, self._card.outputs)}


def load(card, artifact, threads, precision):
    path = Path(artifact)
    return OpenVinoRunner(card, path / MODEL_FILE if path.is_dir() else path, threads, precision)
