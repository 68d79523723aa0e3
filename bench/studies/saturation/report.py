"""The saturation study's section: throughput against latency and load, batching off and on, the machine's
in-process limit, where one image's CPU goes, the issue's goals, and the outside tools' cross-checks.

Built from the newest complete ``sweep`` run of each architecture
(:mod:`bench.sweep`), the newest complete ``model-curve`` run
(:func:`bench.reference.measure_curve`) and every ``crosscheck`` record. Every
verdict is computed from the numbers shown beside it; where a number is missing
the row says "not measured".
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.formats import number, significant
from bench.report import archs
from bench.report.docs import dataset_note
from bench.report.runs import Run, dig
from bench.report.sections import Context, Figure, Heading, Section, Text
from bench.report.tables import NOT_MEASURED, Cell, Table, missing, table
from bench.studies.saturation import headline
from bench.studies.saturation.figures import (PLOTS, plot_concurrency, plot_cpu_budget, plot_model_curve,
                                              plot_throughput_latency)
from bench.studies.saturation.measured import (GOALS, MET, MODES, NOT_MET, ROLES, TRITON, batching_rows, curve_run,
                                               efficiency_rows, goal_rows, is_python, label, limit_of, p50_c1_rows,
                                               sweep_runs, triton_rows)

# Where the section's parts live now, still reachable here (the report's tests read them from this module).
__all__ = ["section", "PLOTS", "GOALS", "sweep_runs", "curve_run", "is_python", "goal_rows", "triton_rows"]

STUDY = "saturation"
METRICS_FILE = Path(__file__).resolve().parents[3] / "models" / "cifar10_cnn.metrics.json"


def verdict(ok: bool | None) -> Cell:
    if ok is None:
        return missing()
    return Cell(MET) if ok else Cell(NOT_MET, cls="bad")


# --------------------------------------------------------------------------- captions

def model_accuracy() -> float | None:
    try:
        return number(json.loads(METRICS_FILE.read_text()).get("test_accuracy"))
    except (OSError, ValueError, AttributeError):
        return None


def source_caption(sweeps: dict[str, Run], curve: Run | None) -> str:
    """Where a figure's numbers come from: runs, machine, versions, settings."""
    if not sweeps and curve is None:
        return "No sweep or model curve yet."
    runs = list(sweeps.values()) + ([curve] if curve else [])
    machines = {(r.record.provenance.machine.get("cpu_model"), r.record.provenance.machine.get("logical_cpus"))
                for r in runs if r.record.provenance.machine}
    versions = runs[0].record.provenance.versions
    parts = [f"Runs: {', '.join(r.run_id for r in runs)} (results/<run>/summary.json"
             + (", levels.csv" if sweeps else "") + ")."]
    if machines:
        parts.append("Machine: " + "; ".join(f"{m or '?'}, {n or '?'} logical CPUs" for m, n in sorted(
            machines, key=str)) + ".")
    if versions:
        parts.append("Versions: " + ", ".join(f"{k} {versions[k]}" for k in ("python", "tensorflow", "nginx")
                                              if versions.get(k)) + ".")
    if sweeps:
        s = next(iter(sweeps.values())).settings
        tolerance = number(s.get("tolerance"))
        parts.append(f"Settings: {s.get('codec')} bodies, {s.get('batch')} image per request, windows of "
                     f"{s.get('window_s')} s, a level stable when {s.get('stable_windows')} consecutive windows agree "
                     f"within {f'{tolerance * 100:g}' if tolerance else '?'}% "
                     f"(throughput and p50); batching on = batch_max_size {s.get('batch_max_size')}, "
                     f"batch_timeout_ms {s.get('batch_timeout_ms')}; every stack's knobs are in its record (stacks).")
    acc = model_accuracy()
    if acc is not None:
        parts.append(f"Model: the trained CIFAR-10 CNN (test accuracy {acc:.1%}, models/cifar10_cnn.metrics.json). "
                     + dataset_note())
    return " ".join(parts)


# --------------------------------------------------------------------------- the section

