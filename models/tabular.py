"""The bundled model that is not an image model: a small MLP on scikit-learn's breast cancer data set.

    python -m models.tabular [--epochs 80] [--seed 1234] [--out models/breast_cancer_mlp] [--version 1]
        [--check 0.90]

The data set ships inside scikit-learn (569 rows, 30 float features, nothing
downloaded); a fixed, seeded, stratified split keeps 20% for the test. The
model takes the raw features and normalises them itself (a Normalization
layer adapted on the training rows), so every caller sends the same numbers.

Writes, beside the CIFAR-10 models:

- ``models/breast_cancer_mlp/<version>/``: a SavedModel whose
  ``serving_default`` takes float32 ``features [batch, 30]`` and gives
  ``probabilities [batch, 2]`` and int64 ``classes [batch]``;
- ``models/breast_cancer_mlp/card.json``: the class names and where the
  inputs come from (``npz:test.npz``);
- ``models/breast_cancer_mlp/test.npz``: the test split, ``features`` and
  ``labels``;
- ``models/breast_cancer_mlp.keras``, ``.training.json`` and ``.metrics.json``
  (test accuracy read back through the exported signature).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models.export import OUTPUT_CLASSES, OUTPUT_PROBS, SIGNATURE, write_version  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent
NAME = "breast_cancer_mlp"
INPUT_KEY = "features"
N_FEATURES = 30
CLASS_NAMES = ("malignant", "benign")  # scikit-learn's target_names, label 0 then 1
TEST_FRACTION = 0.2
SEED = 1234
TEST_FILE = "test.npz"
TARGET_ACCURACY = 0.90  # the majority class alone scores about 0.63


def load_split(seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train features, train labels, test features, test labels): float32 [n, 30] and int64 [n]."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features.astype(np.float32), labels.astype(np.int64), test_size=TEST_FRACTION, random_state=seed,
        stratify=labels)
    return x_train, y_train, x_test, y_test


def build(train_features: np.ndarray) -> keras.Model:
    scale = keras.layers.Normalization(axis=-1, name="normalise")
    scale.adapt(train_features)  # mean and variance of the training rows only
    return keras.Sequential(
        [
            keras.Input(shape=(N_FEATURES,), name=INPUT_KEY),
            scale,
            keras.layers.Dense(16, activation="relu", name="dense1"),
            keras.layers.Dropout(0.2, name="drop1"),
            keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name=OUTPUT_PROBS),
        ],
        name=NAME,
    )


def export(model: keras.Model, target: Path) -> None:
    """A versioned SavedModel with the serving signature; written aside, then renamed into place."""
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None, N_FEATURES], tf.float32, name=INPUT_KEY)])
    def serve(features):
        probs = model(features, training=False)
        return {OUTPUT_PROBS: probs, OUTPUT_CLASSES: tf.argmax(probs, axis=1)}

    archive.add_endpoint(SIGNATURE, serve)
    write_version(archive, target)


def serve_signature(version_dir: Path):
    import tensorflow as tf

    return tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]


def evaluate(version_dir: Path, features: np.ndarray, labels: np.ndarray) -> dict:
    """Test accuracy through the exported signature (what a server runs), overall and per class."""
    import tensorflow as tf

    out = serve_signature(version_dir)(**{INPUT_KEY: tf.constant(features)})
    correct = out[OUTPUT_CLASSES].numpy() == labels
    return {
        "test_rows": int(len(labels)),
        "test_accuracy": round(float(correct.mean()), 4),
        "majority_class_accuracy": round(float(max(np.mean(labels == k) for k in range(len(CLASS_NAMES)))), 4),
        "per_class_accuracy": {name: round(float(correct[labels == k].mean()), 4) for k, name in enumerate(CLASS_NAMES)},
    }


def provenance() -> dict:
    import sklearn

    return {"source": "sklearn.datasets.load_breast_cancer (bundled with scikit-learn, no download)",
            "scikit_learn": sklearn.__version__, "split": f"stratified, test_size={TEST_FRACTION}"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=SEED, help="the split's and the training's")
    p.add_argument("--out", type=Path, default=MODELS_DIR / NAME, help="versioned SavedModel folder")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--check", type=float, default=None, help="exit non-zero below this test accuracy")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_test, y_test = load_split(args.seed)
    print(f"training on {len(y_train)} rows, testing on {len(y_test)}", flush=True)

    model = build(x_train)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.time()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0)
    elapsed = time.time() - started
    print(f"trained {args.epochs} epochs in {elapsed:.1f} s", flush=True)

    keras_path = args.out.with_name(args.out.name + ".keras")
    model.save(keras_path)
    target = args.out / str(args.version)
    target.parent.mkdir(parents=True, exist_ok=True)
    export(model, target)
    np.savez_compressed(args.out / TEST_FILE, **{INPUT_KEY: x_test, "labels": y_test})
    card = {"class_names": list(CLASS_NAMES), "data": f"npz:{TEST_FILE}"}
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n")

    training = {
        "model": args.out.name,
        "parameters": int(model.count_params()),
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": f"Adam {args.learning_rate}",
        "train_rows": int(len(y_train)),
        "training_seconds": round(elapsed, 1),
        "train_history": {k: [round(float(v), 4) for v in vals[::10] + vals[-1:]]
                          for k, vals in history.history.items()},  # every 10th epoch and the last
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "data": provenance(),
    }
    (args.out.parent / f"{args.out.name}.training.json").write_text(json.dumps(training, indent=2) + "\n")
    import tensorflow as tf

    result = {"model": {"name": args.out.name, "version": args.version, "tensorflow": tf.__version__},
              **evaluate(target, x_test, y_test), "data": provenance(), "training": training}
    (args.out.parent / f"{args.out.name}.metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"exported {target}: test accuracy {result['test_accuracy']:.4f} on {result['test_rows']} rows "
          f"(majority class {result['majority_class_accuracy']:.4f})", flush=True)
    if args.check is not None and result["test_accuracy"] < args.check:
        print(f"FAIL: accuracy {result['test_accuracy']:.4f} is below {args.check}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
