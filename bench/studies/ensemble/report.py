"""The ensemble section: the study's accuracy and latency claims beside ours, and why parallel cannot be
max(T) here (three 1-vCPU functions, two cores).

Reads the newest ``ensemble-inprocess``, ``ensemble-functions``,
``ensemble-deadline`` and ``ensemble-coldstart`` records and the study's bench
runs (one per stack and batch size, several passes each; a member alone is the
parallel coordinator with that one member). A bench figure is the median of
its passes' p50 (each pass's from the run's committed latency.hdr) with their
min-max; a run of one pass says "one run".
"""
from __future__ import annotations

from pathlib import Path

from bench import distributions
from bench.formats import significant
from bench.report.docs import dataset_note
from bench.report.runs import Run
from bench.report.sections import Answer, Context, Figure, Heading, Section, Text
from bench.report.tables import published as printed
from bench.report.tables import missing, table
from bench.studies.ensemble import published
from bench.studies.ensemble.coldstart_report import (coldstart_readme, coldstart_runs, coldstart_table,
                                                     coldstart_text, plot_coldstart)
from bench.studies.ensemble.experiments import BATCHES, MEMBERS, STUDY
from bench.studies.ensemble.repeats import short, spread, text
from servebench import cgroups

CORES_NOTE_FUNCTIONS = 3


def _newest(runs: list[Run], kind: str) -> Run | None:
    mine = [r for r in runs if r.kind == kind and r.record.study == STUDY and not r.interrupted]
    return mine[-1] if mine else None


def label_of(run: Run) -> str | None:
    """serial, parallel, or '<member> alone' for one of the study's bench runs."""
    knobs = run.get("stack", "knobs", default={}) or {}
    members = tuple(m for m in str(knobs.get("SB_ENSEMBLE_MEMBERS", ",".join(MEMBERS))).split(",") if m)
    if len(members) == 1:
        return f"{members[0]} alone"
    if run.arch == "ensemble-serial":
        return "serial"
    if run.arch == "ensemble-parallel":
        return "parallel"
    return None


def pass_p50s(run: Run) -> dict | None:
    """The p50 (ms) of each of the run's passes as a spread, and its requests per pass; a run without a
    latency.hdr of its passes counts as one run (its summary's p50)."""
    p50s = []
    try:
        dist = distributions.read(run.path)
        if dist.repeats and len(dist.repeats) > 1:
            p50s = [float(dist.quantiles([0.5], repeat=k)[0]) for k in sorted(dist.repeats)]
    except (OSError, ValueError):
        pass
    s = spread(p50s or [run.get("latency_ms", "p50")])
    if s is None:
        return None
    passes = run.get("passes", default=[])
    s["requests_per_pass"] = passes[0].get("requests") if passes else run.get("requests", "count")
    return s


def bench_spreads(ctx: Context) -> dict[str, dict[int, dict]]:
    """label -> batch -> the newest run's per-pass p50 spread (ms; median, min, max, n passes)."""
    out: dict[str, dict[int, dict]] = {}
    for run in ctx.runs:
        if run.kind != "bench" or run.record.study != STUDY or run.interrupted:
            continue
        label, batch = label_of(run), run.get("settings", "batch")
        if label and batch and (s := pass_p50s(run)):
            out.setdefault(label, {})[int(batch)] = s
    return out


def bench_p50(ctx: Context) -> dict[str, dict[int, float]]:
    """label -> batch -> the median over the newest run's passes of their p50 latency (ms)."""
    return {label: {b: s["median"] for b, s in by_batch.items()} for label, by_batch in bench_spreads(ctx).items()}


def passes_text(spreads: dict[str, dict[int, dict]]) -> str:
    """How many passes and requests stand behind the serial and parallel figures, e.g. 'median of 3 passes
    (min–max); requests per pass: 100 at batch 1, ..., 10 at batch 1,000'."""
    runs = [s for label in ("serial", "parallel") for s in spreads.get(label, {}).values()]
    if not runs:
        return "not measured yet"
    n = sorted({s["n"] for s in runs})
    per = {}
    for label in ("serial", "parallel"):
        for b, s in spreads.get(label, {}).items():
            per.setdefault(b, s.get("requests_per_pass"))
    reqs = ", ".join(f"{per[b]:,} at batch {b:,}" for b in sorted(per) if per[b])
    head = ("one run" if n == [1] else
            f"median of {'/'.join(map(str, n))} passes (min–max)" + (", fewer than 3" if min(n) < 3 else ""))
    return f"{head}; requests per pass: {reqs}"


