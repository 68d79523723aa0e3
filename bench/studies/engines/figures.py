"""The engines study's figure: the in-process curve per engine (medians of the repeats, min–max as bars)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench.report import plots
from bench.report.runs import Run
from bench.studies.engines.measured import curve_points, name_of

PLOT = "engines_curve.png"


def plot_curves(runs: list[Run], path: Path) -> Path:
    """images/s against batch size, one panel per intra-op thread count, one line per engine."""
    points = curve_points(runs)
    threads = sorted({t for (_, t, _) in points}) or [1]
    fig, axes = plt.subplots(1, len(threads), figsize=(7 * len(threads), 5.2), layout="constrained", squeeze=False)
    if not points:
        plots.placeholder(axes[0][0], "no engine curve yet\n(make study STUDY=engines)")
        return plots.save(fig, path)
    engines = list(dict.fromkeys(v for (v, _, _) in points))
    for ax, t in zip(axes[0], threads):
        sizes = sorted({b for (_, tt, b) in points if tt == t})
        for v, marker in zip(engines, "osD^v<>p"):
            found = [(b, points[(v, t, b)].images_per_s) for b in sizes if (v, t, b) in points
                     and points[(v, t, b)].images_per_s]
            if not found:
                continue
            b = [x for x, _ in found]
            med = [s.median for _, s in found]
            err = [[s.median - s.lo for _, s in found], [s.hi - s.median for _, s in found]]
            ax.errorbar(b, med, yerr=err, marker=marker, capsize=3, label=name_of(v))
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"{x:g}" for x in sizes])
        ax.set_xlabel("images per model call (batch size)")
        ax.set_ylabel("images/s (median of the repeats, min–max)")
        ax.set_title(f"{t} intra-op thread{'s' if t != 1 else ''}", fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=9)
    fig.suptitle("The model alone on each engine, in process", fontsize=13)
    return plots.save(fig, path)
