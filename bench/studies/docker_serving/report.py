"""The study's section of the report: our numbers beside its Table 3 and Table 4, and its two plots.

Found by ``bench.report`` through the registry (``<study module>.report``).
Ours are the comparison runs of the study's architectures; theirs come from
:mod:`published`, which maps our architectures to the study's names. Where
either side has no number, the tables and plots say so; nothing is filled in.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from bench.report import archs, plots
from bench.formats import number, significant
from bench.report.runs import SERVER_SERVICES, Run, dig, labels, missing_archs, resources_of, table3_largest, \
    table3_of
from bench.report.sections import Answer, Context, Figure, Heading, Section, Text
from bench.report.tables import NOT_MEASURED, Cell, Table, missing, published as as_printed, table
from bench.studies.docker_serving import protocol, published
from servebench import registry

NOT_IN_STUDY = "not measured in the study"
TABLE3_N = 10000  # the size their per-image times and ratios are taken at
PLOTS = {"table3": "table3_time_per_image.png", "resources": "resources_cpu_ram.png",
         "native_docker": "docker_vs_native.png"}


def study_archs() -> list[str]:
    """Our architectures in the study, in registry order (those it did not measure included)."""
    return [a.name for a in registry.in_study(published.STUDY)]


def section(ctx: Context) -> Section:
    selected = ctx.selected_in(published.STUDY)
    found = protocol.protocol_runs(ctx.runs)
    hw = published.HARDWARE
    return Section("Our numbers beside the study's", [
        Text(f"Source: {published.SOURCE}. Their machine: {hw['cpu']}, {hw['ram']} RAM, {hw['gpu']}; "
             f"{hw['software']}. The hardware differs, so compare the ratios between architectures; absolute "
             f'times are shown for completeness. Where we have no run the table says "{NOT_MEASURED}"; '
             "nothing is filled in."),
        Text(f"Their conclusions: {'; '.join(published.CONCLUSIONS)}."),
        Heading("Time per image"),
        Text("Study: the time for 10,000 images divided by 10,000. Ours: the mean over repeats of the time for "
             "the largest N sent, divided by N (Table 3 protocol: one image per request, sequential)."),
        per_image_table(selected),
        Heading("Ratios between architectures"),
        ratio_table(selected),
        Heading("Native against docker compose (the Table 3 protocol)"),
        Text("The headline numbers: per architecture and runtime, the first 1,000 test images sent one per "
             "request, sequentially, in several passes, each pass one repeat (the newest such run of each). Native "
             "and docker compose (the same images, containers on host networking) ran minutes apart. Medians with "
             "min-max over the passes; a ratio is the ratio of the medians, its range that of the extreme passes. "
             "The study's ratios are taken from its Table 3 at the same N. TF Serving cannot run here: no "
             "tensorflow_model_server binary from any registry, and its official image cannot be pulled."),
        protocol.native_docker_table(found),
        protocol_ratio_table(found),
        Figure("native_docker", PLOTS["native_docker"], "Native against docker compose per architecture (left) "
               "and the ratios between architectures beside the study's (right), Table 3 protocol.",
               lambda path: protocol.plot(found, path)),
        Heading("CPU and RAM (Table 4 / Figure 11)"),
        Text(f"The study's CPU % is {published.CPU_PERCENT_BASIS}; ours is % of one core (100 % = one core "
             "busy), summed over nginx, the front end and the model server. The ×8 column puts theirs on our "
             "scale, approximately."),
        resources_table(selected),
        Figure("table3", PLOTS["table3"], "Time per image at the study's Table 3 sizes: ours, theirs, and the "
               "ratios between architectures.", lambda path: plot_table3(selected, path)),
        Figure("resources", PLOTS["resources"], "CPU and RAM per service (ours, top; CPU as % of one core) and "
               "the study's Figure 11 (bottom; CPU as % of an 8-core machine).",
               lambda path: plot_resources(selected, path)),
    ])


def answer(ctx: Context) -> Answer | None:
    """Time per image per architecture, and our ratios beside the study's."""
    found = protocol.protocol_runs(ctx.runs)
    if found:
        return Answer(protocol_answer(found), PLOTS["native_docker"])
    selected = ctx.selected_in(published.STUDY)
    per_image: dict[str, tuple[float, int]] = {}  # arch -> (ms per image, N) of its run with the most images
    for run in selected:
        largest = table3_largest(run)
        if largest and (run.arch not in per_image or largest[0] > per_image[run.arch][1]):
            per_image[run.arch] = (largest[1] / largest[0] * 1000, largest[0])
    if not per_image:
        return None
    ranked = sorted(per_image.items(), key=lambda kv: kv[1][0])
    text = ("One image per request, sequentially, time per image here (one run each): "
            + ", ".join(f"{archs.title(a)} {significant(ms, ' ms')}" for a, (ms, _) in ranked) + ".")
    ratios = [f"{r['label']} {r['ours'][0]['ratio']:.2f}× (study {r['study']:.2f}×)"
              for r in ratio_rows(selected) if r["ours"] and r["study"]]
    if ratios:
        text += " Ratios between architectures, ours beside the study's: " + "; ".join(ratios) + "."
    return Answer(text, PLOTS["table3"])


