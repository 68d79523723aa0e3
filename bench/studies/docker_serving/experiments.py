"""The runs behind the committed results, so that another machine can repeat exactly what we measured.

For every architecture of the study that can run here, first a fresh
in-process reference (so that its ratios compare numbers taken minutes apart,
not half an hour: shared machines drift), then, in one stack kept up across
its runs:

1. the study's workload: N images, one per request, sequentially, JSON;
2. Table 3 with spread: the first 1,000 images, 3 passes;
3. the raw codec, to separate payload encoding from serving;
4. closed-loop concurrency 2, 4 and 8;
5. open-loop Poisson arrivals at three rates;

and then, in a stack of its own, ``call_path=keras-predict`` (``model.predict``
per request, as tutorials and, by its numbers, the study do) on a small N.
``quick`` shrinks every count (never above N) for a smoke run.
"""
from __future__ import annotations

from typing import Callable

from bench import study
from bench.options import BenchOptions, ReferenceOptions, StudyOptions
from bench.records import RunRecord
from bench.studies.docker_serving import published
from servebench import registry
from servebench.settings import Settings

RATES = (50, 100, 150)
CONCURRENCY = (2, 4, 8)
QUICK_N = 200  # the main workload's images in a quick run, at most
QUICK_REFERENCE = {"calls": 200, "codec_calls": 50, "batch_images": 256}
QUICK_OVERHEAD_REQUESTS = 200
SLOW_PATH_WARMUP = 5  # model.predict per request: each warm-up request costs tens of ms
SIGNATURE = {"call_path": "signature"}  # the study's runs measure the fast path, whatever the caller set
KERAS_PREDICT = {"call_path": "keras-predict"}


def arches(options: StudyOptions) -> list[str]:
    """The study's architectures (those it compares, and ours it covers), or the ones asked for."""
    mine = [a.name for a in registry.architectures() if a.study == published.STUDY]
    return [a for a in mine if a in options.arches] if options.arches else mine


def workloads(n: int, quick: bool) -> list[dict]:
    """The bench options of one architecture's runs on the signature path, beyond the common ones."""
    small = min(100, n) if quick else 2000
    table3 = min(100, n) if quick else 1000
    plan = [
        {"n": n},
        {"n": table3, "repeats": 3},
        {"n": small, "codec": "raw"},
    ]
    plan += [{"n": small, "concurrency": c} for c in CONCURRENCY]
    plan += [{"n": small, "rate": r, "arrivals": "poisson"} for r in RATES]
    return plan


def experiments(options: StudyOptions) -> list[study.Experiment]:
    n = min(options.n, QUICK_N) if options.quick else options.n
    where = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress,
             "study": published.STUDY}
    common = {**where, "runtime": options.runtime, "run_dir": options.run_dir,
              **({"overhead_requests": QUICK_OVERHEAD_REQUESTS} if options.quick else {})}
    plan = []
    for arch in arches(options):
        if options.reference:
            plan.append(study.Experiment(
                arch, ReferenceOptions(**where, **(QUICK_REFERENCE if options.quick else {})), SIGNATURE,
                title=f"in-process reference, before {arch}"))
        for extra in workloads(n, options.quick):
            plan.append(study.Experiment(arch, BenchOptions(arch=arch, **common, **extra), SIGNATURE,
                                           title=f"{arch} (signature): {_spelled(extra)}"))
        slow = {"n": min(options.slow_path_n, n), "warmup": SLOW_PATH_WARMUP}
        plan.append(study.Experiment(arch, BenchOptions(arch=arch, **common, **slow), KERAS_PREDICT,
                                       title=f"{arch} (keras-predict): {_spelled(slow)}"))
    return plan


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    return study.execute(experiments(options), options, settings, log)


def _spelled(extra: dict) -> str:
    return " ".join(f"{BenchOptions.flag(k)} {v}" for k, v in extra.items())
