"""The saturation study's plots: throughput against latency, against concurrency, the CPU budget of one image,
and the in-process model curve (each drawn from the runs :mod:`bench.studies.saturation.measured` picks)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.formats import number, significant
from bench.report import archs, plots
from bench.report.runs import Run
from bench.studies.saturation.measured import MODES, ROLES, efficiency_rows, label, levels

MODE_LINES = {"off": "--", "on": "-"}  # batching off dashed, on solid
PLOTS = {"latency": "saturation_throughput_latency.png", "concurrency": "saturation_concurrency.png",
         "cpu": "saturation_cpu_budget.png", "curve": "saturation_model_curve.png"}

def _limit_lines(ax, limit: float | None, bound: float | None, vertical: bool) -> list:
    handles = []
    line = ax.axvline if vertical else ax.axhline
    if limit:
        line(limit, color="black", ls=":", lw=1.4)
        handles.append(Line2D([], [], color="black", ls=":", label=f"in-process limit {significant(limit)} images/s"))
    if bound:
        line(bound, color="#888888", ls="-.", lw=1.0)
        handles.append(Line2D([], [], color="#888888", ls="-.",
                              label=f"every core on the model: {significant(bound)} images/s"))
    return handles


def _style_handles(sweeps: dict[str, Run]) -> list:
    handles = [Line2D([], [], color=archs.color(a), lw=2, label=label(r, sweeps)) for a, r in sweeps.items()]
    handles += [Line2D([], [], color="black", ls=MODE_LINES[m], label=f"batching {m}") for m in MODES]
    handles.append(Line2D([], [], color="black", ls="", marker="o", mfc="none", label="unstable level (hollow)"))
    return handles


def _points(lvs: list[dict], x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    pts = [(number(lv.get(x_key)), number(lv.get(y_key)), bool(lv.get("stable"))) for lv in lvs]
    pts = [p for p in pts if p[0] is not None and p[1] is not None]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts]), [p[2] for p in pts]


def _draw(ax, x, y, stable, color, ls) -> None:
    if not len(x):
        return
    ax.plot(x, y, color=color, ls=ls, lw=1.6)
    for xi, yi, ok in zip(x, y, stable):
        ax.plot([xi], [yi], marker="o", ms=5, color=color, mfc=color if ok else "none", ls="")


def plot_throughput_latency(sweeps: dict[str, Run], limit, bound, path: Path) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(15, 10), layout="constrained")
    if not sweeps:
        for ax in axes.flat:
            plots.placeholder(ax, "no sweep yet\n(make sweep ARCH=...)")
        return plots.save(fig, path)
    for row, kind, order_key in ((0, "closed", "concurrency"), (1, "open", "rate")):
        for col, stat in ((0, "p50_ms"), (1, "p99_ms")):
            ax = axes[row][col]
            drawn = False
            for arch, run in sweeps.items():
                for mode in MODES:
                    lvs = sorted(levels(run, mode, kind), key=lambda lv: number(lv.get(order_key)) or 0)
                    x, y, ok = _points(lvs, "throughput_images_per_s", stat)
                    _draw(ax, x, y, ok, archs.color(arch), MODE_LINES[mode])
                    drawn = drawn or bool(len(x))
            if not drawn:
                plots.placeholder(ax, f"no {kind}-loop level measured")
                continue
            _limit_lines(ax, limit, None, vertical=True)  # the CPU bound would squash the curves: in the text
            ax.set_yscale("log")
            plots.plain_log(ax.yaxis)
            ax.set_xlim(left=0)
            ax.set_xlabel("throughput (images/s)")
            ax.set_ylabel(f"{stat[:3]} latency (ms, log scale)")
            what = "closed loop (concurrency 1 → 64)" if kind == "closed" else "open loop (offered rate ↑)"
            ax.set_title(f"{stat[:3]}, {what}", fontsize=11)
            ax.grid(True, which="both", alpha=0.3)
    handles = _style_handles(sweeps)
    if limit:
        handles.append(Line2D([], [], color="black", ls=":", label=f"in-process limit {significant(limit)} images/s"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=9)
    fig.suptitle("Throughput against latency, one image per request through nginx", fontsize=13)
    return plots.save(fig, path)


def plot_concurrency(sweeps: dict[str, Run], limit, bound, path: Path) -> Path:
    fig, (thr, lat) = plt.subplots(1, 2, figsize=(15, 5.6), layout="constrained")
    if not sweeps:
        for ax in (thr, lat):
            plots.placeholder(ax, "no sweep yet\n(make sweep ARCH=...)")
        return plots.save(fig, path)
    xs_all: set = set()
    for arch, run in sweeps.items():
        for mode in MODES:
            lvs = sorted(levels(run, mode, "closed"), key=lambda lv: lv.get("concurrency") or 0)
            for ax, key in ((thr, "throughput_images_per_s"), (lat, "p50_ms")):
                x, y, ok = _points(lvs, "concurrency", key)
                _draw(ax, x, y, ok, archs.color(arch), MODE_LINES[mode])
                xs_all |= set(x.tolist())
    lim = _limit_lines(thr, limit, bound, vertical=False)
    for ax in (thr, lat):
        if xs_all:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(xs_all), [f"{x:g}" for x in sorted(xs_all)])
        ax.set_xlabel("requests in flight (closed-loop concurrency)")
        ax.grid(True, which="both", alpha=0.3)
    thr.set_ylim(bottom=0)
    thr.set_ylabel("throughput (images/s)")
    thr.set_title("Throughput", fontsize=11)
    lat.set_yscale("log")
    plots.plain_log(lat.yaxis)
    lat.set_ylabel("p50 latency (ms, log scale)")
    lat.set_title("p50 latency", fontsize=11)
    fig.legend(handles=_style_handles(sweeps) + lim, loc="outside lower center", ncol=4, fontsize=9)
    fig.suptitle("Closed loop: throughput and latency against concurrency", fontsize=13)
    return plots.save(fig, path)


def plot_cpu_budget(sweeps: dict[str, Run], path: Path) -> Path:
    rows = efficiency_rows(sweeps)
    fig, ax = plt.subplots(figsize=(max(11.0, 1.6 * len(rows) + 3), 6.5), layout="constrained")
    if not rows:
        plots.placeholder(ax, "no sweep yet\n(make sweep ARCH=...)")
        return plots.save(fig, path)
    width = 0.38
    top = 0.0
    for i, r in enumerate(rows):
        bottom = 0.0
        for role in ROLES:
            v = r["roles"][role]
            if v:
                ax.bar(i - width / 2, v, width, bottom=bottom, color=plots.SERVICE_COLORS[role])
                bottom += v
        text = f"{bottom:.2f}" + (f"\n{r['efficiency']:.0%} eff." if r["efficiency"] else "")
        ax.text(i - width / 2, bottom, text, ha="center", va="bottom", fontsize=8)
        if r["model"]:
            ax.plot([i - width, i], [r["model"], r["model"]], color="black", lw=2.5)
        if r["client"]:
            ax.bar(i + width / 2, r["client"], width, color=plots.SERVICE_COLORS["client"], hatch="//",
                   edgecolor="white")
            ax.text(i + width / 2, r["client"], f"{r['client']:.2f}", ha="center", va="bottom", fontsize=8,
                    color=plots.GREY_TEXT)
        top = max(top, bottom, r["client"] or 0, r["model"] or 0)
    ax.set_xticks(range(len(rows)), [f"{label(r['run'], sweeps)}\nbatching {r['mode']}\n"
                                     f"batch {significant(r['batch'])}" for r in rows], fontsize=9)
    ax.set_ylim(0, max(top, 0.1) * 1.25)
    ax.set_ylabel("CPU per image (ms)")
    ax.grid(True, axis="y", alpha=0.3)
    handles = [Patch(color=plots.SERVICE_COLORS[r], label=t) for r, t in (
        ("nginx", "nginx"), ("frontend", "front end (gunicorn + Django)"), ("backend", "model server"))]
    handles += [Patch(facecolor=plots.SERVICE_COLORS["client"], hatch="//", edgecolor="white",
                      label="load generator (apart, not in the total)"),
                Line2D([], [], color="black", lw=2.5, label="model alone, in process, at the batch that ran")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9)
    fig.suptitle("Where one image's CPU goes at saturation (total on top; server efficiency = black ÷ total)",
                 fontsize=12)
    return plots.save(fig, path)


def plot_model_curve(curve: Run | None, path: Path) -> Path:
    fig, (thr, cpu) = plt.subplots(1, 2, figsize=(14, 5.2), layout="constrained")
    curves = [c for c in (curve.get("curves", default=[]) if curve else []) or [] if isinstance(c, dict)]
    if not curves:
        for ax in (thr, cpu):
            plots.placeholder(ax, "no model curve yet\n(python -m bench.reference curve)")
        return plots.save(fig, path)
    sizes: set = set()
    for c, marker in zip(curves, "osD^v"):
        pts = sorted((p for p in c.get("points") or [] if isinstance(p, dict)), key=lambda p: p.get("batch", 0))
        b = [p.get("batch") for p in pts]
        sizes |= set(b)
        name = f"{c.get('intra_op_threads')} intra-op / {c.get('inter_op_threads')} inter-op threads"
        thr.plot(b, [p.get("images_per_s") for p in pts], marker=marker, label=name)
        cpu.plot(b, [p.get("cpu_ms_per_image") for p in pts], marker=marker, label=name)
    for ax in (thr, cpu):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(sizes), [f"{x:g}" for x in sorted(sizes)])
        ax.set_xlabel("images per model call (batch size)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=9)
        ax.set_ylim(bottom=0)
    thr.set_ylabel("images/s")
    thr.set_title("Throughput of the model alone", fontsize=11)
    cpu.set_ylabel("CPU ms per image (every thread of the process)")
    cpu.set_title("CPU per image: the efficiency's numerator", fontsize=11)
    fig.suptitle("The in-process model curve", fontsize=13)
    return plots.save(fig, path)
