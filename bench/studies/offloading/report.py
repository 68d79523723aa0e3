"""The offloading study's section: full-upload time per model, baseline against proposed build mode,
beside the study's Table 1, and query time over time as pieces arrive (the study's Fig. 3 and 5).

Built from the newest complete ``offloading`` run of each model (one run folder per model:
summary.json, uploads.csv, queries.csv). Random-weight models are labelled "timing only".
"""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt

from bench.formats import number, significant
from bench.report import plots
from bench.report.runs import Run
from bench.report.sections import Answer, Context, Figure, Heading, Section, Text
from bench.report.tables import Cell, missing, published, table
from bench.studies.offloading import published as study

STUDY = "offloading"
KIND = "offloading"
MODES = ("baseline", "proposed")
MODE_COLORS = {"baseline": "tab:red", "proposed": "tab:blue"}
ORDER = ("resnet152", "resnet50", "mobilenet", "alexnet", "cifar10_cnn")


def model_runs(runs: list[Run]) -> dict[str, Run]:
    """model -> its newest complete offloading run, in the study's order."""
    newest: dict[str, Run] = {}
    for run in runs:
        model = run.get("model")
        if run.kind == KIND and not run.interrupted and model and run.get("uploads"):
            if model not in newest or run.newest_key > newest[model].newest_key:
                newest[model] = run
    return dict(sorted(newest.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER)))


def title_of(run: Run) -> str:
    return f"{run.get('title')}" + (" (timing only)" if run.get("timing_only") else "")


def _key(key: str, end: str) -> str:
    # as the study's summary names them: upload_s -> upload_min_s; overlap_frac -> overlap_frac_min
    return key[:-2] + f"_{end}_s" if key.endswith("_s") else f"{key}_{end}"


def seconds(x: float | None) -> str:
    return significant(x, " s")


