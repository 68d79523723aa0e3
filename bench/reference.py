"""The in-process reference: the model's own cost, with no server in the way.

    python -m bench.reference [--calls 1000] [--warmup 50] [--batch-sizes 1,8,32,128]
                              [--batch-images 2048 | --batch-seconds 5] [--codec-calls 300]
                              [--out results]

It calls :meth:`InferenceCore.run`, built from the same serving settings
(:class:`servebench.settings.Settings`) as the servers, so every architecture is compared with the limit of its own
call path. Any model (``SB_MODEL``) on its inputs (``SB_DATA``; the card's own data, CIFAR-10 for the
default model; inputs generated from the specs are labelled "synthetic inputs"):

- latency of one row (one image), sequential calls (p50/p90/p99/mean/max, ms);
- throughput in rows (images)/s for each batch size;
- for an image model, one-image latency when the body is first decoded by the
  request codecs (what an in-process server does before the model), with
  decoding shown apart.

Writes ``<out>/<run_id>/summary.json`` (a run record, kind ``reference``) and
``latency.csv``, and copies the summary to ``<out>/reference.json``, which the
harness reads for ratios. A study measures it with :func:`measure_isolated`, in
a process of its own.
Ctrl-C stops measuring and writes what was measured, marked ``interrupted``.

The model curve (what ``make sweep`` and the saturation study compare with):

    python -m bench.reference curve [--batch-sizes 1,2,4,8,16,32,64] [--seconds 2] [--threads 1,2]

calls the model back to back at each batch size for ``--seconds`` and records
images/s and CPU ms per image (the process's CPU time over the calls: every
thread of TensorFlow's pools), once per intra-op thread count (default: the
serving settings' ``intra_op_threads`` and the machine's logical CPUs), each in
a spawned process so that TensorFlow is configured for it and stays out of the
harness. The largest images/s of any curve is the machine's in-process limit;
the curve at the servers' threads gives the model's CPU per image at the batch
size a server actually ran (:func:`cpu_ms_per_image_at`). Writes
``<out>/<run_id>/`` (kind ``model-curve``: ``summary.json`` with ``curves``
and ``limit``, and ``curve.csv``).
"""
from __future__ import annotations

import csv
import multiprocessing
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import options as opts
from bench import provenance, records, target, workload
from bench.records import RunRecord
from bench.session import RunSession
from servebench import codecs, data, interrupts
from servebench.inference import InferenceCore  # loads TensorFlow only when a core is built
from servebench.modelcard import CardError
from servebench.settings import Settings, from_environment

BATCH_WARMUP_CALLS = 2  # the first calls at a new batch size allocate buffers
BASELINE = "reference.json"  # in the results folder: the copy every bench run's ratio is computed against


class MeasurementFailed(RuntimeError):
    """The reference's own process ended without a record."""


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


def as_inputs(core: InferenceCore, inputs) -> dict[str, np.ndarray]:
    """The model's inputs by tensor name (an array alone is the one input of an image model)."""
    if isinstance(inputs, dict):
        return inputs
    return {core.card.inputs[0].name: np.asarray(inputs)}


def rows_of(inputs: dict[str, np.ndarray]) -> int:
    return len(next(iter(inputs.values())))


