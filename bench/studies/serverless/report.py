"""The serverless study's section: Fig. 3, Fig. 5, Tables 1 and 2 beside the study's, cold against warm,
the whole model in one process. Reads the newest ``serverless`` run."""
from __future__ import annotations

import statistics
from pathlib import Path

from bench.formats import significant
from bench.report.docs import dataset_note
from bench.report.sections import Answer, Context, Figure, Heading, Section, Text
from bench.report.tables import table
from bench.studies.serverless import published

STUDY = "serverless"
TIMING_ONLY = "AlexNet: random weights, timing and memory only"
MODES = ("four functions", "one process")


def spread_text(s: dict | None, unit: str = "", show=significant) -> str:
    """'X (median of N repeats, a–b)', 'X (one run)', or 'not measured'."""
    if not s or not s.get("n"):
        return "not measured"
    if s["n"] == 1:
        return f"{show(s['median'])}{unit} (one run)"
    return f"{show(s['median'])}{unit} (median of {s['n']} repeats, {show(s['min'])}–{show(s['max'])}{unit})"


def _spread(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values)}


def latest(ctx: Context):
    runs = [r for r in ctx.runs if r.kind == "serverless"]
    return runs[-1] if runs else None


def _is_chunked(r: dict) -> bool:
    return bool(r.get("chunk"))


def _fig3(run, path: Path) -> Path:
    from bench.report import plots  # matplotlib: only when the report draws

    plt = plots.plt
    # Cold invocations: one fresh worker per stage and size, so each peak is that invocation's alone (a warm
    # worker still holds its previous call's memory, and can run out where the cold one fit).
    rows = [r for r in run.get("fig3", default=[]) if r["start"] == "cold" and r.get("ok", True)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for stage in published.STAGES:
        pts = sorted((r["record_size"], r["peak_memory_mb"] or 0, r["duration_s"]) for r in rows
                     if r["stage"] == stage and not _is_chunked(r))
        if pts:
            line, = a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=stage)
            b.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=stage, color=line.get_color())
    chunked = sorted((r["record_size"], r["peak_memory_mb"] or 0, r["duration_s"], r["chunk"]) for r in rows
                     if _is_chunked(r))
    if chunked:
        label = f"Conv_1 in chunks of {chunked[0][3]}"
        a.plot([p[0] for p in chunked], [p[1] for p in chunked], marker="x", ls="--", color="black", label=label)
        b.plot([p[0] for p in chunked], [p[2] for p in chunked], marker="x", ls="--", color="black", label=label)
    a.axhline(run.get("settings", "memory_mb") or 3008, color="gray", lw=0.8, ls=":")
    a.set(xlabel="images per record", ylabel="peak memory (MB, cgroup)", title="Peak memory per stage (cold)")
    b.set(xlabel="images per record", ylabel="duration (s, cold start, imports excluded)", title="Duration per stage")
    a.legend(fontsize=8)
    fig.suptitle(f"Fig. 3 here: {TIMING_ONLY}; memMax {run.get('settings', 'memory_mb')} MB; one cold run "
                 "per point; stages take a record at once, as in the study", fontsize=9)
    return plots.save(fig, path, dpi=110, tight=True)


def _fig4(run, path: Path) -> Path:
    from bench.report import plots

    plt = plots.plt
    rows = run.get("fig4", default=[])
    sizes = sorted({r["record_size"] for r in rows})
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / max(1, len(modes))
    for ax, key, label in ((axes[0], "time_s", "time per record (s, cold, imports excluded)"),
                           (axes[1], "peak_memory_mb", "peak memory (MB)")):
        for j, mode in enumerate(modes):
            got = {r["record_size"]: r[key] for r in rows if r["mode"] == mode and r[key].get("n")}
            xs = [i + (j - (len(modes) - 1) / 2) * width for i, s in enumerate(sizes) if s in got]
            med = [got[s]["median"] for s in sizes if s in got]
            err = [[got[s]["median"] - got[s]["min"] for s in sizes if s in got],
                   [got[s]["max"] - got[s]["median"] for s in sizes if s in got]]
            ax.bar(xs, med, width, yerr=err, capsize=3, label=mode)
        ax.set_xticks(range(len(sizes)), [f"{s:,}" for s in sizes])
        ax.set(xlabel="images per record", ylabel=label)
    axes[0].legend(fontsize=8)
    ns = sorted({r["time_s"]["n"] for r in rows})
    fig.suptitle(f"Fig. 4 here: {TIMING_ONLY}; memMax {run.get('settings', 'memory_mb')} MB each; bars: median of "
                 f"{'/'.join(map(str, ns))} repeats, whiskers min-max;\nfour functions' memory: their largest stage", fontsize=9)
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
    b.plot(ps, [r["cost_usd"] for r in rows], marker="s", ls="--", color="tab:red", label="cost")
    b.set_ylabel("cost (USD, price table)")
    lines = a.get_lines() + b.get_lines()
    a.legend(lines, [ln.get_label() for ln in lines], loc="upper left", fontsize=8)
    out = [r["parallelism"] for r in rows if r["cores_exhausted"]]
    if out:
        a.axvline(out[0], color="gray", ls="--")
        a.text(out[0], a.get_ylim()[0] + 0.05 * (a.get_ylim()[1] - a.get_ylim()[0]),
               f"P x vCPU > {run.get('cpu_count')} cores ", fontsize=8, ha="right")
    fig.suptitle(f"Fig. 5 here: {TIMING_ONLY}; one run per P", fontsize=10)
    return plots.save(fig, path, dpi=110, tight=True)


