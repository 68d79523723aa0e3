"""The runs behind the ensemble section (make study STUDY=ensemble).

1. In-process, in a process of its own (:func:`inprocess`): the test-set
   accuracy of each member and of their average (all 10,000 images; --quick:
   2,000), and the latency of each model alone and of the three in one process,
   serially and in threads, at batch sizes 1, 10, 100 and 1,000
   (:data:`INPROCESS_CALLS` timed calls each: median, min and max), with the
   servers' intra-op setting (one thread per model; three inter-op threads, so the threaded
   variant's models can run at once).
2. Five stacks, each through nginx -> gunicorn -> Django -> coordinator ->
   member functions (each function in its cgroup, 1,769 MB = 1 vCPU by
   default): each member alone (the coordinator with that one member: the same
   hops), ``ensemble-serial`` and ``ensemble-parallel``; in each, one bench
   run per batch size, raw bodies, one request at a time, :data:`REPEATS`
   passes of :data:`IMAGES` images (at least 10 requests a pass at every batch
   size; the report takes each pass's p50 from the run's latency.hdr). Every
   stack's record of its functions (kind ``ensemble-functions``) holds each
   member's cold start (launch to healthy, under its quota), its limits and
   the cgroup's accounting (peak memory, CPU seconds, time throttled, OOM kills).
3. In the parallel stack, the deadline mode (kind ``ensemble-deadline``): a
   coordinator with each deadline of :data:`DEADLINES_MS` calls the stack's
   member functions at batch 10, :data:`DEADLINE_REPEATS` times; accuracy,
   members used and latency.
4. Per-request cold starts (kind ``ensemble-coldstart``, :mod:`.coldstart`): a
   serial and a parallel stack whose members are scaled to zero when idle
   (``SB_ENSEMBLE_IDLE_S``); cold and warm latency.

The default run takes about 10 minutes on the 2-core development machine;
``--quick`` about 4. Plans are pure.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from bench import study
from bench.options import BenchOptions, StudyOptions
from bench.records import RunRecord
from bench.session import RunSession
from bench.studies.ensemble import coldstart
from bench.studies.ensemble.repeats import spread
from servebench import registry
from servebench import runtime as runtimes
from servebench.settings import Settings
from services.ensemble.members import MEMBERS as MEMBER_MODELS

STUDY = "ensemble"
BATCHES = (1, 10, 100, 1000)  # the study's axis
MEMBERS = tuple(MEMBER_MODELS)  # names, in the order every table and plot shows them
# Images per pass by batch size: at least 10 requests a pass, few more where one takes seconds.
IMAGES = {1: 100, 10: 300, 100: 1000, 1000: 10_000}
REPEATS, QUICK_REPEATS = 3, 2  # passes per bench run: the report's median and min-max are over them
WARMUP = {1: 5, 10: 3, 100: 1, 1000: 1}  # requests
QUICK_IMAGES = {1: 20, 10: 50, 100: 300, 1000: 2000}
# Batch 1,000 needs a larger batch limit; a serial batch of 1,000 under three 1-vCPU quotas takes seconds.
STACK_KNOBS = {"max_batch": 1000, "backend_timeout_s": 120.0, "ensemble_member_timeout_s": 100.0}
START_TIMEOUT_S = 600.0  # per service: three TensorFlow processes starting on a busy 2-core machine
OVERHEAD_REQUESTS = 200
# In-process timing: calls per batch size (after one untimed call).
INPROCESS_CALLS = {1: 40, 10: 20, 100: 6, 1000: 5}
ACCURACY_IMAGES, QUICK_ACCURACY_IMAGES = 10_000, 2_000
DEADLINES_MS = (5.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 30.0, 50.0, 100.0, 0.0)  # 0: none (wait for all)
DEADLINE_BATCH = 10
DEADLINE_IMAGES, QUICK_DEADLINE_IMAGES = 500, 100
DEADLINE_REPEATS, QUICK_DEADLINE_REPEATS = 3, 1


def configs(options: StudyOptions) -> list[tuple[str, str, dict]]:
    """(label, architecture, stack settings) of each stack, in run order."""
    out = [(f"{m} alone", "ensemble-parallel", {"ensemble_members": (m,)}) for m in MEMBERS]
    out += [("serial", "ensemble-serial", {}), ("parallel", "ensemble-parallel", {})]
    return [c for c in out if not options.arches or c[1] in options.arches]


def experiments(options: StudyOptions) -> list[study.Experiment]:
    """The bench runs (the in-process and deadline measurements are :func:`run`'s own steps)."""
    images = QUICK_IMAGES if options.quick else IMAGES
    repeats = QUICK_REPEATS if options.quick else REPEATS
    common = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress, "study": STUDY,
              "runtime": options.runtime, "run_dir": options.run_dir, "codec": "raw",
              "overhead_requests": OVERHEAD_REQUESTS}
    plan = []
    for label, arch, knobs in configs(options):
        for batch in BATCHES:
            n = min(options.n, max(images[batch], batch))
            opts = BenchOptions(arch=arch, batch=batch, n=n, warmup=WARMUP[batch], repeats=repeats, **common)
            plan.append(study.Experiment(arch, opts, {**STACK_KNOBS, **knobs}, title=f"{label}: batch {batch}"))
    return plan


