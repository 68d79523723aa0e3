"""The saturation study's answer at the top of the report (the best saturated throughput against the machine's
in-process limit, what batching gained, how many of the issue's goals are met) and its README blocks.

Found by the report beside the section (``<study module>.answer``); computed from the same runs as the
section's tables (:mod:`bench.studies.saturation.measured`).
"""
from __future__ import annotations

from bench.formats import number, significant
from bench.report import archs
from bench.report.sections import Answer, Context
from bench.studies.saturation.figures import PLOTS
from bench.studies.saturation.measured import (batching_rows, curve_run, efficiency_rows, goal_rows, is_python,
                                               limit_of, p50_c1_rows, sweep_runs, triton_rows)


def answer(ctx: Context) -> Answer | None:
    sweeps = sweep_runs(ctx.runs)
    rows = [r for r in batching_rows(sweeps) if r["on"] or r["off"]]
    if not rows:
        return None

    def best_of(r: dict) -> tuple[float, str]:
        return max((number(r[m].get("throughput_images_per_s")) or 0.0, m) for m in ("off", "on") if r[m])

    top = max(rows, key=lambda r: best_of(r)[0])
    top_rate, top_mode = best_of(top)
    text = f"Most images/s at saturation: {archs.title(top['arch'])}, {significant(top_rate)} with batching {top_mode}"
    limit, _, _ = limit_of(sweeps, curve_run(ctx.runs))
    if limit:
        text += f", {top_rate / limit:.0%} of the model's in-process limit of {significant(limit)} images/s"
    text += "."
    gains = [f"{archs.title(r['arch'])} {r['ratio']:.2f}×" for r in rows if r["ratio"]]
    if gains:
        text += " Batching on ÷ off: " + ", ".join(gains) + "."
    goals = [g for g in goal_rows(sweeps) if g["ok"] is not None]
    if goals:
        missed = [g["goal"] for g in goals if not g["ok"]]
        text += f" Goals met: {len(goals) - len(missed)} of {len(goals)} measured" + (
            f" (not met: {'; '.join(missed)})." if missed else ".")
    return Answer(text, PLOTS["latency"])


# --------------------------------------------------------------------------- the README's blocks

def readme(ctx: Context) -> dict[str, str]:
    """The README's saturation numbers (:mod:`bench.report.docs`): the model curve, the table, the goals,
    where the CPU goes, Triton measured directly and the cross-checks."""
    sweeps, curve = sweep_runs(ctx.runs), curve_run(ctx.runs)
    crosschecks = [r for r in ctx.runs if r.kind == "crosscheck" and not r.interrupted]
    return {"saturation-model": model_text(curve), "saturation-table": saturation_table(sweeps),
            "saturation-goals": goals_text(sweeps), "saturation-cpu": cpu_text(sweeps, crosschecks),
            "saturation-triton-direct": triton_direct_text(crosschecks),
            "saturation-crosschecks": crosscheck_text(crosschecks)}


def model_text(curve) -> str:
    """The best point and batch 1 at one thread, both from the one newest curve run."""
    limit = curve.get("limit") if curve else None
    if not isinstance(limit, dict) or not number(limit.get("images_per_s")):
        return "The model alone: not measured yet (make model-curve)."
    one = next((p for c in curve.get("curves", default=[]) or [] if c.get("intra_op_threads") == 1
                for p in c.get("points", []) if p.get("batch") == 1), None)
    text = (f"The model alone does {significant(limit['images_per_s'])} images/s here (batch {limit['batch']}, "
            f"{limit['intra_op_threads']} intra-op threads")
    if one:
        text += (f"; {significant(one['images_per_s'])} at batch 1 with one thread, "
                 f"{one['cpu_ms_per_image']:.2f} ms of CPU per image")
    return text + f"; `results/{curve.run_id}`, one run)."


def saturation_table(sweeps) -> str:
    from bench.report.docs import md_table

    eff = {(r["arch"], r["mode"]): r for r in efficiency_rows(sweeps)}
    p50 = {r["arch"]: r for r in p50_c1_rows(sweeps)}
    rows = []
    for r in batching_rows(sweeps):
        on = eff.get((r["arch"], "on"), {})
        p = p50.get(r["arch"], {})
        rows.append([archs.title(r["arch"]), _rate(r["off"]), _rate(r["on"]),
                     f"{r['ratio']:.2f}x" if r["ratio"] else None,
                     f"{on['server']:.2f} ms" if on.get("server") else None,
                     f"{on['efficiency']:.0%}" if on.get("efficiency") else "not measured",
                     f"{p['off']:.2f} → {p['on']:.2f} ms" if p.get("off") and p.get("on") else None,
                     f"`{r['run'].run_id}`"])
    return md_table(["architecture (one sweep run each)", "batching off (images/s)", "batching on", "on ÷ off",
                     "server CPU per image, on", "server efficiency, on", "p50 at concurrency 1, off → on",
                     "run"], rows)