def percent(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def spread_text(mode: dict | None, key: str, show=seconds) -> str | None:
    """A mode's median of ``key`` with its min–max over the repeats ("X (a–b)"), or X alone for one repeat."""
    if not mode or number(mode.get(key)) is None:
        return None
    text = show(number(mode[key]))
    lo, hi = number(mode.get(_key(key, "min"))), number(mode.get(_key(key, "max")))
    if mode.get("repeats", 1) > 1 and lo is not None and hi is not None:
        text += f" ({show(lo).removesuffix(' s')}–{show(hi)})"
    return text


def spread(mode: dict | None, key: str = "upload_s", show=seconds) -> Cell:
    text = spread_text(mode, key, show)
    return missing() if text is None else Cell(text)


def repeats_of(runs: dict[str, Run]) -> list[int]:
    return sorted({(run.get("summary", "baseline", default={}) or {}).get("repeats", 1) for run in runs.values()})


def how_many(runs: dict[str, Run], spread: str = " (min–max)") -> str:
    """The sample behind every median: 'median of 5 repeats (min–max)' (``spread`` after the count), flagged
    when fewer than 3."""
    n = repeats_of(runs)
    if max(n, default=1) <= 1:
        return "one run each"
    return (f"median of {'/'.join(map(str, n))} repeats{spread}" + (", fewer than 3" if min(n) < 3 else ""))


def client_cpus(runs: dict[str, Run]) -> str:
    cpus = sorted({run.get("client_limits", "cpus") for run in runs.values()}, key=lambda c: c or 0)
    return "/".join("no quota" if not c else f"{c:g} core" for c in cpus)


def saving_text(s: dict) -> str | None:
    """The saving of the medians, with the range of each repeat's saving."""
    saving = number(s.get("saving_s"))
    if saving is None:
        return None
    text = f"{saving:+.2f} s"
    lo, hi = number(s.get("saving_min_s")), number(s.get("saving_max_s"))
    if lo is not None and hi is not None and lo != hi:
        text += f" (per repeat {lo:+.2f} to {hi:+.2f})"
    return text


def upload_table(runs: dict[str, Run]):
    rows = []
    for model, run in runs.items():
        s = run.get("summary", default={})
        base, prop = s.get("baseline"), s.get("proposed")
        pub = study.TABLE1.get(model, {})
        part = run.get("partition", default={})
        saving = saving_text(s)
        rows.append([
            title_of(run), significant(number(part.get("size_bytes", 0)) / 1e6),
            f"{part.get('pieces')} (study {part.get('pieces_study')})",
            significant(number((base or prop or {}).get("rate_mbit_measured"))),
            seconds(number((base or prop or {}).get("expected_s"))),
            spread(base), spread(prop),
            missing() if saving is None else Cell(saving),
            missing() if saving is None else Cell(f"{s.get('saving_pct'):+.1f}%"),
            published(pub["saved_s"]) if pub else missing("–"),
            Cell(f"{pub['saved_pct']}%") if pub else missing("–"),
            Cell(" → ".join(f"{pub[k]} s" for k in ("baseline_s", "proposed_s") if pub.get(k))
                 + (f" ({pub['expected_s']} s expected)" if pub.get("expected_s") else "")) if pub else missing("–"),
        ])
    return table(["Model", "Size (MB)", "Pieces", "Link (Mbit/s, measured)", "Expected from size",
                  f"Baseline upload, {how_many(runs)}", "Proposed upload", "Saved (of the medians)", "Saved %",
                  "Study: saved (s)", "Study: saved %", "Study: baseline → proposed"], rows)


def overlap_table(runs: dict[str, Run]):
    """Per model: the baseline's building, how much of it overlapped the transfer, how long the transfer stood
    still for it (and the proposed mode's same measure), beside the saving measured."""
    rows = []
    for run in runs.values():
        s = run.get("summary", default={})
        base, prop = s.get("baseline") or {}, s.get("proposed") or {}
        rows.append([title_of(run), str(base.get("repeats", "–")), spread(base, "build_s"),
                     spread(base, "overlap_s"), spread(base, "overlap_frac", percent),
                     spread(base, "stall_s"), spread(prop, "stall_s"), spread(base, "tail_s"),
                     seconds(number(s.get("stall_saved_s"))), Cell(saving_text(s) or "–")])
    return table(["Model", "n (repeats)", "Baseline: building (median, min–max)", "… overlapping the transfer",
                  "… as a share of the building", "… transfer stood still", "Proposed: transfer stood still",
                  "Baseline: building after the last byte", "Stood still, baseline − proposed",
                  "Saved (measured)"], rows)


def plot_overlap(runs: dict[str, Run], path: Path) -> Path:
    """Per model and mode, the median building split into: overlapping the transfer, the transfer standing
    still, after the last byte; the measured saving beside it."""
    parts = (("overlap_s", "overlapping the transfer", "tab:green"), ("stall_s", "transfer stood still", "tab:red"),
             ("tail_s", "after the last byte", "tab:gray"))
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.75 * len(runs) * len(MODES)))
    labels, y = [], 0
    for model, run in runs.items():
        s = run.get("summary", default={})
        for mode in MODES:
            m = s.get(mode) or {}
            left = 0.0
            for key, name, color in parts:
                width = number(m.get(key)) or 0.0
                ax.barh(y, width, left=left, color=color, label=name if y == 0 else None)
                left += width
            if mode == "baseline" and number(s.get("saving_s")) is not None:
                ax.text(left, y, f"  saved {s['saving_s']:+.2f} s", va="center", fontsize=8)
            labels.append(f"{run.get('title')}, {mode}")
            y += 1
        y += 0.5
    if not labels:
        plots.placeholder(ax, "no offloading run with a timeline yet")
        return plots.save(fig, path)
    positions = [i + 0.5 * (i // len(MODES)) for i in range(len(labels))]
    ax.set_yticks(positions, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"server build time per upload (s; each part: {how_many(runs, '')})")
    ax.set_title(f"How much of the building overlaps the transfer (client at {client_cpus(runs)})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return plots.save(fig, path, tight=True)


def read_queries(run: Run) -> list[dict]:
    path = Path(run.path) / "queries.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def plot_queries(run: Run, path: Path) -> Path:
    """Query time against its start time, baseline and proposed, each upload's completion marked."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    rows = read_queries(run)
    if not rows:
        plots.placeholder(ax, "no queries.csv in this run")
        return plots.save(fig, path)
    for mode in MODES:
        repeats = sorted({r["repeat"] for r in rows if r["mode"] == mode}, key=int)
        for repeat in repeats:
            mine = [r for r in rows if r["mode"] == mode and r["repeat"] == repeat]
            first = repeat == repeats[0]
            later = f" (faded: repeats {repeats[1]}-{repeats[-1]})" if len(repeats) > 1 else ""
            ax.plot([float(r["start_s"]) for r in mine], [float(r["duration_s"]) for r in mine], marker=".",
                    color=MODE_COLORS[mode], alpha=1.0 if first else 0.3, lw=1.2 if first else 0.8,
                    label=f"{mode}, repeat {repeat}{later}" if first else None)
            done = float(mine[0]["upload_done_s"])
            ax.axvline(done, color=MODE_COLORS[mode], ls="--", lw=1, alpha=1.0 if first else 0.3)
            if first:
                ax.text(done, 0.98, f"{mode} done {done:.1f} s ", rotation=90, fontsize=8,
                        color=MODE_COLORS[mode], ha="right", va="top", transform=ax.get_xaxis_transform())
    ax.set_yscale("log")
    ax.set_xlabel("query start (s after the upload began)")
    ax.set_ylabel("query execution time (s)")
    ax.set_title(f"{title_of(run)}: queries while the model is uploaded ({run.get('partition', 'pieces')} pieces)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    return plots.save(fig, path, tight=True)


def caption_of(run: Run) -> str:
    link = run.get("link", default={})
    limits = run.get("client_limits", default={})
    after = run.get("settings", "queries_after")
    return (f"Run {run.run_id} (results/<run>/queries.csv). {run.get('title')}: {run.get('label')}. Link "
            f"{link.get('rate_mbit_set')} Mbit/s set (tc tbf), {link.get('rate_mbit_measured')} measured before "
            f"the last upload; netem {link.get('netem')}. Client CPU quota {limits.get('cpus') or 'none'} CPU. "
            f"Dashed lines: each upload's completion (every piece built on the server); after it, {after} more "
            "queries. Faded: later repeats.")


def as_long_as(ours: float, theirs: float) -> str:
    """How a duration of ours compares with the study's, in words the numbers decide."""
    ratio = ours / theirs
    if abs(ratio - 1) <= 0.15:
        return "about as long as"
    return f"{ratio:.1f}x as long as" if ratio > 1 else f"{ratio:.2f}x (shorter than)"


def study_lost_s() -> float | None:
    """What the study's ResNet-152 baseline took beyond the time its size gives at the link's rate."""
    pub = study.TABLE1["resnet152"]
    return pub["baseline_s"] - pub["expected_s"] if pub.get("expected_s") else None


def overlap_share(measured: dict[str, Run]) -> str:
    """The per-model medians of the baseline's building share that overlapped the transfer, as a range."""
    fracs = [number(r.get("summary", "baseline", "overlap_frac")) for r in measured.values()]
    return percent(fracs[0]) if len(fracs) == 1 else f"{percent(min(fracs))}–{percent(max(fracs))}"


def overlap_findings(runs: dict[str, Run]) -> list[str]:
    """The cause of the smaller savings, as the overlap measurements give it (issue 20, audit item 8): how much
    of the baseline's building the transfer overlapped, how long it stood still, against the saving; and the
    build totals against the study's (our builds are not assumed faster than Caffe's: the numbers say)."""
    measured = {m: r for m, r in runs.items() if number(r.get("summary", "baseline", "overlap_frac")) is not None}
    if not measured:
        return []
    shares = "; ".join(f"{r.get('title')} {spread_text(r.get('summary', 'baseline'), 'overlap_frac', percent)}"
                       for r in measured.values())
    share = overlap_share(measured)
    out = [f"In the baseline, the transfer went on while the upload thread built (the socket buffers and the "
           f"link's queue take the next piece's bytes until they fill): it overlapped {share} of the building "
           f"(per model, the {how_many(measured, ', min–max beside it')}: {shares})"]
    parts = []
    for r in measured.values():
        s = r.get("summary", default={})
        if number(s.get("stall_saved_s")) is not None and number(s.get("saving_s")) is not None:
            lo, hi = number(s.get("saving_min_s")), number(s.get("saving_max_s"))
            noise = " (within its repeats' spread)" if lo is not None and hi is not None and lo < 0 < hi else ""
            parts.append(f"{r.get('title')} {seconds(number(s['stall_saved_s']))} against "
                         f"{seconds(number(s['saving_s']))} saved{noise}")
    if parts:
        out.append("Only the rest, the time the transfer stood still while the server built, is left for the build "
                   "thread to save (the baseline's, less the proposed mode's, where remote queries share the "
                   "link and the client's quota slows its sending; medians): " + "; ".join(parts))
    r152 = measured.get("resnet152")
    if r152:
        s = r152.get("summary", default={})
        build, frac = number(s["baseline"].get("build_s_total")), number(s["baseline"].get("overlap_frac"))
        text = (f"{r152.get('title')}'s {r152.get('partition', 'pieces')} pieces take "
                f"{spread_text(s['baseline'], 'build_s_total')} to build in total here in the baseline and "
                f"{spread_text(s.get('proposed'), 'build_s_total') or '–'} in the proposed mode (the "
                f"{how_many({'resnet152': r152}, ', min–max')}), {as_long_as(build, study.RESNET152_BUILD_S)} "
                f"the study's {study.RESNET152_BUILD_S} s on its Caffe server")
        lost, ours_pct = study_lost_s(), number(s.get("saving_pct"))
        smaller = ours_pct is not None and ours_pct < study.TABLE1["resnet152"]["saved_pct"]
        if build >= 0.85 * study.RESNET152_BUILD_S and frac >= 0.25 and smaller:
            text += (": our builds are not faster than Caffe's. Its saving is smaller than the study's because the "
                     f"transfer overlapped {percent(frac)} of the building here")
            if lost is not None and lost >= study.RESNET152_BUILD_S:
                text += (f", while the study's baseline took {lost:.1f} s longer than its size at the link's rate "
                         f"gives, more than its whole {study.RESNET152_BUILD_S} s of building, as if none of its "
                         "building had overlapped its transfer")
        out.append(text)
    return out


def answer(ctx: Context) -> Answer | None:
    """What the proposed build thread saves of the full upload, per model, beside the study's saving, and why
    it is smaller (the overlap)."""
    runs = model_runs(ctx.runs)
    saved = []
    for model, run in runs.items():
        s = run.get("summary", default={})
        if number(s.get("saving_s")) is None:
            continue
        pub = study.TABLE1.get(model)
        saved.append(f"{title_of(run)} {saving_text(s)}, {s['saving_pct']:+.1f}%"
                     + (f" (study {pub['saved_pct']}%)" if pub else ""))
    if not saved:
        return None
    rates = [number(run.get("summary", "baseline", "rate_mbit_measured")) for run in runs.values()]
    rates = [r for r in rates if r]
    link = f" over a {significant(sum(rates) / len(rates))} Mbit/s link" if rates else ""
    measured = {m: r for m, r in runs.items() if number(r.get("summary", "baseline", "overlap_frac")) is not None}
    why = (f" Building holds the transfer up for less than its duration: the transfer went on during "
           f"{overlap_share(measured)} of the baseline's building (per-model medians; the socket buffers take the "
           "next piece's bytes), so only the rest is left for the build thread to save.") if measured else ""
    return Answer(f"Building the pieces in a separate thread (proposed) instead of in the upload thread "
                  f"(baseline) saves, of the full upload{link} with the client at {client_cpus(runs)} "
                  f"({how_many(runs, '')}): " + "; ".join(saved) + "." + why,
                  "offloading_overlap.png" if measured else f"offloading_queries_{next(iter(runs))}.png")


def section(ctx: Context) -> Section | None:
    runs = model_runs(ctx.runs)
    intro = ("A client uploads a model to an edge server piece by piece over a shaped link (two network namespaces, "
             "a veth pair, tc tbf; 80 Mbit/s by default) while its query loop runs: each query runs the server's "
             "built prefix remotely and the rest locally. Baseline: the server builds each piece in its upload "
             "thread before reading the next; proposed: a separate build thread, which builds the pieces that "
             "arrived meanwhile together (bench/studies/offloading/, make study STUDY=offloading). 'Expected from "
             "size' is the bytes sent at the rate measured on the link just before the upload. The link adds no "
             "delay: netem is not in this kernel. ResNet-152, ResNet-50, MobileNet and AlexNet have random "
             "weights: timing only. The study's client was an Odroid XU4 and its server a 4-core x86 with a GPU "
             "running Caffe; here both share 2 cores, the client under a CPU quota")
    if not runs:
        return Section("Incremental offloading to an edge server",
                       [Text(intro + ". No offloading run yet: make study STUDY=offloading (as root).")])
    blocks = [Text(f"{intro} ({client_cpus(runs)} in these runs; SB_OFFLOAD_CLIENT_CPUS)."),
              Heading("Full-upload time: baseline and proposed (Table 1)"), upload_table(runs)]
    findings = overlap_findings(runs)
    if findings:
        blocks += [
            Heading("How much of the building overlaps the transfer, and what is left to save"),
            Text("Per upload, the server reads its upload connection's TCP_INFO at each build's start and end: the "
                 "upload's bytes that arrived while it built, at the link's measured rate, are the time the "
                 "transfer overlapped the building; the rest of a build before the last byte arrived is time the "
                 "transfer stood still; after it, building that neither mode can hide. Client and server share "
                 "one clock (CLOCK_MONOTONIC), so each upload's transfer and build spans are in uploads.csv on "
                 "the client's upload time (bench/studies/offloading/timeline.py)."),
            overlap_table(runs), Text(". ".join(findings) + "."),
            Figure(name="offloading_overlap", file="offloading_overlap.png",
                   caption=(f"The server's building per upload, split by what the transfer did meanwhile; each "
                            f"part: {how_many(runs, '')}, so the parts need not add up to the median total. In the "
                            "proposed mode building never holds the transfer: its 'stood still' part is time the "
                            "upload ran below the link's rate for other reasons (remote queries share the link; "
                            "the client's CPU quota slows its sending). "
                            f"Client at {client_cpus(runs)}. Runs: "
                            + ", ".join(r.run_id for r in runs.values()) + "."),
                   draw=lambda path: plot_overlap(runs, path))]
    blocks.append(Heading("Query time while the model uploads (Fig. 3 and 5)"))
    for model, run in runs.items():
        blocks.append(Figure(name=f"offloading_{model}", file=f"offloading_queries_{model}.png",
                             caption=caption_of(run), draw=lambda path, run=run: plot_queries(run, path)))
    return Section("Incremental offloading to an edge server", blocks)


# --------------------------------------------------------------------------- the README's blocks

def remote_queries(run: Run) -> list[int]:
    """Per upload (mode and repeat): how many queries ran a prefix on the server before the upload completed."""
    counts: dict[tuple[str, str], int] = {}
    for r in read_queries(run):
        if r["after_upload"] == "False" and int(r["server_pieces"] or 0) > 0:
            counts[(r["mode"], r["repeat"])] = counts.get((r["mode"], r["repeat"]), 0) + 1
    return sorted(counts.values())


def readme(ctx: Context) -> dict[str, str]:
    """The README's offloading numbers (:mod:`bench.report.docs`), from the same runs as the section."""
    from bench.report.docs import md_table

    runs = model_runs(ctx.runs)
    if not runs:
        return {n: "Not measured yet: make study STUDY=offloading." for n in ("offloading-table", "offloading-text")}
    rates = sorted({number(run.get("link", "rate_mbit_measured")) for run in runs.values()} - {None})
    set_rate = next(iter(runs.values())).get("link", "rate_mbit_set")
    rows = []
    for model, run in runs.items():
        s = run.get("summary", default={})
        base, prop = s.get("baseline"), s.get("proposed")
        part = run.get("partition", default={})
        pub = study.TABLE1.get(model, {})
        rows.append([title_of(run), significant(number(part.get("size_bytes", 0)) / 1e6), part.get("pieces"),
                     seconds(number((base or prop or {}).get("expected_s"))), spread_text(base, "upload_s"),
                     spread_text(prop, "upload_s"),
                     None if saving_text(s) is None else f"{saving_text(s)}, {s.get('saving_pct'):.1f}%",
                     spread_text(base, "overlap_frac", percent),
                     (f"saved {pub['saved_s']} s, {pub['saved_pct']}%" if pub else "–")
                     + (f" ({pub['baseline_s']} → {pub['proposed_s']} s)" if pub.get("baseline_s") else "")])
    head = (f"Measured (`results/*-offloading-*`, one run folder per model; {set_rate:g} Mbit/s set, "
            f"{'/'.join(dict.fromkeys(significant(r) for r in rates))} measured; client at {client_cpus(runs)}; "
            f"uploads: {how_many(runs)}; random weights, timing only):")
    table_md = head + "\n\n" + md_table(["Model", "MB", "Pieces", "Expected from size", "Baseline", "Proposed",
                                         "Saved (of the medians; per repeat)", "Baseline building overlapping "
                                         "the transfer", "Study"], rows)
    parts = overlap_findings(runs)
    alex = runs.get("alexnet")
    if alex and (counts := remote_queries(alex)):
        parts.append(f"{alex.get('title')} (whose first piece arrives early, so almost every query goes remote) "
                     f"sends {counts[0]}-{counts[-1]} remote queries up the link during each upload "
                     f"({len(counts)} uploads)")
    walls = [number(run.get("wall_s")) for run in runs.values()]
    if walls and None not in walls:
        uploads = sum(len(run.get("uploads", default=[]) or []) for run in runs.values())
        parts.append(f"The {len(runs)} runs took {sum(walls) / 60:.0f} min in all ({uploads} uploads, with each "
                     "client's own copy of its model built under the quota; partitioning aside)")
    return {"offloading-table": table_md, "offloading-text": ". ".join(parts) + "." if parts else ""}