# ------------------------------------------------------------------ in-process
def inprocess(options: StudyOptions, log: Callable = print) -> RunRecord:
    """Accuracy and in-process latency, measured in a spawned process (TensorFlow never loads here)."""
    from bench import reference

    params = {"quick": options.quick, "data_dir": options.data_dir and str(options.data_dir)}
    log("\n== in-process: accuracy of each member and the ensemble; latency alone, serial, in threads")

    def measure() -> dict:
        doc, exitcode = reference._isolated(_inprocess_child, (params,), "ensemble-inprocess")
        if doc is None:
            raise reference.MeasurementFailed(f"the in-process measurement ended with exit code {exitcode}")
        return doc

    return measured(options, "ensemble-inprocess", measure)


def _inprocess_child(params: dict, conn) -> None:
    try:
        conn.send(measure_inprocess(params["quick"], params["data_dir"]))
    finally:
        conn.close()


def measure_inprocess(quick: bool, data_dir=None) -> dict:
    from servebench import data
    from services.ensemble import accuracy as ensemble_accuracy
    from services.ensemble import inprocess as variants

    # One intra-op thread per model, as the servers run them; one inter-op thread per member, or TensorFlow's
    # single inter-op thread would run the threaded variant's three models one after another.
    cores = variants.load_cores(MEMBERS, inter_op_threads=len(MEMBERS))
    accuracy = ensemble_accuracy.measure(MEMBERS, data_dir, cores=cores,
                                         limit=QUICK_ACCURACY_IMAGES if quick else ACCURACY_IMAGES)
    images = data.load_test(data_dir, limit=max(BATCHES)).images
    calls = {b: max(1, c // 2) if quick else c for b, c in INPROCESS_CALLS.items()}
    runners = {name: core.predict for name, core in cores.items()}
    runners.update({v: variants.ensemble(cores, v) for v in variants.VARIANTS})
    latency = {}
    for batch in BATCHES:
        batch_images = images[:batch]
        row = {}
        for name, fn in runners.items():
            fn(batch_images)  # untimed: first call at this shape
            wall, cpu = [], []
            for _ in range(calls[batch]):
                w0, c0 = time.perf_counter(), time.process_time()
                fn(batch_images)
                wall.append((time.perf_counter() - w0) * 1000.0)
                cpu.append((time.process_time() - c0) * 1000.0)
            row[name] = {"p50_ms": round(float(np.median(wall)), 3), "min_ms": round(min(wall), 3),
                         "max_ms": round(max(wall), 3), "cpu_ms_per_call": round(float(np.median(cpu)), 3),
                         "calls": len(wall)}
        latency[str(batch)] = row
    for name in variants.VARIANTS:
        runners[name].close()
    return {"accuracy": accuracy, "latency": latency,
            "threads": {"intra_op": cores["cnn"].intra_op_threads, "inter_op": cores["cnn"].inter_op_threads},
            "models": {name: core.info() | {"path": None} for name, core in cores.items()}}


# ------------------------------------------------------------------ functions and the deadline mode
def functions_doc(st, rt_name: str, starts: dict[str, float]) -> dict:
    """Each member function: its limits, cold start, and (natively) its cgroup's accounting."""
    from pathlib import Path

    from servebench import cgroups, stack

    out = {}
    for svc, rec in st.doc["services"].items():
        if not svc.startswith("ensemble-"):
            continue
        doc = {"cold_start_s": starts.get(svc), "limits": rec.get("limits")}
        if rt_name == "native" and rec.get("limits") and not cgroups.unavailable():
            group = cgroups.CGroup(stack.cgroup_name(Path(st.run_dir), svc))
            doc.update(peak_memory_mb=round(group.peak_memory_bytes() / 2**20, 1),
                       memory_mb=round(group.memory_bytes() / 2**20, 1), cpu_seconds=round(group.cpu_seconds(), 2),
                       throttled_s=round(group.throttled_s(), 2), oom_kills=group.oom_kills())
        out[svc] = doc
    return out


def deadline_sweep(serving: Settings, options: StudyOptions, log: Callable = print) -> dict:
    """Accuracy and members used against the deadline: a coordinator here, the stack's member functions;
    every deadline once per repeat (the repeats interleaved, so a slow spell of the machine hits them all)."""
    from servebench import data

    split = data.load_test(options.data_dir, limit=QUICK_DEADLINE_IMAGES if options.quick else DEADLINE_IMAGES)
    repeats = QUICK_DEADLINE_REPEATS if options.quick else DEADLINE_REPEATS
    passes: dict[float, list[dict]] = {d: [] for d in DEADLINES_MS}
    for _ in range(repeats):
        for deadline in DEADLINES_MS:
            passes[deadline].append(_deadline_pass(serving, deadline, split))
    rows = []
    for deadline, done in passes.items():
        requests = sum(len(p["lat"]) for p in done)
        used = {m: sum(p["used"][m] for p in done) for m in MEMBERS}
        acc = [p["correct"] / len(split) for p in done]
        mean_used = [sum(p["used"].values()) / len(p["lat"]) for p in done]
        p50 = [float(np.median(p["lat"])) for p in done]
        row = {"deadline_ms": deadline or None, "images": int(len(split)), "repeats": len(done),
               "requests": requests, "accuracy": round(float(np.median(acc)), 4),
               "no_answer_requests": sum(p["failed"] for p in done),
               "members_used_mean": round(float(np.median(mean_used)), 3),
               "member_used_fraction": {m: round(c / requests, 3) for m, c in used.items()},
               "p50_ms": round(float(np.median(p50)), 3),
               "spread": {"accuracy": spread(acc), "members_used_mean": spread(mean_used), "p50_ms": spread(p50)}}
        log(f"  deadline {deadline or 'none'} ms: accuracy {row['accuracy']:.4f}, "
            f"{row['members_used_mean']} members used, p50 {row['p50_ms']} ms (median of {len(done)})")
        rows.append(row)
    return {"batch": DEADLINE_BATCH, "repeats": repeats, "rows": rows,
            "how": "a coordinator (services.ensemble.app.Coordinator) in the harness process calling the "
                   "parallel stack's member functions, one request at a time; each figure the median over "
                   "the repeats (spread: min, max, n)"}


def _deadline_pass(serving: Settings, deadline: float, split) -> dict:
    """One pass over the split at ``deadline``: correct answers, members used, latencies, failed requests."""
    from servebench.endpoint import InferenceFailed
    from services.ensemble.app import Coordinator

    coord = Coordinator(serving.model_copy(update={"ensemble_deadline_ms": deadline, "ensemble_mode": "parallel",
                                                   "ensemble_members": MEMBERS}))
    try:
        try:
            coord.infer(split.images[:DEADLINE_BATCH])  # untimed: connections opened
        except InferenceFailed:
            pass  # no member within a short deadline: the timed requests count that
        correct, used, lat, failed = 0, {m: 0 for m in MEMBERS}, [], 0
        for i in range(0, len(split), DEADLINE_BATCH):
            imgs, labels = split.images[i:i + DEADLINE_BATCH], split.labels[i:i + DEADLINE_BATCH]
            start = time.perf_counter()
            try:
                got = coord.infer(imgs)
            except InferenceFailed:  # no member in time: counted as wrong answers
                failed += 1
                lat.append((time.perf_counter() - start) * 1000.0)
                continue
            lat.append((time.perf_counter() - start) * 1000.0)
            correct += int(np.sum(got.prediction.classes == labels))
            for m in got.details["ensemble"]["used"]:
                used[m] += 1
    finally:
        coord.close()
    return {"correct": correct, "used": used, "lat": lat, "failed": failed}


def measured(options: StudyOptions, kind: str, measure: Callable[[], dict], arch: str | None = None) -> RunRecord:
    """``measure()``'s document as a run record of ``kind``, written by a run session: marked running until
    it returns; after Ctrl-C, marked interrupted (with nothing measured) and returned, not raised."""
    doc: dict = {}
    session = RunSession(label=kind, root=options.out, summary=lambda _: doc,
                         header={"kind": kind, "study": STUDY, "arch": arch, "runtime": options.runtime})
    with session:
        doc.update(measure())
    return session.record


# ------------------------------------------------------------------ the whole study
def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """In-process first (no stack up), then each stack: its bench runs, its functions, and (parallel) the
    deadline sweep. Stops after an interrupted run; every stack is brought down."""
    from bench import run as bench_run
    from bench import target
    from servebench import interrupts

    rt = runtimes.get(options.runtime)
    other = target.running(options.runtime, options.run_dir)
    if other is not None:
        raise runtimes.StackError(f"a {other.arch} stack is running; the study brings each stack up itself: "
                                  f"`make down RUNTIME={options.runtime}` first")
    done = [inprocess(options, log)]
    if done[-1].interrupted:
        return done
    plan = experiments(options)
    for label, arch, knobs in configs(options):
        if registry.get(arch).unmet(options.runtime):
            log(f"skipping {label}: {'; '.join(registry.get(arch).unmet(options.runtime))}")
            continue
        mine = [e for e in plan if e.title.startswith(f"{label}:")]
        serving = mine[0].serving_settings(settings).model_copy(update={"arch": arch})
        log(f"\n== {label} ({arch})")
        starts, last = {}, [time.monotonic()]

        def timed(line: str, *a) -> None:
            # The native runtime starts services one at a time: each one's cold start is the time since the last.
            now = time.monotonic()
            parts = str(line).split()
            if len(parts) >= 2 and parts[1] == "healthy":
                starts[parts[0]] = round(now - last[0], 1)
                last[0] = now
            log(line, *a)

        try:
            st = rt.up(arch, serving, run_dir=options.run_dir, log=timed, timeout_s=START_TIMEOUT_S)
            for exp in mine:
                log(f"-- {exp.title}")
                records = bench_run.bench(exp.options, serving, log=log)
                done += records
                if any(r.interrupted for r in records):
                    return done
            done.append(measured(options, "ensemble-functions", lambda: {
                "label": label, "functions": functions_doc(st, options.runtime, starts),
                "stack_settings": serving.recorded()}, arch=arch))
            if label == "parallel" and not done[-1].interrupted:
                log("-- deadline mode: accuracy against deadline")
                done.append(measured(options, "ensemble-deadline", lambda: {
                    "deadline": deadline_sweep(serving, options, log), "stack_settings": serving.recorded()}, arch=arch))
            if done[-1].interrupted:
                return done
        finally:
            with interrupts.shielded():
                rt.down(run_dir=options.run_dir, log=log)
    return cold_starts(options, settings, done, log)


def cold_starts(options: StudyOptions, settings: Settings, done: list[RunRecord], log: Callable) -> list[RunRecord]:
    """The serial and parallel stacks again, their members scaled to zero when idle: cold and warm latency."""
    from servebench import interrupts

    if options.runtime != "native":
        log("skipping cold starts: SB_ENSEMBLE_IDLE_S scales members through the native runtime only")
        return done
    rt = runtimes.get(options.runtime)
    for label, arch in coldstart.configs(options):
        if registry.get(arch).unmet(options.runtime):
            continue
        serving = settings.model_copy(update={**STACK_KNOBS, "arch": arch, "ensemble_idle_s": coldstart.IDLE_S})
        log(f"\n== {label} with cold starts: members scaled to zero after {coldstart.IDLE_S:g} s idle ({arch})")
        try:
            st = rt.up(arch, serving, run_dir=options.run_dir, log=log, timeout_s=START_TIMEOUT_S)
            done.append(measured(options, "ensemble-coldstart", lambda: {
                "label": label, **coldstart.measure(st, serving, options, log),
                "stack_settings": serving.recorded()}, arch=arch))
            if done[-1].interrupted:
                return done
        finally:
            with interrupts.shielded():
                rt.down(run_dir=options.run_dir, log=log)
    return done
