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

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.formats import number, significant
from bench.report import archs, plots
from bench.report.runs import Run, dig
from bench.report.sections import Context, Figure, Heading, Section, Text
from bench.report.tables import NOT_MEASURED, Cell, Table, missing, table
from servebench import registry

STUDY = "saturation"
MODES = ("off", "on")
MODE_LINES = {"off": "--", "on": "-"}  # batching off dashed, on solid
TRITON = "triton"
NOT_PYTHON = ("triton", "tfserving")  # services that are not a Python server of ours
ROLES = ("nginx", "frontend", "backend")
METRICS_FILE = Path(__file__).resolve().parents[3] / "models" / "cifar10_cnn.metrics.json"
PLOTS = {"latency": "saturation_throughput_latency.png", "concurrency": "saturation_concurrency.png",
         "cpu": "saturation_cpu_budget.png", "curve": "saturation_model_curve.png"}
# The issue's goals (benchmarks, not timed tests).
GOALS = {"batching_best": 1.3, "batching_python": 1.2, "efficiency_best": 0.50, "efficiency_python": 0.35,
         "p50_c1_ms": 0.5, "python_vs_triton": 1.0}
MET, NOT_MET = "met", "not met"


# --------------------------------------------------------------------------- which runs

def sweep_runs(runs: list[Run]) -> dict[str, Run]:
    """arch -> its newest complete sweep run, in registry order."""
    newest: dict[str, Run] = {}
    for run in runs:
        if run.kind == "sweep" and not run.interrupted and run.arch:
            if run.arch not in newest or run.newest_key > newest[run.arch].newest_key:
                newest[run.arch] = run
    return dict(sorted(newest.items(), key=lambda kv: archs.order(kv[0])))


def curve_run(runs: list[Run]) -> Run | None:
    done = [r for r in runs if r.kind == "model-curve" and not r.interrupted]
    return max(done, key=lambda r: r.newest_key) if done else None


def is_python(arch: str) -> bool:
    """One of our Python servers (embedded, Flask, FastAPI), not Triton or TF Serving."""
    try:
        services = registry.get(arch).services
    except ValueError:
        return False
    return not any(s in NOT_PYTHON for s in services)


def levels(run: Run, mode: str, kind: str | None = None) -> list[dict]:
    found = run.get("modes", mode, "levels", default=[]) or []
    return [lv for lv in found if isinstance(lv, dict) and (kind is None or lv.get("mode") == kind)]


def saturated(run: Run, mode: str) -> dict | None:
    sat = run.get("modes", mode, "saturation")
    return sat if isinstance(sat, dict) and number(sat.get("throughput_images_per_s")) else None


def at_concurrency(run: Run, mode: str, c: int) -> dict | None:
    for lv in levels(run, mode, "closed"):
        if lv.get("concurrency") == c and number(lv.get("throughput_images_per_s")):
            return lv
    return None


def limit_of(sweeps: dict[str, Run], curve: Run | None) -> tuple[float | None, float | None, str]:
    """(in-process limit images/s, CPU bound images/s, the run it comes from): the newest curve, else a sweep's."""
    for source in ([curve] if curve else []) + list(sweeps.values()):
        lim = source.get("limit")
        if isinstance(lim, dict) and number(lim.get("images_per_s")):
            return number(lim["images_per_s"]), number(lim.get("cpu_bound_images_per_s")), source.run_id
    return None, None, ""


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def verdict(ok: bool | None) -> Cell:
    if ok is None:
        return missing()
    return Cell(MET) if ok else Cell(NOT_MET, cls="bad")


# --------------------------------------------------------------------------- the goals

def batching_rows(sweeps: dict[str, Run]) -> list[dict]:
    """Per architecture: saturated throughput off and on and their ratio."""
    rows = []
    for arch, run in sweeps.items():
        off, on = saturated(run, "off"), saturated(run, "on")
        rows.append({"arch": arch, "run": run, "off": off, "on": on, "python": is_python(arch),
                     "ratio": ratio(number(dig(on, "throughput_images_per_s")),
                                    number(dig(off, "throughput_images_per_s")))})
    return rows


def efficiency_rows(sweeps: dict[str, Run]) -> list[dict]:
    """Per architecture and batching mode, at saturation: the CPU budget of one image."""
    rows = []
    for arch, run in sweeps.items():
        for mode in MODES:
            sat = saturated(run, mode)
            if sat is None:
                continue
            per = sat.get("cpu_ms_per_image") or {}
            roles = {r: 0.0 for r in ROLES}
            for service, ms in per.items():
                role = service if service in ("nginx", "frontend", "client") else "backend"
                if role in roles and number(ms) is not None:
                    roles[role] += number(ms)
            rows.append({"arch": arch, "mode": mode, "run": run, "codec": run.codec, "sat": sat, "roles": roles,
                         "client": number(sat.get("client_cpu_ms_per_image")),
                         "server": number(sat.get("server_cpu_ms_per_image")),
                         "model": number(sat.get("model_cpu_ms_per_image")),
                         "efficiency": number(sat.get("server_efficiency")),
                         "served": number(sat.get("served_fraction")),
                         "batch": number(dig(sat, "batch_size", "mean"))})
    return rows


