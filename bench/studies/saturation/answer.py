"""The saturation study's answer at the top of the report (the best saturated throughput against the machine's
in-process limit, what batching gained, how many of the issue's goals are met) and its README blocks.

Found by the report beside the section (``<study module>.answer``); computed from the same runs as the
section's tables (:mod:`bench.studies.saturation.measured`).
"""
from __future__ import annotations

from bench.formats import number, significant
from bench.report import archs
from bench.report.sections import Answer, Context
from bench.studies.saturation import headline
from bench.studies.saturation.figures import PLOTS
from bench.studies.saturation.measured import (batching_rows, curve_run, efficiency_rows, goal_rows, is_python,
                                               limit_of, p50_c1_rows, sweep_runs, triton_rows)


def answer(ctx: Context) -> Answer | None:
    """From the repeated headline runs where they exist (medians, min–max, n), else from the sweeps (one run)."""
    table = headline.cells(ctx.runs)
    if table:
        return headline_answer(ctx, table)
    sweeps = sweep_runs(ctx.runs)
    rows = [r for r in batching_rows(sweeps) if r["on"] or r["off"]]
    if not rows:
        return None

    def best_of(r: dict) -> tuple[float, str]:
        return max((number(r[m].get("throughput_images_per_s")) or 0.0, m) for m in ("off", "on") if r[m])

    top = max(rows, key=lambda r: best_of(r)[0])
    top_rate, top_mode = best_of(top)
    text = (f"Most images/s at saturation (one sweep run each): {archs.title(top['arch'])}, {significant(top_rate)} "
            f"with batching {top_mode}")
    limit, _, _ = limit_of(sweeps, curve_run(ctx.runs))
    if limit:
        text += f", {top_rate / limit:.0%} of the model's in-process limit of {significant(limit)} images/s (one run)"
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


def headline_answer(ctx: Context, table: dict) -> Answer:
    top = headline.saturated_concurrency(table)
    best = max((c for c in table.values() if c.concurrency == top and c.throughput),
               key=lambda c: c.throughput.median, default=None)
    text = ""
    if best:
        text = (f"Most images/s at {top} in flight: {archs.title(best.arch)} with batching {best.mode}, "
                f"{best.throughput.text(unit=' images/s')}")
        fig = headline.curve_figures(ctx.runs)
        if fig:
            text += (f", {best.throughput.median / fig['limit'].median:.0%} of the model's in-process limit of "
                     f"{fig['limit'].text(unit=' images/s')}")
        text += "."
    gains = []
    for arch in headline.arches_of(table):
        on, off = table.get((arch, "on", top)), table.get((arch, "off", top))
        r = headline.ratio_of_medians(on.throughput if on else None, off.throughput if off else None)
        if r:
            gains.append(f"{archs.title(arch)} {r:.2f}×")
    if gains:
        text += (f" Batching on ÷ off (ratio of {headline.medians_of(c.throughput for c in table.values())}): "
                 + ", ".join(gains) + ".")
    p50 = [c for c in table.values() if c.concurrency == 1 and c.mode == "off" and c.p50]
    if p50:
        text += (" p50 at concurrency 1, batching off: " + ", ".join(
            f"{archs.title(c.arch)} {c.p50.text(unit=' ms')}" for c in p50) + ".")
    goals = [g for g in headline.goal_rows(table) if g["ok"] is not None]
    if goals:
        missed = [g["goal"] for g in goals if not g["ok"]]
        text += f" Goals met, judged on the medians: {len(goals) - len(missed)} of {len(goals)} measured" + (
            f" (not met: {'; '.join(missed)})." if missed else ".")
    return Answer(text.strip(), PLOTS["latency"])


# --------------------------------------------------------------------------- the README's blocks

