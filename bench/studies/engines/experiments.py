"""The runs behind the engines study, per engine of ``SB_ENGINES_LIST`` (a bare ``openvino`` is two: f32 and
bf16), each part a knob (``SB_ENGINES_PARTS``, :mod:`bench.studies.engines.knobs`):

1. ``curve``: the in-process model curve (:mod:`bench.studies.engines.curve`), batch 1 to 64 at 1 and 2
   intra-op threads, ``repeats`` times; the repeats go round the engines in turn, so that a load on the
   shared machine falls on all of them alike.
2. ``evaluate``: the engine's correctness against TensorFlow (:func:`models.evaluate.measure`, in a process
   of its own): test accuracy, the largest difference of the probabilities, the share of classes changed.
3. ``stacks``: for each architecture (embedded and FastAPI unless ``--arch`` says), each engine and each
   batching mode (the saturation sweep's settings, a stack each), ``repeats`` bench runs (raw bodies, one
   image per request) at concurrency 1 and at the saturated concurrency, alternating. Every run records
   its CPU per image per service.

``quick`` shrinks every count for a smoke run. Plans are pure: :func:`experiments` starts and writes nothing.
"""
from __future__ import annotations

from typing import Callable

from bench import study
from bench.options import BenchOptions, Options, StudyOptions, SweepOptions
from bench.records import RunRecord
from bench.studies.engines.curve import CurveOptions
from bench.studies.engines.knobs import variants
from servebench.knobs import SectionValues
from servebench.settings import Settings

STUDY = "engines"
ARCHES = ("embedded", "fastapi")
MODES = ("off", "on")
SIGNATURE = {"call_path": "signature"}
WARMUP = 50
QUICK = {"engines_batch_sizes": (1, 8, 64), "engines_curve_seconds": 0.3, "engines_c1_n": 100,
         "engines_saturated_n": 400, "engines_evaluate_n": 500}


class EvaluateOptions(Options):
    """One engine's correctness check (``make evaluate``'s measurement)."""

    engine: str
    precision: str = "f32"
    n: int | None = None  # test inputs; None: all


def knobs(options: StudyOptions, settings: Settings | None = None) -> SectionValues:
    """The study's knobs in force; a quick run shrinks the counts that were not set."""
    settings = settings if settings is not None else Settings()
    if options.quick:
        settings = settings.model_copy(update={k: v for k, v in QUICK.items()
                                               if k not in settings.model_fields_set})
    return settings.section(STUDY)


def arches(options: StudyOptions) -> list[str]:
    return [a for a in ARCHES if not options.arches or a in options.arches]


def engine_settings(engine: str, precision: str) -> dict:
    """The serving settings that choose the engine (OpenVINO's precision is explicit, never its default)."""
    return {"engine": engine, **({"openvino_precision": precision} if engine == "openvino" else {})}


def title_of(engine: str, precision: str) -> str:
    return f"{engine} ({precision})" if engine == "openvino" else engine


