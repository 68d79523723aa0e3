"""The model alone on one engine: per batch size, images/s, the p50 of one call and CPU per image, at each
intra-op thread count, each in a spawned process of its own (the engine configured for it, none in the
harness). Written as ``<out>/<ts>-engines-curve-<engine>/`` (kind ``engines-curve``: summary.json with
``curves``, curve.csv).

As :func:`bench.reference.curve_points`, but every call is timed on its own, so that the batch-1 p50 and the
throughput come from the same calls. An engine that cannot run the model (conversion or load failed) gives
a record with its ``error`` and no points: the study goes on with the others.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from bench.options import Options
from bench.records import RunRecord
from bench.session import RunSession

KIND = "engines-curve"
CURVE_INPUTS = 1024  # test inputs cut into batches and reused in turn
COLUMNS = ["batch", "calls", "images", "seconds", "images_per_s", "p50_ms", "p90_ms", "cpu_ms_per_image",
           "cores_busy"]


class CurveOptions(Options):
    """One engine's curve: each thread count a process of its own."""

    engine: str
    precision: str = "f32"
    threads: tuple[int, ...] = (1, 2)
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    seconds: float = 1.0
    warmup_calls: int = 3
    repeat: int = 1


def rows_of(arrays: dict[str, np.ndarray], size: int, k: int) -> dict[str, np.ndarray]:
    """The ``k``-th batch of ``size`` rows (the inputs repeated when there are fewer)."""
    n = len(next(iter(arrays.values())))
    if n < size:
        return {name: np.resize(a, (size, *a.shape[1:])) for name, a in arrays.items()}
    start = (k % max(1, n // size)) * size
    return {name: a[start:start + size] for name, a in arrays.items()}


def engine_points(core, arrays: dict[str, np.ndarray], batch_sizes, seconds: float, warmup_calls: int) -> list[dict]:
    """Per batch size: back-to-back calls for ``seconds``, each timed; Ctrl-C returns the points done."""
    points = []
    try:
        for size in batch_sizes:
            for k in range(warmup_calls):
                core.run(rows_of(arrays, size, k))
            call_ms = []
            cpu0, start = time.process_time(), time.perf_counter()
            now = start
            while now - start < seconds:
                batch = rows_of(arrays, size, len(call_ms))
                t0 = time.perf_counter()
                core.run(batch)
                now = time.perf_counter()
                call_ms.append((now - t0) * 1000.0)
            cpu, wall = time.process_time() - cpu0, now - start
            n = len(call_ms) * size
            p50, p90 = np.percentile(call_ms, [50, 90])
            points.append({"batch": size, "calls": len(call_ms), "images": n, "seconds": round(wall, 3),
                           "images_per_s": round(n / wall, 1), "p50_ms": round(float(p50), 4),
                           "p90_ms": round(float(p90), 4), "cpu_ms_per_image": round(cpu / n * 1000.0, 4),
                           "cores_busy": round(cpu / wall, 3)})
    except KeyboardInterrupt:
        pass
    return points


def _child(options: CurveOptions, model_base, model_version, threads: int, conn) -> None:
    """One thread count's curve, in a process whose engine was configured for it."""
    answer: dict = {"points": [], "interrupted": True}
    try:
        from models.evaluate import test_inputs
        from servebench.inference import InferenceCore

        core = InferenceCore(model_base, model_version, intra_op_threads=threads, inter_op_threads=1,
                             engine=options.engine, precision=options.precision)
        answer["model"] = {k: v for k, v in core.info().items() if k not in ("path", "card")}
        inputs = test_inputs(core.card, n=CURVE_INPUTS, data_dir=options.data_dir)
        answer["inputs"] = "synthetic inputs" if inputs.synthetic else inputs.provenance.get("source")
        answer["points"] = engine_points(core, inputs.arrays, options.batch_sizes, options.seconds,
                                         options.warmup_calls)
        answer["interrupted"] = len(answer["points"]) < len(options.batch_sizes)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # an engine that cannot run the model: said in the record, the study goes on
        answer["error"] = f"{type(exc).__name__}: {exc}"
        answer["interrupted"] = False
    finally:
        try:
            conn.send(answer)
        finally:
            conn.close()


def measure(options: CurveOptions, settings, log=print) -> RunRecord:
    """The engine's curve at each thread count; the record (kind ``engines-curve``)."""
    from bench.reference import MeasurementFailed, _isolated
    from models.evaluate import engine_label

    curves: list[dict] = []
    found: dict = {"model": None, "inputs": None, "error": None}
    session = RunSession(header=lambda: {
        "kind": KIND, "study": options.study,
        "settings": {"engine": options.engine, "precision": options.precision, "threads": list(options.threads),
                     "batch_sizes": list(options.batch_sizes), "seconds": options.seconds,
                     "warmup_calls": options.warmup_calls, "inter_op_threads": 1, "repeat": options.repeat,
                     "model_name": settings.model_name, "model_version": settings.model_version}},
        summary=lambda _: {**found, "curves": curves},
        after=lambda record: write_csv(session.run_dir, curves), table=lambda doc, _: print_curve(doc, log),
        label=f"{KIND}-{engine_label(options.engine, options.precision)}", root=options.out, latest=False)
    with session:
        for threads in options.threads:
            log(f"{options.engine} ({options.precision}): intra-op threads {threads}, batch sizes "
                f"{','.join(map(str, options.batch_sizes))}, {options.seconds:g} s each ...")
            answer, exitcode = _isolated(_child, (options, settings.model_base, settings.model_version, threads),
                                         "bench-engines-curve")
            if answer is None:
                raise MeasurementFailed(f"the engine-curve process ended with exit code {exitcode} and no answer")
            found["model"] = found["model"] or answer.get("model")
            found["inputs"] = found["inputs"] or answer.get("inputs")
            curves.append({"intra_op_threads": threads, "inter_op_threads": 1, "points": answer["points"],
                           **({"error": answer["error"]} if answer.get("error") else {})})
            if answer.get("error"):
                found["error"] = answer["error"]
                log(f"{options.engine}: {answer['error']}")
                break
            if answer["interrupted"]:
                session.interrupted = True
                break
    return session.record


def write_csv(run_dir: Path, curves: list[dict]) -> None:
    with (run_dir / "curve.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["intra_op_threads", *COLUMNS])
        w.writerows([c["intra_op_threads"], *(p[k] for k in COLUMNS)] for c in curves for p in c["points"])


def print_curve(doc: dict, log=print) -> None:
    s = doc["settings"]
    for c in doc["curves"]:
        log(f"\n{s['engine']} ({s['precision']}), intra-op threads {c['intra_op_threads']}"
            + ("  (INTERRUPTED)" if doc["interrupted"] else "") + (f"  ERROR {c['error']}" if c.get("error") else ""))
        if c["points"]:
            log(f"{'batch':>6}{'images/s':>10}{'p50 ms':>9}{'CPU ms/img':>12}")
        for p in c["points"]:
            log(f"{p['batch']:>6}{p['images_per_s']:>10.1f}{p['p50_ms']:>9.3f}{p['cpu_ms_per_image']:>12.3f}")