def _tables(run) -> dict[str, dict]:
    """setting ("memMax-1000") -> its row; old runs without repeats read as one run."""
    out = {}
    for t in run.get("tables", default=[]):
        n = t.get("n", 1)
        out[t["setting"]] = {**t, "time": {"n": n, "median": t["time_s"], "min": t.get("time_s_min", t["time_s"]),
                                           "max": t.get("time_s_max", t["time_s"])},
                             "cost": {"n": n, "median": t["cost_usd"], "min": t.get("cost_usd_min", t["cost_usd"]),
                                      "max": t.get("cost_usd_max", t["cost_usd"])}}
    return out


def _table_sizes(run) -> list[int]:
    return sorted({t["record_size"] for t in run.get("tables", default=[])}, reverse=True)


def _usd(x: float | None) -> str:
    return "–" if x is None else f"{x:.2g}"


def table_text(run, size: int) -> str | None:
    """memMax against memMin at one record size, with n and spread."""
    by = _tables(run)
    hi, lo = by.get(f"memMax-{size}"), by.get(f"memMin-{size}")
    if not hi or not lo or not hi["time"]["n"] or not lo["time"]["n"]:
        return None
    mins = " / ".join(f"{lo['memory_mb'][s]:,}" for s in published.STAGES)
    fails = sum(t.get("failed", 0) for t in (hi, lo))
    return (f"{size:,}-image record: memMax {spread_text(hi['time'], ' s')}, "
            f"${spread_text(hi['cost'], show=_usd)}; memMin ({mins} MB, found by running) "
            f"{spread_text(lo['time'], ' s')} ({lo['time']['median'] / hi['time']['median'] - 1:+.0%}), "
            f"${spread_text(lo['cost'], show=_usd)} ({lo['cost']['median'] / hi['cost']['median'] - 1:+.0%})"
            + (f"; {fails} repeat(s) failed ({'; '.join(hi.get('failures', []) + lo.get('failures', []))})"
               if fails else ""))


def _fig4_rows(run) -> dict[tuple[int, str], dict]:
    return {(r["record_size"], r["mode"]): r for r in run.get("fig4", default=[])}


def fig4_text(run) -> str | None:
    rows = _fig4_rows(run)
    parts = []
    for size in sorted({s for s, _ in rows}):
        four, one = rows.get((size, MODES[0])), rows.get((size, MODES[1]))
        if not four or not one or not four["time_s"].get("n") or not one["time_s"].get("n"):
            continue
        ratio = four["time_s"]["median"] / one["time_s"]["median"]
        parts.append(f"{size:,} images: four functions {spread_text(four['time_s'], ' s')} and "
                     f"{spread_text(four['peak_memory_mb'], ' MB')} at the largest stage, one process "
                     f"{spread_text(one['time_s'], ' s')} and {spread_text(one['peak_memory_mb'], ' MB')} "
                     f"({ratio:.2f}x the time)")
    return "; ".join(parts) or None


def _med_range(s: dict, unit: str) -> str:
    """'X unit (a–b)': a median and its repeats' range, the count said once beside it."""
    return f"{significant(s['median'])}{unit} ({significant(s['min'])}–{significant(s['max'])})"