def section(ctx: Context) -> Section:
    sweeps = sweep_runs(ctx.runs)
    curve = curve_run(ctx.runs)
    crosschecks = [r for r in ctx.runs if r.kind == "crosscheck"]
    caption = source_caption(sweeps, curve)
    table = headline.cells(ctx.runs)
    intro = ("Every architecture under rising load, one image per request through nginx, until it saturates: "
             "closed-loop concurrency and open-loop Poisson rates up to 1.1× the saturated throughput, each level "
             "measured in consecutive windows until three agree within 10% in throughput and p50 (perf_analyzer's "
             "rule, which uses the mean latency), batching off and on, each in its own stack (make sweep, "
             "bench/sweep.py). The in-process limit is the model alone at its best batch size "
             "(python -m bench.reference curve).")
    intro += " " + limit_text(ctx.runs, sweeps, curve)
    limit, bound = headline.limit_line(ctx.runs, sweeps, curve)
    if not sweeps:
        intro += f" No sweep yet: make sweep ARCH=embedded, or make study STUDY={STUDY}."
    top = headline.saturated_concurrency(table)
    blocks = [
        Text(intro),
        Heading("Architecture against architecture (repeated runs)"),
        Text(f"Each architecture in one stack per batching mode (the sweep's settings), raw bodies, one image per "
             f"request: bench runs at concurrency 1 and at {top or 'the saturated concurrency'} in flight, "
             f"repeated and alternating; every figure is the median of the repeats with their min–max "
             f"(make study STUDY={STUDY} SB_SATURATION_PARTS=curve,headline). Server efficiency: the model's own "
             f"CPU per image in process at the mean batch that ran, divided by the server side's CPU per image."),
        headline_table(table),
        Heading("Goals" + (f", judged on {headline.medians_of(c.throughput for c in table.values())}"
                           if table else " (one sweep run per architecture)")),
        goals_table(sweeps, table),
        Heading("Saturated throughput, batching off and on (one sweep run per architecture)"),
        batching_table(sweeps),
        Heading("Where one image's CPU goes, at saturation (one sweep run per architecture)"),
        Text("Server efficiency: the model's own CPU per image at the batch size that ran (from the in-process "
             "curve, averaged over the requests) divided by the server side's CPU per image (nginx + front end + "
             "backend). The load generator's CPU is shown apart and is never in the total. Served fraction: "
             "throughput ÷ in-process limit."),
        efficiency_table(sweeps),
        Heading("Latency at concurrency 1, batching on against off (one sweep run per architecture)"),
        p50_table(sweeps),
        Heading("Best Python stack against Triton at every sweep level (one sweep run per architecture)"),
        triton_table(sweeps),
        Figure("saturation_latency", PLOTS["latency"],
               "Throughput against latency (p50 left, p99 right; closed loop top, open loop bottom); batching off "
               "dashed, on solid; hollow markers: unstable levels; the in-process limit as a vertical line. "
               + caption, lambda path: plot_throughput_latency(sweeps, limit, bound, path)),
        Figure("saturation_concurrency", PLOTS["concurrency"],
               "Throughput and p50 against closed-loop concurrency; batching off dashed, on solid; the in-process "
               "limit as a horizontal line. " + caption,
               lambda path: plot_concurrency(sweeps, limit, bound, path)),
        Figure("saturation_cpu", PLOTS["cpu"],
               "CPU per image at saturation, per architecture and batching mode: server services stacked (nginx, "
               "front end, backend), the load generator apart (hatched), and the model's own in-process CPU per "
               "image at the batch size that ran (black bar). " + caption,
               lambda path: plot_cpu_budget(sweeps, path)),
        Figure("saturation_curve", PLOTS["curve"],
               "The model alone, in process: images/s and CPU per image at each batch size, per intra-op thread "
               "count; the newest of the curve's runs. " + source_caption({}, curve), lambda path: plot_model_curve(curve, path)),
        Heading("Cross-checks by outside tools (one run per architecture)"),
        Text("perf_analyzer (Triton's C++ load generator), wrk and MLPerf LoadGen driving the same stack: their "
             "figures beside ours, p50 and throughput within 10% or an explanation (records of kind crosscheck, "
             "make crosscheck)."),
        *crosscheck_tables(crosschecks),
        sweeps_table(sweeps, curve),
    ]
    return Section("Saturated throughput: batching, Triton and the machine's limit", blocks)


# --------------------------------------------------------------------------- tables

