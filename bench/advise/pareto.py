"""The latency-throughput Pareto front of the measured levels, with the SLO and the rate marked.

Every level of every configuration is a point (throughput, p99); a point is on
the front when no other level has both more throughput and a lower p99. The
front is drawn as a staircase (the best p99 at a throughput of at least x), the
configurations' own levels as faint lines.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D

from bench.advise.candidates import Configuration, Level
from bench.advise.ranking import Constraints, Point
from bench.formats import significant
from bench.report import archs, plots

plt = plots.plt
FILE = "pareto.png"


def front(levels: list[tuple[Configuration, Level]]) -> list[tuple[Configuration, Level]]:
    """The levels no other level beats on both throughput (more) and p99 (less), by throughput."""
    served = [(c, lv) for c, lv in levels if lv.served]
    out = []
    best_p99 = float("inf")
    for cfg, lv in sorted(served, key=lambda x: (-x[1].throughput, x[1].p99_ms)):
        if lv.p99_ms < best_p99:
            out.append((cfg, lv))
            best_p99 = lv.p99_ms
    return sorted(out, key=lambda x: x[1].throughput)


def draw(configs: list[Configuration], c: Constraints, ranked: list[Point], path: Path,
         limit: dict | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(11, 7), layout="constrained")
    levels = [(cfg, lv) for cfg in configs for lv in cfg.levels]
    if not levels:
        plots.placeholder(ax, "no measured levels\n(make study STUDY=saturation SB_SATURATION_PARTS=sweeps)")
        return plots.save(fig, path)
    seen_archs: dict[str, None] = {}
    for cfg in configs:
        pts = sorted((lv for lv in cfg.levels if lv.served), key=lambda lv: lv.throughput)
        if not pts:
            continue
        seen_archs[cfg.arch] = None
        ls = "-" if cfg.batching == "on" else "--"
        ax.plot([lv.throughput for lv in pts], [lv.p99_ms for lv in pts], color=archs.color(cfg.arch), ls=ls,
                lw=0.8, alpha=0.35, marker="o", ms=3)
    on_front = front(levels)
    # The best p99 at a throughput of at least x: each front level holds from the one before it up to itself.
    xs = [0.0] + [lv.throughput for _, lv in on_front]
    ys = [on_front[0][1].p99_ms] + [lv.p99_ms for _, lv in on_front]
    ax.step(xs, ys, where="pre", color="black", lw=2.2, zorder=4)
    for cfg, lv in on_front:
        ax.plot([lv.throughput], [lv.p99_ms], marker="o", ms=8, color=archs.color(cfg.arch), mec="black",
                zorder=5, ls="")
    ax.axhline(c.slo_p99_ms, color="tab:red", lw=1.5)
    ax.axvline(c.rate, color="tab:blue", lw=1.5, ls="-.")
    handles = [Line2D([], [], color="tab:red", label=f"SLO: p99 {significant(c.slo_p99_ms)} ms"),
               Line2D([], [], color="tab:blue", ls="-.", label=f"RATE {significant(c.rate)} images/s"),
               Line2D([], [], color="black", lw=2.2, marker="o", mec="black", label="Pareto front (all levels)")]
    if limit and limit.get("images_per_s"):
        ax.axvline(limit["images_per_s"], color="black", ls=":", lw=1.2)
        handles.append(Line2D([], [], color="black", ls=":",
                              label=f"in-process limit {significant(limit['images_per_s'])} images/s"))
    for i, p in enumerate(ranked[:3]):
        if p.level is not None:
            ax.plot([p.level.throughput], [p.level.p99_ms], marker="*", ms=20 - 4 * i, color="gold", mec="black",
                    zorder=6, ls="")
            ax.annotate(f"#{i + 1}", (p.level.throughput, p.level.p99_ms), textcoords="offset points",
                        xytext=(8, 6 + 10 * i), fontsize=10, weight="bold", zorder=7)
    if ranked:
        handles.append(Line2D([], [], color="gold", mec="black", marker="*", ls="", ms=14,
                              label="top picks: the level each rests on"))
    handles += [Line2D([], [], color=archs.color(a), lw=2, label=archs.title(a)) for a in seen_archs]
    handles += [Line2D([], [], color="grey", ls="-", label="batching on"),
                Line2D([], [], color="grey", ls="--", label="batching off")]
    ax.set_yscale("log")
    plots.plain_log(ax.yaxis)
    ax.set_xlabel("throughput (images/s)")
    ax.set_ylabel("p99 latency (ms, log)")
    ax.set_title(f"Measured levels: p99 against throughput (p99 {significant(c.slo_p99_ms)} ms at "
                 f"{significant(c.rate)} images/s asked)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(handles=handles, loc="lower right", fontsize=8, ncol=2, framealpha=0.9)
    return plots.save(fig, path)
