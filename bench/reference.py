"""The in-process reference: the model's own cost, with no server in the way.

    python -m bench.reference [--calls 1000] [--warmup 50] [--batch-sizes 1,8,32,128]
                              [--batch-images 2048 | --batch-seconds 5] [--codec-calls 300]
                              [--out results]

It calls :meth:`InferenceCore.predict`, built from the same ``SB_*`` settings
as the servers, so every architecture is compared with the limit of its own
call path. Measured on real CIFAR-10 test images:

- latency of one image, sequential calls (p50/p90/p99/mean/max, ms);
- throughput in images/s for each batch size;
- one-image latency when the body is first decoded by the request codecs
  (what an in-process server does before the model), with decoding shown apart.

Writes ``<out>/<run_id>/summary.json`` and ``latency.csv`` and copies the
summary to ``<out>/reference.json``, which the harness reads for ratios.
Ctrl-C stops measuring and writes what was measured, marked ``interrupted``.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import provenance
from servebench import codecs, data
from servebench.inference import InferenceCore
from servebench.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
BATCH_WARMUP_CALLS = 2  # the first calls at a new batch size allocate buffers


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=1000, help="timed one-image calls")
    p.add_argument("--warmup", type=int, default=50, help="untimed one-image calls first")
    p.add_argument("--batch-sizes", type=_int_list, default=(1, 8, 32, 128), help="comma-separated")
    p.add_argument("--batch-images", type=int, default=2048, help="images per batch size (throughput)")
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="run each batch size this long instead of a fixed number of images")
    p.add_argument("--codec-calls", type=int, default=300, help="timed one-image calls per codec")
    p.add_argument("--codecs", type=_str_list, default=("json", "raw"), help=f"from {','.join(codecs.CODECS)}")
    p.add_argument("--data-dir", default=None, help="cifar-10-batches-py folder (default: SB_CIFAR10_DIR)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    unknown = set(args.codecs) - set(codecs.CODECS)
    if unknown:
        p.error(f"unknown codec(s) {', '.join(sorted(unknown))}: choose from {', '.join(codecs.CODECS)}")
    if args.calls < 1 or args.warmup < 0 or args.codec_calls < 0 or args.batch_images < 1:
        p.error("--calls and --batch-images must be at least 1; --warmup and --codec-calls at least 0")
    if any(b < 1 for b in args.batch_sizes):
        p.error("batch sizes must be at least 1")
    return args


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def stats(ms: list[float]) -> dict | None:
    if not ms:
        return None
    a = np.asarray(ms)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "count": len(a),
        "p50": round(float(p50), 3),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "mean": round(float(a.mean()), 3),
        "min": round(float(a.min()), 3),
        "max": round(float(a.max()), 3),
    }


class Reference:
    """The measurements, kept as they accumulate so an interrupted run still has them."""

    def __init__(self, core: InferenceCore, images: np.ndarray, progress: bool):
        self.core = core
        self.images = images
        self.progress = progress
        self.latency_ms: list[float] = []
        self.throughput: list[dict] = []
        self.codec: dict[str, dict] = {}

    def _bar(self, total, desc):
        return tqdm(total=total, desc=desc, unit="call", leave=False, disable=not self.progress, dynamic_ncols=True)

    def _image(self, i: int) -> np.ndarray:
        return self.images[i % len(self.images)][np.newaxis]

    def latency(self, calls: int, warmup: int) -> None:
        for i in range(warmup):
            self.core.predict(self._image(i))
        with self._bar(calls, "one image") as bar:
            for i in range(calls):
                _, ms = self.core.timed_predict(self._image(warmup + i))
                self.latency_ms.append(ms)
                bar.update()

    def batch(self, size: int, images: int, seconds: float | None) -> None:
        pool = max(1, len(self.images) // size)  # whole batches of real images, reused in turn
        batches = [self.images[k * size : (k + 1) * size] for k in range(pool)]
        if len(batches[0]) < size:  # fewer images than one batch: repeat them
            batches = [np.resize(self.images, (size, *self.images.shape[1:]))]
        for k in range(BATCH_WARMUP_CALLS):
            self.core.predict(batches[k % len(batches)])
        calls = None if seconds else -(-images // size)
        call_ms: list[float] = []
        start = last = time.perf_counter()
        try:
            with self._bar(calls, f"batch {size}") as bar:
                while (len(call_ms) < calls) if calls is not None else (last - start < seconds):
                    _, ms = self.core.timed_predict(batches[len(call_ms) % len(batches)])
                    last = time.perf_counter()
                    call_ms.append(ms)
                    bar.update()
        finally:  # summarised outside the timed loop, and also when interrupted part way
            if call_ms:
                n = len(call_ms) * size
                self.throughput.append({
                    "batch": size,
                    "images": n,
                    "calls": len(call_ms),
                    "seconds": round(last - start, 3),
                    "images_per_s": round(n / (last - start), 1),
                    "batch_ms": stats(call_ms),
                })

    def codec_latency(self, codec: str, calls: int) -> None:
        # Bodies are made first (the client's work); the timed part is what a server does.
        bodies = [codecs.encode(self._image(i), codec) for i in range(calls)]
        total: list[float] = []
        decode: list[float] = []
        try:
            with self._bar(calls, f"{codec} decode+predict") as bar:
                for body, content_type in bodies:
                    start = time.perf_counter()
                    images = codecs.decode(body, content_type)
                    decoded = time.perf_counter()
                    self.core.predict(images)
                    end = time.perf_counter()
                    decode.append((decoded - start) * 1000.0)
                    total.append((end - start) * 1000.0)
                    bar.update()
        finally:
            if total:
                self.codec[codec] = {**stats(total), "decode_ms": stats(decode), "body_bytes": len(bodies[0][0])}


def summary(args, settings: Settings, ref: Reference, interrupted: bool) -> dict:
    return {
        "kind": "reference",
        "interrupted": interrupted,
        "settings": {
            "intra_op_threads": settings.intra_op_threads,
            "inter_op_threads": settings.inter_op_threads,
            "model_base": str(settings.model_base),
            "model_version": settings.model_version,
            "calls": args.calls,
            "warmup": args.warmup,
            "batch_sizes": list(args.batch_sizes),
            "batch_images": None if args.batch_seconds else args.batch_images,
            "batch_seconds": args.batch_seconds,
            "codec_calls": args.codec_calls,
            "codecs": list(args.codecs),
        },
        "model": ref.core.info(),
        "data": data.provenance(args.data_dir),
        "latency_ms": stats(ref.latency_ms),
        "throughput": ref.throughput,
        "codec_latency_ms": ref.codec,
        **provenance.record(),
    }


def write(out: Path, label: str, doc: dict, latency_ms: list[float]) -> Path:
    run_dir = out / provenance.run_id(label)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    with (run_dir / "latency.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "latency_ms"])
        w.writerows((i, f"{ms:.4f}") for i, ms in enumerate(latency_ms))
    return run_dir


def print_table(doc: dict) -> None:
    model = doc["model"]
    print(f"\nreference: {model['name']} v{model['version']}, TensorFlow {model['tensorflow']}, "
          f"threads intra {model['intra_op_threads']} / inter {model['inter_op_threads']}"
          + ("  (INTERRUPTED)" if doc["interrupted"] else ""))
    print(f"{'':34}{'n':>6}{'p50':>8}{'p90':>8}{'p99':>8}{'mean':>8}{'max':>8}  ms")
    rows = [("one image, predict", doc["latency_ms"])]
    for codec, entry in doc["codec_latency_ms"].items():
        rows.append((f"one image, {codec} decode+predict", entry))
        rows.append((f"  of which {codec} decode", entry.get("decode_ms")))
    for name, s in rows:
        if s:
            print(f"{name:<34}{s['count']:>6}{s['p50']:>8.2f}{s['p90']:>8.2f}{s['p99']:>8.2f}{s['mean']:>8.2f}{s['max']:>8.2f}")
    if doc["throughput"]:
        print(f"\n{'batch':>6}{'images/s':>10}{'ms/batch p50':>14}{'images':>8}")
        for t in doc["throughput"]:
            if t["calls"]:
                print(f"{t['batch']:>6}{t['images_per_s']:>10.1f}{t['batch_ms']['p50']:>14.2f}{t['images']:>8}")


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = Settings()
    try:
        split = data.load_test(args.data_dir)
    except data.DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    core = InferenceCore.from_settings(settings)
    ref = Reference(core, split.images, progress=not args.no_progress)
    interrupted = False
    try:
        ref.latency(args.calls, args.warmup)
        for size in args.batch_sizes:
            ref.batch(size, args.batch_images, args.batch_seconds)
        for codec in args.codecs:
            if args.codec_calls:
                ref.codec_latency(codec, args.codec_calls)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: writing what was measured", file=sys.stderr)

    doc = summary(args, settings, ref, interrupted)
    run_dir = write(args.out, "reference", doc, ref.latency_ms)
    print_table(doc)
    print(f"\nwrote {run_dir}/summary.json and latency.csv")
    if interrupted:
        # A partial run must not become the baseline every ratio is computed against.
        print(f"left {args.out / 'reference.json'} as it was (run interrupted)")
        return 130
    shutil.copyfile(run_dir / "summary.json", args.out / "reference.json")
    print(f"copied to {args.out / 'reference.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
