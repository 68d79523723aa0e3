"""`make study STUDY=NAME`: run a study's experiments, then rewrite the report.

    python -m bench.study NAME [--runtime native|docker] [--n 10000] [--quick] [--arch A ...]
                               [--no-reference] [--slow-path-n 300] [--out results] [--no-report]

A study is registered in :mod:`servebench.registry` and lives in
``bench/studies/<name>/`` (see :mod:`bench.studies`); ``make bench-study`` is
``make study STUDY=docker-serving``, the runs behind the committed results.
No stack may be running: the study brings each one up itself, and down again.
Ctrl-C or SIGTERM stops it; what was measured is kept.
"""
from __future__ import annotations

import sys
from typing import Callable

from bench import options as opts
from bench import reference, studies, target
from bench.records import RunRecord
from servebench.settings import Settings, from_environment


def study(options: opts.StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """Run the study's experiments; its records, the last one interrupted when the study was."""
    return studies.load(options.study).run(options, settings, log)


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