def protocol_answer(found: dict[tuple[str, str], protocol.Protocol]) -> str:
    """The Table 3 protocol's numbers per runtime, docker against native, and our ratios beside the study's."""
    images = sorted({p.images for p in found.values()})
    text = (f"{' / '.join(f'{n:,}' for n in images)} images one per request, sequentially, time per image "
            "(median, min–max over n passes): ")
    text += "; ".join(f"{runtime}: " + ", ".join(f"{archs.title(p.arch)} {p.shown()}" for p in found.values()
                                                 if p.runtime == runtime)
                      for runtime in protocol.RUNTIMES if any(p.runtime == runtime for p in found.values())) + "."
    both = [(found[(a, "native")], found[(a, "docker")]) for a in protocol.study_archs()
            if (a, "native") in found and (a, "docker") in found]
    if both:
        text += " Docker ÷ native: " + ", ".join(f"{archs.title(n.arch)} {protocol.Ratio.of(d, n).shown()}"
                                                  for n, d in both) + "."
    rows = [r for r in protocol.ratios(found) if r["runtime"] == "native"]  # docker's: in the section
    if rows:
        text += " Ratios between architectures (native), ours beside the study's at the same N: " + "; ".join(
            f"{r['label']} {r['ours'].shown()}" + (f", study {r['study']:.2f}x" if r["study"] else "")
            for r in rows) + "."
    return text


def protocol_ratio_table(found: dict[tuple[str, str], protocol.Protocol]) -> Table:
    rows = []
    for r in protocol.ratios(found):
        at_10k = protocol.study_ratio(r["slow"], r["fast"], TABLE3_N)
        rows.append([r["label"], r["runtime"], Cell(r["ours"].shown()), f"{r['images']:,}",
                     Cell(f"{r['study']:.2f}×") if r["study"] else missing(NOT_IN_STUDY),
                     f"{at_10k:.2f}×" if at_10k else None])
    return table(["ratio of time per image (Table 3 protocol)", "runtime", "ours: ratio of medians (range, n passes)",
                  "N per pass", "study at the same N", f"study at {TABLE3_N:,}"], rows)


# --------------------------------------------------------------------------- comparisons

def ratio_pairs() -> list[tuple[str, str]]:
    """Their ratios, then each again with an architecture of the study they did not measure in place
    of the faster one when it runs the same services (TF Serving over gRPC: discussed there, not measured)."""
    pairs = list(published.ratios())
    unmeasured = [a for a in study_archs() if published.label(a) is None]
    for slow, fast in list(pairs):
        pairs += [(slow, a) for a in unmeasured if registry.get(a).services == registry.get(fast).services]
    return pairs