def answer(ctx: Context) -> Answer | None:
    """memMin against memMax (Tables 1 and 2) and the split against one process (Fig. 4), in short."""
    run = latest(ctx)
    if run is None:
        return None
    parts, by = [], _tables(run)
    for size in _table_sizes(run):
        hi, lo = by.get(f"memMax-{size}"), by.get(f"memMin-{size}")
        if not hi or not lo or not hi["time"]["n"] or not lo["time"]["n"]:
            continue
        n = sorted({hi["time"]["n"], lo["time"]["n"]})
        mins = " / ".join(f"{lo['memory_mb'][st]:,}" for st in published.STAGES)
        parts.append(f"at {size:,} images memMin ({mins} MB) "
                     f"costs {1 - lo['cost']['median'] / hi['cost']['median']:.0%} less than memMax and takes "
                     f"{_med_range(lo['time'], ' s')} against {_med_range(hi['time'], ' s')} "
                     f"(medians of {'/'.join(map(str, n))} repeats, min–max)")
    text = ("Tables 1 and 2: " + "; ".join(parts) + ".") if parts else ""
    rows = _fig4_rows(run)
    sizes = [s for s in sorted({s for s, _ in rows}) if all(rows.get((s, m), {}).get("time_s", {}).get("n")
                                                            for m in MODES)]
    if sizes:
        four, one = rows[(sizes[-1], MODES[0])], rows[(sizes[-1], MODES[1])]
        text += (f" Fig. 4: on a {sizes[-1]:,}-image record the four functions take "
                 f"{four['time_s']['median'] / one['time_s']['median']:.2f}x the time of the whole model as one "
                 f"function ({_med_range(four['time_s'], ' s')} against {_med_range(one['time_s'], ' s')}, "
                 f"medians of {four['time_s']['n']}/{one['time_s']['n']} repeats, min–max), their largest stage "
                 f"peaking at {_med_range(four['peak_memory_mb'], ' MB')} against "
                 f"{_med_range(one['peak_memory_mb'], ' MB')}.")
    if not text:
        return None
    return Answer(text.strip(), "serverless-fig4.png" if sizes else "serverless-fig3.png")


