"""The runs behind the scale-out section, in one study run (``make study STUDY=scale-out``); their counts are the
study's knobs (``SB_SCALE_OUT_*``, :mod:`bench.studies.scale_out.knobs`).

1. ``ladder``: for each architecture (FastAPI and Triton beside Ray Serve by default), a stack per batching
   mode, set up as the sweeps set them (:meth:`bench.options.SweepOptions.serving`: batching off, or on at
   SB_BATCH_MAX_SIZE 16 with no wait; 16 threads), and in it ``repeats`` x (a bench run at every concurrency,
   lowest first): raw bodies, one CIFAR-10 image per request, closed loop. Each run is its own (latency.hdr,
   CPU and memory per service, and Ray's per process group: GCS, raylets, proxy, replicas, controller,
   agents). Gives c=1 p50, saturated throughput batching off and on, and the ratio at every concurrency.
2. ``placement``: Ray Serve with batching on, 2 replicas on 1 node, then 2 replicas on 2 nodes
   (SB_RAY_REPLICAS, SB_RAY_NODES), ``repeats`` x (concurrency 1, then the saturated concurrency); the ladder's
   batching-on stack is the 1-replica, 1-node baseline at the same levels. Both nodes run on this one machine:
   the comparison is what a second replica and a second node cost or give on the same cores, not a second
   machine's capacity.
3. ``faults``: Ray Serve with 2 replicas on 2 nodes, under two closed-loop clients; ``repeats`` replica kills
   in one stack (each after the replicas are back), then ``repeats`` worker-node kills, each in a fresh stack
   (a killed node stays dead). Each fault is a run of its own (:mod:`bench.studies.scale_out.faults`).
4. ``load``: locust (``make load``) against one stack, its workers on this host and in a second network
   namespace over a veth (LOAD_HOSTS=netns, as another machine would be), alternating, ``repeats`` each.

Plans are pure: :func:`experiments` starts and writes nothing. ``quick`` shrinks the counts that were not set.
At the defaults a quiet 2-core machine needs about 25 minutes.
"""
from __future__ import annotations

from typing import Callable

from bench import study
from bench.options import BenchOptions, StudyOptions, SweepOptions
from bench.records import RunRecord
from bench.studies.scale_out.faults import FAULTS, FaultPlan
from servebench import registry
from servebench.knobs import SectionValues
from servebench.settings import Settings

STUDY = "scale-out"
RAY = "rayserve"
SIGNATURE = {"call_path": "signature"}  # the fast path, whatever the caller set
MODES = ("off", "on")
PLACEMENTS = ((2, 1), (2, 2))  # (replicas, nodes); the ladder's stack is (1, 1)
FAULT_SHAPE = {"ray_replicas": 2, "ray_nodes": 2}
MIN_PER_CLIENT = 25  # images per request in flight: every client sends enough for its latencies to count
WARMUP = 50
QUICK = {"repeats": 1, "n": 40, "concurrency": (1, 4), "load_seconds": 4, "load_users": 2, "load_workers": 1}


def knobs(options: StudyOptions, settings: Settings | None = None) -> SectionValues:
    settings = settings if settings is not None else Settings()
    if options.quick:
        settings = settings.model_copy(update={f"scale_out_{k}": v for k, v in QUICK.items()
                                               if f"scale_out_{k}" not in settings.model_fields_set})
    return settings.section("scale_out")


def arches(options: StudyOptions, k: SectionValues) -> list[str]:
    unknown = [a for a in (*k.arches, k.load_arch) if a not in registry.names()]
    if unknown:
        raise ValueError(f"SB_SCALE_OUT_ARCHES / SB_SCALE_OUT_LOAD_ARCH: no architecture {', '.join(unknown)} "
                         f"(registered: {', '.join(registry.names())})")
    return [a for a in k.arches if a in options.arches] if options.arches else list(k.arches)


def images(k: SectionValues, options: StudyOptions, c: int) -> int:
    return min(max(k.n, MIN_PER_CLIENT * c) if not options.quick else k.n, options.n, 10000)


def _bench(options: StudyOptions, arch: str, c: int, n: int) -> BenchOptions:
    return BenchOptions(out=options.out, data_dir=options.data_dir, progress=options.progress, study=STUDY,
                        arch=arch, runtime=options.runtime, run_dir=options.run_dir, codec="raw", warmup=WARMUP,
                        concurrency=c, n=n)