def ratio_rows(selected: list[Run]) -> list[dict]:
    """Each ratio: theirs at 10,000 images, ours per (runtime, codec) at the largest N both runs measured."""
    rows = []
    for slow, fast in ratio_pairs():
        ts, tf = published.table3_seconds(slow), published.table3_seconds(fast)
        study = ts[TABLE3_N] / tf[TABLE3_N] if ts and tf else None
        ours = []
        for a in (r for r in selected if r.arch == slow):
            for b in (r for r in selected if r.arch == fast and (r.runtime, r.codec) == (a.runtime, a.codec)):
                ta, tb = table3_of(a), table3_of(b)
                common = set(ta) & set(tb)
                if common:
                    n = max(common)
                    passes = min(int(dig(a.get("table3"), str(n), "repeats") or 1),
                                 int(dig(b.get("table3"), str(n), "repeats") or 1))
                    ours.append({"ratio": ta[n][0] / tb[n][0], "n": n, "runs": (a.run_id, b.run_id),
                                 "variant": f"{a.runtime}, {a.codec}, "
                                            + ("one run" if passes == 1 else f"mean of {passes} passes")})
        rows.append({"slow": slow, "fast": fast, "label": f"{archs.title(slow)} / {archs.title(fast)}",
                     "study": study, "ours": ours})
    return rows


def ram_key(selected: list[Run]) -> str:
    """PSS (shared pages counted once) when every server service has it, else RSS."""
    values = [v for r in selected for role, v in resources_of(r).items() if role in SERVER_SERVICES]
    return "pss_mb_mean" if values and all(number(v.get("pss_mb_mean")) is not None for v in values) \
        else "rss_mb_mean"


# --------------------------------------------------------------------------- tables

def per_image_table(selected: list[Run]) -> Table:
    names = labels(selected, titled=True)
    rows = []
    for arch in study_archs():
        total = (published.table3_seconds(arch) or {}).get(TABLE3_N)
        per = published.seconds_per_image(arch, TABLE3_N)
        theirs = [as_printed(total), per * 1000] if total else [missing(NOT_IN_STUDY), None]
        ours = [r for r in selected if r.arch == arch]
        if not ours:
            rows.append([archs.title(arch), *theirs, missing(protocol.absent(arch)), missing(), None, None, None,
                         None])
            continue
        for run in ours:
            largest = table3_largest(run)
            n, mean = largest if largest else (None, None)
            passes = int(dig(run.get("table3"), str(n), "repeats") or 1) if largest else None
            rows.append([names[run.run_id], *theirs, run.run_id, n,
                         None if passes is None else "one run" if passes == 1 else f"mean of {passes} passes", mean,
                         mean / n * 1000 if largest else None, number(run.get("latency_ms", "p50"))])
    return table(["architecture", "study: 10,000 images (s)", "study: per image (ms)", "our run",
                  "our N", "our passes", "ours: N images (s)", "ours: per image (ms)", "ours: p50 latency (ms)"],
                 rows)


def ratio_table(selected: list[Run]) -> Table:
    rows = []
    for r in ratio_rows(selected):
        study = Cell(f"{r['study']:.2f}×") if r["study"] else missing(NOT_IN_STUDY)
        if not r["ours"]:
            absent = [a for a in (r["slow"], r["fast"]) if not any(x.arch == a for x in selected)]
            why = f"{NOT_MEASURED} ({', '.join(absent)})" if absent else "no common Table 3 size"
            rows.append([r["label"], study, missing(why), None, None])
        for ours in r["ours"]:
            rows.append([r["label"], study, Cell(f"{ours['ratio']:.2f}×"), f"N = {ours['n']:,}; {ours['variant']}",
                         " / ".join(ours["runs"])])
    return table(["ratio of time per image", "study (10,000 images)", "ours", "ours measured at", "our runs"], rows)