def section(ctx: Context) -> Section:
    run = latest(ctx)
    blocks = [Text("AlexNet split into four functions (Conv_1, Conv_2, Conv_3, FC), each a worker process in its own "
                   "cgroup: memory limit = the function's memory, CPU = memory / 1,769 MB vCPU, as on Lambda; "
                   "records (TFRecord) and intermediates through SeaweedFS's S3 API. " + published.FIG3_FINDINGS
                   + " (study) " + published.FIG5_FINDINGS + " (study)")]
    if run is None:
        blocks.append(Text("No serverless run yet: make study STUDY=serverless."))
        return Section("Serverless: a layer-split CNN as memory-limited functions", blocks)
    st = run.get("settings", default={})
    chunk = st.get("chunk", 0)
    check = run.get("check")
    if check:
        blocks.append(Text(f"Table 1 CNN through its four functions on {check['images']} test images"
                           + (f" (in chunks of {check['chunk']})" if check.get("chunk") else "")
                           + f": classes equal to the whole model: {check['classes_equal']}; largest probability "
                           f"difference {check['max_abs_prob_diff']:.2g}; accuracy {check['accuracy']:.4f}. "
                           + dataset_note()))
    blocks += [Heading("Fig. 3: peak memory and duration per stage against images per record"),
               Figure(f"{STUDY}-fig3", "serverless-fig3.png", f"run {run.run_id}; {TIMING_ONLY}",
                      lambda p: _fig3(run, p)),
               Text(" ".join(t for t in (fc_text(run), chunk_text(run), pipeline_text(run)) if t)),
               Heading("Cold against warm start per stage (a record at once)"),
               table(["images/record", "stage", "cold run (s)", "cold init before it (s)", "warm run (s)",
                      "peak cold (MB)", "peak warm (MB)"], _coldwarm(run.get("fig3", default=[])))]
    if run.get("fig4"):
        blocks += [Heading("Fig. 4: the four functions against one process on the same records"),
                   Figure(f"{STUDY}-fig4", "serverless-fig4.png",
                          f"run {run.run_id}; {TIMING_ONLY}; the study: one 1,000-image record in "
                          f"{published.RECORD_TIME_S[1000]} s on Lambda against {published.GPU_RECORD_1000_S} s on "
                          "one GPU", lambda p: _fig4(run, p)),
                   Text("Both cold, on the same record, each function at memMax"
                        + (f", {chunk} images computed at a time" if chunk else "")
                        + ": the four functions' durations summed (imports excluded, weight and store reads "
                        "included) against the whole model as one function reading the same record. "
                        + (fig4_text(run) or "") + "."),
                   table(["images/record", "mode", "time (s)", "min–max", "with cold starts (s)", "peak (MB)",
                          "min–max (MB)", "n", "failed"],
                         [[r["record_size"], r["mode"], significant(r["time_s"].get("median")),
                           _minmax(r["time_s"]), significant(r["wall_s"].get("median")),
                           significant(r["peak_memory_mb"].get("median")), _minmax(r["peak_memory_mb"]),
                           r["time_s"].get("n", 0), r.get("failed", 0)] for r in run.get("fig4", default=[])])]
    blocks += [Heading("Fig. 5: total time and cost against parallel workers"),
               Figure(f"{STUDY}-fig5", "serverless-fig5.png",
                      f"run {run.run_id}; {TIMING_ONLY}; one run per P; {run.get('cpu_count')} cores: parallelism "
                      f"beyond cores / vCPU per function only queues", lambda p: _fig5(run, p)),
               table(["P", "total time (s)", "cost (USD)", "records done", "failed", "vCPU asked", "beyond the cores"],
                     [[r["parallelism"], round(r["wall_s"], 1), f"{r['cost_usd']:.6f}", r["done"], r["failed"],
                       r["vcpus_asked"], r["cores_exhausted"]] for r in run.get("fig5", default=[])])]
    rows = [[f"study {t['setting']}", *t["memory_mb"], t["time_s"], "–", f"{t['cost_usd']:.4f}", "–", "–", "–"]
            for t in published.TABLES]
    rows += [[f"here {name}", *[t["memory_mb"][s] for s in published.STAGES], significant(t["time"]["median"]),
              _minmax(t["time"]), f"{t['cost']['median']:.6f}" if t["cost"]["n"] else "–",
              f"{t['cost']['min']:.6f}–{t['cost']['max']:.6f}" if t["cost"]["n"] else "–",
              f"{t['cost_per_1000_images']:.6f}" if t.get("cost_per_1000_images") else "–", t["time"]["n"]]
             for name, t in _tables(run).items()]
    blocks += [Heading("Tables 1 and 2: memMax against memMin (memMin found by running on the price table's grid)"),
               Text(f"{TIMING_ONLY}. The study's time is one record with 20 in parallel and its cost covers its whole "
                    f"run; ours is one record's four stages in sequence, cold, median of the repeats (n), "
                    + (f"{chunk} images computed at a time, " if chunk else "")
                    + f"cost from the price table ({run.get('prices', 'name')}, {run.get('prices', 'date')}). "
                    + " ".join(t + "." for t in (table_text(run, s) for s in _table_sizes(run)) if t)),
               table(["setting", *published.STAGES, "time (s)", "min–max", "cost (USD)", "min–max",
                      "USD / 1,000 images", "n"], rows)]
    blocks += [Heading("The whole model in one process (the study's single-GPU baseline: "
                       f"{published.GPU_RECORD_1000_S} s per 1,000-image record)"),
               table(["images/record", "seconds, this CPU (median)", "min–max", "n"],
                     [[r["record_size"], r["seconds"], _minmax({"n": r.get("n", 1), "min": r.get("seconds_min"),
                                                                "max": r.get("seconds_max")}), r.get("n", 1)]
                      for r in run.get("baseline", default=[])])]
    return Section("Serverless: a layer-split CNN as memory-limited functions", blocks)


def _minmax(s: dict) -> str:
    if not s.get("n") or s.get("min") is None:
        return "–"
    return f"{significant(s['min'])}–{significant(s['max'])}"


def _coldwarm(rows: list[dict]) -> list[list]:
    out = []
    cold = {(r["record_size"], r["stage"]): r for r in rows if r["start"] == "cold" and not _is_chunked(r)}
    for (size, stage), r in cold.items():
        warm = [w for w in rows if w["start"] == "warm" and w["record_size"] == size and w["stage"] == stage]
        ok = [w for w in warm if w.get("ok", True) and not w.get("cold")]
        failed = sorted({(w.get("kind") or "failed").replace("_", " ") for w in warm if not w.get("ok", True)})
        runs = _spread([w["duration_s"] for w in ok])
        warm_s = spread_text(runs, show=lambda x: f"{x:.2f}") if ok else "not run"
        if failed:
            warm_s = (warm_s + "; " if ok else "") + f"{len(warm) - len(ok)} of {len(warm)} {', '.join(failed)}"
        peaks = [w["peak_memory_mb"] or 0 for w in ok]
        out.append([size, stage, round(r["duration_s"], 2), round(r["init_s"], 2), warm_s,
                    round(r["peak_memory_mb"] or 0), f"{round(min(peaks))}–{round(max(peaks))}" if peaks else ""])
    return out


