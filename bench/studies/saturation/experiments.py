"""The runs behind the saturation figures: the model curve, then a sweep of every architecture that runs here.

1. The in-process model curve (:func:`bench.reference.measure_curve`): images/s
   and CPU per image at each batch size, at the servers' intra-op threads and
   at the machine's logical CPUs; its best images/s is the machine's limit.
   Measured with no stack up. ``--no-reference`` keeps the newest one instead
   (a sweep still measures one when none matches its threads).
2. For each architecture among embedded, Flask, FastAPI and Triton (and any
   other registered in this study) that can run on the runtime, a sweep
   (:mod:`bench.sweep`): closed-loop concurrency 1 to 64 and open-loop rates up
   to 1.1x the saturated throughput, raw bodies, one image per request, each
   level measured until three 2-second windows agree, batching off and on,
   each in a stack of its own. An architecture that cannot run here is skipped
   with the reason.

``quick`` shrinks every count (levels, windows, curve) for a smoke run of about
a minute and a half per architecture. Plans are pure: :func:`experiments`
starts and writes nothing.
"""
from __future__ import annotations

from typing import Callable

from bench import study
from bench.options import ModelCurveOptions, StudyOptions, SweepOptions
from bench.records import RunRecord
from servebench import registry
from servebench import runtime as runtimes
from servebench.settings import Settings

STUDY = "saturation"
ARCHES = ("embedded", "flask", "fastapi", "triton")  # ours, then what many users pick instead
SIGNATURE = {"call_path": "signature"}  # the fast path, whatever the caller set
QUICK_SWEEP = {"concurrency": (1, 4, 16), "rate_fractions": (0.5, 1.0), "window_s": 1.0, "windows_limit": 4,
               "warmup_s": 0.5, "warmup": 20, "n": 200}
QUICK_CURVE = {"batch_sizes": (1, 4, 16, 64), "seconds": 0.5}


def arches(options: StudyOptions) -> list[str]:
    """The study's architectures that are registered (in ARCHES order, then the study's own), or those asked for."""
    mine = [a for a in ARCHES if a in registry.names()]
    mine += [a.name for a in registry.in_study(STUDY) if a.name not in mine]
    return [a for a in mine if a in options.arches] if options.arches else mine


def experiments(options: StudyOptions) -> list[study.Experiment]:
    where = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress, "study": STUDY}
    names = arches(options)
    plan = []
    if options.reference and names:
        plan.append(study.Experiment(
            names[0], ModelCurveOptions(**where, **(QUICK_CURVE if options.quick else {})), SIGNATURE,
            title="in-process model curve (the machine's limit, the model's CPU per image)"))
    for arch in names:
        size = {**QUICK_SWEEP} if options.quick else {}
        size["n"] = min(options.n, size.get("n", SweepOptions.model_fields["n"].default))
        sweep = SweepOptions(arch=arch, runtime=options.runtime, run_dir=options.run_dir, **where,
                             model_curve="latest", **size)
        plan.append(study.Experiment(arch, sweep, SIGNATURE, title=f"{arch}: sweep, batching "
                                                                     f"{' and '.join(sweep.batching)}"))
    return plan


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """The plan in order (the curve with no stack up; each sweep brings its own stacks up and down);
    stops after an interrupted run."""
    from bench import reference, sweep, target  # the plan alone needs none of them

    other = target.running(options.runtime, options.run_dir)
    if other is not None:
        raise runtimes.StackError(f"a {other.arch} stack is running; the study brings each stack up itself: "
                                  f"`make down RUNTIME={options.runtime}` first")
    plan = experiments(options)
    _, skipped = target.runnable_arches(options.runtime, [e.arch for e in plan if isinstance(e.options, SweepOptions)])
    for arch, why in skipped.items():
        log(f"skipping {arch}: {why}")
    done: list[RunRecord] = []
    for exp in plan:
        serving = exp.serving_settings(settings)
        if isinstance(exp.options, ModelCurveOptions):
            log(f"\n== {exp.title}")
            record = reference.measure_curve(exp.options, serving, log=log)
        elif exp.arch in skipped:
            continue
        else:
            log(f"\n== {exp.title}")
            record = sweep.sweep(exp.options, serving, log=log)
        done.append(record)
        if record.interrupted:
            break
    return done
