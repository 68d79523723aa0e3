"""The scale-out study's plot: images/s and p50 against concurrency for every architecture of the ladder,
batching off dashed and on solid, each point the median of its repeats with their min-max as an error bar."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from bench.report import archs, plots
from bench.studies.scale_out.measured import MODES, arches_of, ladder

PLOTS = {"ladder": "scale_out_ladder.png"}
MODE_LINES = {"off": "--", "on": "-"}


def plot_ladder(table: dict, path: Path) -> Path:
    fig, (thr, lat) = plt.subplots(1, 2, figsize=(14, 5.4), layout="constrained")
    if not table:
        for ax in (thr, lat):
            plots.placeholder(ax, "not measured yet\n(make study STUDY=scale-out)")
        return plots.save(fig, path)
    xs: set = set()
    for arch in arches_of(table):
        for mode in MODES:
            cells = list(ladder(table, arch, mode).values())
            for ax, attr in ((thr, "throughput"), (lat, "p50")):
                xs |= set(plots.median_line(ax, cells, "concurrency", attr, archs.color(arch), MODE_LINES[mode]))
    for ax, label in ((thr, "images/s (median of repeats)"), (lat, "p50 latency, ms (median of repeats)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(xs), [str(x) for x in sorted(xs)])
        ax.set_xlabel("requests in flight (closed loop)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    lat.set_yscale("log")
    handles = [Line2D([], [], color=archs.color(a), lw=2, label=archs.title(a)) for a in arches_of(table)]
    handles += [Line2D([], [], color="grey", ls=MODE_LINES[m], label=f"batching {m}") for m in MODES]
    thr.legend(handles=handles, fontsize=8, loc="upper left")
    thr.set_title("Throughput: raw bodies, one CIFAR-10 image per request")
    lat.set_title("Latency at each level")
    return plots.save(fig, path)