def bench_resources(ctx: Context) -> dict[str, dict]:
    """label -> resources of its newest batch-100 run (per service: CPU seconds, RSS)."""
    out = {}
    for run in ctx.runs:
        if run.kind == "bench" and run.record.study == STUDY and run.get("settings", "batch") == 100:
            if (label := label_of(run)) and run.get("resources"):
                out[label] = run.get("resources")
    return out


def references(p50: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """sum(T) and max(T) of the members alone, per batch size where all three were measured."""
    sums, maxes = {}, {}
    for b in BATCHES:
        alone = [p50.get(f"{m} alone", {}).get(b) for m in MEMBERS]
        if all(t is not None for t in alone):
            sums[b], maxes[b] = sum(alone), max(alone)
    return {"sum(T)": sums, "max(T)": maxes}


def _ms(v):
    return significant(v) if v is not None else missing()


def accuracy_table(inproc: Run | None):
    acc = inproc.get("accuracy") if inproc else None
    rows = []
    theirs = published.ACCURACY_PERCENT
    ours = []
    if acc:
        ours = [(m["model"], 100 * m["test_accuracy"]) for m in acc["members"].values()]
        ours.append(("ensemble (average)", 100 * acc["ensemble"]["test_accuracy"]))
    for i, name in enumerate((*published.MEMBERS, "Ensemble")):
        mine = ours[i] if i < len(ours) else (None, None)
        rows.append([name, printed(theirs[name]), mine[0] or missing(),
                     f"{mine[1]:.2f}" if mine[1] is not None else missing()])
    gain = acc.get("gain_points_over_best") if acc else None
    rows.append(["gain over the best member (points)", printed(published.gain_over_best_points()), "",
                 f"{gain:+.2f}" if gain is not None else missing()])
    where = (f"ours: CIFAR-10 test set, {acc['test_images']:,} images" if acc else "ours: not measured yet")
    return table(["study's model", f"study (%, {published.DATASET})", "our model", f"ours (%; {where})"], rows)


def inprocess_spread(row: dict | None) -> dict | None:
    """An in-process timing (median of its calls, min, max, n calls) as a spread."""
    if not row or row.get("p50_ms") is None:
        return None
    if row.get("min_ms") is None:  # recorded before min and max were
        return {"median": row["p50_ms"], "min": row["p50_ms"], "max": row["p50_ms"], "n": 1}
    return {"median": row["p50_ms"], "min": row["min_ms"], "max": row["max_ms"], "n": row.get("calls", 1)}


def latency_table(spreads, inproc: Run | None):
    p50 = {label: {b: s["median"] for b, s in by_batch.items()} for label, by_batch in spreads.items()}
    refs = references(p50)
    lat = (inproc.get("latency") if inproc else None) or {}
    rows = []
    for b in BATCHES:
        alone = [p50.get(f"{m} alone", {}).get(b) for m in MEMBERS]
        s, p = spreads.get("serial", {}).get(b), spreads.get("parallel", {}).get(b)
        slowest = max(alone) if all(a is not None for a in alone) else None
        per = (s or p or {}).get("requests_per_pass")
        n = (s or p or {}).get("n")
        ip = {v: inprocess_spread(lat.get(str(b), {}).get(v)) for v in ("inprocess-serial", "inprocess-threads")}
        rows.append([b, f"{per:,} × {n}" if per and n else missing(), *[_ms(a) for a in alone],
                     _ms(refs["sum(T)"].get(b)), _ms(refs["max(T)"].get(b)),
                     short(s) if s else missing(), short(p) if p else missing(),
                     f"{s['median'] / p['median']:.2f}×" if s and p else missing(),
                     f"{100 * (p['median'] / slowest - 1):+.1f}%" if p and slowest else missing(),
                     short(ip["inprocess-serial"]) if ip["inprocess-serial"] else missing(),
                     short(ip["inprocess-threads"]) if ip["inprocess-threads"] else missing()])
    return table(["batch", "requests per pass × passes", *[f"{m} alone" for m in MEMBERS], "sum(T)", "max(T)",
                  "serial (median, min–max)", "parallel (median, min–max)", "serial ÷ parallel (medians)",
                  "parallel vs slowest member", "in-process serial (median of calls, min–max)",
                  "in-process threads"], rows)


def functions_table(ctx: Context):
    fun = _newest(ctx.runs, "ensemble-functions")
    # The parallel stack's record: every member ran there.
    recs = [r for r in ctx.runs if r.kind == "ensemble-functions" and r.get("label") == "parallel"]
    fun = recs[-1] if recs else fun
    res = bench_resources(ctx).get("parallel", {})
    rows = []
    for svc, doc in ((fun.get("functions") or {}) if fun else {}).items():
        lim = doc.get("limits") or {}
        r = res.get(svc, {})
        rows.append([svc, lim.get("memory_mb") or "unlimited", lim.get("cpus") or "unlimited",
                     _ms(doc.get("cold_start_s")), _ms(doc.get("peak_memory_mb")), _ms(r.get("rss_mb_max")),
                     _ms(doc.get("cpu_seconds")), _ms(r.get("cpu_seconds_per_image") and 1000 * r["cpu_seconds_per_image"]),
                     _ms(doc.get("throttled_s")), doc.get("oom_kills", missing())])
    if not rows:
        rows.append([missing("no ensemble-functions record yet"), *[""] * 9])
    return table(["function", "memory limit (MB)", "CPU quota (vCPU)", "cold start (s)", "peak memory (MB, cgroup)",
                  "RSS max (MB, batch 100)", "CPU (s, whole stack life)", "CPU per image (ms, batch 100)",
                  "throttled (s)", "OOM kills"], rows)


def deadline_table(ctx: Context):
    run = _newest(ctx.runs, "ensemble-deadline")
    rows = []
    for row in (run.get("deadline", "rows", default=[]) if run else []):
        used = row.get("member_used_fraction", {})
        sp = row.get("spread") or {}
        acc = sp.get("accuracy")
        rows.append([row["deadline_ms"] or "none (wait for all)",
                     short({**acc, **{k: 100 * acc[k] for k in ("median", "min", "max")}}) if acc
                     else f"{100 * row['accuracy']:.2f}",
                     short(sp["members_used_mean"]) if sp.get("members_used_mean") else row["members_used_mean"],
                     *[f"{100 * used.get(m, 0):.0f}%" for m in MEMBERS],
                     row.get("no_answer_requests", 0),
                     short(sp["p50_ms"]) if sp.get("p50_ms") else _ms(row["p50_ms"])])
    if not rows:
        rows.append([missing("no ensemble-deadline record yet"), *[""] * 7])
    batch = run.get("deadline", "batch") if run else 10
    n = run.get("deadline", "repeats", default=1) if run else 1
    how = "one run" if n == 1 else f"median of {n} repeats (min–max)"
    return table(["deadline (ms)", f"accuracy (%, batch {batch}; {how})", "members used (mean)",
                  *[f"{m} used" for m in MEMBERS], "requests with no member in time (all repeats)",
                  "p50 (ms)"], rows)


def cores_text(p50, machine_cpus: int | None, fun: Run | None) -> str:
    cpus = None
    if fun:
        cpus = next((d.get("limits", {}).get("cpus") for d in (fun.get("functions") or {}).values()
                     if d.get("limits")), None)
    per = cpus or cgroups.lambda_cpus(1769)
    asked = CORES_NOTE_FUNCTIONS * per
    have = machine_cpus or 2
    text = (f"Three functions at {per:g} vCPU each ({cgroups.LAMBDA_MB_PER_VCPU:,} MB = 1 vCPU, as on Lambda) ask for "
            f"{CORES_NOTE_FUNCTIONS} × {per:g} = {asked:g} cores; this machine has {have}. The quotas are ceilings, "
            f"not reservations: while all three run at once they share {have} cores, each getting at most "
            f"{have}/{CORES_NOTE_FUNCTIONS} = {have / CORES_NOTE_FUNCTIONS:.2f} of a core (less: nginx, Django and the "
            f"coordinator run on the same cores), so each member's time stretches by {CORES_NOTE_FUNCTIONS}/{have} = "
            f"{CORES_NOTE_FUNCTIONS / have:.2f}×. With k cores parallel takes at least max(max(T), sum(T) ÷ k): it is "
            f"at most k× faster than serial, here {have}× (the study's up to {published.PARALLEL_SPEEDUP_UP_TO}× "
            f"needs at least 3 cores), and it reaches max(T) only when k ≥ 3 cores are free for the functions "
            f"(4 with the front end and the coordinator).")
    refs = references(p50)
    b = max(refs["sum(T)"], default=None)
    if b is not None:
        s, m = refs["sum(T)"][b], refs["max(T)"][b]
        floor = max(m, s / have)
        text += (f" At batch {b:,}: sum(T) = {significant(s)} ms and max(T) = {significant(m)} ms, so on {have} cores "
                 f"parallel cannot beat max({significant(m)}, {significant(s)} ÷ {have}) = {significant(floor)} ms, "
                 f"while {CORES_NOTE_FUNCTIONS} free cores would allow max(T) = {significant(m)} ms.")
    return text


def plot_latency(p50, inproc: Run | None, path: Path, spreads: dict | None = None) -> Path:
    from bench.report import plots

    plt = plots.plt
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    styles = {"serial": ("tab:olive", "-", "o"), "parallel": ("tab:cyan", "-", "s")}
    for i, m in enumerate(MEMBERS):
        styles[f"{m} alone"] = (plt.get_cmap("Greys")(0.45 + 0.2 * i), "-", ".")
    drawn = False
    for label, (color, ls, marker) in styles.items():
        pts = sorted(p50.get(label, {}).items())
        if pts:
            ax.plot(*zip(*pts), color=color, ls=ls, marker=marker, label=label)
            drawn = True
            runs = (spreads or {}).get(label, {})
            if label in ("serial", "parallel") and any(runs.get(b, {}).get("n", 1) > 1 for b, _ in pts):
                xs = [b for b, _ in pts]  # the passes' min-max around the median
                ax.errorbar(xs, [y for _, y in pts], fmt="none", ecolor=color, capsize=3,
                            yerr=[[y - runs[b]["min"] for b, y in pts], [runs[b]["max"] - y for b, y in pts]])
    for name, series in references(p50).items():
        pts = sorted(series.items())
        if pts:
            ax.plot(*zip(*pts), color="black", ls="--" if name == "sum(T)" else ":", lw=1.2,
                    label=f"{name} of the members alone")
    lat = inproc.get("latency") if inproc else None
    if lat:
        for v, ls in (("inprocess-serial", (0, (3, 1, 1, 1))), ("inprocess-threads", (0, (1, 1)))):
            pts = sorted((int(b), row[v]["p50_ms"]) for b, row in lat.items() if v in row)
            ax.plot(*zip(*pts), color="tab:purple", ls=ls, label=f"{v} (one process, no HTTP)")
            drawn = True
    if not drawn:
        plots.placeholder(ax, "no ensemble runs yet: make study STUDY=ensemble")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if drawn:
        plots.plain_log(ax.xaxis)
        plots.plain_log(ax.yaxis)
    ax.set_xlabel("images per request (batch size)")
    ax.set_ylabel("p50 latency of one request (ms)")
    ax.set_title("Ensemble latency by batch size, with sum(T) and max(T) of the members")
    if drawn:
        ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    return plots.save(fig, path)


def plot_deadline(run: Run | None, path: Path) -> Path:
    from bench.report import plots

    plt = plots.plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    rows = [r for r in (run.get("deadline", "rows", default=[]) if run else []) if r.get("deadline_ms")]
    if rows:
        xs = [r["deadline_ms"] for r in rows]
        ax.plot(xs, [100 * r["accuracy"] for r in rows], marker="o", color="tab:cyan", label="accuracy (%)")
        ax2 = ax.twinx()
        ax2.plot(xs, [r["members_used_mean"] for r in rows], marker=".", color="tab:gray", ls="--",
                 label="members used (mean)")
        ax2.set_ylim(0, 3.2)
        ax2.set_ylabel("members used (mean)")
        wait_all = next((r for r in run.get("deadline", "rows") if not r.get("deadline_ms")), None)
        if wait_all:
            ax.axhline(100 * wait_all["accuracy"], color="black", ls=":", lw=1, label="no deadline")
        ax.set_xscale("log")
        plots.plain_log(ax.xaxis)
        ax.legend(fontsize=7, loc="lower right")
    else:
        plots.placeholder(ax, "no deadline sweep yet: make study STUDY=ensemble")
    ax.set_xlabel("deadline (ms)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Deadline mode: accuracy against deadline")
    return plots.save(fig, path)


def answer(ctx: Context) -> Answer | None:
    """Parallel against serial at the largest batch both ran, against max(T), the accuracy gained, and the
    cold start's cost."""
    spreads = bench_spreads(ctx)
    p50 = bench_p50(ctx)
    serial, parallel = spreads.get("serial", {}), spreads.get("parallel", {})
    both = sorted(set(serial) & set(parallel))
    parts = []
    if both:
        b = both[-1]
        s, p = serial[b], parallel[b]
        parts.append(f"At batch {b:,}, parallel answers in {text(p, 'ms', 'passes')} against serial's "
                     f"{text(s, 'ms', 'passes')}, {p.get('requests_per_pass')} requests a pass "
                     f"({s['median'] / p['median']:.2f}× faster; the study: up to {published.PARALLEL_SPEEDUP_UP_TO}×)")
        slowest = references(p50)["max(T)"].get(b)
        if slowest:
            over = 100 * (p["median"] / slowest - 1)
            parts[-1] += (f", {abs(over):.0f}% {'slower' if over >= 0 else 'faster'} than its slowest member "
                          f"alone (the study at batch 1,000: {published.BATCH_1000_SLOWER_THAN_SLOWEST_PERCENT}% "
                          "slower)")
        parts[-1] += "."
    inproc = _newest(ctx.runs, "ensemble-inprocess")
    acc = inproc.get("accuracy") if inproc else None
    gain = acc.get("gain_points_over_best") if acc else None
    if gain is not None:
        parts.append(f"Averaging the three adds {gain:+.2f} points of accuracy over the best member "
                     f"(the study: {published.gain_over_best_points():+.2f}).")
    cold = coldstart_runs(ctx)
    if cold:
        parts.append("Scaled to zero, a cold request takes " + "; ".join(
            f"{text(r.get('cold', 'latency_ms'), 'ms', 'cold requests')} {mode} against "
            f"{text(r.get('warm', 'latency_ms'), 'ms', 'warm ones')} warm" for mode, r in cold.items()) + ".")
    return Answer(" ".join(parts), "ensemble-latency.png") if parts else None


def section(ctx: Context) -> Section:
    inproc = _newest(ctx.runs, "ensemble-inprocess")
    fun_runs = [r for r in ctx.runs if r.kind == "ensemble-functions" and r.record.study == STUDY]
    fun = fun_runs[-1] if fun_runs else None
    deadline = _newest(ctx.runs, "ensemble-deadline")
    spreads = bench_spreads(ctx)
    p50 = bench_p50(ctx)
    cold = coldstart_runs(ctx)
    machine_cpus = None
    for r in reversed(ctx.runs):
        if r.record.study == STUDY and (c := r.get("provenance", "machine", "logical_cpus")):
            machine_cpus = int(c)
            break
    intro = ("Three CIFAR-10 models of different families (the Table 1 CNN, a ResNet-20 and a MobileNetV2 adapted to "
             "32×32) each run as a function: its own FastAPI model process in a cgroup whose CPU quota follows its "
             "memory limit as on Lambda. A coordinator behind the usual nginx → gunicorn → Django front end calls "
             "them one after another (ensemble-serial) or all at once (ensemble-parallel) and averages their "
             "softmax outputs. A member alone is the same coordinator with that one member, so every line crosses "
             "the same hops. Study: " + published.SOURCE + ". Its models, data set and hardware differ from ours "
             "(ImageNet models on AWS Lambda); compare shapes and ratios, never absolute times.")
    blocks = [
        Text(intro),
        Heading("Accuracy: the study's beside ours"),
        accuracy_table(inproc),
        Text(dataset_note()),
        Heading("Latency by batch size: serial against parallel"),
        Text("p50 of one request through nginx at each batch size (raw bodies, one request at a time): "
             + passes_text(spreads) + ". sum(T) and max(T) are of the members alone (their medians), as the "
             "study's serial = sum and parallel = max. In process: the median of each variant's timed calls "
             "(min–max). The study: " + "; ".join(published.CLAIMS) + "."),
        latency_table(spreads, inproc),
        Figure("ensemble-latency", "ensemble-latency.png",
               "p50 latency by batch size (serial and parallel: median of the passes, bars min–max): members alone "
               "(grey), serial, parallel, sum(T) and max(T) of the members (black dashed and dotted), and the three "
               "models in one process (purple).",
               lambda path: plot_latency(p50, inproc, path, spreads)),
        Heading("Three 1-vCPU functions on two cores"),
        Text(cores_text(p50, machine_cpus, fun)),
        Heading("CPU and memory per function"),
        functions_table(ctx),
        Heading("Deadline mode"),
        Text("Clipper's deadline: the coordinator answers at the deadline with the average of the members that have "
             "answered and names them; a member that fails or times out is left out, and only when none answered is "
             "the request failed (502, or 504 when all timed out). Measured by a coordinator in the harness process "
             "against the parallel stack's member functions."),
        deadline_table(ctx),
        Text(dataset_note()),
        Figure("ensemble-deadline", "ensemble-deadline.png", "Accuracy and members used against the deadline.",
               lambda path: plot_deadline(deadline, path)),
        Heading("Cold starts per request: serial against parallel"),
        Text(coldstart_text(cold)),
        coldstart_table(cold),
        Figure("ensemble-coldstart", "ensemble-coldstart.png",
               "Every cold and warm request of the cold-start stacks (log scale); the bar is the median.",
               lambda path: plot_coldstart(cold, path)),
    ]
    return Section(title="Ensemble of three models as functions: serial against parallel", blocks=blocks)


# --------------------------------------------------------------------------- the README's blocks

def readme(ctx: Context) -> dict[str, str]:
    """The README's ensemble numbers (:mod:`bench.report.docs`), from the same runs as the section."""
    from bench.report.docs import md_table

    inproc = _newest(ctx.runs, "ensemble-inprocess")
    acc = inproc.get("accuracy") if inproc else None
    out = {}
    if acc:
        rows = [[m["model"], f"{100 * m['test_accuracy']:.2f}%"] for m in acc["members"].values()]
        rows.append(["**softmax average of the three**", f"**{100 * acc['ensemble']['test_accuracy']:.2f}%** "
                     f"({acc['gain_points_over_best']:+.2f} points over the best member)"])
        out["ensemble-accuracy"] = (md_table(["member (`models/<name>/1`)", f"test accuracy ({acc['test_images']:,} "
                                              f"images; `results/{inproc.run_id}`)"], rows)
                                    + "\n\n" + dataset_note())
    else:
        out["ensemble-accuracy"] = "Accuracy: not measured yet (make study STUDY=ensemble)."
    spreads = bench_spreads(ctx)
    p50 = bench_p50(ctx)
    refs = references(p50)
    rows = []
    for b in BATCHES:
        s, p = spreads.get("serial", {}).get(b), spreads.get("parallel", {}).get(b)
        total, slowest = refs["sum(T)"].get(b), refs["max(T)"].get(b)
        per = (s or p or {}).get("requests_per_pass")
        rows.append([f"{b:,}", f"{per:,}" if per else None, _md(slowest), _md(total),
                     short(s) if s else None, short(p) if p else None,
                     f"{s['median'] / p['median']:.2f}x" if s and p else None,
                     f"{100 * (p['median'] / slowest - 1):+.0f}%" if p and slowest else None])
    out["ensemble-table"] = ("p50 ms of one request through the whole stack (`make study STUDY=ensemble`; "
                             + passes_text(spreads) + "; members alone and sums: medians):\n\n" + md_table(
                                 ["batch", "requests per pass", "slowest member alone", "sum(T)",
                                  "serial (min-max)", "parallel (min-max)", "serial / parallel",
                                  "parallel vs slowest"], rows))
    out["ensemble-cores"] = cores_readme(ctx, p50, inproc, spreads)
    out["ensemble-coldstart"] = coldstart_readme(ctx)
    return out


def _md(v):
    return significant(v) if v is not None else None


def cores_readme(ctx: Context, p50, inproc: Run | None, spreads: dict | None = None) -> str:
    refs = references(p50)
    parts = []
    b = max(refs["sum(T)"], default=None)
    par = (spreads or {}).get("parallel", {}).get(b) if b else None
    if b and par:
        s, m = refs["sum(T)"][b], refs["max(T)"][b]
        parts.append(f"At batch {b:,} parallel cannot beat max({significant(m)}, {significant(s)} / 2) = "
                     f"{significant(max(m, s / 2))} ms on 2 cores; we measured {text(par, 'ms', 'passes')}: nginx, "
                     f"Django and the coordinator share the cores too. With three free cores it could reach max(T) "
                     f"= {significant(m)} ms; the study's \"{published.BATCH_1000_SLOWER_THAN_SLOWEST_PERCENT}% slower "
                     "than the slowest member\" needs that.")
    lat = (inproc.get("latency") if inproc else None) or {}
    row = lat.get(str(b)) if b else None
    if row and "inprocess-serial" in row and "inprocess-threads" in row:
        parts.append(f"In process, batch {b:,}: {text(inprocess_spread(row['inprocess-serial']), 'ms', 'calls')} "
                     f"serial, {text(inprocess_spread(row['inprocess-threads']), 'ms', 'calls')} in threads.")
    recs = [r for r in ctx.runs if r.kind == "ensemble-functions" and r.get("label") == "parallel"]
    fun = (recs[-1].get("functions") or {}) if recs else {}
    if fun:
        cold = [d["cold_start_s"] for d in fun.values() if d.get("cold_start_s") is not None]
        peaks = " / ".join(significant(d.get("peak_memory_mb")) for d in fun.values())
        limit = next((d["limits"]["memory_mb"] for d in fun.values() if (d.get("limits") or {}).get("memory_mb")), None)
        parts.append(f"Per function (one stack, one start each): start at stack up (launch to healthy under its "
                     f"quota) {min(cold):.1f}-{max(cold):.1f} s; peak memory {peaks} MB"
                     + (f" of {limit:,}." if limit else "."))
    dl = _newest(ctx.runs, "ensemble-deadline")
    rows = [r for r in (dl.get("deadline", "rows", default=[]) if dl else []) if r.get("deadline_ms")]
    if rows:
        shown = [r for r in rows if 0.5 <= r["members_used_mean"] < 2.95]
        every = next((r for r in rows if r["members_used_mean"] >= 2.95), None)
        said = ", ".join(f"{r['deadline_ms']:g} ms uses {r['members_used_mean']:.1f} members on average "
                         f"({100 * r['accuracy']:.1f}% accurate)" for r in shown)
        if every:
            said += f", {every['deadline_ms']:g} ms and more all three ({100 * every['accuracy']:.1f}%)"
        n = dl.get("deadline", "repeats", default=1)
        how = "one run" if n == 1 else f"medians of {n} repeats"
        parts.append(f"Deadline mode (batch {dl.get('deadline', 'batch')}, {rows[0].get('images')} images, {how}; "
                     f"accuracy as in the note above): {said}.")
    return " ".join(parts) if parts else "Not measured yet (make study STUDY=ensemble)."