def p50_c1_rows(sweeps: dict[str, Run]) -> list[dict]:
    rows = []
    for arch, run in sweeps.items():
        off, on = at_concurrency(run, "off", 1), at_concurrency(run, "on", 1)
        p_off, p_on = number(dig(off, "p50_ms")), number(dig(on, "p50_ms"))
        rows.append({"arch": arch, "off": p_off, "on": p_on,
                     "diff": p_on - p_off if p_on is not None and p_off is not None else None})
    return rows


def triton_rows(sweeps: dict[str, Run]) -> list[dict]:
    """Per batching mode and concurrency both measured: the best Python stack's throughput over Triton's."""
    triton = sweeps.get(TRITON)
    if triton is None:
        return []
    rows = []
    for mode in MODES:
        for lv in levels(triton, mode, "closed"):
            c, t = lv.get("concurrency"), number(lv.get("throughput_images_per_s"))
            best = None
            for arch, run in sweeps.items():
                if not is_python(arch):
                    continue
                mine = number(dig(at_concurrency(run, mode, c), "throughput_images_per_s"))
                if mine and (best is None or mine > best[1]):
                    best = (arch, mine)
            if t and best:
                rows.append({"mode": mode, "concurrency": c, "arch": best[0], "python": best[1], "triton": t,
                             "ratio": best[1] / t})
    return rows


def goal_rows(sweeps: dict[str, Run]) -> list[dict]:
    """Each goal of the issue with what was measured and whether it is met (None: not measured)."""
    out = []
    batching = [r for r in batching_rows(sweeps) if r["ratio"]]
    if batching:
        best = max(batching, key=lambda r: number(dig(r["on"], "throughput_images_per_s")) or 0)
        out.append({"goal": "batching on ÷ off at saturation, best architecture",
                    "target": f"≥ {GOALS['batching_best']}×",
                    "measured": f"{best['ratio']:.3f}× ({archs.title(best['arch'])})",
                    "ok": best["ratio"] >= GOALS["batching_best"]})
    else:
        out.append({"goal": "batching on ÷ off at saturation, best architecture",
                    "target": f"≥ {GOALS['batching_best']}×", "measured": None, "ok": None})
    python = [r for r in batching if r["python"]]
    worst = min(python, key=lambda r: r["ratio"]) if python else None
    out.append({"goal": "batching on ÷ off at saturation, every Python architecture",
                "target": f"≥ {GOALS['batching_python']}×",
                "measured": f"lowest {worst['ratio']:.3f}× ({archs.title(worst['arch'])})" if worst else None,
                "ok": worst["ratio"] >= GOALS["batching_python"] if worst else None})

    eff = [r for r in efficiency_rows(sweeps) if r["mode"] == "on" and r["efficiency"] and r["codec"] == "raw"]
    best_e = max(eff, key=lambda r: r["efficiency"]) if eff else None
    out.append({"goal": "server efficiency with batching at saturation (raw), best architecture",
                "target": f"≥ {GOALS['efficiency_best']:.0%}",
                "measured": f"{best_e['efficiency']:.0%} ({archs.title(best_e['arch'])})" if best_e else None,
                "ok": best_e["efficiency"] >= GOALS["efficiency_best"] if best_e else None})
    py_e = [r for r in eff if is_python(r["arch"])]
    worst_e = min(py_e, key=lambda r: r["efficiency"]) if py_e else None
    out.append({"goal": "server efficiency with batching at saturation (raw), every Python architecture",
                "target": f"≥ {GOALS['efficiency_python']:.0%}",
                "measured": f"lowest {worst_e['efficiency']:.0%} ({archs.title(worst_e['arch'])})" if worst_e else None,
                "ok": worst_e["efficiency"] >= GOALS["efficiency_python"] if worst_e else None})

    p50 = [r for r in p50_c1_rows(sweeps) if r["diff"] is not None]
    worst_p = max(p50, key=lambda r: r["diff"]) if p50 else None
    out.append({"goal": "p50 at concurrency 1, batching on − off (every architecture)",
                "target": f"≤ +{GOALS['p50_c1_ms']} ms",
                "measured": f"largest {worst_p['diff']:+.2f} ms ({archs.title(worst_p['arch'])})" if worst_p else None,
                "ok": worst_p["diff"] <= GOALS["p50_c1_ms"] if worst_p else None})

    tr = triton_rows(sweeps)
    worst_t = min(tr, key=lambda r: r["ratio"]) if tr else None
    out.append({"goal": "best Python stack ÷ Triton throughput, at every concurrency",
                "target": f"≥ {GOALS['python_vs_triton']:.1f}×",
                "measured": (f"lowest {worst_t['ratio']:.2f}× (concurrency {worst_t['concurrency']}, batching "
                             f"{worst_t['mode']}, {archs.title(worst_t['arch'])})") if worst_t else None,
                "ok": worst_t["ratio"] >= GOALS["python_vs_triton"] if worst_t else None})
    return out


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
        parts.append(f"Model: the trained CIFAR-10 CNN (test accuracy {acc:.1%}, models/cifar10_cnn.metrics.json).")
    return " ".join(parts)