def stack_runs(options: StudyOptions, arch: str, engine: str, precision: str,
               k: SectionValues) -> list[study.Experiment]:
    """One architecture's runs on one engine: per batching mode (a stack each), ``k.repeats`` x
    (concurrency 1, then the saturated concurrency)."""
    where = {"out": options.out, "data_dir": options.data_dir, "progress": options.progress, "study": STUDY,
             "arch": arch, "runtime": options.runtime, "run_dir": options.run_dir, "codec": "raw",
             "warmup": WARMUP}
    plan = []
    for mode in MODES:
        serving = {**SIGNATURE, **engine_settings(engine, precision), **SweepOptions(arch=arch).serving(mode)}
        for repeat in range(1, k.repeats + 1):
            for c, n in ((1, k.c1_n), (k.concurrency, k.saturated_n)):
                plan.append(study.Experiment(
                    arch, BenchOptions(**where, concurrency=c, n=min(n, options.n)), serving,
                    title=f"{arch} on {title_of(engine, precision)}: batching {mode}, concurrency {c}, "
                          f"repeat {repeat} of {k.repeats}"))
    return plan


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[study.Experiment]:
    k = knobs(options, settings)
    where = {"out": options.out, "data_dir": options.data_dir, "progress": False, "study": STUDY}
    engines = variants(k.list)
    names = arches(options)
    host = names[0] if names else ARCHES[0]  # an in-process run names the architecture it is the baseline of
    plan = []
    if "curve" in k.parts:
        for repeat in range(1, k.repeats + 1):
            for engine, precision in engines:
                curve = CurveOptions(**where, engine=engine, precision=precision, threads=k.threads,
                                     batch_sizes=k.batch_sizes, seconds=k.curve_seconds, repeat=repeat)
                plan.append(study.Experiment(host, curve, SIGNATURE, title=f"in-process curve on "
                                             f"{title_of(engine, precision)}, repeat {repeat} of {k.repeats}"))
    if "evaluate" in k.parts:
        for engine, precision in engines:
            check = EvaluateOptions(**where, engine=engine, precision=precision, n=k.evaluate_n or None)
            plan.append(study.Experiment(host, check, SIGNATURE,
                                         title=f"correctness of {title_of(engine, precision)} against TensorFlow"))
    if "stacks" in k.parts:
        plan += [e for engine, precision in engines for arch in names
                 for e in stack_runs(options, arch, engine, precision, k)]
    return plan


def _evaluate_in_child(options: EvaluateOptions, settings: Settings, conn) -> None:
    from models.evaluate import measure

    try:
        conn.send(measure(settings.model_base, options.engine, options.precision, n=options.n, out=options.out,
                          study=options.study, data_dir=options.data_dir))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # an engine that cannot run the model: said, and the study goes on
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def evaluate(options: EvaluateOptions, settings: Settings, log: Callable = print) -> RunRecord | None:
    """:func:`models.evaluate.measure` in a process of its own (no engine in the harness); None when the
    engine could not run the model (logged)."""
    from bench.reference import MeasurementFailed, _isolated

    answer, exitcode = _isolated(_evaluate_in_child, (options, settings), "bench-engines-evaluate")
    if answer is None:
        raise MeasurementFailed(f"the evaluate process ended with exit code {exitcode} and no record")
    if isinstance(answer, str):
        log(f"{title_of(options.engine, options.precision)}: not evaluated: {answer}")
        return None
    return answer


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """The plan in order (the curves and checks with no stack up, then the stacks, each shared by its
    consecutive runs); stops after an interrupted run."""
    from bench import target
    from bench.studies.engines import curve
    from servebench import runtime as runtimes

    other = target.running(options.runtime, options.run_dir)
    if other is not None:
        raise runtimes.StackError(f"a {other.arch} stack is running; the study brings each stack up itself: "
                                  f"`make down RUNTIME={options.runtime}` first")
    plan = experiments(options, settings)
    done: list[RunRecord] = []
    for exp in [e for e in plan if not isinstance(e.options, BenchOptions)]:
        log(f"\n== {exp.title}")
        serving = exp.serving_settings(settings)
        if isinstance(exp.options, CurveOptions):
            record = curve.measure(exp.options, serving, log=log)
        else:
            record = evaluate(exp.options, serving, log=log)
            if record is None:
                continue
        done.append(record)
        if record.interrupted:
            return done
    groups: dict[tuple, list[study.Experiment]] = {}  # per engine: a stack that fails skips only its engine
    for e in plan:
        if isinstance(e.options, BenchOptions):
            groups.setdefault((e.settings.get("engine"), e.settings.get("openvino_precision")), []).append(e)
    for (engine, _), group in groups.items():
        try:
            done += study.execute(group, options, settings, log)
        except runtimes.StackError as exc:
            log(f"{engine}: its stacks did not run: {exc}")
            continue
        if done and done[-1].interrupted:
            break
    return done
