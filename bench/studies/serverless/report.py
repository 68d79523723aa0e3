"""The serverless study's section: Fig. 3, Fig. 5, Tables 1 and 2 beside the study's, cold against warm,
the whole model in one process. Reads the newest ``serverless`` run."""
from __future__ import annotations

from pathlib import Path

from bench.formats import significant
from bench.report.docs import dataset_note
from bench.report.sections import Answer, Context, Figure, Heading, Section, Text
from bench.report.tables import table
from bench.studies.serverless import published

STUDY = "serverless"
TIMING_ONLY = "AlexNet: random weights, timing and memory only"


def latest(ctx: Context):
    runs = [r for r in ctx.runs if r.kind == "serverless"]
    return runs[-1] if runs else None


def _fig3(run, path: Path) -> Path:
    from bench.report import plots  # matplotlib: only when the report draws

    plt = plots.plt
    # Cold invocations: one fresh worker per stage and size, so each peak is that invocation's alone (a warm
    # worker still holds its previous call's memory, and can run out where the cold one fit).
    rows = [r for r in run.get("fig3", default=[]) if r["start"] == "cold" and r.get("ok", True)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for stage in published.STAGES:
        pts = sorted((r["record_size"], r["peak_memory_mb"] or 0, r["duration_s"]) for r in rows if r["stage"] == stage)
        if pts:
            a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=stage)
            b.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=stage)
    a.set(xlabel="images per record", ylabel="peak memory (MB, cgroup)", title="Peak memory per stage")
    b.set(xlabel="images per record", ylabel="duration (s, cold start, imports excluded)", title="Duration per stage")
    a.legend()
    fig.suptitle(f"Fig. 3 here: {TIMING_ONLY}; memMax {run.get('settings', 'memory_mb')} MB")
    return plots.save(fig, path, dpi=110, tight=True)


def _fig5(run, path: Path) -> Path:
    import matplotlib.ticker

    from bench.report import plots

    plt = plots.plt
    rows = sorted(run.get("fig5", default=[]), key=lambda r: r["parallelism"])
    fig, a = plt.subplots(figsize=(6, 4))
    ps = [r["parallelism"] for r in rows]
    a.plot(ps, [r["wall_s"] for r in rows], marker="o", color="tab:blue", label="total time")
    a.set(xlabel="records in flight (P)", ylabel="total time (s)", xscale="log")
    a.set_xticks(ps, [str(p) for p in ps], minor=False)
    a.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    b = a.twinx()
    b.plot(ps, [r["cost_usd"] for r in rows], marker="s", color="tab:red", label="cost")
    b.set_ylabel("cost (USD, price table)")
    lines = a.get_lines() + b.get_lines()
    a.legend(lines, [ln.get_label() for ln in lines], loc="upper left", fontsize=8)
    out = [r["parallelism"] for r in rows if r["cores_exhausted"]]
    if out:
        a.axvline(out[0], color="gray", ls="--")
        a.text(out[0], a.get_ylim()[1] * 0.95, f" P x vCPU > {run.get('cpu_count')} cores", fontsize=8)
    fig.suptitle(f"Fig. 5 here: {TIMING_ONLY}")
    return plots.save(fig, path, dpi=110, tight=True)