def _rate(sat: dict | None):
    return significant(number(sat.get("throughput_images_per_s"))) if sat else None


def goals_text(sweeps) -> str:
    goals = goal_rows(sweeps)
    met = [g for g in goals if g["ok"]]
    missed = [g for g in goals if g["ok"] is False]
    text = f"- **Goals** (one sweep run per architecture): {len(met)} of {len(goals)} met"
    if met:
        text += ": " + "; ".join(f"{g['goal']} {g['target']}, measured {g['measured']}" for g in met)
    if missed:
        text += ". Not met: " + "; ".join(f"{g['goal']} {g['target']}, measured {g['measured']}" for g in missed)
    tr = triton_rows(sweeps)
    if tr:
        text += (f". The best Python stack against Triton: {span(r['ratio'] for r in tr)}× over "
                 f"{len(tr)} concurrency levels and both batching modes")
    return text + "."


def span(values, digits: int = 1) -> str:
    vals = sorted(values)
    lo, hi = f"{vals[0]:.{digits}f}", f"{vals[-1]:.{digits}f}"
    return lo if lo == hi else f"{lo}-{hi}"


def cpu_text(sweeps, crosschecks) -> str:
    """CPU per image at saturation by role, over every architecture and mode (one sweep run each)."""
    rows = efficiency_rows(sweeps)
    nginx = [r["roles"]["nginx"] for r in rows if r["roles"]["nginx"]]
    # Flask and FastAPI: the front end only forwards (for Triton it also re-encodes each request).
    forward = [r["roles"]["frontend"] for r in rows if r["roles"]["frontend"] and is_python(r["arch"])
               and r["arch"] != "embedded"]
    client = [r["client"] for r in rows if r["client"]]
    perf = [number(t.get("client_cpu_ms_per_request")) for run in crosschecks
            for t in run.get("tools", default=[]) or [] if t.get("tool") == "perf_analyzer"]
    perf = [p for p in perf if p]
    if not nginx:
        return "- **Where the CPU goes**: not measured yet (make sweep)."
    text = (f"- **Where the CPU goes** (at saturation, every architecture and batching mode, one sweep run each): "
            f"nginx costs {span(nginx, 2)} ms per image")
    if forward:
        text += f", the Django front end {span(forward, 2)} ms when it only forwards"
    if client:
        text += f", our load generator {span(client, 2)} ms (reported apart"
        text += f"; perf_analyzer costs {span(perf, 2)} ms per request)" if perf else ")"
    return text + "."


def _direct(crosschecks):
    """The newest crosscheck that measured Triton straight at its own port."""
    for run in reversed(crosschecks):
        tools = [t for t in run.get("tools", default=[]) or [] if "direct" in str(t.get("scenario"))]
        if tools:
            return run, tools
    return None, []


def triton_direct_text(crosschecks) -> str:
    run, tools = _direct(crosschecks)
    ours = {t.get("concurrency"): t for t in tools if t.get("tool") == "servebench"}
    through = {t.get("concurrency"): t for t in run.get("tools", default=[]) or []
               if t.get("tool") == "servebench" and t.get("scenario") == "closed-loop"} if run else {}
    if 1 not in ours or 1 not in through:
        return "- **Triton measured directly**: not measured yet (make crosscheck ARCH=triton)."
    top = max(ours)
    return (f"- **Triton measured directly** (`results/{run.run_id}`, one run): p50 "
            f"{ours[1]['p50_ms']:.1f} ms at concurrency 1 straight at Triton's port against "
            f"{through[1]['p50_ms']:.1f} ms through nginx and Django, which decode, check and re-encode each "
            f"request for it; at {top} in flight {significant(ours[top]['throughput'])} images/s directly.")


def crosscheck_text(crosschecks) -> str:
    """How often each outside tool's p50 is within 10% of ours, over the newest crosscheck per architecture."""
    newest = {}
    for run in crosschecks:
        newest[run.arch] = run
    rows = [a for run in newest.values() for a in run.get("agreement", default=[]) or []
            if isinstance(a, dict) and "direct" not in str(a.get("tool"))]
    if not rows:
        return "- **Cross-checks**: not measured yet (make crosscheck ARCH=...)."
    parts = []
    for tool in ("perf_analyzer", "loadgen"):
        mine = [a for a in rows if a.get("tool") == tool and number(a.get("diff_pct")) is not None]
        if mine:
            within = sum(bool(a.get("within_10pct")) for a in mine)
            worst = max(abs(number(a["diff_pct"])) for a in mine)
            parts.append(f"{'perf_analyzer' if tool == 'perf_analyzer' else 'LoadGen'}'s p50 is within 10% of ours "
                         f"in {within} of {len(mine)} comparisons and within {worst:.0f}% in all")
    return (f"- **Cross-checks** (`make crosscheck`, one stack and one run per architecture, "
            f"{len(newest)} architectures, `results/*-crosscheck-*`): " + "; ".join(parts) + ".")