def readme(ctx: Context) -> dict[str, str]:
    """The README's saturation numbers (:mod:`bench.report.docs`): the model curve, the table, the goals,
    where the CPU goes, Triton measured directly and the cross-checks."""
    sweeps, curve = sweep_runs(ctx.runs), curve_run(ctx.runs)
    table = headline.cells(ctx.runs)
    crosschecks = [r for r in ctx.runs if r.kind == "crosscheck" and not r.interrupted]
    return {"saturation-model": model_text(ctx.runs, curve), "saturation-table": headline_md(table),
            "saturation-sweeps": saturation_table(sweeps), "saturation-goals": goals_text(sweeps, table), "saturation-cpu": cpu_text(sweeps, crosschecks),
            "saturation-triton-direct": triton_direct_text(crosschecks),
            "saturation-crosschecks": crosscheck_text(crosschecks)}


def model_text(runs, curve) -> str:
    """The best point and batch 1 at one thread over the curve's repeats (medians, min–max), else from the
    newest curve run alone."""
    fig = headline.curve_figures(runs)
    if fig and fig["limit"].n > 1:
        text = (f"The model alone does {fig['limit'].text(unit=' images/s')} here (batch "
                f"{'/'.join(map(str, fig['batch']))}, {'/'.join(map(str, fig['threads']))} intra-op threads)")
        if fig["b1_images_per_s"]:
            text += f"; at batch 1 with one thread {fig['b1_images_per_s'].text(unit=' images/s')}"
        if fig["b1_cpu_ms"]:
            text += f", {fig['b1_cpu_ms'].text(lambda x: f'{x:.2f}', ' ms')} of CPU per image"
        return text + " (" + ", ".join(f"`results/{r.run_id}`" for r in fig["runs"]) + ")."
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


def headline_md(table: dict) -> str:
    """The repeated headline runs: one row per architecture and batching mode."""
    from bench.report.docs import md_table

    if not table:
        return "Architecture against architecture: not measured yet (make study STUDY=saturation)."
    top = headline.saturated_concurrency(table)
    rows = []
    for arch in headline.arches_of(table):
        for mode in ("off", "on"):
            one, sat = table.get((arch, mode, 1)), table.get((arch, mode, top))
            if not one and not sat:
                continue
            rows.append([archs.title(arch), mode, _cell(one and one.p50), _cell(sat and sat.throughput),
                         _cell(sat and sat.server_cpu), _cell(sat and sat.efficiency, lambda x: f"{x:.0%}"),
                         "/".join(str(c.n) for c in (one, sat) if c)])
    n = headline.repeats(c.throughput for c in table.values())
    return (f"Architecture against architecture, raw bodies, one image per request, every cell the median of "
            f"{n} repeats (min–max), each repeat a run of its own (`make study STUDY=saturation "
            f"SB_SATURATION_PARTS=curve,headline`):\n\n" + md_table(
                ["architecture", "batching", "p50 at concurrency 1 (ms)", f"images/s at {top} in flight",
                 f"server CPU ms per image at {top}", f"server efficiency at {top}", "repeats (c=1 / c=" + str(top) + ")"],
                rows) + unmeasured(table))


def unmeasured(table: dict) -> str:
    """The architectures of the study's plan that these runs lack (added since, or not runnable where they ran)."""
    from bench.studies.saturation.experiments import ARCHES

    missing = [archs.title(a) for a in ARCHES if a not in headline.arches_of(table)]
    return f"\n\nIn the study's plan, not in these runs: {', '.join(missing)}." if missing else ""


def _cell(spread, show=significant):
    return spread.cell(show) if spread else None