def answer(ctx: Context) -> Answer | None:
    """memMin against memMax (Tables 1 and 2), and what more records in flight do (Fig. 5)."""
    run = latest(ctx)
    if run is None:
        return None
    parts = []
    by = {t["setting"].split("-")[0]: t for t in run.get("tables", default=[])}
    lo, hi = by.get("memMin"), by.get("memMax")
    if lo and hi:
        sizes = {k: ", ".join(f"{t['memory_mb'][st]:,}" for st in published.STAGES) for k, t in by.items()}
        parts.append(f"A {lo['record_size']:,}-image record through the four functions costs "
                     f"{lo['cost_per_1000_images']:.2g} USD per 1,000 images at memMin "
                     f"({sizes['memMin']} MB) against "
                     f"{hi['cost_per_1000_images']:.2g} at memMax "
                     f"({sizes['memMax']} MB): "
                     f"{1 - lo['cost_usd'] / hi['cost_usd']:.0%} less, in {significant(lo['time_s'], ' s')} "
                     f"instead of {significant(hi['time_s'], ' s')}.")
    fig5 = sorted(run.get("fig5", default=[]), key=lambda r: r["parallelism"])
    if len(fig5) > 1:
        first, last = fig5[0], fig5[-1]
        parts.append(f"{last['images']:,} images with {first['parallelism']} to {last['parallelism']} records in "
                     f"flight: {significant(first['wall_s'], ' s')} to {significant(last['wall_s'], ' s')}")
        over = next((r["parallelism"] for r in fig5 if r["cores_exhausted"]), None)
        parts[-1] += (f"; from {over} on, the functions ask for more vCPUs than the {run.get('cpu_count')} "
                      "cores." if over else ".")
    return Answer(" ".join(parts), "serverless-fig5.png") if parts else None


def section(ctx: Context) -> Section:
    run = latest(ctx)
    blocks = [Text("AlexNet split into four functions (Conv_1, Conv_2, Conv_3, FC), each a worker process in its own "
                   "cgroup: memory limit = the function's memory, CPU = memory / 1,769 MB vCPU, as on Lambda; "
                   "records (TFRecord) and intermediates through SeaweedFS's S3 API. " + published.FIG3_FINDINGS
                   + " (study) " + published.FIG5_FINDINGS + " (study)")]
    if run is None:
        blocks.append(Text("No serverless run yet: make study STUDY=serverless."))
        return Section("Serverless: a layer-split CNN as memory-limited functions", blocks)
    check = run.get("check")
    if check:
        blocks.append(Text(f"Table 1 CNN through its four functions on {check['images']} test images: classes equal "
                           f"to the whole model: {check['classes_equal']}; largest probability difference "
                           f"{check['max_abs_prob_diff']:.2g}; accuracy {check['accuracy']:.4f}. " + dataset_note()))
    blocks += [Heading("Fig. 3: peak memory and duration per stage against images per record"),
               Figure(f"{STUDY}-fig3", "serverless-fig3.png", f"run {run.run_id}; {TIMING_ONLY}",
                      lambda p: _fig3(run, p)),
               Text(" ".join(t for t in (fc_text(run), pipeline_text(run)) if t)),
               Heading("Cold against warm start per stage"),
               table(["images/record", "stage", "cold run (s)", "cold init before it (s)", "warm run (s)", "peak cold (MB)", "peak warm (MB)"],
                     _coldwarm(run.get("fig3", default=[])))]
    blocks += [Heading("Fig. 5: total time and cost against parallel workers"),
               Figure(f"{STUDY}-fig5", "serverless-fig5.png",
                      f"run {run.run_id}; {TIMING_ONLY}; {run.get('cpu_count')} cores: parallelism beyond "
                      f"cores / vCPU per function only queues", lambda p: _fig5(run, p)),
               table(["P", "total time (s)", "cost (USD)", "records done", "failed", "vCPU asked", "beyond the cores"],
                     [[r["parallelism"], round(r["wall_s"], 1), f"{r['cost_usd']:.6f}", r["done"], r["failed"],
                       r["vcpus_asked"], r["cores_exhausted"]] for r in run.get("fig5", default=[])])]
    rows = [[f"study {t['setting']}", *t["memory_mb"], t["time_s"], f"{t['cost_usd']:.4f}", "–"]
            for t in published.TABLES]
    rows += [[f"here {t['setting']}", *[t["memory_mb"][s] for s in published.STAGES], round(t["time_s"], 1),
              f"{t['cost_usd']:.6f}", f"{t['cost_per_1000_images']:.6f}"] for t in run.get("tables", default=[])]
    blocks += [Heading("Tables 1 and 2: memMax against memMin (memMin found by running on the price table's grid)"),
               Text(f"{TIMING_ONLY}. The study's time is one record with 20 in parallel and its cost covers its whole "
                    f"run; ours is one record's four stages in sequence, cost from the price table "
                    f"({run.get('prices', 'name')}, {run.get('prices', 'date')})."),
               table(["setting", *published.STAGES, "time (s)", "cost (USD)", "USD / 1,000 images"], rows)]
    blocks += [Heading("The whole model in one process (the study's single-GPU baseline: "
                       f"{published.GPU_RECORD_1000_S} s per 1,000-image record)"),
               table(["images/record", "seconds, this CPU"],
                     [[r["record_size"], r["seconds"]] for r in run.get("baseline", default=[])])]
    return Section("Serverless: a layer-split CNN as memory-limited functions", blocks)


