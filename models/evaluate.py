"""A model's correctness on an engine: test accuracy, and how far its answers are from TensorFlow's.

    python -m models.evaluate [--model models/cifar10_cnn] [--engine tensorflow] [--precision f32]
                              [--data inputs.npz] [--n N] [--out results] [--check 0.70] [--no-write]

(``make evaluate MODEL=... ENGINE=...``.) Runs the model's test inputs (the card's data: the 10,000 CIFAR-10
test images for the default model; ``--data`` a ``.npz`` of arrays named after its input tensors, with an
optional ``labels`` array; else inputs generated from its tensor specs, labelled "synthetic inputs") through the
engine and through TensorFlow's signature, and reports:

- test accuracy, the engine's and TensorFlow's, when labels exist (the points lost between them);
- the largest absolute difference of the probabilities from TensorFlow's (every float output when the
  model is not a classifier);
- the share of answers whose class changed.

Writes ``<out>/<ts>-evaluate-<model>-<engine>/summary.json`` (a run record of kind ``evaluate``: versions,
settings, machine). For the default engine and a model under ``models/``, also ``models/<name>.metrics.json``
(per-class accuracy and the training record beside it), as before engines existed; ``--no-write`` leaves it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from servebench import data

if TYPE_CHECKING:  # TensorFlow loads only when a core is built
    from servebench.inference import InferenceCore

MODELS_DIR = Path(__file__).resolve().parent
TARGET_ACCURACY = 0.70
KIND = "evaluate"
BATCH = 250  # rows per call: a few MB of CIFAR-10, and a batch every engine converts for
SYNTHETIC = "synthetic inputs"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def evaluate(core: InferenceCore, split: data.Split, batch: int = 500) -> dict:
    """Test accuracy and per-class accuracy of an image classifier on a CIFAR-10 split."""
    predicted = np.concatenate(
        [core.predict(split.images[i : i + batch]).classes for i in range(0, len(split), batch)]
    )
    correct = predicted == split.labels
    card = getattr(core, "card", None)
    names = card.class_names if card is not None and card.class_names else CIFAR10_CLASSES
    per_class = {
        str(name): round(float(correct[split.labels == k].mean()), 4) for k, name in enumerate(names)
    }
    return {"test_images": int(len(split)), "test_accuracy": round(float(correct.mean()), 4), "per_class_accuracy": per_class}


# --------------------------------------------------------------------------- inputs

@dataclass
class TestInputs:
    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    synthetic: bool
    provenance: dict  # where they came from: the file, its checksums and note (CIFAR-10: rebuilt from JPEG files)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def rows(self, i: int, j: int) -> dict[str, np.ndarray]:
        return {k: v[i:j] for k, v in self.arrays.items()}


def test_inputs(card, data_file: Path | None = None, n: int | None = None, data_dir=None) -> TestInputs:
    """The card's test inputs (CIFAR-10 from ``data_dir`` for a card whose data is cifar10), a ``.npz``, or
    synthetic ones; at most ``n``."""
    if data_file is None and card.data == "cifar10":
        split = data.load_test(data_dir, limit=n or None)
        return TestInputs({card.inputs[0].name: split.images}, split.labels, False,
                          {"source": "cifar10", **data.provenance(data_dir)})
    from servebench.model_data import load_inputs  # the data layer for any model (its card's data or a .npz)

    found = load_inputs(card, data_file, n=n or None)
    labels = None if found.labels is None else np.asarray(found.labels)
    return TestInputs(dict(found.arrays), labels, bool(found.synthetic), {"source": str(found.source)})


# --------------------------------------------------------------------------- the comparison

def classes_of(card):
    """The classifier output whose argmax is the class (more than one column), or None."""
    probs = card.probabilities
    return probs if probs is not None and (probs.shape[-1] is None or probs.shape[-1] > 1) else None


def compared_outputs(card) -> list[str]:
    """The outputs whose values are compared: the probabilities of a classifier, else every float output."""
    probs = classes_of(card)
    if probs is not None:
        return [probs.name]
    return [o.name for o in card.outputs if np.dtype(o.dtype).kind == "f"]


def compare(core, reference, inputs: TestInputs, batch: int = BATCH, progress=None) -> dict:
    """The engine's answers against the reference's (TensorFlow's) on every input: accuracy of both when
    labels exist, the largest absolute difference, the share of classes changed. ``reference`` None: the
    core is TensorFlow itself (differences 0)."""
    card = core.card
    names = compared_outputs(card)
    probs = classes_of(card).name if classes_of(card) is not None else None
    max_diff = 0.0
    mine, theirs = [], []
    for i in range(0, len(inputs), batch):
        rows = inputs.rows(i, i + batch)
        out = core.run(rows)
        ref = reference.run(rows) if reference is not None else out
        for name in names:
            a, b = np.asarray(out[name], np.float64), np.asarray(ref[name], np.float64)
            if a.shape != b.shape:
                raise ValueError(f"output {name}: the engine gave shape {a.shape}, TensorFlow {b.shape}")
            if a.size:
                max_diff = max(max_diff, float(np.max(np.abs(a - b))))
        if probs is not None:
            mine.append(np.asarray(out[probs]).argmax(axis=-1))
            theirs.append(np.asarray(ref[probs]).argmax(axis=-1))
        if progress:
            progress(min(i + batch, len(inputs)), len(inputs))
    result = {"inputs": len(inputs), "compared_outputs": names, "max_abs_diff": max_diff,
              "class_changed": None, "class_changed_share": None,
              "test_accuracy": None, "reference_accuracy": None, "accuracy_lost_points": None}
    if probs is not None:
        mine_c, theirs_c = np.concatenate(mine), np.concatenate(theirs)
        changed = int((mine_c != theirs_c).sum())
        result.update(class_changed=changed, class_changed_share=changed / max(1, len(mine_c)))
        if inputs.labels is not None:
            labels = np.asarray(inputs.labels).reshape(-1)
            acc, ref_acc = float((mine_c == labels).mean()), float((theirs_c == labels).mean())
            result.update(test_accuracy=acc, reference_accuracy=ref_acc,
                          accuracy_lost_points=round((ref_acc - acc) * 100.0, 4))
    return result


def engine_label(engine: str, precision: str) -> str:
    """How a run names its engine: ``openvino-bf16``; an engine without a precision choice by name alone."""
    return f"{engine}-{precision}" if engine == "openvino" else engine


def accuracy_note(inputs: TestInputs) -> str:
    """Said beside every accuracy figure: what the test inputs are."""
    if inputs.synthetic:
        return SYNTHETIC + " (no accuracy: no labels)"
    note = inputs.provenance.get("note")
    if note and "JPEG" in note:
        return f"CIFAR-10 test set, {note}"
    return str(inputs.provenance.get("source") or "")


def measure(model: Path | str, engine: str = "tensorflow", precision: str = "f32", data_file: Path | None = None,
            n: int | None = None, out: Path | None = None, study: str | None = None, threads: int | None = None,
            data_dir=None, log=print):
    """Evaluate ``model`` on ``engine`` against TensorFlow and write the run; returns its RunRecord."""
    from bench import results
    from bench.session import RunSession
    from servebench.inference import InferenceCore

    threads = threads or os.cpu_count() or 1
    core = InferenceCore(model, intra_op_threads=threads, inter_op_threads=1, engine=engine, precision=precision)
    reference = None if engine == "tensorflow" else InferenceCore(model, intra_op_threads=threads,
                                                                  inter_op_threads=1, engine="tensorflow")
    inputs = test_inputs(core.card, data_file, n, data_dir)
    found: dict = {}

    def header() -> dict:
        return {"kind": KIND, "study": study, "settings": {
            "model": core.card.name, "model_version": core.card.version, "model_format": core.card.format,
            "engine": engine, "precision": precision, "data": str(data_file) if data_file else core.card.data,
            "n": n, "batch": BATCH, "intra_op_threads": threads, "inter_op_threads": 1}}

    def summary(_interrupted: bool) -> dict:
        info = {k: v for k, v in core.info().items() if k not in ("path", "card")}
        ref = {k: v for k, v in reference.info().items() if k not in ("path", "card")} if reference else info
        return {"model": info, "reference_model": ref, "card": core.card.to_dict(),
                "data": {**inputs.provenance, "synthetic": inputs.synthetic, "labelled": inputs.labels is not None,
                         "note": accuracy_note(inputs)}, **found}

    label = f"{KIND}-{core.card.name}-{engine_label(engine, precision)}"
    session = RunSession(header=header, summary=summary, table=lambda doc, path: print_result(doc, path, log),
                         label=label, root=out or results.DEFAULT_ROOT, latest=False)
    with session:
        found.update(compare(core, reference, inputs))
    return session.record


def print_result(doc: dict, path: Path, log=print) -> None:
    s, m = doc["settings"], doc.get("model") or {}
    log(f"\n{s['model']} v{s['model_version']} on {s['engine']} {m.get('engine_version') or ''} "
        f"({s['precision']}), {doc.get('inputs', 0)} inputs: {doc['data']['note']}"
        + ("  (INTERRUPTED)" if doc.get("interrupted") else ""))
    if doc.get("test_accuracy") is not None:
        log(f"  test accuracy {doc['test_accuracy']:.4f} (TensorFlow {doc['reference_accuracy']:.4f}: "
            f"{doc['accuracy_lost_points']:+.2f} points lost)")
    if doc.get("max_abs_diff") is not None:
        log(f"  largest |difference| from TensorFlow's {', '.join(doc.get('compared_outputs') or [])}: "
            f"{doc['max_abs_diff']:.3g}")
    if doc.get("class_changed_share") is not None:
        log(f"  class changed: {doc['class_changed']} of {doc['inputs']} ({doc['class_changed_share']:.2%})")
    log(f"wrote {path}/summary.json")


def write_metrics(core: InferenceCore, data_dir, log=print) -> dict:
    """The default model's metrics file (models/<name>.metrics.json), as before engines existed."""
    split = data.load_test(data_dir)
    result = {"model": {k: v for k, v in core.info().items() if k not in ("path", "card")},
              **evaluate(core, split), "data": data.provenance(data_dir)}
    training = MODELS_DIR / f"{core.name}.training.json"
    if training.is_file():
        result["training"] = json.loads(training.read_text())
    out = MODELS_DIR / f"{core.name}.metrics.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    return result


def main(argv=None) -> int:
    from servebench.inference import InferenceCore
    from servebench.modelcard import CardError, read_card
    from servebench.settings import Settings

    settings = Settings()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "--model-base", dest="model", type=Path, default=MODELS_DIR / "cifar10_cnn",
                   help="a SavedModel folder, a .keras or an .onnx file")
    p.add_argument("--engine", default=getattr(settings, "engine", "tensorflow") or "tensorflow")
    p.add_argument("--precision", default=None, help="OpenVINO's: f32 or bf16 (default SB_OPENVINO_PRECISION)")
    p.add_argument("--data", type=Path, default=None, help=".npz of arrays named after the input tensors")
    p.add_argument("--n", type=int, default=None, help="at most this many test inputs")
    p.add_argument("--data-dir", default=None, help="cifar-10-batches-py folder")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    p.add_argument("--check", type=float, default=None, help="exit non-zero below this accuracy")
    p.add_argument("--no-write", action="store_true", help="leave models/<name>.metrics.json as it is")
    args = p.parse_args(argv)
    precision = args.precision or (getattr(settings, "openvino_precision", "f32") if args.engine == "openvino"
                                   else "f32")
    try:
        record = measure(args.model, args.engine, precision, args.data, args.n, args.out, data_dir=args.data_dir)
    except (CardError, data.DatasetError, ValueError) as exc:
        print(f"error: {args.model}: {exc}", file=sys.stderr)
        return 2
    if record.interrupted:
        return 130
    default = Path(args.model).resolve().parent == MODELS_DIR and args.engine == "tensorflow"
    # Only CIFAR-10 models have a metrics file this writes; other models' trainers write their own.
    if default and read_card(args.model).data == "cifar10" and not args.no_write and not args.n and args.data is None:
        write_metrics(InferenceCore(args.model, intra_op_threads=0, inter_op_threads=0), args.data_dir)
    acc = record.get("test_accuracy")
    if args.check is not None and acc is not None and acc < args.check:
        print(f"FAIL: accuracy {acc:.4f} is below {args.check}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