def limit_text(runs: list[Run], sweeps: dict[str, Run], curve: Run | None) -> str:
    """The machine's in-process limit: over the curve's repeats, else the one run a sweep carries."""
    fig = headline.curve_figures(runs)
    if fig:
        bound = fig["bound"]
        return (f"Limit here: {fig['limit'].text(unit=' images/s')} (runs {', '.join(r.run_id for r in fig['runs'])})"
                + (f"; every core running the model at its cheapest would do {bound.text(unit=' images/s')}."
                   if bound else "."))
    limit, bound, limit_run = limit_of(sweeps, curve)
    if not limit:
        return ""
    return (f"Limit here: {significant(limit)} images/s (one run, {limit_run})"
            + (f"; every core running the model at its cheapest would do {significant(bound)}." if bound else "."))


def goals_table(sweeps: dict[str, Run], cells: dict | None = None) -> Table:
    """The goals judged on the medians of the headline repeats where they exist, else on the sweeps."""
    rows = headline.goal_rows(cells or {}) or goal_rows(sweeps)
    return table(["goal", "target", "measured", "verdict"],
                 [[g["goal"], g["target"], g["measured"] if g["measured"] else missing(), verdict(g["ok"])]
                  for g in rows])


def headline_table(cells: dict) -> Table | Text:
    if not cells:
        return Text(f"{NOT_MEASURED}: no repeated headline run yet (make study STUDY={STUDY} "
                    f"SB_SATURATION_PARTS=headline).")

    def show(spread, fmt=significant):
        return spread.cell(fmt) if spread else missing()

    rows = []
    for (arch, mode, c), cell in cells.items():
        rows.append([archs.title(arch), mode, c, cell.n, show(cell.p50), show(cell.p99), show(cell.throughput),
                     show(cell.server_cpu), show(cell.efficiency, lambda x: f"{x:.0%}"), show(cell.client_cpu),
                     Cell(", ".join(r.run_id for r in cell.runs), cls="small")])
    return table(["architecture", "batching", "concurrency", "repeats (n)", "p50 (ms), median (min–max)",
                  "p99 (ms)", "images/s", "server CPU ms per image", "server efficiency",
                  "load generator CPU ms per image (apart)", "runs"], rows)


def _at(sat: dict | None) -> Cell | str | None:
    if not sat:
        return missing()
    return (f"{significant(number(sat.get('throughput_images_per_s')))} at concurrency {sat.get('concurrency')}"
            + ("" if sat.get("stable") else " (unstable)"))


def batching_table(sweeps: dict[str, Run]) -> Table:
    rows = []
    for r in batching_rows(sweeps):
        goal = GOALS["batching_python"] if r["python"] else None
        rows.append([label(r["run"], sweeps), _at(r["off"]), _at(r["on"]),
                     Cell(f"{r['ratio']:.3f}×") if r["ratio"] else missing(),
                     f"≥ {goal}×" if goal else "–",
                     verdict(r["ratio"] >= goal if r["ratio"] and goal else None) if goal else "–",
                     r["run"].run_id])
    return table(["architecture", "batching off (images/s)", "batching on (images/s)", "on ÷ off",
                  "goal (Python)", "verdict", "run"], rows)


def efficiency_table(sweeps: dict[str, Run]) -> Table:
    rows = []
    for r in efficiency_rows(sweeps):
        goal = GOALS["efficiency_python"] if is_python(r["arch"]) else None
        eff = r["efficiency"]
        rows.append([label(r["run"], sweeps), r["mode"], r["codec"], r["sat"].get("concurrency"), r["batch"],
                     *(r["roles"][role] or None for role in ROLES), r["server"], r["model"],
                     Cell(f"{eff:.0%}") if eff else missing(),
                     verdict(eff >= goal if eff and r["codec"] == "raw" else None) if goal and r["mode"] == "on"
                     else "–",
                     r["client"], Cell(f"{r['served']:.0%}") if r["served"] else missing()])
    return table(["architecture", "batching", "codec", "concurrency", "batch that ran (mean)",
                  "nginx (CPU ms/image)", "front end", "backend", "server total", "model in process",
                  "server efficiency", f"goal ≥ {GOALS['efficiency_python']:.0%} (Python, on, raw)",
                  "load generator (apart)", "served fraction of the limit"], rows)


def p50_table(sweeps: dict[str, Run]) -> Table:
    rows = [[archs.title(r["arch"]), r["off"], r["on"],
             Cell(f"{r['diff']:+.2f} ms") if r["diff"] is not None else missing(),
             verdict(r["diff"] <= GOALS["p50_c1_ms"] if r["diff"] is not None else None)]
            for r in p50_c1_rows(sweeps)]
    return table(["architecture", "p50 off (ms)", "p50 on (ms)", "on − off", f"goal ≤ +{GOALS['p50_c1_ms']} ms"],
                 rows)


