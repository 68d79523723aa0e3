"""The runs behind the committed results, so that another machine can repeat exactly what we measured.

For every architecture of the study that can run here, first a fresh
in-process reference (so that its ratios compare numbers taken minutes apart,
not half an hour: shared machines drift), then, in one stack on the study's
runtime (``--runtime``, native by default) kept up across its runs:

1. the study's workload: N images, one per request, sequentially, JSON (one run);
2. the Table 3 protocol: the first 1,000 images, one per request,
   ``SB_DOCKER_SERVING_REPEATS`` passes (3): the headline numbers;
3. the raw codec, to separate payload encoding from serving;
4. closed-loop concurrency 2, 4 and 8;
5. open-loop Poisson arrivals at three rates;

then, in a stack of its own, ``call_path=keras-predict`` (``model.predict``
per request, as tutorials and, by its numbers, the study do) on a small N;
and then the Table 3 protocol again on each other runtime of
``SB_DOCKER_SERVING_RUNTIMES`` (docker compose), so that native and docker
are measured minutes apart. ``SB_DOCKER_SERVING_WORKLOADS=protocol`` keeps
the reference, 1. and the protocol runs only. ``quick`` shrinks every count
(never above N) for a smoke run.
"""
from __future__ import annotations

from itertools import groupby
from typing import Callable

from bench import study
from bench.options import BenchOptions, ReferenceOptions, StudyOptions
from bench.records import RunRecord
from bench.studies.docker_serving import published
from servebench import registry
from servebench.knobs import SectionValues
from servebench.settings import Settings

RATES = (50, 100, 150)
CONCURRENCY = (2, 4, 8)
PROTOCOL_N = 1000  # the Table 3 protocol's images per pass (their Table 3 row at 1,000)
QUICK_PROTOCOL_N = 100
QUICK_N = 200  # the main workload's images in a quick run, at most
QUICK_REFERENCE = {"calls": 200, "codec_calls": 50, "batch_images": 256}
QUICK_OVERHEAD_REQUESTS = 200
SLOW_PATH_WARMUP = 5  # model.predict per request: each warm-up request costs tens of ms
SIGNATURE = {"call_path": "signature"}  # the study's runs measure the fast path, whatever the caller set
KERAS_PREDICT = {"call_path": "keras-predict"}


def knobs(settings: Settings | None = None) -> SectionValues:
    return (settings if settings is not None else Settings()).section("docker_serving")


def arches(options: StudyOptions) -> list[str]:
    """The study's architectures (those it compares, and ours it covers), or the ones asked for."""
    mine = [a.name for a in registry.architectures() if a.study == published.STUDY]
    return [a for a in mine if a in options.arches] if options.arches else mine


def protocol(n: int, quick: bool, repeats: int) -> dict:
    """The Table 3 protocol's bench options: 1,000 images, one per request, sequential, ``repeats`` passes."""
    return {"n": min(QUICK_PROTOCOL_N, n) if quick else PROTOCOL_N, "repeats": repeats}


def workloads(n: int, quick: bool, repeats: int = 3, everything: bool = True) -> list[dict]:
    """The bench options of one architecture's runs on the signature path and the study's runtime."""
    plan = [{"n": n}, protocol(n, quick, repeats)]
    if not everything:
        return plan
    small = min(100, n) if quick else 2000
    plan += [{"n": small, "codec": "raw"}]
    plan += [{"n": small, "concurrency": c} for c in CONCURRENCY]
    plan += [{"n": small, "rate": r, "arrivals": "poisson"} for r in RATES]
    return plan


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[study.Experiment]:
    k = knobs(settings)
    n = min(options.n, QUICK_N) if options.quick else options.n
    everything = k.workloads == "all"
    where = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress,
             "study": published.STUDY}
    common = {**where, "run_dir": options.run_dir,
              **({"overhead_requests": QUICK_OVERHEAD_REQUESTS} if options.quick else {})}
    others = [r for r in k.runtimes if r != options.runtime]
    plan = []
    for arch in arches(options):
        if options.reference:
            plan.append(study.Experiment(
                arch, ReferenceOptions(**where, **(QUICK_REFERENCE if options.quick else {})), SIGNATURE,
                title=f"in-process reference, before {arch}"))
        home = workloads(n, options.quick, k.repeats, everything)
        if options.runtime not in k.runtimes:  # the protocol runs only on the runtimes asked for
            home.remove(protocol(n, options.quick, k.repeats))
        for extra in home:
            plan.append(_bench(arch, options.runtime, common, extra, SIGNATURE))
        if everything:
            plan.append(_bench(arch, options.runtime, common,
                               {"n": min(options.slow_path_n, n), "warmup": SLOW_PATH_WARMUP}, KERAS_PREDICT))
        for runtime in others:
            plan.append(_bench(arch, runtime, common, protocol(n, options.quick, k.repeats), SIGNATURE))
    return plan


def _bench(arch: str, runtime: str, common: dict, extra: dict, serving: dict) -> study.Experiment:
    return study.Experiment(arch, BenchOptions(arch=arch, runtime=runtime, **common, **extra), serving,
                            title=f"{arch} ({serving['call_path']}, {runtime}): {_spelled(extra)}")


def run_on(exp: study.Experiment, options: StudyOptions) -> str:
    """The runtime an experiment's stack runs on (a reference has none: it runs in a process of its own)."""
    return exp.options.runtime if isinstance(exp.options, BenchOptions) else options.runtime


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """The plan in order, each stretch of one runtime by :func:`bench.study.execute` on that runtime."""
    from servebench.compose import ImageMissing, absent_official_images  # the plan alone needs no docker

    records: list[RunRecord] = []
    for runtime, stretch in groupby(experiments(options, settings), key=lambda e: run_on(e, options)):
        stretch = list(stretch)
        if runtime == "docker" and runtime != options.runtime:
            # The protocol's second runtime pulls nothing: TF Serving's official image is there, or it is skipped.
            absent = {e.arch: images for e in stretch if (images := absent_official_images(e.arch))}
            for arch, images in absent.items():
                log(f"skipping {arch} on docker: its official image {', '.join(images)} is not present here "
                    f"(`docker pull` it first; the study pulls nothing)")
            stretch = [e for e in stretch if e.arch not in absent]
            if not stretch:
                continue
        try:
            records += study.execute(stretch, options.model_copy(update={"runtime": runtime}), settings, log)
        except ImageMissing as exc:  # an official image that cannot be pulled here (TF Serving's): say so, go on
            log(f"skipping {', '.join(dict.fromkeys(e.arch for e in stretch))} on {runtime}: {exc}")
        if records and records[-1].interrupted:
            break
    return records


def _spelled(extra: dict) -> str:
    return " ".join(f"{BenchOptions.flag(k)} {v}" for k, v in extra.items())
