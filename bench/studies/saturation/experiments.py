"""The runs behind the saturation figures: the model curve, the headline comparison, then a sweep of every
architecture that runs here. Which parts run, and how often the first two are repeated, are the study's
knobs (``SB_SATURATION_*``, :mod:`bench.studies.saturation.knobs`).

1. The in-process model curve (:func:`bench.reference.measure_curve`), ``repeats``
   times: images/s and CPU per image at each batch size, at the servers'
   intra-op threads and at the machine's logical CPUs; its best images/s is
   the machine's limit. Measured with no stack up. ``--no-reference`` leaves
   it out (a sweep still measures one when none matches its threads).
2. The headline comparison: for each architecture among embedded, Flask,
   FastAPI, Triton and Ray Serve, one stack per batching mode (the sweep's settings),
   and in it ``repeats`` bench runs (:mod:`bench.run`, raw bodies, one image
   per request) at concurrency 1 and at the saturated concurrency,
   alternating. Each is a run of its own (its latency.hdr, its CPU per
   image), so every headline figure is a median of repeats with its min-max.
3. For each architecture, a sweep (:mod:`bench.sweep`): closed-loop
   concurrency 1 to 64 and open-loop rates up to 1.1x the saturated
   throughput, each level measured until three 2-second windows agree,
   batching off and on, each in a stack of its own: one run, for the curves.

An architecture that cannot run here is skipped with the reason. ``quick``
shrinks every count (levels, windows, curve, images) for a smoke run. Plans
are pure: :func:`experiments` starts and writes nothing.
"""
from __future__ import annotations

from typing import Callable

from bench import study
from bench.options import BenchOptions, ModelCurveOptions, StudyOptions, SweepOptions
from bench.records import RunRecord
from servebench import registry
from servebench import runtime as runtimes
from servebench.knobs import SectionValues
from servebench.settings import Settings

STUDY = "saturation"
ARCHES = ("embedded", "flask", "fastapi", "triton", "rayserve")  # ours, then what many users pick instead
SIGNATURE = {"call_path": "signature"}  # the fast path, whatever the caller set
MODES = ("off", "on")
QUICK_SWEEP = {"concurrency": (1, 4, 16), "rate_fractions": (0.5, 1.0), "window_s": 1.0, "windows_limit": 4,
               "warmup_s": 0.5, "warmup": 20, "n": 200}
QUICK_CURVE = {"batch_sizes": (1, 4, 16, 64), "seconds": 0.5}
QUICK_HEADLINE = {"headline_n": 100, "saturated_n": 400}
HEADLINE_WARMUP = 50


def knobs(options: StudyOptions, settings: Settings | None = None) -> SectionValues:
    """The study's knobs in force (``settings``, default the environment's); a quick run shrinks the image
    counts that were not set."""
    settings = settings if settings is not None else Settings()
    if options.quick:
        settings = settings.model_copy(update={f"saturation_{k}": v for k, v in QUICK_HEADLINE.items()
                                               if f"saturation_{k}" not in settings.model_fields_set})
    return settings.section(STUDY)


def arches(options: StudyOptions) -> list[str]:
    """The study's architectures that are registered (in ARCHES order, then the study's own), or those asked for."""
    mine = [a for a in ARCHES if a in registry.names()]
    mine += [a.name for a in registry.in_study(STUDY) if a.name not in mine]
    return [a for a in mine if a in options.arches] if options.arches else mine


def headline(options: StudyOptions, arch: str, k: SectionValues) -> list[study.Experiment]:
    """One architecture's headline runs: per batching mode (a stack each, as the sweep sets them up),
    ``k.repeats`` x (concurrency 1, then the saturated concurrency)."""
    where = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress, "study": STUDY,
             "arch": arch, "runtime": options.runtime, "run_dir": options.run_dir, "codec": "raw",
             "warmup": HEADLINE_WARMUP}
    plan = []
    for mode in MODES:
        serving = {**SIGNATURE, **SweepOptions(arch=arch).serving(mode)}
        for repeat in range(1, k.repeats + 1):
            for c, n in ((1, k.headline_n), (k.concurrency, k.saturated_n)):
                plan.append(study.Experiment(
                    arch, BenchOptions(**where, concurrency=c, n=min(n, options.n)), serving,
                    title=f"{arch}: headline, batching {mode}, concurrency {c}, repeat {repeat} of {k.repeats}"))
    return plan


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[study.Experiment]:
    k = knobs(options, settings)
    where = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress, "study": STUDY}
    names = arches(options)
    plan = []
    if options.reference and names and "curve" in k.parts:
        curve = ModelCurveOptions(**where, **(QUICK_CURVE if options.quick else {}))
        plan += [study.Experiment(names[0], curve, SIGNATURE, title=f"in-process model curve (the machine's limit, "
                                  f"the model's CPU per image), repeat {r} of {k.repeats}")
                 for r in range(1, k.repeats + 1)]
    if "headline" in k.parts:
        plan += [e for arch in names for e in headline(options, arch, k)]
    if "sweeps" in k.parts:
        for arch in names:
            size = {**QUICK_SWEEP} if options.quick else {}
            size["n"] = min(options.n, size.get("n", SweepOptions.model_fields["n"].default))
            sweep = SweepOptions(arch=arch, runtime=options.runtime, run_dir=options.run_dir, **where,
                                 model_curve="latest", **size)
            plan.append(study.Experiment(arch, sweep, SIGNATURE, title=f"{arch}: sweep, batching "
                                                                         f"{' and '.join(sweep.batching)}"))
    return plan


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """The plan in order (the curves with no stack up; the headline runs share a stack per architecture and
    batching mode; each sweep brings its own stacks up and down); stops after an interrupted run."""
    from bench import reference, sweep, target  # the plan alone needs none of them

    other = target.running(options.runtime, options.run_dir)
    if other is not None:
        raise runtimes.StackError(f"a {other.arch} stack is running; the study brings each stack up itself: "
                                  f"`make down RUNTIME={options.runtime}` first")
    plan = experiments(options, settings)
    stacks = [e.arch for e in plan if isinstance(e.options, (SweepOptions, BenchOptions))]
    _, skipped = target.runnable_arches(options.runtime, list(dict.fromkeys(stacks)))
    for arch, why in skipped.items():
        log(f"skipping {arch}: {why}")
    done: list[RunRecord] = []
    headline_runs = [e for e in plan if isinstance(e.options, BenchOptions) and e.arch not in skipped]
    for exp in plan:
        if isinstance(exp.options, BenchOptions):
            if headline_runs and exp is headline_runs[0]:  # study.execute shares a stack among consecutive runs of one set-up
                done += study.execute(headline_runs, options, settings, log)
            if done and done[-1].interrupted:
                break
            continue
        if exp.arch in skipped and isinstance(exp.options, SweepOptions):
            continue
        log(f"\n== {exp.title}")
        serving = exp.serving_settings(settings)
        if isinstance(exp.options, ModelCurveOptions):
            record = reference.measure_curve(exp.options, serving, log=log)
        else:
            record = sweep.sweep(exp.options, serving, log=log)
        done.append(record)
        if record.interrupted:
            break
    return done