def resources_table(selected: list[Run]) -> Table:
    names = labels(selected, titled=True)
    rkey = ram_key(selected)
    rows = []
    for arch in study_archs():
        t4 = published.table4(arch)
        theirs = ([as_printed(t4["cpu_percent"]), published.cpu_percent_of_one_core(arch), as_printed(t4["ram_mb"])]
                  if t4 else [missing(NOT_IN_STUDY), None, None])
        ours = [r for r in selected if r.arch == arch and resources_of(r)]
        if not ours:
            rows.append([archs.title(arch), *theirs, missing(), missing(), None, None])
            continue
        for run in ours:
            res = resources_of(run)
            cpu = [number(dig(res, s, "cpu_percent_mean")) for s in SERVER_SERVICES]
            ram = [number(dig(res, s, rkey)) for s in SERVER_SERVICES]
            parts = [f"{dig(res, s, 'service', default=s)} {significant(c)} % / {significant(m)} MB"
                     for s, c, m in zip(SERVER_SERVICES, cpu, ram) if c is not None or m is not None]
            client = res.get("client", {})
            if client:
                parts.append(f"client {significant(number(client.get('cpu_percent_mean')))} % / "
                             f"{significant(number(client.get(rkey)))} MB (not in total)")
            rows.append([names[run.run_id], *theirs,
                         sum(c for c in cpu if c is not None), sum(m for m in ram if m is not None),
                         "; ".join(parts), run.run_id])
    ram_name = "PSS" if rkey == "pss_mb_mean" else "RSS"
    return table(["architecture", "study: CPU (% of 8-core machine)", "study: CPU × 8 (≈ % of one core)",
                  "study: RAM (MB)", "ours: CPU (% of one core, server services)",
                  f"ours: RAM ({ram_name} MB, server services)", "ours per service (CPU % / RAM MB)", "our run"],
                 rows)


# --------------------------------------------------------------------------- plots

def plot_table3(selected: list[Run], path: Path) -> Path:
    """Ours per arch at the Table 3 sizes, theirs, and the ratios between architectures."""
    fig, (ours, theirs, ratios) = plt.subplots(1, 3, figsize=(17, 5.4), layout="constrained")
    names = labels(selected)
    sizes = published.TABLE3_SIZES
    drawn = False
    for run in selected:
        t3 = table3_of(run)
        if not t3:
            continue
        ns = sorted(t3)
        y = np.array([t3[n][0] / n * 1000 for n in ns])
        err = np.array([(t3[n][1] or 0.0) / n * 1000 for n in ns])
        ours.errorbar(ns, y, yerr=[np.minimum(err, 0.9 * y), err], marker="o", capsize=3,
                      color=archs.color(run.arch), linestyle=plots.CODEC_LINES.get(run.codec, "-"),
                      label=names[run.run_id])
        drawn = True
    if drawn:
        ours.set_xscale("log")
        ours.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ours.set_xlabel("images sent (N), one per request, sequential")
        lo, hi = ours.get_ylim()
        if lo > 0 and hi / lo > 10:  # a log axis only when the archs are an order of magnitude apart
            ours.set_yscale("log")
            plots.plain_log(ours.yaxis)
            ours.set_ylabel("time per image (ms, log scale)")
        else:
            ours.set_ylim(0, hi * 1.1)
            ours.set_ylabel("time per image (ms)")
        ours.legend(fontsize=8, title="architecture", title_fontsize=8, loc="upper right")
        ours.grid(True, which="both", alpha=0.3)
        absent = missing_archs(selected, study_archs())
        if absent:
            ours.text(0.02, 0.02, "; ".join(f"{a}: {protocol.absent(a)}" for a in absent), transform=ours.transAxes,
                      ha="left", fontsize=8, color=plots.GREY_TEXT)
    else:
        plots.placeholder(ours, "no complete bench run with Table 3 timings yet\n(make bench ARCH=...)")
    ours.set_title("Ours: mean time per image (error bars: stdev over repeats)", fontsize=11)

    for arch in published.measured():
        row = published.table3_seconds(arch)
        ns = sorted(row)
        theirs.plot(ns, [row[n] / n * 1000 for n in ns], marker="s", color=archs.color(arch),
                    label=published.label(arch))
    theirs.set_xscale("log")
    theirs.set_yscale("log")
    theirs.set_xticks(sizes, [f"{n:,}" for n in sizes])
    theirs.set_xlabel("images sent (N)")
    theirs.set_ylabel("time per image (ms, log scale)")
    plots.plain_log(theirs.yaxis)
    theirs.set_title("Study (Table 3; i7-9700K + RTX 2070 SUPER)", fontsize=11)
    theirs.legend(fontsize=9, title="architecture", title_fontsize=9)
    theirs.grid(True, which="both", alpha=0.3)

    rows = ratio_rows(selected)
    y = np.arange(len(rows))
    h = 0.38
    study_vals = [r["study"] for r in rows]
    our_vals = [r["ours"][0]["ratio"] if r["ours"] else None for r in rows]
    passes = [r["ours"][0]["variant"].rsplit(", ", 1)[-1] if r["ours"] else "" for r in rows]
    why_not = [protocol.CANNOT_RUN if any(protocol.absent(a) == protocol.CANNOT_RUN for a in (r["slow"], r["fast"]))
               else NOT_MEASURED for r in rows]
    known = [v for v in study_vals + our_vals if v]
    left, right = min(known + [1.0]) / 2, max(known + [2.0]) * 4
    ratios.barh(y - h / 2, [v or 0 for v in study_vals], h, color=plots.STUDY_COLOR, label="study (N = 10,000)")
    ratios.barh(y + h / 2, [v or 0 for v in our_vals], h, color="tab:blue", label="ours (largest N measured)")
    for i, (sv, ov) in enumerate(zip(study_vals, our_vals)):
        for offset, v, absent, note in ((-h / 2, sv, NOT_IN_STUDY, ""), (h / 2, ov, why_not[i], passes[i])):
            text, x = (f" {v:.2g}×" + (f" ({note})" if note else ""), v) if v else (" " + absent, left)
            ratios.text(x, i + offset, text, va="center", fontsize=8, color="black" if v else plots.GREY_TEXT)
    ratios.axvline(1.0, color="black", lw=0.8)
    ratios.set_xscale("log")
    ratios.set_xlim(left, right)
    plots.plain_log(ratios.xaxis)
    ratios.set_yticks(y, [r["label"] for r in rows], fontsize=9)
    ratios.invert_yaxis()
    ratios.set_xlabel("time per image, slower ÷ faster architecture (×, log scale)")
    ratios.set_title("Ratios between architectures (comparable across hardware)", fontsize=11)
    ratios.legend(fontsize=9, loc="lower right")
    ratios.grid(True, axis="x", which="both", alpha=0.3)
    fig.suptitle("Time per image, sequential one-image requests (the study's Table 3)", fontsize=13)
    return plots.save(fig, path)


