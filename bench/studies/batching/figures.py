"""The batching study's plot: images/s and p50 against concurrency, defaults against SB_BATCH_MAX_SIZE alone,
each point the median of its repeats with their min-max as an error bar (from
:func:`bench.studies.batching.measured.cells`)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from bench.report import archs, plots
from bench.studies.batching.measured import STACKS, arches_of

PLOTS = {"concurrency": "batching_one_knob.png"}
STACK_LINES = {"defaults": "--", "one-knob": "-"}  # defaults dashed, the one knob solid


def plot_one_knob(table: dict, path: Path) -> Path:
    fig, (thr, lat) = plt.subplots(1, 2, figsize=(14, 5.4), layout="constrained")
    raw = {key: c for key, c in table.items() if key[2] == "raw"}
    if not raw:
        for ax in (thr, lat):
            plots.placeholder(ax, "not measured yet\n(make study STUDY=batching)")
        return plots.save(fig, path)
    xs: set = set()
    for arch in arches_of(raw):
        for stack in STACKS:
            mine = [c for c in raw.values() if c.arch == arch and c.stack == stack]
            for ax, attr in ((thr, "throughput"), (lat, "p50")):
                xs |= set(plots.median_line(ax, mine, "concurrency", attr, archs.color(arch), STACK_LINES[stack]))
    for ax in (thr, lat):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(xs), [f"{x:g}" for x in sorted(xs)])
        ax.set_xlabel("requests in flight (closed-loop concurrency)")
        ax.grid(True, which="both", alpha=0.3)
    thr.set_ylim(bottom=0)
    thr.set_ylabel("throughput (images/s)")
    thr.set_title("Throughput", fontsize=11)
    lat.set_yscale("log")
    plots.plain_log(lat.yaxis)
    lat.set_ylabel("p50 latency (ms, log scale)")
    lat.set_title("p50 latency", fontsize=11)
    handles = [Line2D([], [], color=archs.color(a), lw=2, label=archs.title(a)) for a in arches_of(raw)]
    handles += [Line2D([], [], color="black", ls=STACK_LINES[s], label="defaults" if s == "defaults"
                       else "SB_BATCH_MAX_SIZE alone") for s in STACKS]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=9)
    n = sorted({c.n for c in raw.values()})
    counts = "one run" if n == [1] else f"median of {'-'.join(map(str, sorted({n[0], n[-1]})))} repeats, min–max bars"
    fig.suptitle(f"One knob against the defaults, raw bodies, one image per request ({counts})", fontsize=12)
    return plots.save(fig, path)
