"""`make study STUDY=NAME`: run a study's experiments, then rewrite the report.

    python -m bench.study NAME [--runtime native|docker] [--n 10000] [--quick] [--arch A ...]
                               [--no-reference] [--slow-path-n 300] [--out results] [--no-report]

A study is registered in :mod:`servebench.registry` and lives in
``bench/studies/<name>/``; ``make bench-study`` is
``make study STUDY=docker-serving``, the runs behind the committed results.
No stack may be running: the study brings each one up itself, and down again.
Ctrl-C or SIGTERM stops it; what was measured is kept.

A study is a folder, ``bench/studies/<name>/``, found by discovery: its
``declaration.py`` registers its ``Study`` record (name, title, source,
module), its ``knobs.py`` (if any) declares its knobs, and its
``experiments.py`` provides (see :class:`StudyPlugin`):

- ``experiments(options: StudyOptions) -> list[Experiment]``: its planned runs,
  in order. Pure: it starts nothing and writes nothing, so a test can check a
  plan anywhere.
- ``run(options: StudyOptions, settings: Settings, log=print) -> list[RunRecord]``:
  runs them and returns what they wrote. Most studies are
  ``execute(experiments(options), options, settings, log)``.
- ``report.py`` with ``section(...)``: its part of the report (see
  :mod:`bench.report`, which calls it).

``python -m bench.study NAME`` (``make study STUDY=NAME``) runs a study and
then rewrites the report. Every record a study's experiment writes carries
``"study": NAME``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

from bench import options as opts
from bench import reference, target
from bench.options import BenchOptions, ModelCurveOptions, ReferenceOptions, StudyOptions
from bench.records import RunRecord
from servebench import interrupts, registry
from servebench import runtime as runtimes
from servebench.settings import Settings, from_environment


@dataclass(frozen=True)
class Experiment:
    """One planned run: a bench run in a stack of ``arch``, or an in-process reference or model curve (no stack)."""

    arch: str  # what it measures; a reference run or curve: the architecture it is the baseline of
    options: BenchOptions | ReferenceOptions | ModelCurveOptions
    settings: dict[str, Any] = field(default_factory=dict)  # serving settings of its stack, over the caller's
    title: str = ""

    def __post_init__(self):
        registry.get(self.arch)  # an unknown name fails here, when the plan is made
        unknown = set(self.settings) - set(Settings.model_fields)
        if unknown:
            raise ValueError(f"{self.title or self.arch}: no serving setting {', '.join(sorted(unknown))}")
        if isinstance(self.options, BenchOptions) and self.options.arch != self.arch:
            raise ValueError(f"{self.title}: its options measure {self.options.arch}, not {self.arch}")

    @property
    def kind(self) -> str:
        if isinstance(self.options, ModelCurveOptions):
            return "curve"
        return "reference" if isinstance(self.options, ReferenceOptions) else "bench"

    def serving_settings(self, settings: Settings) -> Settings:
        """The caller's serving settings with this experiment's on top."""
        return settings.model_copy(update=self.settings) if self.settings else settings


@runtime_checkable
class StudyPlugin(Protocol):
    """What ``registry.study(NAME).load()`` returns (a study's experiments module)."""

    def experiments(self, options: StudyOptions) -> list[Experiment]: ...

    def run(self, options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]: ...


def load(name: str) -> StudyPlugin:
    """The package of the registered study ``name``."""
    return registry.study(name).load()


def execute(plan: list[Experiment], options: StudyOptions, settings: Settings,
            log: Callable = print) -> list[RunRecord]:
    """Run ``plan`` in order and return the records written; stops at the first interrupted one.

    Consecutive bench runs of one architecture with the same serving settings
    share one stack, brought up here and down again when the next experiment
    needs another (or none: a reference runs with no stack up, in a process of
    its own, and so does a model curve). An architecture that cannot run on ``options.runtime`` is skipped
    with the reason. Stack errors propagate, after the stack is brought down.
    """
    from bench import run  # the plan alone needs no bench run

    rt = runtimes.get(options.runtime)
    other = target.running(options.runtime, options.run_dir)
    if other is not None:
        raise runtimes.StackError(f"a {other.arch} stack is running; a study brings each stack up itself: "
                                  f"`make down RUNTIME={options.runtime}` first")
    _, skipped = target.runnable_arches(options.runtime, dict.fromkeys(e.arch for e in plan))
    for arch, why in skipped.items():
        log(f"skipping {arch}: {why}")
    records: list[RunRecord] = []
    up: tuple | None = None  # (arch, its settings) of the stack brought up here
    try:
        for exp in plan:
            if exp.arch in skipped:
                continue
            serving = exp.serving_settings(settings)
            log(f"\n== {exp.title or exp.arch}")
            if exp.kind in ("reference", "curve"):
                if up is not None:
                    rt.down(run_dir=options.run_dir, log=log)
                    up = None
                done = [reference.measure_isolated(exp.options, serving) if exp.kind == "reference"
                        else reference.measure_curve(exp.options, serving, log=log)]
            else:
                key = (exp.arch, sorted(exp.settings.items()))
                if up != key:
                    if up is not None:
                        rt.down(run_dir=options.run_dir, log=log)
                        up = None
                    rt.up(exp.arch, serving, run_dir=options.run_dir, log=log)
                    up = key
                done = run.bench(exp.options, serving, log=log)
            records += done
            if any(r.interrupted for r in done):
                break
    finally:
        if up is not None:
            with interrupts.shielded():
                rt.down(run_dir=options.run_dir, log=log)
    return records



def study(options: opts.StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """Run the study's experiments; its records, the last one interrupted when the study was."""
    return load(options.study).run(options, settings, log)


def rewrite_report(options: opts.StudyOptions) -> int:
    """The study's section (its plots) and the page, from every run in the results folder."""
    from bench import report

    return report.main(["--results", str(options.out), "--study", options.study])


def main(argv=None) -> int:
    options = opts.parse(opts.StudyOptions, argv, __doc__)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # our lines and the reference process's stay in order
    records, rc = target.command(lambda: study(options, from_environment()), (reference.MeasurementFailed,))
    if rc is not None:
        return rc
    if records and records[-1].interrupted:
        return 130
    print(f"\n{options.study}: {len(records)} runs written under {options.out}")
    return rewrite_report(options) if options.report else 0


if __name__ == "__main__":
    sys.exit(main())