def _value_bars(ax, values: list[float], colors: list, text, fontsize: int, headroom: float) -> None:
    """One bar per value, each with ``text(value)`` on top, and room above the tallest for its text."""
    ax.bar(np.arange(len(values)), values, 0.6, color=colors)
    for i, v in enumerate(values):
        ax.text(i, v, text(v), ha="center", va="bottom", fontsize=fontsize)
    ax.set_ylim(0, max(values, default=1) * headroom)


def plot_resources(selected: list[Run], path: Path) -> Path:
    """Ours: CPU and RAM stacked per server service, the client beside; theirs below (Figure 11)."""
    fig = plt.figure(figsize=(15, 11), layout="constrained")
    ours_fig, study_fig = fig.subfigures(2, 1, height_ratios=(1.12, 1), hspace=0.04)
    cpu, ram = ours_fig.subplots(1, 2)
    s_cpu, s_ram = study_fig.subplots(1, 2)
    names = labels(selected)
    measured = [r for r in selected if resources_of(r)]
    cats = [(names[r.run_id], r) for r in measured] + [(a, None) for a in missing_archs(measured, study_archs())]
    rkey = ram_key(measured)
    ram_name = "PSS" if rkey == "pss_mb_mean" else "RSS"
    x = np.arange(len(cats))
    width = 0.38
    colors = plots.SERVICE_COLORS
    for ax, key, unit in ((cpu, "cpu_percent_mean", "CPU (% of one core)"),
                          (ram, rkey, f"RAM ({ram_name}, MB)")):
        if not cats:
            plots.placeholder(ax, "no runs yet")
            continue
        highest = 0.0
        for i, (_, run) in enumerate(cats):
            if run is None:
                ax.text(i, 0.03, NOT_MEASURED.replace(" ", "\n"), ha="center", va="bottom", fontsize=8,
                        color=plots.GREY_TEXT, transform=ax.get_xaxis_transform())
                continue
            res = resources_of(run)
            bottom = 0.0
            for role in SERVER_SERVICES:
                v = number(dig(res, role, key))
                if v:
                    ax.bar(i - width / 2, v, width, bottom=bottom, color=colors[role])
                    bottom += v
            ax.text(i - width / 2, bottom, f"{bottom:.0f}", ha="center", va="bottom", fontsize=9)
            client = number(dig(res, "client", key))
            if client:
                ax.bar(i + width / 2, client, width, color=colors["client"], hatch="//", edgecolor="white")
                ax.text(i + width / 2, client, f"{client:.0f}", ha="center", va="bottom", fontsize=8,
                        color=plots.GREY_TEXT)
            highest = max(highest, bottom, client or 0)
        ax.set_ylim(0, max(highest, 1) * 1.15)
        ax.set_xlim(-0.6, len(cats) - 0.4)
        # Long "arch (runtime, codec)" labels: one part per line, so neighbours never overlap.
        ax.set_xticks(x, [c[0].replace(" (", "\n(").replace(", ", ",\n").replace("-", "-\n") for c in cats],
                      fontsize=8)
        ax.set_ylabel(unit)
        ax.set_xlabel("architecture (left bar: server services stacked, total on top; right: client)")
        ax.grid(True, axis="y", alpha=0.3)
    cpu.set_title("CPU, mean while serving (100 % = one core fully busy)", fontsize=11)
    ram.set_title(f"Memory, mean {ram_name} while serving", fontsize=11)
    handles = [Patch(color=colors[r], label=lbl) for r, lbl in (
        ("nginx", "nginx"), ("frontend", "front end (gunicorn + Django)"),
        ("backend", "model server (Flask / FastAPI / TF Serving)"))]
    handles.append(Patch(facecolor=colors["client"], hatch="//", edgecolor="white",
                         label="client (load generator; not in the total)"))
    ours_fig.legend(handles=handles, fontsize=10, loc="outside lower center", ncol=4)
    ours_fig.suptitle("Ours (this machine): CPU and RAM per service while serving one image per request",
                      fontsize=13)

    theirs = published.measured()
    sx = np.arange(len(theirs))
    bar_colors = [archs.color(a) for a in theirs]
    cores = published.HARDWARE["cpu_cores"]
    _value_bars(s_cpu, [published.table4(a)["cpu_percent"] for a in theirs], bar_colors,
                lambda v: f"{v:g} %\n(≈{v * cores:.0f} % of one core)", fontsize=8, headroom=1.35)
    s_cpu.set_ylabel("CPU (% of the whole 8-core machine)")
    sec = s_cpu.secondary_yaxis("right", functions=(lambda v: v * cores, lambda v: v / cores))
    sec.set_ylabel("≈ % of one core (× 8)")
    s_cpu.set_title("CPU, % of their 8-core machine (right axis: × 8)", fontsize=11)
    _value_bars(s_ram, [published.table4(a)["ram_mb"] for a in theirs], bar_colors, lambda v: f"{v:g}",
                fontsize=9, headroom=1.2)
    s_ram.set_ylabel("RAM (MB)")
    s_ram.set_title("RAM", fontsize=11)
    for ax in (s_cpu, s_ram):
        ax.set_xticks(sx, [published.label(a) for a in theirs], fontsize=9)
        ax.set_xlabel("architecture (study's names; TF Serving over REST)")
        ax.grid(True, axis="y", alpha=0.3)
    study_fig.suptitle("The study (Table 4 / Figure 11): averages while processing 10,000 images", fontsize=13)
    return plots.save(fig, path)


# --------------------------------------------------------------------------- the README's blocks

def readme(ctx: Context) -> dict[str, str]:
    """The README's "What we found" blocks (:mod:`bench.studies.docker_serving.findings`)."""
    from bench.studies.docker_serving import findings

    return findings.readme(ctx)