def _coldwarm(rows: list[dict]) -> list[list]:
    out = []
    by = {(r["record_size"], r["stage"], r["start"]): r for r in rows}
    for (size, stage, start), r in by.items():
        if start != "cold":
            continue
        w = by.get((size, stage, "warm"), {})
        failed = w and not w.get("ok", True)
        warm_s = (w.get("kind") or "failed").replace("_", " ") if failed else (
            round(w["duration_s"], 2) if w else "not run")
        out.append([size, stage, round(r["duration_s"], 2), round(r["init_s"], 2), warm_s,
                    round(r["peak_memory_mb"] or 0), round(w.get("peak_memory_mb") or 0) if w else ""])
    return out


# --------------------------------------------------------------------------- beside Fig. 3, and the README

def _cold(run) -> dict[tuple[int, str], dict]:
    return {(r["record_size"], r["stage"]): r for r in run.get("fig3", default=[])
            if r["start"] == "cold" and r.get("ok", True)}


def fc_text(run) -> str | None:
    """Where FC stands among the stages' cold peaks, against the study's 'FC the lightest'."""
    cold = _cold(run)
    sizes = sorted({size for size, _ in cold})
    fc = [cold[(s, "FC")]["peak_memory_mb"] for s in sizes if (s, "FC") in cold]
    if not fc:
        return None
    lightest = {s: min((st for st in published.STAGES if (s, st) in cold), key=lambda st: cold[(s, st)]["peak_memory_mb"])
                for s in sizes}
    light = [s for s in sizes if lightest[s] == "FC"]
    verdict = ("FC is the lightest stage at every size, as in the study" if len(light) == len(sizes) else
               "FC is not the lightest stage here, which contradicts the study's Fig. 3 (FC the lightest)"
               + (f"; the lightest is {lightest[sizes[0]]} at every size" if len(set(lightest.values())) == 1 else
                  f"; the lightest is {', '.join(f'{lightest[s]} at {s:,}' for s in sizes)} images"))
    return (f"FC's cold peak is {significant(min(fc))}-{significant(max(fc))} MB at every record size "
            f"({', '.join(f'{s:,}' for s in sizes)} images; its weights are read whole): {verdict}.")


def warm_pipeline(run) -> tuple[int, float, float] | None:
    """(record size, the four warm stages' summed duration, the whole model in one process) at the smallest size
    where both ran."""
    warm = {(r["record_size"], r["stage"]): r["duration_s"] for r in run.get("fig3", default=[])
            if r["start"] == "warm" and r.get("ok", True)}
    base = {r["record_size"]: r["seconds"] for r in run.get("baseline", default=[])}
    for size in sorted(base):
        if all((size, st) in warm for st in published.STAGES):
            return size, sum(warm[(size, st)] for st in published.STAGES), base[size]
    return None


def pipeline_text(run) -> str | None:
    found = warm_pipeline(run)
    if found is None:
        return None
    size, warm, one = found
    return (f"Warm, the four functions take {significant(warm, ' s')} for {size:,} images (the stages' durations "
            f"summed, store reads and writes included) against {significant(one, ' s')} for the whole model in one "
            f"process: {'slower' if warm > one else 'faster'} than one process even without cold starts.")


