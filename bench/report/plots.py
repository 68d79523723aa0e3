"""The general plots (latency distribution, latency under load, time per hop) and the helpers every plot shares.

A plot is a :class:`~bench.report.sections.Figure`: a file name under
``plots/``, a caption, and a function that draws it. Studies draw their own
plots with the helpers here (:func:`placeholder`, :func:`save`,
:func:`plain_log`, the colours) so that every figure looks alike.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from bench.report import archs  # noqa: E402
from bench.formats import number, significant  # noqa: E402
from bench.report.runs import (HOPS, NO_HDR, Run, absent_labels, labels, load_series,  # noqa: E402
                               reference_p50, run_order)
from bench.report.sections import Context, Figure  # noqa: E402

DPI = 120
SERVICE_COLORS = {"nginx": "#4c72b0", "frontend": "#dd8452", "backend": "#55a868", "client": "#bbbbbb"}
HOP_COLORS = dict(zip(HOPS, plt.get_cmap("Set2").colors))  # not the arch colours: a different legend
STUDY_COLOR = "#888888"
CODEC_LINES = {"json": "-", "b64": "-.", "raw": "--", "npy": ":"}  # one colour per arch, one line per codec
GREY_TEXT = "#555555"


# --------------------------------------------------------------------------- helpers

def placeholder(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color=GREY_TEXT,
            wrap=True, bbox={"boxstyle": "round", "fc": "#f4f4f4", "ec": "#cccccc"})
    ax.set_xticks([])
    ax.set_yticks([])


def save(fig, path: Path, dpi: int = DPI, tight: bool = False) -> Path:
    """Write ``fig`` to ``path`` and free it; ``tight``: lay it out first (a figure without a layout engine)."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def median_line(ax, cells: list, x: str, y: str, color: str, ls: str) -> list:
    """One line of medians with min-max error bars: each cell's ``x`` against its Spread ``y`` (cells without it are
    left out); returns the x values drawn."""
    pts = sorted(((getattr(c, x), getattr(c, y)) for c in cells if getattr(c, y) is not None), key=lambda p: p[0])
    if not pts:
        return []
    ax.errorbar([p[0] for p in pts], [s.median for _, s in pts],
                yerr=[[s.median - s.lo for _, s in pts], [s.hi - s.median for _, s in pts]],
                color=color, ls=ls, marker="o", ms=4, lw=1.6, capsize=3)
    return [p[0] for p in pts]


