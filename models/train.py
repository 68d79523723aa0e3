"""Train a CIFAR-10 model on the 50,000 training images.

    python -m models.train [--model cifar10_cnn] [--epochs 12] [--batch-size 128] [--seed 1234]

``--model`` picks the network (models/families.py): the Table 1 CNN (default)
or one of the ensemble's other members (cifar10_resnet20, cifar10_mobilenetv2).

Backend-agnostic Keras 3 (KERAS_BACKEND=tensorflow by default; jax works too).
Each epoch is backed up, so rerunning after an interruption resumes where it
stopped; the checkpoint with the lowest training loss is kept. The test set
is evaluated after each epoch for progress only, never to choose a checkpoint.
At the end the model is exported (TensorFlow backend) and metrics are written.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from models import cnn, families
from servebench import data

MODELS_DIR = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(families.BUILDERS), default=cnn.NAME)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--data-dir", default=None, help="cifar-10-batches-py folder (default: SB_CIFAR10_DIR)")
    p.add_argument("--work-dir", type=Path, default=None, help="checkpoints and backups (default models/.train[/<model>])")
    p.add_argument("--out", type=Path, default=None, help="versioned SavedModel folder (default models/<model>)")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--no-export", action="store_true", help="stop after training (export later with models.export)")
    p.add_argument("--no-test-progress", action="store_true", help="skip the per-epoch test accuracy print")
    args = p.parse_args(argv)
    # The Table 1 CNN keeps its original folder so an interrupted run still resumes.
    if args.work_dir is None:
        args.work_dir = MODELS_DIR / ".train" if args.model == cnn.NAME else MODELS_DIR / ".train" / args.model
    if args.out is None:
        args.out = MODELS_DIR / args.model
    return args


class TestAccuracy(keras.callbacks.Callback):
    """Prints test accuracy after each epoch: progress only, not model selection."""

    def __init__(self, images, labels):
        super().__init__()
        self.images, self.labels = images, labels
        self.history: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        probs = self.model.predict(self.images, batch_size=512, verbose=0)
        acc = float(np.mean(np.argmax(probs, axis=1) == self.labels))
        self.history.append(acc)
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f} (progress only)", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    args.work_dir.mkdir(parents=True, exist_ok=True)

    train = data.load_train(args.data_dir)
    test = None if args.no_test_progress else data.load_test(args.data_dir)
    print(f"training on {len(train)} images from {train.source}", flush=True)

    model = families.BUILDERS[args.model]()
    # Flip augmentation lives in a wrapper so the exported model is exactly Table 1.
    trainer = keras.Sequential([keras.Input(shape=cnn.INPUT_SHAPE), keras.layers.RandomFlip("horizontal", seed=args.seed), model])
    steps = args.epochs * int(np.ceil(len(train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps, alpha=0.01)
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    best = args.work_dir / "best.keras"
    progress = TestAccuracy(test.images, test.labels) if test is not None else None
    started = time.time()
    history = trainer.fit(
        train.images.astype("float32"),
        train.labels,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=2 if not sys.stdout.isatty() else 1,
        callbacks=[
            keras.callbacks.BackupAndRestore(str(args.work_dir / "backup")),
            keras.callbacks.ModelCheckpoint(str(best), monitor="loss", save_best_only=True),
        ] + ([progress] if progress else []),
    )
    elapsed = time.time() - started
    trainer = keras.models.load_model(best)
    model = trainer.layers[-1]
    keras_path = MODELS_DIR / f"{args.model}.keras"
    model.save(keras_path)
    print(f"saved {keras_path}", flush=True)

    run = {
        "model": args.model,
        "parameters": int(model.count_params()),
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": f"Adam, cosine decay from {args.learning_rate}",
        "augmentation": "random horizontal flip",
        "train_images": len(train),
        "training_seconds": round(elapsed, 1),
        "train_history": {k: [round(float(v), 4) for v in vals] for k, vals in history.history.items()},
        "test_accuracy_per_epoch": [round(a, 4) for a in progress.history] if progress else None,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "data": data.provenance(args.data_dir),
    }
    (MODELS_DIR / f"{args.model}.training.json").write_text(json.dumps(run, indent=2) + "\n")
    if args.no_export or keras.backend.backend() != "tensorflow":
        print("export with: python -m models.export", flush=True)
        return 0
    from models import export

    return export.main(["--keras", str(keras_path), "--out", str(args.out), "--version", str(args.version)])


if __name__ == "__main__":
    sys.exit(main())