def readme(ctx: Context) -> dict[str, str]:
    """The README's serverless numbers (:mod:`bench.report.docs`), from the same run as the section."""
    run = latest(ctx)
    names = ("serverless-run", "serverless-results")
    if run is None:
        return {n: "Not measured yet: make study STUDY=serverless." for n in names}
    st = run.get("settings", default={})
    sizes = " ".join(str(s) for s in st.get("record_sizes", []))
    tables = " ".join(str(s) for s in st.get("table_sizes", []))
    head = (f"Measured (`results/{run.run_id}`, one run, `make study STUDY=serverless "
            f"SB_SERVERLESS_RECORD_SIZES=\"{sizes}\" SB_SERVERLESS_TABLE_SIZES=\"{tables}\"`, "
            f"{significant(run.get('wall_s') / 60)} minutes; Fig. 3 at {', '.join(sizes.split())} images per record, "
            f"the tables at {', '.join(tables.split())} only; {TIMING_ONLY}; prices `{run.get('prices', 'name')}`):")
    out = []
    check = run.get("check")
    if check:
        out.append(f"- **Check**: the CNN through its four functions gives "
                   f"{'exactly ' if check['classes_equal'] else ''}the whole model's probabilities (largest "
                   f"difference {check['max_abs_prob_diff']:.2g}) on {check['images']:,} test images.")
    cold = _cold(run)
    c1 = sorted((s, r) for (s, stage), r in cold.items() if stage == "Conv_1")
    if c1:
        out.append(f"- **Fig. 3** (memMax {st.get('memory_mb'):,} MB, cold): Conv_1 is the heaviest and grows with "
                   f"the record ({' / '.join(significant(r['peak_memory_mb']) for _, r in c1)} MB peak at "
                   f"{' / '.join(str(s) for s, _ in c1)} images; "
                   f"{' / '.join(format(r['duration_s'], '.1f') for _, r in c1)} s). " + (fc_text(run) or "")
                   + " Cold starts add " + _span([r["init_s"] for r in cold.values()]) + " s of imports and weight "
                   "reads per function. " + (pipeline_text(run) or ""))
    by = {t["setting"].split("-")[0]: t for t in run.get("tables", default=[])}
    lo, hi = by.get("memMin"), by.get("memMax")
    if lo and hi:
        out.append(f"- **Tables 1 and 2** ({lo['record_size']:,}-image records): memMax "
                   f"{significant(hi['time_s'], ' s')} and ${hi['cost_usd']:.2g} per record; memMin "
                   f"({' / '.join(f'{m:,}' for m in (lo['memory_mb'][s] for s in published.STAGES))} MB, found by "
                   f"running) {significant(lo['time_s'], ' s')} ({lo['time_s'] / hi['time_s'] - 1:+.0%}) and "
                   f"${lo['cost_usd']:.2g} ({lo['cost_usd'] / hi['cost_usd'] - 1:+.0%}).")
    fig5 = sorted(run.get("fig5", default=[]), key=lambda r: r["parallelism"])
    if fig5:
        over = next((r["parallelism"] for r in fig5 if r["cores_exhausted"]), None)
        out.append(f"- **Fig. 5** ({st.get('fig5_records')} records of {st.get('fig5_record_size')} images): "
                   + ", ".join(f"P = {r['parallelism']}: {significant(r['wall_s'], ' s')}" for r in fig5)
                   + f", cost {fig5[-1]['cost_usd'] / fig5[0]['cost_usd']:.1f}x from the first to the last"
                   + (f"; the functions ask for more vCPUs than the {run.get('cpu_count')} cores from P = {over}"
                      if over else "") + ".")
    base = run.get("baseline", default=[])
    if base:
        out.append("- **One process** (the study's single-GPU baseline, here the same CPU): the whole AlexNet takes "
                   + " / ".join(f"{r['seconds']:.2f}" for r in base) + " s for "
                   + " / ".join(str(r["record_size"]) for r in base) + " images.")
    return {"serverless-run": head, "serverless-results": "\n".join(out)}


def _span(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"