# --------------------------------------------------------------------------- beside Fig. 3, and the README

def _cold(run) -> dict[tuple[int, str], dict]:
    return {(r["record_size"], r["stage"]): r for r in run.get("fig3", default=[])
            if r["start"] == "cold" and r.get("ok", True) and not _is_chunked(r)}


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
    peaks = significant(min(fc)) if significant(min(fc)) == significant(max(fc)) else \
        f"{significant(min(fc))}-{significant(max(fc))}"
    return (f"FC's cold peak is {peaks} MB at every record size "
            f"({', '.join(f'{s:,}' for s in sizes)} images, one cold run each; its weights are read whole): "
            f"{verdict}.")


def conv1_chunked(run) -> list[tuple[int, float, float | None]]:
    """(record size, Conv_1's cold peak in chunks, its cold peak a record at once or None) per Fig. 3 size."""
    rows = run.get("fig3", default=[])
    whole = {r["record_size"]: r for r in rows if r["stage"] == "Conv_1" and r["start"] == "cold"
             and not _is_chunked(r)}
    out = []
    for r in sorted((r for r in rows if _is_chunked(r) and r.get("ok", True)), key=lambda r: r["record_size"]):
        w = whole.get(r["record_size"])
        out.append((r["record_size"], r["peak_memory_mb"] or 0,
                    (w["peak_memory_mb"] or 0) if w and w.get("ok", True) else None))
    return out


def chunk_text(run) -> str | None:
    found = conv1_chunked(run)
    if not found:
        return None
    chunk = run.get("settings", "chunk")
    pairs = ", ".join(f"{significant(c)} against {significant(w) if w is not None else 'out of memory'} MB at "
                      f"{s:,} images" for s, c, w in found)
    text = (f"Conv_1's cold peak in chunks of {chunk} images against a record at once: {pairs} (one cold run "
            "each)")
    big = _tables(run)
    top = max(_table_sizes(run), default=None)
    if top and big.get(f"memMax-{top}", {}).get("peak_memory_mb"):
        text += (f"; in chunks at {top:,} images (the tables' memMax runs) "
                 f"{spread_text(big[f'memMax-{top}']['peak_memory_mb']['Conv_1'], ' MB')}")
    return text + "."


def _warm_sums(run) -> dict[int, list[float]]:
    """Record size -> the four warm stages' summed duration, per warm pass where all four ran warm."""
    passes: dict[tuple[int, int], dict[str, float]] = {}
    for r in run.get("fig3", default=[]):
        if r["start"] == "warm" and r.get("ok", True) and not r.get("cold"):
            passes.setdefault((r["record_size"], r.get("repeat", 0)), {})[r["stage"]] = r["duration_s"]
    out: dict[int, list[float]] = {}
    for (size, _), by in sorted(passes.items()):
        if all(st in by for st in published.STAGES):
            out.setdefault(size, []).append(sum(by.values()))
    return out


def _baseline(run) -> dict[int, dict]:
    return {r["record_size"]: {"n": r.get("n", 1), "median": r["seconds"], "min": r.get("seconds_min", r["seconds"]),
                               "max": r.get("seconds_max", r["seconds"])} for r in run.get("baseline", default=[])}


def warm_pipeline(run) -> tuple[int, float, float] | None:
    """(record size, the four warm stages' summed duration, the whole model in one process), medians, at the
    smallest size where both ran."""
    warm, base = _warm_sums(run), _baseline(run)
    for size in sorted(base):
        if warm.get(size):
            return size, statistics.median(warm[size]), base[size]["median"]
    return None


def pipeline_text(run) -> str | None:
    found = warm_pipeline(run)
    if found is None:
        return None
    size, warm, one = found
    return (f"Warm, the four functions take {spread_text(_spread(_warm_sums(run)[size]), ' s')} for {size:,} images "
            f"(the stages' durations summed, store reads and writes included) against "
            f"{spread_text(_baseline(run)[size], ' s')} for the whole model in one process: "
            f"{'slower' if warm > one else 'faster'} than one process even without cold starts.")