def triton_table(sweeps: dict[str, Run]) -> Table | Text:
    rows = triton_rows(sweeps)
    if not rows:
        why = "no Triton sweep" if TRITON not in sweeps else "no concurrency measured by both"
        return Text(f"{NOT_MEASURED}: {why} (make sweep ARCH=triton, which needs make setup-triton).")
    return table(["batching", "concurrency", "best Python stack", "its images/s", "Triton images/s",
                  "Python ÷ Triton", "goal ≥ 1×"],
                 [[r["mode"], r["concurrency"], archs.title(r["arch"]), r["python"], r["triton"],
                   Cell(f"{r['ratio']:.2f}×"), verdict(r["ratio"] >= GOALS["python_vs_triton"])] for r in rows])


TOOL_FIELDS = ("tool", "scenario", "concurrency", "target_qps", "requests", "throughput", "p50_ms", "p90_ms",
               "p99_ms", "valid", "stable", "client_cpu_ms_per_request", "note")
AGREEMENT_FIELDS = ("concurrency", "tool", "ours_p50_ms", "tool_p50_ms", "diff_pct", "within_10pct", "ours_throughput",
                    "tool_throughput", "throughput_diff_pct", "explanation")
SHARE_FIELDS = ("scenario", "ours_p50_ms", "perf_analyzer_p50_ms", "share_ms", "share_pct")


def crosscheck_tables(crosschecks: list[Run]) -> list:
    if not crosschecks:
        return [Text(f"{NOT_MEASURED}: no crosscheck record yet (make crosscheck ARCH=...).")]
    tools, agreement, shares = [], [], []
    for run in crosschecks:
        where = [archs.title(run.arch), run.run_id]
        for t in run.get("tools", default=[]) or []:
            if isinstance(t, dict):
                tools.append([*where, *(_cell(t.get(k)) for k in TOOL_FIELDS)])
        for a in run.get("agreement", default=[]) or []:
            if isinstance(a, dict):
                ok = a.get("within_10pct")
                row = [_cell(a.get(k)) for k in AGREEMENT_FIELDS]
                row[AGREEMENT_FIELDS.index("within_10pct")] = verdict(ok) if isinstance(ok, bool) else missing()
                agreement.append([*where, *row])
        for c in run.get("client_share", default=[]) or []:
            if isinstance(c, dict):
                shares.append([*where, *(_cell(c.get(k)) for k in SHARE_FIELDS)])
    out = [table(["architecture", "run", "tool", "scenario", "concurrency", "target QPS", "requests", "images/s",
                  "p50 (ms)", "p90 (ms)", "p99 (ms)", "valid", "stable", "client CPU ms/request", "note"], tools)]
    if agreement:
        out.append(table(["architecture", "run", "concurrency", "tool", "our p50 (ms)", "its p50 (ms)", "diff %",
                          "p50 within 10%", "our images/s", "its images/s", "images/s diff %", "explanation"],
                         agreement))
    if shares:
        out.append(Text("The harness's own error, the client share of latency at concurrency 1: our p50 minus "
                        "perf_analyzer's on the same path, in the same run (one run per architecture)."))
        out.append(table(["architecture", "run", "path", "our p50 (ms)", "perf_analyzer p50 (ms)", "client share (ms)",
                          "share of our p50 %"], shares))
    return out


def _cell(value):
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    return str(value)


def sweeps_table(sweeps: dict[str, Run], curve: Run | None) -> Table:
    rows = []
    for arch, run in sweeps.items():
        stacks = run.get("stacks", default={}) or {}
        knobs = {m: dig(stacks, m, "knobs") or {} for m in MODES}
        shown = ", ".join(f"{m}: {k.get('SB_BATCH_MAX_SIZE', '?')}/{k.get('SB_BATCH_TIMEOUT_MS', '?')} ms"
                          for m, k in knobs.items() if k)
        rows.append([archs.title(arch), run.run_id, run.runtime, run.get("client"), run.codec,
                     Cell(shown or "–", cls="small"), run.created or "–"])
    if curve is not None:
        rows.append(["model curve", curve.run_id, "in process", "–", "–",
                     Cell(f"threads {curve.settings.get('threads')}", cls="small"), curve.created or "–"])
    return table(["architecture", "run", "runtime", "client", "codec", "batching (max size / timeout)", "created"],
                 rows)


