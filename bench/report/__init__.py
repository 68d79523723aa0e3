"""The report: every run under ``results/`` in one table, plots, and one page.

    python -m bench.report [--results results] [--study NAME]

Writes, inside the results folder:

- ``summary.csv``: one row per run (bench, load, soak and reference runs alike);
- ``plots/*.png``: the latency distribution, latency versus concurrency and
  rate, where the time goes per hop, and each study's own plots;
- ``report.html``: the plots with the runs and settings behind them, the
  machine and versions, and one section per study (``<study module>.report``,
  found through ``servebench.registry``; see :mod:`bench.report.sections`).

The comparison plots use, per (arch, runtime, codec), the complete bench run
with the default workload (batch 1, concurrency 1, no rate) and the most images.
Interrupted runs are listed but never plotted; folders without a readable
summary.json are skipped with a printed note. ``--study NAME`` leaves the
other studies' plots as they are (``make study`` runs it after the study's
experiments); everything else is rewritten.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.report import page, plots, tables
from bench.report.sections import Context, study_sections
from servebench import registry

REPO_ROOT = Path(__file__).resolve().parents[2]


def build(results: Path, study: str | None = None) -> dict[str, Path]:
    """Everything the report writes, by name; with ``study``, the other studies' plots are left as they are."""
    ctx = Context.read(results)
    rows = [tables.summary_row(r) for r in ctx.runs]
    ctx.plots.mkdir(exist_ok=True)
    general = plots.figures(ctx)
    sections = study_sections(ctx)
    written = {"summary": tables.write_summary(rows, results / "summary.csv")}
    # The general plots follow the comparison runs, which a study's runs change: always redrawn.
    for figure in [f for s in sections if study in (None, s.study) for f in s.figures] + general:
        written[figure.name] = figure.draw(ctx.plots / figure.file)
    written["html"] = page.write(results / "report.html", ctx, rows, sections, general)
    for note in ctx.not_runs + ctx.notes:
        print(f"note: {note}")
    interrupted = sum(r.interrupted for r in ctx.runs)
    print(f"read {len(ctx.runs)} run(s) ({interrupted} interrupted, {len(ctx.notes)} note(s)); "
          f"comparison runs: {', '.join(r.run_id for r in ctx.selected) or 'none'}")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=REPO_ROOT / "results", help="folder of run folders")
    p.add_argument("--study", choices=[s.name for s in registry.studies()],
                   help="of the studies' plots, redraw only this one's (summary.csv, the general plots and "
                        "the page are rewritten as always)")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: {args.results} is not a folder (run make bench first)", file=sys.stderr)
        return 2
    written = build(args.results, study=args.study)
    for path in written.values():
        print(f"wrote {path}")
    return 0