def ladder(options: StudyOptions, k: SectionValues, arch: str) -> list[study.Experiment]:
    plan = []
    for mode in MODES:
        serving = {**SIGNATURE, **SweepOptions(arch=arch).serving(mode)}
        for repeat in range(1, k.repeats + 1):
            for c in k.concurrency:
                plan.append(study.Experiment(arch, _bench(options, arch, c, images(k, options, c)), serving,
                                             title=f"{arch}: batching {mode}, concurrency {c}, "
                                                   f"repeat {repeat} of {k.repeats}"))
    return plan


def placement(options: StudyOptions, k: SectionValues) -> list[study.Experiment]:
    plan = []
    for replicas, nodes in PLACEMENTS:
        serving = {**SIGNATURE, **SweepOptions(arch=RAY).serving("on"), "ray_replicas": replicas, "ray_nodes": nodes}
        for repeat in range(1, k.repeats + 1):
            for c in (1, k.saturated):
                plan.append(study.Experiment(RAY, _bench(options, RAY, c, images(k, options, c)), serving,
                                             title=f"{RAY}: {replicas} replica(s) on {nodes} node(s), concurrency "
                                                   f"{c}, repeat {repeat} of {k.repeats}"))
    return plan


def faults(options: StudyOptions, k: SectionValues) -> list[study.Experiment]:
    return [study.Experiment(RAY, FaultPlan(fault, repeat, out=options.out, quick=options.quick), FAULT_SHAPE,
                             title=f"{RAY}: {fault} killed under load, repeat {repeat} of {k.repeats}")
            for fault in FAULTS for repeat in range(1, k.repeats + 1)]


def load_runs(options: StudyOptions, k: SectionValues) -> list[study.Experiment]:
    from bench.load import Options as LoadOptions  # the plan's type; nothing runs

    plan = []
    for repeat in range(1, k.repeats + 1):
        for where in ("local", "netns"):
            o = LoadOptions(out=options.out, data_dir=options.data_dir, progress=False, study=STUDY,
                            arch=k.load_arch, runtime=options.runtime, run_dir=options.run_dir,
                            users=k.load_users, spawn_rate=float(k.load_users), duration=f"{k.load_seconds}s",
                            workers=k.load_workers, load_hosts=where)
            plan.append(study.Experiment(k.load_arch, o, title=f"{k.load_arch}: locust, {k.load_workers} workers "
                                                               f"{'here' if where == 'local' else 'in a namespace'}"
                                                               f", repeat {repeat} of {k.repeats}"))
    return plan


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[study.Experiment]:
    k = knobs(options, settings)
    names = arches(options, k)
    plan = []
    if "ladder" in k.parts:
        plan += [e for arch in names for e in ladder(options, k, arch)]
    ray_asked = not options.arches or RAY in options.arches
    if "placement" in k.parts and ray_asked:
        plan += placement(options, k)
    if "faults" in k.parts and ray_asked:
        plan += faults(options, k)
    if "load" in k.parts and (not options.arches or k.load_arch in options.arches):
        plan += load_runs(options, k)
    return plan


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """The plan in order: consecutive bench runs share a stack (:func:`bench.study.execute`); each fault and
    load run brings up its own; stops after an interrupted run."""
    from bench import load, target
    from bench.studies.scale_out import faults as fault_runs
    from servebench import runtime as runtimes

    other = target.running(options.runtime, options.run_dir)
    if other is not None:
        raise runtimes.StackError(f"a {other.arch} stack is running; the study brings each stack up itself: "
                                  f"`make down RUNTIME={options.runtime}` first")
    plan = experiments(options, settings)
    _, skipped = target.runnable_arches(options.runtime, list(dict.fromkeys(e.arch for e in plan)))
    for arch, why in skipped.items():
        log(f"skipping {arch}: {why}")
    plan = [e for e in plan if e.arch not in skipped]
    done: list[RunRecord] = []
    i = 0
    while i < len(plan):
        exp = plan[i]
        if isinstance(exp.options, BenchOptions):
            j = i
            while j < len(plan) and isinstance(plan[j].options, BenchOptions):
                j += 1
            done += study.execute(plan[i:j], options, settings, log)
            i = j
        elif isinstance(exp.options, FaultPlan):
            j = i
            while j < len(plan) and isinstance(plan[j].options, FaultPlan):
                j += 1
            done += fault_runs.run_all([e.options for e in plan[i:j]], exp.serving_settings(settings), options, log)
            i = j
        else:
            log(f"\n== {exp.title}")
            done.append(load.load(exp.options, exp.serving_settings(settings)))
            i += 1
        if done and done[-1].interrupted:
            break
    return done
