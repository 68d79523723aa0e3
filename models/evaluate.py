"""Recompute test accuracy from the committed SavedModel and write the metrics file.

    python -m models.evaluate [--model-base models/cifar10_cnn] [--check 0.70]

Runs the 10,000 CIFAR-10 test images through the inference core (the same
call path as the servers) and writes ``models/cifar10_cnn.metrics.json``:
test accuracy, per-class accuracy, and the training record beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from servebench import data
from servebench.codecs import CLASS_NAMES
from servebench.inference import InferenceCore

MODELS_DIR = Path(__file__).resolve().parent
TARGET_ACCURACY = 0.70


def evaluate(core: InferenceCore, split: data.Split, batch: int = 500) -> dict:
    predicted = np.concatenate(
        [core.predict(split.images[i : i + batch]).classes for i in range(0, len(split), batch)]
    )
    correct = predicted == split.labels
    per_class = {
        name: round(float(correct[split.labels == k].mean()), 4) for k, name in enumerate(CLASS_NAMES)
    }
    return {"test_images": int(len(split)), "test_accuracy": round(float(correct.mean()), 4), "per_class_accuracy": per_class}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-base", type=Path, default=MODELS_DIR / "cifar10_cnn")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--check", type=float, default=None, help="exit non-zero below this accuracy")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)

    core = InferenceCore(args.model_base, intra_op_threads=0, inter_op_threads=0)
    split = data.load_test(args.data_dir)
    result = {"model": core.info(), **evaluate(core, split), "data": data.provenance(args.data_dir)}
    print(f"test accuracy {result['test_accuracy']:.4f} on {result['test_images']} images ({core.path})")
    for name, acc in result["per_class_accuracy"].items():
        print(f"  {name:<11} {acc:.3f}")
    if not args.no_write:
        training = MODELS_DIR / f"{core.name}.training.json"
        if training.is_file():
            result["training"] = json.loads(training.read_text())
        result["model"].pop("path")
        out = MODELS_DIR / f"{core.name}.metrics.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    if args.check is not None and result["test_accuracy"] < args.check:
        print(f"FAIL: accuracy {result['test_accuracy']:.4f} is below {args.check}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