def goals_text(sweeps, table=None) -> str:
    goals = headline.goal_rows(table or {})
    basis = f"judged on {headline.medians_of(c.throughput for c in table.values())}" if goals \
        else "one sweep run per architecture"
    goals = goals or goal_rows(sweeps)
    met = [g for g in goals if g["ok"]]
    missed = [g for g in goals if g["ok"] is False]
    text = f"- **Goals** ({basis}): {len(met)} of {len(goals)} met"
    if met:
        text += ": " + "; ".join(f"{g['goal']} {g['target']}, measured {g['measured']}" for g in met)
    if missed:
        text += ". Not met: " + "; ".join(f"{g['goal']} {g['target']}, measured {g['measured']}" for g in missed)
    tr = triton_rows(sweeps)
    if tr:
        text += (f". The best Python stack against Triton in the sweeps (one run each): {span(r['ratio'] for r in tr)}× "
                 f"over {len(tr)} concurrency levels and both batching modes")
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
    """How often each outside tool agrees with ours (p50; throughput at the top concurrency through nginx), over
    the newest crosscheck per architecture; then the harness's own error, from the newest crosscheck."""
    newest = {}
    for run in crosschecks:
        newest[run.arch] = run
    rows = [a for run in newest.values() for a in run.get("agreement", default=[]) or []
            if isinstance(a, dict) and "direct" not in str(a.get("tool"))]
    if not rows:
        return "- **Cross-checks**: not measured yet (make crosscheck ARCH=...)."
    parts = []
    for tool, name in (("perf_analyzer", "perf_analyzer"), ("wrk", "wrk"), ("loadgen", "LoadGen")):
        mine = [a for a in rows if a.get("tool") == tool and number(a.get("diff_pct")) is not None]
        if mine:
            within = sum(bool(a.get("within_10pct")) for a in mine)
            worst = max(abs(number(a["diff_pct"])) for a in mine)
            parts.append(f"{name}'s p50 is within 10% of ours in {within} of {len(mine)} comparisons and within "
                         f"{worst:.0f}% in all")
    text = (f"- **Cross-checks** (`make crosscheck`, one stack and one run per architecture, "
            f"{len(newest)} architectures, `results/*-crosscheck-*`): " + "; ".join(parts) + ".")
    return text + harness_error_text(crosschecks[-1])


def harness_error_text(run) -> str:
    """The newest crosscheck's client share at c=1, throughput agreement at its top level, and each tool's CPU."""
    share = [c for c in run.get("client_share", default=[]) or [] if isinstance(c, dict)]
    if not share:
        return ""
    tools = [t for t in run.get("tools", default=[]) or [] if isinstance(t, dict)]
    top = max((t.get("concurrency") or 0 for t in tools), default=0)
    rates = [a for a in run.get("agreement", default=[]) or [] if isinstance(a, dict)
             and a.get("concurrency") == top and number(a.get("throughput_diff_pct")) is not None
             and "direct" not in str(a.get("tool"))]
    cpu = {}
    for t in tools:
        if number(t.get("client_cpu_ms_per_request")) and t.get("concurrency") and t.get("tool") != "loadgen":
            cpu.setdefault(t["tool"], []).append(number(t["client_cpu_ms_per_request"]))
    where = ", ".join(f"{c['share_ms']:+.2f} ms ({c['share_pct']:+.0f}% of our p50 of {c['ours_p50_ms']} ms) "
                      f"{'through nginx' if c['scenario'] == 'closed-loop' else c['scenario'].replace('closed-loop ', '')}"
                      for c in share)
    text = (f"\n- **The harness's own error** (`results/{run.run_id}`, {archs.title(run.arch)}, one run): at "
            f"concurrency 1 our p50 minus perf_analyzer's is {where}.")
    if rates:
        text += (f" Throughput at {top} in flight through nginx, against ours: "
                 + "; ".join(f"{a['tool']} {a['throughput_diff_pct']:+.1f}%" for a in rates) + ".")
    if cpu:
        text += (" Client CPU per request at concurrency " + ", ".join(str(c) for c in sorted(
                 {t["concurrency"] for t in tools if t.get("concurrency")})) + ": "
                 + "; ".join(f"{'ours' if k == 'servebench' else k} {span(v, 3)} ms" for k, v in cpu.items()) + ".")
    return text