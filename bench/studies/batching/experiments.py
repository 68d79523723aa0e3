"""The runs behind the batching figures, in one study run (``make study STUDY=batching``); their counts are the
study's knobs (``SB_BATCHING_*``, :mod:`bench.studies.batching.knobs`).

1. The in-process model curve (:func:`bench.reference.measure_curve`, as ``make model-curve`` measures it):
   the model's own CPU per image at each batch size, the numerator of the server efficiency. Measured with
   no stack up, in the study's own run (an older curve may be another machine's or another build's); it
   becomes the newest curve of this machine, which sweeps then read.
2. The in-process reference (:func:`bench.reference.measure_isolated`, the harness's defaults), ``repeats``
   times: the model's p50 at batch 1, what the JSON overhead at concurrency 1 is measured against.
3. For each architecture, two stacks one after the other: the defaults, then the same with only
   ``SB_BATCH_MAX_SIZE`` set (every other serving setting as the defaults give it, threads included: each
   record keeps the threads in force as the stack reports them). In each, ``repeats`` times: a bench run
   (:mod:`bench.run`, raw bodies, one image per request, closed loop) at every level, lowest first, then one
   with JSON bodies at concurrency 1. Each is a run of its own (latency.hdr, CPU per image per service), so
   every figure is a median of repeats with its min-max.

The stacks run back to back, repeats inside (two stacks up at once would need a second set of ports and
double the memory); the levels alternate within a repeat, so drift over a stack's minutes lands in every
level alike. ``quick`` shrinks the counts that were not set, for a smoke run. Plans are pure:
:func:`experiments` starts and writes nothing.

At the defaults (3 architectures x 2 stacks x 3 repeats x 8 runs of 600 images) a quiet 2-core machine
needs about 10 minutes: the 144 bench runs about 6 (the images at 200-700 images/s, and about a second of
warm-up, harness check and record each), the six stack starts about 2, the references and the curve about 1, the report half a minute.
"""
from __future__ import annotations

from typing import Callable

from bench import study
from bench.options import BenchOptions, ModelCurveOptions, ReferenceOptions, StudyOptions
from bench.records import RunRecord
from servebench import registry
from servebench.knobs import SectionValues
from servebench.settings import Settings

STUDY = "batching"
SIGNATURE = {"call_path": "signature"}  # the fast path, whatever the caller set
# What the comparison is about: never taken from the caller's environment, so "defaults" are the defaults.
COMPARED = ("batch_max_size", "batch_timeout_ms", "frontend_threads", "backend_threads", "backend_pool_size")
STACKS = ("defaults", "one-knob")
# The harness's full reference (its defaults): each one becomes results/reference.json, the baseline of the
# whole report, so it must be as complete as the one `make bench-model` writes.
REFERENCE: dict = {}
WARMUP = 50
OVERHEAD_REQUESTS = 200  # the harness-overhead check of each bench run (bench.overhead)
QUICK = {"repeats": 2, "n": 40, "concurrency": (1, 8)}
QUICK_CURVE = {"batch_sizes": (1, 4, 16, 32), "seconds": 0.3}
QUICK_REFERENCE = {"calls": 100, "warmup": 10, "codec_calls": 20, "batch_images": 64}


def knobs(options: StudyOptions, settings: Settings | None = None) -> SectionValues:
    """The study's knobs in force (``settings``, default the environment's); a quick run shrinks the ones that
    were not set."""
    settings = settings if settings is not None else Settings()
    if options.quick:
        settings = settings.model_copy(update={f"batching_{k}": v for k, v in QUICK.items()
                                               if f"batching_{k}" not in settings.model_fields_set})
    return settings.section(STUDY)


def arches(options: StudyOptions, k: SectionValues) -> list[str]:
    """The knob's architectures (``--arch`` narrows them); an unknown one fails with the knob named."""
    unknown = [a for a in k.arches if a not in registry.names()]
    if unknown:
        raise ValueError(f"SB_BATCHING_ARCHES: no architecture {', '.join(unknown)} "
                         f"(registered: {', '.join(registry.names())})")
    return [a for a in k.arches if a in options.arches] if options.arches else list(k.arches)


def stack_settings(stack: str, k: SectionValues) -> dict:
    """The serving settings of a stack over the defaults: the one-knob stack changes SB_BATCH_MAX_SIZE only."""
    return {**SIGNATURE, **({"batch_max_size": k.batch} if stack == "one-knob" else {})}


def stack_runs(options: StudyOptions, arch: str, stack: str, k: SectionValues) -> list[study.Experiment]:
    """One stack's runs: ``k.repeats`` x (raw bodies at every level, lowest first; JSON bodies at 1)."""
    where = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress, "study": STUDY,
             "arch": arch, "runtime": options.runtime, "run_dir": options.run_dir, "warmup": WARMUP,
             "overhead_requests": OVERHEAD_REQUESTS, "n": min(k.n, options.n)}
    serving = stack_settings(stack, k)
    plan = []
    for repeat in range(1, k.repeats + 1):
        for codec, c in [("raw", c) for c in k.concurrency] + [("json", 1)]:
            plan.append(study.Experiment(
                arch, BenchOptions(**where, codec=codec, concurrency=c), serving,
                title=f"{arch}: {stack}, {codec} bodies, concurrency {c}, repeat {repeat} of {k.repeats}"))
    return plan


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[study.Experiment]:
    settings = settings if settings is not None else Settings()
    k = knobs(options, settings)
    if k.batch > settings.max_batch:
        raise ValueError(f"SB_BATCHING_BATCH={k.batch} is above SB_MAX_BATCH={settings.max_batch}: "
                         f"the one-knob stack would refuse to start")
    names = arches(options, k)
    where = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress, "study": STUDY}
    plan = []
    if options.reference and names:
        curve = ModelCurveOptions(**where, **(QUICK_CURVE if options.quick else {}))
        plan.append(study.Experiment(names[0], curve, SIGNATURE,
                                     title="in-process model curve (the model's CPU per image at each batch)"))
        ref = ReferenceOptions(**where, **{**REFERENCE, **(QUICK_REFERENCE if options.quick else {})})
        plan += [study.Experiment(names[0], ref, SIGNATURE, title=f"in-process reference (p50 at batch 1), "
                                  f"repeat {r} of {k.repeats}") for r in range(1, k.repeats + 1)]
    for arch in names:
        for stack in STACKS:
            plan += stack_runs(options, arch, stack, k)
    return plan


def base_settings(settings: Settings) -> Settings:
    """The caller's settings without the compared ones, validated afresh: a default that follows another
    setting (threads that follow the batch size) follows each stack's own here."""
    return Settings.given(**{name: getattr(settings, name) for name in settings.model_fields_set
                             if name not in COMPARED})


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """The plan in order (:func:`bench.study.execute`): the curve and the references with no stack up, then
    each stack brought up once for its runs and down again; stops after an interrupted run."""
    ignored = sorted(n for n in settings.model_fields_set if n in COMPARED)
    if ignored:
        log(f"ignoring {', '.join('SB_' + n.upper() for n in ignored)} from the environment: the study sets "
            f"what it compares")
    return study.execute(experiments(options, settings), options, base_settings(settings), log)
