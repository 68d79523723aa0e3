"""The serverless study's section: Fig. 3, Fig. 5, Tables 1 and 2 beside the study's, cold against warm,
the whole model in one process. Reads the newest ``serverless`` run."""
from __future__ import annotations

from pathlib import Path

from bench.report.sections import Context, Figure, Heading, Section, Text
from bench.report.tables import table
from bench.studies.serverless import published

STUDY = "serverless"
TIMING_ONLY = "AlexNet: random weights, timing and memory only"


def latest(ctx: Context):
    runs = [r for r in ctx.runs if r.kind == "serverless"]
    return runs[-1] if runs else None


def _fig3(run, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fig5(run, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 (matplotlib.ticker below)

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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
                           f"{check['max_abs_prob_diff']:.2g}; accuracy {check['accuracy']:.4f}."))
    blocks += [Heading("Fig. 3: peak memory and duration per stage against images per record"),
               Figure(f"{STUDY}-fig3", "serverless-fig3.png", f"run {run.run_id}; {TIMING_ONLY}",
                      lambda p: _fig3(run, p)),
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