def plain_log(axis) -> None:
    """Log-scale ticks as plain numbers (2, 5, 10, not 2x10^0), denser when the range is narrow."""
    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 3
    if decades < 0.5:
        subs = tuple(float(k) for k in range(1, 10))
    elif decades < 1.2:
        subs = (1.0, 2.0, 3.0, 5.0)
    else:
        subs = (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    axis.set_minor_formatter(NullFormatter())


def wrap_label(label: str) -> str:
    return label.replace(" (", "\n(")


def reference_label(ref: float) -> str:
    return f"in-process reference p50 {significant(ref, ' ms')}"


def latency_gaps(ctx: Context) -> list[tuple[str, str]]:
    """(label, why) for what the latency distribution cannot draw: the architectures whose comparison runs
    have no committed distribution, and those with no comparison run (measured elsewhere, or not at all).
    An architecture drawn from one codec or runtime is not listed again for another (the page's notes name
    every run left out)."""
    drawn = {r.arch for r in ctx.drawn}
    lacking = [r for r in ctx.selected if r.arch not in drawn]
    names = labels(lacking)
    return [(names[r.run_id], NO_HDR) for r in lacking] + absent_labels(ctx.drawn + lacking, ctx.runs)


def hop_gaps(ctx: Context, measured: list[Run]) -> list[tuple[str, str]]:
    """(label, why) for the rows of the hop plot that have no bars."""
    names = labels(ctx.selected)
    return [(names[r.run_id], "no hop timings recorded in this run") for r in ctx.selected if r not in measured] \
        + absent_labels(ctx.selected, ctx.runs)


def gap_lines(gaps: list[tuple[str, str]]) -> str:
    return "\n".join(f"{label}: {why}" for label, why in gaps)


# --------------------------------------------------------------------------- the general plots

def plot_latency(ctx: Context, path: Path) -> Path:
    gaps = latency_gaps(ctx)
    legend_rows = math.ceil((len(ctx.drawn) + len(gaps) + 1) / 2)
    fig, (cdf, tail) = plt.subplots(1, 2, figsize=(15, 4.2 + 0.2 * legend_rows), layout="constrained")
    names = labels(ctx.drawn)
    drawn = []
    for run in ctx.drawn:
        lat = ctx.latencies[run.run_id]
        lat = np.sort(lat)
        share = np.arange(1, lat.size + 1) / lat.size * 100
        p50, p99 = np.percentile(lat, [50, 99])
        repeats = len(ctx.latency_runs.get(run.run_id) or [run])
        label = (f"{names[run.run_id]}: p50 {significant(p50, ' ms')}, p99 {significant(p99, ' ms')}, "
                 f"n={lat.size:,} requests, " + (f"{repeats} repeats pooled" if repeats > 1 else "one run"))
        color = archs.color(run.arch)
        cdf.step(lat, share, where="post", color=color, label=label)
        tail.step(lat, 100 - share + 100 / lat.size, where="post", color=color, label=label)
        drawn.append(run)
    if not drawn:
        cdf.remove()
        tail.remove()
        ax = fig.add_subplot(1, 1, 1)
        what = "no comparison run has a latency distribution to draw" if ctx.selected else \
            "no bench run with latency.hdr yet (make bench ARCH=...)"
        placeholder(ax, what + ("\n\n" + gap_lines(gaps) if gaps else ""))
    else:
        ref = reference_p50(ctx.reference)
        for ax in (cdf, tail):
            if ref:
                ax.axvline(ref, color="black", ls="--", lw=1.2, label=reference_label(ref))
            ax.set_xscale("log")
            plain_log(ax.xaxis)
            ax.set_xlabel("request latency (ms, log scale)")
            ax.grid(True, which="both", alpha=0.3)
        cdf.set_ylabel("requests at or below this latency (%)")
        cdf.set_ylim(0, 100)
        cdf.axhline(50, color="#999999", lw=0.6)
        cdf.set_title("Distribution (ECDF) of per-request latency", fontsize=11)
        tail.set_yscale("log")
        plain_log(tail.yaxis)
        tail.set_ylabel("requests at or above this latency (%, log scale)")
        tail.axhline(1, color="#999999", lw=0.6)
        tail.set_title("The slow tail (1 % line = p99)", fontsize=11)
        handles, texts = cdf.get_legend_handles_labels()
        # What is not drawn goes in the legend, without a line: over the plot it would hide the tails.
        for label, why in gaps:
            handles.append(Line2D([], [], color="none"))
            texts.append(f"not drawn: {label}: {'no latency.hdr committed' if why == NO_HDR else why}")
        legend = fig.legend(handles, texts, loc="outside lower center", ncol=2, fontsize=9)
        for text in legend.get_texts()[len(texts) - len(gaps):]:
            text.set_color(GREY_TEXT)
    fig.suptitle("Per-request latency at concurrency 1, batch 1: per architecture, runtime and codec, the "
                 "run with a committed distribution and the most images, its repeats pooled", fontsize=12)
    return save(fig, path)


def plot_load(ctx: Context, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.4), layout="constrained")
    legend: dict[str, object] = {}  # one legend for both panels: label -> handle
    ref = reference_p50(ctx.reference)
    hints = {"concurrency": "make bench ARCH=... CONCURRENCY=4", "rate": "make bench ARCH=... RATE=100"}
    for ax, by, xlabel in ((axes[0], "concurrency", "concurrent requests in flight (closed loop)"),
                           (axes[1], "rate", "offered rate (requests/s, open loop)")):
        series = load_series(ctx.runs, by)
        if not series:
            placeholder(ax, f"no data yet: no run varies {by}\n(e.g. {hints[by]})")
            ax.set_title(f"Latency versus {by}", fontsize=11)
            continue
        first = {key: next(iter(pts.values())) for key, pts in series.items()}
        names = labels(list(first.values()))
        markers = iter("osD^vP*X" * 4)
        xs_all = []
        for key, pts in sorted(series.items(), key=lambda kv: run_order(first[kv[0]])):
            xs = sorted(pts)
            xs_all += xs
            color = archs.color(key[0])
            marker = next(markers)
            p50 = [number(pts[x].get("latency_ms", "p50")) for x in xs]
            p99 = [number(pts[x].get("latency_ms", "p99")) for x in xs]
            ax.plot(xs, [np.nan if v is None else v for v in p50], marker=marker, color=color, ls="-",
                    label=names[first[key].run_id])
            ax.plot(xs, [np.nan if v is None else v for v in p99], marker=marker, color=color, ls="--",
                    mfc="none")
        if ref:
            ax.axhline(ref, color="black", ls=":", lw=1.2)
        ax.set_yscale("log")
        plain_log(ax.yaxis)
        if max(xs_all) / max(min(xs_all), 1e-9) >= 8:
            ax.set_xscale("log", base=2 if by == "concurrency" else 10)
            if by == "rate":
                plain_log(ax.xaxis)
        if by == "concurrency":
            ax.set_xticks(sorted(set(xs_all)), [f"{x:g}" for x in sorted(set(xs_all))])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("latency (ms, log scale)")
        ax.set_title(f"Latency versus {by}", fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
        if len(set(xs_all)) == 1:
            ax.text(0.02, 0.98, f"only {by} {xs_all[0]:g} measured so far\n(e.g. {hints[by]})",
                    transform=ax.transAxes, ha="left", va="top", fontsize=9, color=GREY_TEXT)
    if legend:
        style = [Line2D([], [], color="black", ls="-", marker="o", label="p50 (filled, solid)"),
                 Line2D([], [], color="black", ls="--", marker="o", mfc="none", label="p99 (hollow, dashed)")]
        if ref:
            style.append(Line2D([], [], color="black", ls=":", label=reference_label(ref)))
        handles = list(legend.values()) + style
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=9)
    fig.suptitle("Latency under load, one image a request: the newest complete run per architecture and load level "
                 "(one run per point)", fontsize=13)
    return save(fig, path)


