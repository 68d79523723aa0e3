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


def spread(mode: dict | None) -> Cell:
    if not mode:
        return missing()
    text = significant(number(mode.get("upload_s")), " s")
    if mode.get("repeats", 1) > 1:
        text += f" ({significant(number(mode.get('upload_min_s')))}–{significant(number(mode.get('upload_max_s')))})"
    return Cell(text)


def upload_table(runs: dict[str, Run]):
    rows = []
    for model, run in runs.items():
        s = run.get("summary", default={})
        base, prop = s.get("baseline"), s.get("proposed")
        pub = study.TABLE1.get(model, {})
        part = run.get("partition", default={})
        saving = number(s.get("saving_s"))
        rows.append([
            title_of(run), significant(number(part.get("size_bytes", 0)) / 1e6),
            f"{part.get('pieces')} (study {part.get('pieces_study')})",
            significant(number((base or prop or {}).get("rate_mbit_measured"))),
            significant(number((base or prop or {}).get("expected_s")), " s"),
            spread(base), spread(prop),
            missing() if saving is None else Cell(f"{saving:+.2f} s"),
            missing() if saving is None else Cell(f"{s.get('saving_pct'):+.1f}%"),
            significant(number((base or {}).get("build_s_total")), " s"),
            significant(number((prop or {}).get("build_s_total")), " s"),
            published(pub["saved_s"]) if pub else missing("–"),
            Cell(f"{pub['saved_pct']}%") if pub else missing("–"),
            Cell(" → ".join(f"{pub[k]} s" for k in ("baseline_s", "proposed_s") if pub.get(k))
                 + (f" ({pub['expected_s']} s expected)" if pub.get("expected_s") else "")) if pub else missing("–"),
        ])
    return table(["Model", "Size (MB)", "Pieces", "Link (Mbit/s, measured)", "Expected from size",
                  "Baseline upload (median, min–max)", "Proposed upload", "Saved", "Saved %",
                  "Build total, baseline", "Build total, proposed", "Study: saved (s)", "Study: saved %",
                  "Study: baseline → proposed"], rows)


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
        for repeat in sorted({r["repeat"] for r in rows if r["mode"] == mode}, key=int):
            mine = [r for r in rows if r["mode"] == mode and r["repeat"] == repeat]
            first = repeat == "1"
            ax.plot([float(r["start_s"]) for r in mine], [float(r["duration_s"]) for r in mine], marker=".",
                    color=MODE_COLORS[mode], alpha=1.0 if first else 0.35, lw=1.2,
                    label=f"{mode}, repeat {repeat}")
            done = float(mine[0]["upload_done_s"])
            ax.axvline(done, color=MODE_COLORS[mode], ls="--", lw=1, alpha=1.0 if first else 0.35)
            if first:
                ax.text(done, 0.02, f"{mode} upload done {done:.1f} s", rotation=90, fontsize=8,
                        color=MODE_COLORS[mode], ha="right", va="bottom", transform=ax.get_xaxis_transform())
    ax.set_yscale("log")
    ax.set_xlabel("query start (s after the upload began)")
    ax.set_ylabel("query execution time (s)")
    ax.set_title(f"{title_of(run)}: queries while the model is uploaded ({run.get('partition', 'pieces')} pieces)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return plots.save(fig, path, tight=True)


def caption_of(run: Run) -> str:
    link = run.get("link", default={})
    limits = run.get("client_limits", default={})
    return (f"Run {run.run_id} (results/<run>/queries.csv). {run.get('title')}: {run.get('label')}. Link "
            f"{link.get('rate_mbit_set')} Mbit/s set (tc tbf), {link.get('rate_mbit_measured')} measured before "
            f"the last upload; netem {link.get('netem')}. Client CPU quota {limits.get('cpus') or 'none'} CPU. "
            "Dashed lines: each upload's completion (every piece built on the server); after it, ten more "
            "queries. Faded: later repeats.")


def answer(ctx: Context) -> Answer | None:
    """What the proposed build thread saves of the full upload, per model, beside the study's saving."""
    runs = model_runs(ctx.runs)
    saved = []
    for model, run in runs.items():
        s = run.get("summary", default={})
        if number(s.get("saving_s")) is None:
            continue
        pub = study.TABLE1.get(model)
        saved.append(f"{title_of(run)} {s['saving_s']:+.2f} s ({s['saving_pct']:+.1f}%"
                     + (f"; study {pub['saved_pct']}%)" if pub else ")"))
    if not saved:
        return None
    rates = [number(run.get("summary", "baseline", "rate_mbit_measured")) for run in runs.values()]
    rates = [r for r in rates if r]
    link = f" over a {significant(sum(rates) / len(rates))} Mbit/s link" if rates else ""
    return Answer(f"Building the pieces in a separate thread (proposed) instead of in the upload thread "
                  f"(baseline) saves, of the full upload{link}: " + "; ".join(saved) + ".",
                  f"offloading_queries_{next(iter(runs))}.png")


def section(ctx: Context) -> Section | None:
    runs = model_runs(ctx.runs)
    intro = ("A client uploads a model to an edge server piece by piece over a shaped link (two network namespaces, "
             "a veth pair, tc tbf; 80 Mbit/s by default) while its query loop runs: each query runs the server's "
             "built prefix remotely and the rest locally. Baseline: the server builds each piece in its upload "
             "thread before reading the next; proposed: a separate build thread, which builds the pieces that "
             "arrived meanwhile together (bench/studies/offloading/, make study STUDY=offloading). 'Expected from size' is "
             "the bytes sent at the rate measured on the link just before the upload. The link adds no delay: "
             "netem is not in this kernel. ResNet-152, ResNet-50, MobileNet and AlexNet have random weights: "
             "timing only. The study's client was an Odroid XU4 and its server a 4-core x86 with a GPU running "
             "Caffe; here both share 2 cores, the client under a CPU quota.")
    if not runs:
        return Section("Incremental offloading to an edge server",
                       [Text(intro + " No offloading run yet: make study STUDY=offloading (as root).")])
    blocks = [Text(intro), Heading("Full-upload time: baseline and proposed (Table 1)"), upload_table(runs)]
    blocks.append(Heading("Query time while the model uploads (Fig. 3 and 5)"))
    for model, run in runs.items():
        blocks.append(Figure(name=f"offloading_{model}", file=f"offloading_queries_{model}.png",
                             caption=caption_of(run), draw=lambda path, run=run: plot_queries(run, path)))
    return Section("Incremental offloading to an edge server", blocks)


# --------------------------------------------------------------------------- the README's blocks

def _upload(mode: dict | None) -> str | None:
    if not mode:
        return None
    text = significant(number(mode.get("upload_s")), " s")
    if mode.get("repeats", 1) > 1:
        text += f" ({significant(number(mode.get('upload_min_s')))}–{significant(number(mode.get('upload_max_s')))})"
    return text


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
    repeats = sorted({(run.get("summary", "baseline", default={}) or {}).get("repeats", 1) for run in runs.values()})
    rates = sorted({number(run.get("link", "rate_mbit_measured")) for run in runs.values()} - {None})
    set_rate = next(iter(runs.values())).get("link", "rate_mbit_set")
    how = (f"median of {'/'.join(str(r) for r in repeats)} repeats (min–max), fewer than 3" if max(repeats) > 1
           else "one run")
    rows = []
    for model, run in runs.items():
        s = run.get("summary", default={})
        base, prop = s.get("baseline"), s.get("proposed")
        part = run.get("partition", default={})
        pub = study.TABLE1.get(model, {})
        saving = number(s.get("saving_s"))
        rows.append([title_of(run), significant(number(part.get("size_bytes", 0)) / 1e6), part.get("pieces"),
                     significant(number((base or prop or {}).get("expected_s")), " s"), _upload(base), _upload(prop),
                     None if saving is None else f"{saving:.1f} s, {s.get('saving_pct'):.1f}%",
                     (f"saved {pub['saved_s']} s, {pub['saved_pct']}%" if pub else "–")
                     + (f" ({pub['baseline_s']} → {pub['proposed_s']} s)" if pub.get("baseline_s") else "")])
    head = (f"Measured (`results/*-offloading-*`, one run folder per model; {set_rate:g} Mbit/s set, "
            f"{'/'.join(dict.fromkeys(significant(r) for r in rates))} measured; uploads: {how}; random weights, timing only):")
    table_md = head + "\n\n" + md_table(["Model", "MB", "Pieces", "Expected from size", "Baseline", "Proposed",
                                         "Saved (medians)", "Study"], rows)
    parts = []
    r152 = runs.get("resnet152")
    if r152:
        s = r152.get("summary", default={})
        parts.append(f"{r152.get('title')}'s {r152.get('partition', 'pieces')} pieces build in "
                     f"{significant(number(s['baseline']['build_s_total']), ' s')} (baseline) and "
                     f"{significant(number(s['proposed']['build_s_total']), ' s')} (proposed) in total here "
                     f"(medians of the repeats), the study's Caffe server {study.RESNET152_BUILD_S} s")
    alex = runs.get("alexnet")
    if alex and (counts := remote_queries(alex)):
        parts.append(f"{alex.get('title')} (whose first piece arrives early, so almost every query goes remote) sends "
                     f"{counts[0]}-{counts[-1]} remote queries up the link during each upload")
    return {"offloading-table": table_md, "offloading-text": "; ".join(parts) + "." if parts else ""}