def make_command(settings: dict) -> str:
    """The `make study` line that repeats a run: the knobs that differ from their defaults."""
    from bench.studies.serverless.knobs import Knobs

    parts = ["make study STUDY=serverless"]
    for name in ("record_sizes", "table_sizes", "fig4_sizes", "parallelism", "fig5_records", "fig5_record_size",
                 "repeats", "chunk", "memory_mb"):
        if name not in settings:
            continue
        value, default = settings[name], Knobs.model_fields[f"serverless_{name}"].default
        if (list(value) if isinstance(value, (list, tuple)) else value) != (
                list(default) if isinstance(default, tuple) else default):
            text = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            parts.append(f'SB_SERVERLESS_{name.upper()}="{text}"' if " " in text
                         else f"SB_SERVERLESS_{name.upper()}={text}")
    return " ".join(parts)


def readme(ctx: Context) -> dict[str, str]:
    """The README's serverless numbers (:mod:`bench.report.docs`), from the same run as the section."""
    run = latest(ctx)
    names = ("serverless-run", "serverless-results")
    if run is None:
        return {n: "Not measured yet: make study STUDY=serverless." for n in names}
    st = run.get("settings", default={})
    repeats = st.get("repeats", 1)
    head = (f"Measured (`results/{run.run_id}`, `{make_command(st)}`, {significant(run.get('wall_s') / 60)} "
            f"minutes on {run.get('cpu_count')} cores; Fig. 3 at {', '.join(map(str, st.get('record_sizes', [])))} "
            f"images per record (one cold run, then {repeats} warm repeats); Fig. 4 at "
            f"{', '.join(map(str, st.get('fig4_sizes', [])))} and Tables 1 and 2 at "
            f"{', '.join(map(str, st.get('table_sizes', [])))} images, {repeats} repeats each"
            + (f", {st['chunk']} images computed at a time" if st.get("chunk") else "")
            + f"; Fig. 5 one run per P; {TIMING_ONLY}; prices `{run.get('prices', 'name')}`):")
    out = []
    check = run.get("check")
    if check:
        out.append(f"- **Check**: the CNN through its four functions gives "
                   f"{'exactly ' if check['classes_equal'] else ''}the whole model's probabilities (largest "
                   f"difference {check['max_abs_prob_diff']:.2g}) on {check['images']:,} test images.")
    cold = _cold(run)
    c1 = sorted((s, r) for (s, stage), r in cold.items() if stage == "Conv_1")
    if c1:
        out.append(f"- **Fig. 3** (memMax {st.get('memory_mb'):,} MB, cold, a record at once): Conv_1 grows with "
                   f"the record ({' / '.join(significant(r['peak_memory_mb']) for _, r in c1)} MB peak at "
                   f"{' / '.join(str(s) for s, _ in c1)} images; "
                   f"{' / '.join(format(r['duration_s'], '.1f') for _, r in c1)} s). " + (fc_text(run) or "")
                   + " " + (chunk_text(run) or "") + " Cold starts add " + _span([r["init_s"] for r in cold.values()])
                   + " s of imports and weight reads per function. " + (pipeline_text(run) or ""))
    four = fig4_text(run)
    if four:
        out.append("- **Fig. 4** (cold, memMax each, the same record): " + four + ".")
    tables = [t for t in (table_text(run, s) for s in _table_sizes(run)) if t]
    if tables:
        out.append("- **Tables 1 and 2**: " + "; ".join(tables) + ".")
    fig5 = sorted(run.get("fig5", default=[]), key=lambda r: r["parallelism"])
    if fig5:
        over = next((r["parallelism"] for r in fig5 if r["cores_exhausted"]), None)
        out.append(f"- **Fig. 5** ({st.get('fig5_records')} records of {st.get('fig5_record_size')} images, one run "
                   "per P): " + ", ".join(f"P = {r['parallelism']}: {significant(r['wall_s'], ' s')}" for r in fig5)
                   + (f", cost {fig5[-1]['cost_usd'] / fig5[0]['cost_usd']:.1f}x from the first to the last"
                      if len(fig5) > 1 else "")
                   + (f"; the functions ask for more vCPUs than the {run.get('cpu_count')} cores from P = {over}"
                      if over else "") + ".")
    base = _baseline(run)
    if base:
        out.append("- **One process in the harness** (compute only, no store; the study's single-GPU baseline, here "
                   "the same CPU): the whole AlexNet takes "
                   + "; ".join(f"{spread_text(v, ' s')} for {s:,} images" for s, v in sorted(base.items())) + ".")
    return {"serverless-run": head, "serverless-results": "\n".join(out)}


def _span(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"
