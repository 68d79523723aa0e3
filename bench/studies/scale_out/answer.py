"""The scale-out study's answer at the top of the report: Ray Serve's saturated throughput beside our best
Python stack's, what batching gives it, and whether a lost node cost wrong answers; from the same runs as the
section (:mod:`bench.studies.scale_out.measured`)."""
from __future__ import annotations

from bench.formats import significant
from bench.report import archs
from bench.report.sections import Answer, Context
from bench.studies.saturation.headline import medians_of
from bench.studies.scale_out import measured as m
from bench.studies.scale_out.figures import PLOTS


def answer(ctx: Context) -> Answer | None:
    t = m.cells(ctx.runs)
    parts = []
    for mode in m.MODES:
        ray = m.saturated(t, m.RAY, mode)
        ours = [m.saturated(t, a, mode) for a in m.PYTHON_STACKS if a in m.arches_of(t)]
        best = max((c for c in ours if c and c.throughput), key=lambda c: c.throughput.median, default=None)
        if ray and ray.throughput and best:
            parts.append(f"batching {mode}: Ray Serve {significant(ray.throughput.median)} images/s at best "
                         f"({significant(ray.server_cpu.median) if ray.server_cpu else '?'} ms CPU per image), "
                         f"{archs.title(best.arch)} {significant(best.throughput.median)} "
                         f"({best.throughput.median / ray.throughput.median:.2f}x)")
    if not parts:
        return None
    text = (f"On one machine ({medians_of(c.throughput for c in t.values())}), the best level of each: "
            + "; ".join(parts) + ".")
    gain = m.batching_gain(t)
    if gain:
        text += f" Batching gives Ray Serve {gain.value:.2f}x."
    nodes = m.faults(ctx.runs).get("node", [])
    if nodes:
        wrong = sum(int(r.get("wrong_answers") or 0) for r in nodes)
        text += f" Losing a worker node: {wrong} wrong answers in {len(nodes)} kills."
    return Answer(text, PLOTS["ladder"])
