"""Test accuracy of each ensemble member and of their softmax average, from the committed SavedModels.

    python -m services.ensemble.accuracy [--check] [--members cnn,resnet20,mobilenetv2]

Runs the 10,000 CIFAR-10 test images through each member's inference core
(the servers' call path), averages the probabilities as the coordinator does
(:func:`services.ensemble.combine.average`) and writes ``models/ensemble.metrics.json``:
each member's accuracy, the ensemble's, every subset's, and the gain over the
best member. ``--check`` fails when a member is under 70% or the ensemble is
not at least 2 points above its best member (issue 12's bar).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys

import numpy as np

from servebench import data
from servebench.inference import InferenceCore
from servebench.settings import REPO_ROOT
from servebench.types import Prediction
from services.ensemble.combine import average
from services.ensemble.inprocess import engine_options
from services.ensemble.members import MEMBERS

MODELS_DIR = REPO_ROOT / "models"
MEMBER_MIN = 0.70
GAIN_MIN_POINTS = 2.0


def probabilities(core: InferenceCore, images: np.ndarray, batch: int = 500) -> np.ndarray:
    return np.concatenate([core.predict(images[i:i + batch]).probabilities for i in range(0, len(images), batch)])


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return round(float(np.mean(probs.argmax(axis=1) == labels)), 4)


def measure(members=tuple(MEMBERS), data_dir=None, cores: dict | None = None, limit: int | None = None,
            settings=None) -> dict:
    """Each member's and the ensemble's accuracy on the first ``limit`` test images (all 10,000 by default);
    ``cores``: inference cores already loaded, by member name (else loaded here with every CPU, on the
    engine ``settings`` name: default SB_ENGINE and SB_OPENVINO_PRECISION)."""
    split = data.load_test(data_dir, limit=limit) if limit else data.load_test(data_dir)
    probs, info = {}, {}
    for name in members:
        core = (cores or {}).get(name) or InferenceCore(MODELS_DIR / MEMBERS[name], intra_op_threads=0,
                                                        inter_op_threads=0, **engine_options(settings))
        probs[name] = probabilities(core, split.images)
        engine = {k: v for k, v in core.info().items() if k in ("engine", "engine_version", "precision")}
        info[name] = {"model": core.name, "version": core.version, **engine,
                      "test_accuracy": accuracy(probs[name], split.labels)}

    def ensemble_of(names) -> np.ndarray:
        return average([Prediction(p.argmax(axis=1), p) for p in (probs[n] for n in names)]).probabilities

    subsets = {"+".join(c): accuracy(ensemble_of(c), split.labels)
               for k in range(2, len(members) + 1) for c in itertools.combinations(members, k)}
    ens = accuracy(ensemble_of(members), split.labels)
    best = max(info.values(), key=lambda m: m["test_accuracy"])
    return {
        "test_images": int(len(split)),
        "members": info,
        "ensemble": {"members": list(members), "combine": "mean of softmax probabilities", "test_accuracy": ens},
        "subsets": subsets,
        "best_member": best["model"],
        "gain_points_over_best": round(100 * (ens - best["test_accuracy"]), 2),
        # The data's checksum and note, not where it lay on the machine that measured (a committed file).
        "data": {k: v for k, v in data.provenance(data_dir).items() if k != "path"},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", default=",".join(MEMBERS))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--check", action="store_true", help="fail below the member and ensemble bars")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    result = measure(tuple(args.members.split(",")), args.data_dir)
    for name, m in result["members"].items():
        print(f"{m['model']:<22} {m['test_accuracy']:.4f}")
    print(f"{'ensemble (average)':<22} {result['ensemble']['test_accuracy']:.4f}  "
          f"(+{result['gain_points_over_best']:.2f} points over {result['best_member']})")
    if not args.no_write:
        out = MODELS_DIR / "ensemble.metrics.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    if args.check:
        low = [m["model"] for m in result["members"].values() if m["test_accuracy"] < MEMBER_MIN]
        if low or result["gain_points_over_best"] < GAIN_MIN_POINTS:
            print(f"FAIL: members under {MEMBER_MIN:.0%}: {low or 'none'}; gain "
                  f"{result['gain_points_over_best']} points (needs {GAIN_MIN_POINTS})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
