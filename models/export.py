"""Export the trained Keras model as a versioned SavedModel for TF Serving.

    python -m models.export [--model cifar10_cnn] [--keras models/<model>.keras] [--out models/<model>] [--version 1]

Writes ``<out>/<version>/saved_model.pb`` + ``variables/`` with a
``serving_default`` signature: uint8 ``images [batch, 32, 32, 3]`` in,
``probabilities [batch, 10]`` and ``classes [batch]`` out. Scaling happens in
the graph (the model's first layer), so no client can preprocess differently.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import cnn  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent
SIGNATURE = "serving_default"
INPUT_KEY = "images"
OUTPUT_PROBS = "probabilities"
OUTPUT_CLASSES = "classes"


def export(model: keras.Model, target: Path) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None, *cnn.INPUT_SHAPE], tf.uint8, name=INPUT_KEY)])
    def serve(images):
        probs = model(tf.cast(images, tf.float32), training=False)
        return {OUTPUT_PROBS: probs, OUTPUT_CLASSES: tf.argmax(probs, axis=1)}

    archive.add_endpoint(SIGNATURE, serve)
    write_version(archive, target)


def write_version(archive, target: Path) -> None:
    """Write an export archive as the version folder ``target``, whole or not at all."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    archive.write_out(str(tmp), verbose=False)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # a half-written version is never visible to a server


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=cnn.NAME, help="names the default --keras and --out (models/families.py)")
    p.add_argument("--keras", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--version", type=int, default=1)
    args = p.parse_args(argv)
    args.keras = args.keras or MODELS_DIR / f"{args.model}.keras"
    args.out = args.out or MODELS_DIR / args.model
    model = keras.models.load_model(args.keras)
    target = args.out / str(args.version)
    target.parent.mkdir(parents=True, exist_ok=True)
    export(model, target)
    print(f"exported {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
