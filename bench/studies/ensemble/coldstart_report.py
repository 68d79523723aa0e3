"""The ensemble section's cold starts: the newest ``ensemble-coldstart`` record of each mode as a table, a
paragraph, a figure and the README's block (:mod:`.report` places them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.formats import significant
from bench.report.runs import Run
from bench.report.sections import Context
from bench.report.tables import missing, table
from bench.studies.ensemble import coldstart
from bench.studies.ensemble.experiments import MEMBERS, STUDY
from bench.studies.ensemble.repeats import short, text


def coldstart_runs(ctx: Context) -> dict[str, Run]:
    """mode (serial, parallel) -> its newest ensemble-coldstart record."""
    out = {}
    for run in ctx.runs:
        if run.kind == "ensemble-coldstart" and run.record.study == STUDY and not run.interrupted:
            out[run.get("label")] = run
    return {m: out[m] for m in ("serial", "parallel") if m in out}


def coldstart_table(runs: dict[str, Run]):
    rows = []
    for mode, run in runs.items():
        cold, warm = run.get("cold", default={}), run.get("warm", default={})
        c, w = cold.get("latency_ms"), warm.get("latency_ms")
        starts = cold.get("start_ms") or {}
        waited = cold.get("start_sum_ms" if mode == "serial" else "start_max_ms")
        rows.append([mode, short(c), c["n"] if c else 0, short(w), w["n"] if w else 0,
                     significant(c["median"] - w["median"]) if c and w else missing(),
                     *[short(starts.get(m)) for m in MEMBERS],
                     short(waited), f"{cold.get('correct', 0)}/{cold.get('ok', 0)}"])
    if not rows:
        rows.append([missing("no ensemble-coldstart record yet"), *[""] * (8 + len(MEMBERS))])
    return table(["mode", "cold request (ms, median, min–max)", "cold n", "warm request (ms)", "warm n",
                  "cold − warm (ms, medians)", *[f"{m} start (ms)" for m in MEMBERS],
                  "starts waited for (serial: their sum; parallel: the longest)", "cold answers correct"], rows)


def coldstart_text(runs: dict[str, Run]) -> str:
    idle = next((r.get("idle_s") for r in runs.values()), coldstart.IDLE_S)
    batch = next((r.get("batch") for r in runs.values()), coldstart.BATCH)
    return (f"SB_ENSEMBLE_IDLE_S = {idle:g} s: the coordinator stops a member function idle that long (its process, "
            "by PID, through the native runtime) and the next request that needs it starts it again (launch to "
            "healthy in its cgroup, its health polled every 0.2 s) and pays the start, as a Lambda cold start. "
            f"One request at batch {batch} after all three were stopped (cold), then requests straight after "
            "(warm), through nginx. Serially the members start one after another as the coordinator reaches "
            "them, in parallel all three at once on the same 2 cores. The study prints no cold-start figures, "
            "so these stand alone.")


def plot_coldstart(runs: dict[str, Run], path: Path) -> Path:
    from bench.report import plots

    plt = plots.plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = {"serial": "tab:olive", "parallel": "tab:cyan"}
    ticks = []
    for i, (mode, run) in enumerate(runs.items()):
        for j, kind in enumerate(("cold", "warm")):
            xs = [s["latency_ms"] for s in run.get("samples", kind, default=[]) if s.get("status") == 200]
            x = 2 * i + j
            ticks.append((x, f"{mode}\n{kind} (n={len(xs)})"))
            if xs:
                jitter = np.linspace(-0.15, 0.15, len(xs)) if len(xs) > 1 else [0.0]
                ax.scatter(x + np.asarray(jitter), xs, color=colors.get(mode, "grey"), alpha=0.8,
                           marker="o" if kind == "cold" else ".")
                ax.hlines(float(np.median(xs)), x - 0.3, x + 0.3, color="black", lw=1.5)
    if ticks:
        ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks], fontsize=8)
        ax.set_yscale("log")
        plots.plain_log(ax.yaxis)
    else:
        plots.placeholder(ax, "no cold-start runs yet: make study STUDY=ensemble")
    ax.set_ylabel("latency of one request (ms)")
    ax.set_title("Cold (members scaled to zero) against warm requests; bar: median")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return plots.save(fig, path)


def coldstart_readme(ctx: Context) -> str:
    runs = coldstart_runs(ctx)
    if not runs:
        return "Cold starts: not measured yet (make study STUDY=ensemble)."
    parts = []
    for mode, r in runs.items():
        cold, warm = r.get("cold", default={}), r.get("warm", default={})
        waited = cold.get("start_sum_ms" if mode == "serial" else "start_max_ms")
        parts.append(f"**{mode}**: cold {text(cold.get('latency_ms'), 'ms', 'cold requests')}, warm "
                     f"{text(warm.get('latency_ms'), 'ms', 'warm requests')}; the cold request waited "
                     f"{text(waited, 'ms', 'cold requests')} for member starts "
                     f"({'their sum' if mode == 'serial' else 'the longest of the three, started at once'})")
    first = next(iter(runs.values()))
    n_cold = (first.get("cold", "latency_ms") or {}).get("n", 0)
    n_warm = (first.get("warm", "latency_ms") or {}).get("n", 0)
    return (f"Per-request cold starts (`SB_ENSEMBLE_IDLE_S={first.get('idle_s'):g}`, batch {first.get('batch')}, "
            f"through nginx; n={n_cold} cold and n={n_warm} warm requests per mode; the study prints no cold-start "
            "figures): " + "; ".join(parts) + ".")