def label(run: Run, sweeps: dict[str, Run]) -> str:
    """The architecture's title, with runtime and client when they differ across the sweeps shown."""
    extra = []
    if len({r.runtime for r in sweeps.values()}) > 1:
        extra.append(run.runtime or "?")
    if len({r.get("client") for r in sweeps.values()}) > 1:
        extra.append(str(run.get("client")))
    return archs.title(run.arch) + (f" ({', '.join(extra)})" if extra else "")


# --------------------------------------------------------------------------- the section

def section(ctx: Context) -> Section:
    sweeps = sweep_runs(ctx.runs)
    curve = curve_run(ctx.runs)
    crosschecks = [r for r in ctx.runs if r.kind == "crosscheck"]
    caption = source_caption(sweeps, curve)
    limit, bound, limit_run = limit_of(sweeps, curve)
    intro = ("Every architecture under rising load, one image per request through nginx, until it saturates: "
             "closed-loop concurrency and open-loop Poisson rates up to 1.1× the saturated throughput, each level "
             "measured in consecutive windows until three agree within 10% in throughput and p50 (perf_analyzer's "
             "rule, which uses the mean latency), batching off and on, each in its own stack (make sweep, "
             "bench/sweep.py). The in-process limit is the model alone at its best batch size "
             "(python -m bench.reference curve).")
    if limit:
        intro += (f" Limit here: {significant(limit)} images/s (run {limit_run})"
                  + (f"; every core running the model at its cheapest would do {significant(bound)}." if bound
                     else "."))
    if not sweeps:
        intro += f" No sweep yet: make sweep ARCH=embedded, or make study STUDY={STUDY}."
    blocks = [
        Text(intro),
        Heading("Goals"),
        goals_table(sweeps),
        Heading("Saturated throughput, batching off and on"),
        batching_table(sweeps),
        Heading("Where one image's CPU goes, at saturation"),
        Text("Server efficiency: the model's own CPU per image at the batch size that ran (from the in-process "
             "curve, averaged over the requests) divided by the server side's CPU per image (nginx + front end + "
             "backend). The load generator's CPU is shown apart and is never in the total. Served fraction: "
             "throughput ÷ in-process limit."),
        efficiency_table(sweeps),
        Heading("Latency at concurrency 1, batching on against off"),
        p50_table(sweeps),
        Heading("Best Python stack against Triton"),
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
               "count. " + source_caption({}, curve), lambda path: plot_model_curve(curve, path)),
        Heading("Cross-checks by outside tools"),
        Text("perf_analyzer (Triton's C++ load generator) and MLPerf LoadGen driving the same stack: their figures "
             "beside ours, p50 within 10% or an explanation (records of kind crosscheck, make crosscheck)."),
        *crosscheck_tables(crosschecks),
        sweeps_table(sweeps, curve),
    ]
    return Section("Saturated throughput: batching, Triton and the machine's limit", blocks)


# --------------------------------------------------------------------------- tables

def goals_table(sweeps: dict[str, Run]) -> Table:
    return table(["goal", "target", "measured", "verdict"],
                 [[g["goal"], g["target"], g["measured"] if g["measured"] else missing(), verdict(g["ok"])]
                  for g in goal_rows(sweeps)])


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
AGREEMENT_FIELDS = ("concurrency", "tool", "ours_p50_ms", "tool_p50_ms", "diff_pct", "within_10pct", "explanation")


def crosscheck_tables(crosschecks: list[Run]) -> list:
    if not crosschecks:
        return [Text(f"{NOT_MEASURED}: no crosscheck record yet (make crosscheck ARCH=...).")]
    tools, agreement = [], []
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
    out = [table(["architecture", "run", "tool", "scenario", "concurrency", "target QPS", "requests", "images/s",
                  "p50 (ms)", "p90 (ms)", "p99 (ms)", "valid", "stable", "client CPU ms/request", "note"], tools)]
    if agreement:
        out.append(table(["architecture", "run", "concurrency", "tool", "our p50 (ms)", "its p50 (ms)", "diff %",
                          "within 10%", "explanation"], agreement))
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


# --------------------------------------------------------------------------- plots

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