def plot_hops(ctx: Context, path: Path) -> Path:
    names = labels(ctx.selected)
    measured: list[Run] = [r for r in ctx.selected if isinstance(r.get("hops_ms"), dict) and r.get("hops_ms")]
    gaps = hop_gaps(ctx, measured)
    rows = [(names[r.run_id], r) for r in measured] + [(label, why) for label, why in gaps]
    fig, ax = plt.subplots(figsize=(13, 1.2 + 0.75 * max(len(rows), 2)), layout="constrained")
    if not measured:
        placeholder(ax, "no bench run with hop timings yet (make bench ARCH=...)")
        ax.set_title("Where the time goes per hop", fontsize=11)
        return save(fig, path)
    ref = reference_p50(ctx.reference)
    right = 0.0
    for i, (_, run) in enumerate(rows):
        if isinstance(run, str):  # why the row has no bars
            ax.text(0, i, "  " + run, va="center", fontsize=9, color=GREY_TEXT)
            continue
        left = 0.0
        for hop in HOPS:
            v = number(run.get("hops_ms", hop))
            if v:
                ax.barh(i, v, 0.6, left=left, color=HOP_COLORS[hop])
                left += v
        p50 = number(run.get("latency_ms", "p50"))
        text = f"hops {left:.2f} ms"
        if p50:
            ax.plot([p50], [i], marker="D", color="black", ms=6, ls="none")
            text += f" · end-to-end p50 {p50:.2f} ms"
        ax.annotate(text, (max(left, p50 or 0), i), xytext=(6, 0), textcoords="offset points", va="center",
                    fontsize=9)
        right = max(right, left, p50 or 0)
    if ref:
        ax.axvline(ref, color="black", ls=":", lw=1.2)
    ax.set_xlim(0, (right or 1.0) * 1.45)
    ax.set_yticks(range(len(rows)), [wrap_label(r[0]) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first arch on top
    ax.set_xlabel("median time per request (ms)")
    ax.set_ylabel("architecture")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=HOP_COLORS[h], label=lbl) for h, lbl in HOPS.items()]
    handles.append(Line2D([], [], marker="D", color="black", ls="none", label="end-to-end p50 (client)"))
    if ref:
        handles.append(Line2D([], [], color="black", ls=":", label=reference_label(ref)))
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=9)
    ax.set_title("Where the time goes: median per hop over one run's requests, stacked (one run per row; "
                 "medians need not add up to the p50)", fontsize=11)
    return save(fig, path)


def figures(ctx: Context) -> list[Figure]:
    """The general plots, in page order."""
    return [
        Figure("latency", "latency_distribution.png",
               "Per-request latency distribution (from each run's committed latency.hdr; a run's repeats pooled, "
               "their count in the legend), with the in-process reference.",
               lambda path: plot_latency(ctx, path)),
        Figure("load", "latency_vs_load.png", "p50 and p99 latency versus concurrency and versus offered rate.",
               lambda path: plot_load(ctx, path)),
        Figure("hops", "hops.png", "Median time per hop of one request, per architecture.",
               lambda path: plot_hops(ctx, path)),
    ]