def batches_of(inputs: dict[str, np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    """Whole batches of ``size`` rows of the inputs, to be reused in turn (fewer rows than one batch:
    the rows repeated)."""
    n = rows_of(inputs)
    if n < size:
        return [{k: np.resize(a, (size, *a.shape[1:])) for k, a in inputs.items()}]
    return [{k: a[j * size:(j + 1) * size] for k, a in inputs.items()} for j in range(n // size)]


class Reference:
    """The measurements, kept as they accumulate so an interrupted run still has them."""

    def __init__(self, core: InferenceCore, inputs, progress: bool):
        self.core = core
        self.inputs = as_inputs(core, inputs)
        self.rows = rows_of(self.inputs)
        self.progress = progress
        self.latency_ms: list[float] = []
        self.throughput: list[dict] = []
        self.codec: dict[str, dict] = {}

    def _bar(self, total, desc):
        return tqdm(total=total, desc=desc, unit="call", leave=False, disable=not self.progress, dynamic_ncols=True)

    def _row(self, i: int) -> dict[str, np.ndarray]:
        j = i % self.rows
        return {k: a[j:j + 1] for k, a in self.inputs.items()}

    def latency(self, calls: int, warmup: int) -> None:
        for i in range(warmup):
            self.core.run(self._row(i))
        with self._bar(calls, "one row") as bar:
            for i in range(calls):
                _, ms = self.core.timed_run(self._row(warmup + i))
                self.latency_ms.append(ms)
                bar.update()

    def batch(self, size: int, images: int, seconds: float | None) -> None:
        batches = batches_of(self.inputs, size)  # whole batches of the real rows, reused in turn
        for k in range(BATCH_WARMUP_CALLS):
            self.core.run(batches[k % len(batches)])
        calls = None if seconds else -(-images // size)
        call_ms: list[float] = []
        start = last = time.perf_counter()
        try:
            with self._bar(calls, f"batch {size}") as bar:
                while (len(call_ms) < calls) if calls is not None else (last - start < seconds):
                    _, ms = self.core.timed_run(batches[len(call_ms) % len(batches)])
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
        """/v1/predict's codecs carry images only: nothing to measure for any other model."""
        if not self.core.card.is_image:
            return
        name = self.core.card.inputs[0].name
        # Bodies are made first (the client's work); the timed part is what a server does.
        bodies = [codecs.encode(self._row(i)[name], codec) for i in range(calls)]
        total: list[float] = []
        decode: list[float] = []
        try:
            with self._bar(calls, f"{codec} decode+predict") as bar:
                for body, content_type in bodies:
                    start = time.perf_counter()
                    images = codecs.decode(body, content_type)
                    decoded = time.perf_counter()
                    self.core.run({name: images})
                    end = time.perf_counter()
                    decode.append((decoded - start) * 1000.0)
                    total.append((end - start) * 1000.0)
                    bar.update()
        finally:
            if total:
                self.codec[codec] = {**stats(total), "decode_ms": stats(decode), "body_bytes": len(bodies[0][0])}


def header(options: opts.ReferenceOptions, settings: Settings) -> dict:
    return {
        "kind": "reference",
        "study": options.study,
        "settings": {
            "intra_op_threads": settings.intra_op_threads,
            "inter_op_threads": settings.inter_op_threads,
            "call_path": settings.call_path,
            "model_name": settings.model_name,
            "model_version": settings.model_version,
            "calls": options.calls,
            "warmup": options.warmup,
            "batch_sizes": list(options.batch_sizes),
            "batch_images": None if options.batch_seconds else options.batch_images,
            "batch_seconds": options.batch_seconds,
            "codec_calls": options.codec_calls,
            "codecs": list(options.codecs),
        },
    }


def measurements(options: opts.ReferenceOptions, ref: Reference, inputs=None) -> dict:
    doc = {"model": ref.core.info(), "data": data.provenance(options.data_dir)}
    if inputs is not None:  # what the card and the inputs were (a CIFAR-10 run keeps its folder's provenance)
        doc.update(input_record(ref.core.card, inputs, options.data_dir))
    return {
        **doc,
        "latency_ms": stats(ref.latency_ms),
        "throughput": ref.throughput,
        "codec_latency_ms": ref.codec,
    }


def write_latency(run_dir: Path, latency_ms: list[float]) -> None:
    with (run_dir / "latency.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "latency_ms"])
        w.writerows((i, f"{ms:.4f}") for i, ms in enumerate(latency_ms))


def input_record(card, inputs, data_dir=None) -> dict:
    """A result's model card summary, data source and ``synthetic_inputs`` (the CIFAR-10 folder's
    provenance kept beside the source)."""
    cifar = card.data == "cifar10" and not inputs.synthetic and not str(inputs.source).endswith(".npz")
    return {"model_card": workload.card_summary(card),
            "data": {**(data.provenance(data_dir) if cifar else {}), "source": inputs.source, "rows": len(inputs),
                     "labels": inputs.labels is not None, "synthetic_inputs": bool(inputs.synthetic)},
            "synthetic_inputs": bool(inputs.synthetic)}


def print_table(doc: dict) -> None:
    model = doc["model"]
    label = records.synthetic_label(doc)
    engine = f"{model['engine']} {model.get('engine_version', '')}".strip() if model.get("engine") else \
        f"TensorFlow {model.get('tensorflow')}"
    print(f"\nreference: {model['name']} v{model['version']}, {engine}, "
          f"threads intra {model['intra_op_threads']} / inter {model['inter_op_threads']}"
          + ("  (INTERRUPTED)" if doc["interrupted"] else "") + (f"  [{label}]" if label else ""))
    print(f"{'':34}{'n':>6}{'p50':>8}{'p90':>8}{'p99':>8}{'mean':>8}{'max':>8}  ms")
    rows = [("one image, predict" if (doc.get("model_card") or {}).get("image", True) else "one row, run",
             doc["latency_ms"])]
    for codec, entry in doc["codec_latency_ms"].items():
        rows.append((f"one image, {codec} decode+predict", entry))
        rows.append((f"  of which {codec} decode", entry.get("decode_ms")))
    for name, s in rows:
        if s:
            print(f"{name:<34}{s['count']:>6}{s['p50']:>8.2f}{s['p90']:>8.2f}{s['p99']:>8.2f}{s['mean']:>8.2f}{s['max']:>8.2f}")
    if doc["throughput"]:
        print(f"\n{'batch':>6}{'images/s':>10}{'ms/batch p50':>14}{'images':>8}" + (f"  [{label}]" if label else ""))
        for t in doc["throughput"]:
            if t["calls"]:
                print(f"{t['batch']:>6}{t['images_per_s']:>10.1f}{t['batch_ms']['p50']:>14.2f}{t['images']:>8}")


def measure(options: opts.ReferenceOptions, settings: Settings) -> RunRecord:
    """Measure in this process and write the run; a complete one becomes ``<out>/reference.json``.

    Ctrl-C stops measuring: what was measured is written, marked interrupted,
    and the baseline is left as it was.
    """
    card, found = workload.check(settings, isolate=False)  # a bad MODEL or DATA fails here, before the core loads
    inputs = workload.inputs_for(card, settings, None, data_dir=options.data_dir, found=found)
    core = InferenceCore.from_settings(settings)
    ref = Reference(core, inputs.arrays, progress=options.progress)
    baseline = options.out / BASELINE

    def after(record: RunRecord) -> None:
        write_latency(session.run_dir, ref.latency_ms)
        if not record.interrupted:  # a partial run must not become the baseline every ratio is computed against
            shutil.copyfile(session.run_dir / records.FILE, baseline)

    def table(doc: dict, run_dir: Path) -> None:
        print_table(doc)
        print(f"\nwrote {run_dir}/summary.json and latency.csv")
        print(f"left {baseline} as it was (run interrupted)" if doc["interrupted"] else f"copied to {baseline}")

    # Not `latest`: that is the newest served run.
    session = RunSession(header=header(options, settings), summary=lambda _: measurements(options, ref, inputs),
                         after=after, table=table, label="reference", root=options.out, latest=False)
    with session:
        try:
            ref.latency(options.calls, options.warmup)
            for size in options.batch_sizes:
                ref.batch(size, options.batch_images, options.batch_seconds)
            for codec in options.codecs:
                if options.codec_calls:
                    ref.codec_latency(codec, options.codec_calls)
        except KeyboardInterrupt:
            print("\ninterrupted: writing what was measured", file=sys.stderr)
            raise
    return session.record


def _measure_in_child(options: opts.ReferenceOptions, settings: Settings, conn) -> None:
    try:
        conn.send(measure(options, settings))
    except KeyboardInterrupt:
        pass  # interrupted before anything was measured: no record
    finally:
        conn.close()


def measure_isolated(options: opts.ReferenceOptions, settings: Settings) -> RunRecord:
    """:func:`measure` in a process of its own, so that TensorFlow never loads into the caller's.

    The caller is a client whose memory the harness records. On Ctrl-C or
    SIGTERM here, the child is interrupted too and its record is awaited.
    """
    record, exitcode = _isolated(_measure_in_child, (options, settings), "bench-reference")
    if record is None:
        raise MeasurementFailed(f"the reference process ended with exit code {exitcode} and no record")
    return record


def _isolated(fn, args: tuple, name: str):
    """``fn(*args, conn)`` in a spawned process; (what it sent or None, its exit code).

    On Ctrl-C or SIGTERM here the child is interrupted too and its answer
    awaited; KeyboardInterrupt is raised again only when it sent nothing.
    """
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=fn, args=(*args, send), name=name)
    proc.start()
    send.close()
    answer = None
    try:
        answer = _receive(receive, proc)
    except KeyboardInterrupt:
        with interrupts.shielded():
            if proc.is_alive():  # a terminal's Ctrl-C reached it too; SIGTERM (ours) did not
                os.kill(proc.pid, signal.SIGINT)
            answer = _receive(receive, proc)
        if answer is None:
            raise
    finally:
        proc.join()
        receive.close()
    return answer, proc.exitcode


def _receive(conn, proc) -> RunRecord | None:
    while not conn.poll(0.2):  # short waits: Ctrl-C and SIGTERM are handled here
        if not proc.is_alive() and not conn.poll(0):
            return None
    try:
        return conn.recv()
    except EOFError:
        return None


# ------------------------------------------------------------------ the model curve
# The model alone at each batch size: what the machine can do (its limit) and
# what one image costs the model in CPU (the numerator of a server's efficiency).
CURVE_KIND = "model-curve"
CURVE_IMAGES = 1024  # real test images, cut into batches and reused in turn


def curve_points(core: InferenceCore, images, batch_sizes, seconds: float, warmup_calls: int,
                 progress: bool = False) -> list[dict]:
    """Per batch size: images/s and CPU ms per image of back-to-back calls for ``seconds``.

    CPU is the whole process's (``time.process_time``: every thread, TensorFlow's
    pools included), so ``cores_busy`` above 1 means the model used more than one core.
    Ctrl-C returns the points measured so far (the one in progress is dropped). ``images``: the model's
    inputs by tensor name (or an image model's images).
    """
    inputs = as_inputs(core, images)
    points = []
    try:
        for size in batch_sizes:
            batches = batches_of(inputs, size)
            for k in range(warmup_calls):
                core.run(batches[k % len(batches)])
            calls = 0
            bar = tqdm(desc=f"curve, batch {size}", unit="call", leave=False, disable=not progress)
            cpu0, start = time.process_time(), time.perf_counter()
            now = start
            while now - start < seconds:
                core.run(batches[calls % len(batches)])
                calls += 1
                now = time.perf_counter()
                bar.update()
            cpu = time.process_time() - cpu0
            bar.close()
            wall = now - start
            n = calls * size
            points.append({"batch": size, "calls": calls, "images": n, "seconds": round(wall, 3),
                           "images_per_s": round(n / wall, 1), "cpu_ms_per_image": round(cpu / n * 1000.0, 4),
                           "cores_busy": round(cpu / wall, 3), "batch_ms_mean": round(wall / calls * 1000.0, 3)})
    except KeyboardInterrupt:
        pass
    return points


def _curve_in_child(options: opts.ModelCurveOptions, settings: Settings, conn) -> None:
    """One thread setting's curve, in a process whose TensorFlow was configured for it."""
    answer: dict = {"points": [], "interrupted": True}
    try:
        core = InferenceCore.from_settings(settings)
        answer["model"] = core.info()
        inputs = workload.inputs_for(core.card, settings, CURVE_IMAGES, data_dir=options.data_dir)
        answer.update(input_record(core.card, inputs, options.data_dir))
        answer["points"] = curve_points(core, inputs.arrays, options.batch_sizes, options.seconds,
                                        options.warmup_calls, options.progress)
        answer["interrupted"] = len(answer["points"]) < len(options.batch_sizes)
    except KeyboardInterrupt:
        pass
    except (data.DatasetError, CardError) as exc:
        answer["error"] = str(exc)
    finally:
        try:
            conn.send(answer)
        finally:
            conn.close()


def curve_threads(options: opts.ModelCurveOptions, settings: Settings) -> tuple[int, ...]:
    """The intra-op thread counts to measure: those asked for, else the servers' and the machine's CPUs."""
    return options.threads or tuple(dict.fromkeys((settings.intra_op_threads, os.cpu_count() or 1)))


def curve_limit(curves: list[dict], cpus: int | None = None) -> dict | None:
    """The machine's in-process limit: the most images/s any curve measured (at its batch size and
    threads), and beside it the CPU bound: every logical CPU running the model at its cheapest CPU per
    image (what independent single-threaded model processes could reach, never measured as such)."""
    best = cheapest = None
    for c in curves:
        for p in c["points"]:
            if best is None or p["images_per_s"] > best["images_per_s"]:
                best = {"images_per_s": p["images_per_s"], "batch": p["batch"],
                        "intra_op_threads": c["intra_op_threads"], "inter_op_threads": c["inter_op_threads"],
                        "cpu_ms_per_image": p["cpu_ms_per_image"]}
            if cheapest is None or p["cpu_ms_per_image"] < cheapest:
                cheapest = p["cpu_ms_per_image"]
    if best is None:
        return None
    cpus = cpus or os.cpu_count() or 1
    best["logical_cpus"] = cpus
    best["cpu_bound_images_per_s"] = round(cpus * 1000.0 / cheapest, 1) if cheapest else None
    return best


def measure_curve(options: opts.ModelCurveOptions, settings: Settings, log=print) -> RunRecord:
    """The model curve at each intra-op thread count, each in a spawned process (TensorFlow stays out of
    this one); written as ``<out>/<run-id>-model-curve/`` (kind ``model-curve``: summary.json, curve.csv)."""
    curves: list[dict] = []
    found: dict = {"model": None, "inputs": {}}
    session = RunSession(header=lambda: {
        "kind": CURVE_KIND, "study": options.study,
        "settings": {"batch_sizes": list(options.batch_sizes), "seconds": options.seconds,
                     "warmup_calls": options.warmup_calls, "threads": [c["intra_op_threads"] for c in curves],
                     "inter_op_threads": settings.inter_op_threads, "call_path": settings.call_path,
                     "model_name": settings.model_name, "model_version": settings.model_version}},
        summary=lambda _: {"model": found["model"], "data": data.provenance(options.data_dir), **found["inputs"],
                           "curves": curves, "limit": curve_limit(curves)},
        after=lambda record: write_curve_csv(session.run_dir, curves), table=lambda doc, _: print_curve(doc),
        label=CURVE_KIND, root=options.out, latest=False)
    with session:
        for threads in curve_threads(options, settings):
            log(f"model curve: intra-op threads {threads}, batch sizes {','.join(map(str, options.batch_sizes))}, "
                f"{options.seconds:g} s each ...")
            answer, exitcode = _isolated(_curve_in_child, (options, settings.model_copy(
                update={"intra_op_threads": threads})), "bench-model-curve")
            if answer is None:
                raise MeasurementFailed(f"the model-curve process ended with exit code {exitcode} and no answer")
            if answer.get("error"):
                raise data.DatasetError(answer["error"])
            found["model"] = found["model"] or answer.get("model")
            found["inputs"] = found["inputs"] or {k: answer[k] for k in ("model_card", "data", "synthetic_inputs")
                                                  if k in answer}
            curves.append({"intra_op_threads": threads, "inter_op_threads": settings.inter_op_threads,
                           "points": answer["points"]})
            if answer["interrupted"]:
                session.interrupted = True
                break
    return session.record


def write_curve_csv(run_dir: Path, curves: list[dict]) -> None:
    with (run_dir / "curve.csv").open("w", newline="") as f:
        w = csv.writer(f)
        columns = ["batch", "calls", "images", "seconds", "images_per_s", "cpu_ms_per_image", "cores_busy",
                   "batch_ms_mean"]
        w.writerow(["intra_op_threads", "inter_op_threads", *columns])
        for c in curves:
            w.writerows([c["intra_op_threads"], c["inter_op_threads"], *(p[k] for k in columns)]
                        for p in c["points"])


def print_curve(doc: dict) -> None:
    label = records.synthetic_label(doc)
    for c in doc["curves"]:
        print(f"\nmodel curve, intra-op threads {c['intra_op_threads']} / inter-op {c['inter_op_threads']}"
              + ("  (INTERRUPTED)" if doc["interrupted"] else "") + (f"  [{label}]" if label else ""))
        print(f"{'batch':>6}{'images/s':>10}{'CPU ms/img':>12}{'cores busy':>12}")
        for p in c["points"]:
            print(f"{p['batch']:>6}{p['images_per_s']:>10.1f}{p['cpu_ms_per_image']:>12.3f}{p['cores_busy']:>12.2f}")
    if doc.get("limit"):
        lim = doc["limit"]
        print(f"in-process limit: {lim['images_per_s']} images/s (batch {lim['batch']}, "
              f"{lim['intra_op_threads']} intra-op threads)")


def curve_of(record: RunRecord, intra_op_threads: int, inter_op_threads: int) -> list[dict] | None:
    """The points of ``record``'s curve measured with these threads, or None."""
    for c in record.get("curves", default=[]) or []:
        if c.get("intra_op_threads") == intra_op_threads and c.get("inter_op_threads") == inter_op_threads:
            return c.get("points") or None
    return None


def latest_curve(root: Path, settings: Settings, batch_sizes=()) -> RunRecord | None:
    """The newest complete model curve under ``root`` that was measured on this machine (its CPU model and
    logical CPUs) with the servers' threads and call path (and every batch size of ``batch_sizes``), or None.
    Another machine's curve says nothing about this one's CPU per image."""
    here = provenance.same_machine_key(provenance.machine())
    found = []
    for folder in Path(root).glob(f"*-{CURVE_KIND}"):
        try:
            record = records.read(folder)
        except records.SchemaError:
            continue
        if record.kind != CURVE_KIND or record.interrupted or record.get("settings", "call_path") != settings.call_path:
            continue
        if provenance.same_machine_key(record.provenance.machine or {}) != here:
            continue
        points = curve_of(record, settings.intra_op_threads, settings.inter_op_threads)
        if points and set(batch_sizes) <= {p["batch"] for p in points}:
            found.append((record.provenance.created_utc or "", record.run_id, record))
    return max(found, key=lambda f: f[:2])[2] if found else None


def cpu_ms_per_image_at(points: list[dict], batch: float) -> float | None:
    """The model's CPU ms per image at ``batch`` images per call, interpolated in log2(batch) between the
    measured sizes (clamped to the smallest and largest)."""
    pts = sorted((p["batch"], p["cpu_ms_per_image"]) for p in points or [] if p.get("cpu_ms_per_image"))
    if not pts or batch is None or batch <= 0:
        return None
    xs = np.log2([b for b, _ in pts])
    return float(np.interp(np.log2(batch), xs, [c for _, c in pts]))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["curve"]:
        return curve_main(argv[1:])
    options = opts.parse(opts.ReferenceOptions, argv, __doc__)
    try:
        record = measure(options, from_environment())
    except (data.DatasetError, CardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 130 if record.interrupted else 0


def curve_main(argv) -> int:
    options = opts.parse(opts.ModelCurveOptions, argv, __doc__)
    record, rc = target.command(lambda: measure_curve(options, from_environment()), (MeasurementFailed,))
    if rc is not None:
        return rc
    return 130 if record.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
