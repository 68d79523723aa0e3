"""The batching study's answer at the top of the report: what SB_BATCH_MAX_SIZE alone gains at the goal's
concurrency, per architecture, and how many of the issue's goals are met; computed from the same runs as the
section (:mod:`bench.studies.batching.measured`)."""
from __future__ import annotations

from bench.report import archs
from bench.report.sections import Answer, Context
from bench.studies.batching import measured
from bench.studies.batching.figures import PLOTS
from bench.studies.saturation.headline import medians_of


def answer(ctx: Context) -> Answer | None:
    table = measured.cells(ctx.runs)
    gains = []
    for arch in measured.arches_of(table):
        top = measured.goal_level(table, arch)
        r = measured.ratios(table, arch).get(top)
        if r:
            gains.append(f"{archs.title(arch)} {r.value:.2f}× at {top} in flight")
    if not gains:
        return None
    text = (f"SB_BATCH_MAX_SIZE={measured.batch_size(table)} alone ÷ the defaults, images/s with raw bodies (ratio of "
            f"{medians_of(c.throughput for c in table.values())}): " + ", ".join(gains) + ".")
    goals = [g for g in measured.goal_rows(ctx.runs, table) if g["ok"] is not None]
    if goals:
        missed = [f"{g['goal']} ({archs.title(g['arch'])})" for g in goals if not g["ok"]]
        text += f" Goals met: {len(goals) - len(missed)} of {len(goals)} measured" + (
            f" (not met: {'; '.join(missed)})." if missed else ".")
    return Answer(text, PLOTS["concurrency"])
