"""The batching study's section: SB_BATCH_MAX_SIZE alone against the defaults per architecture, at every
concurrency, with the server's efficiency, the JSON overhead at concurrency 1, and the issue's goals; and its
README blocks. Every figure is the median of its repeats with their min-max (or says "one run"), computed by
:mod:`bench.studies.batching.measured`; where a number is missing the row says "not measured".
"""
from __future__ import annotations

from bench.formats import significant
from bench.report import archs
from bench.report.runs import Run
from bench.report.sections import Context, Figure, Heading, Section, Text
from bench.report.tables import NOT_MEASURED, Cell, Table, missing, table
from bench.studies.batching import measured
from bench.studies.batching.figures import PLOTS, plot_one_knob
from bench.studies.batching.measured import (MET, NOT_MET, STACKS, arches_of, batch_size, goal_level, levels,
                                              ratios)
from bench.studies.saturation.headline import medians_of

STUDY = "batching"
MAKE = f"make study STUDY={STUDY}"


def verdict(ok: bool | None) -> Cell:
    if ok is None:
        return missing()
    return Cell(MET) if ok else Cell(NOT_MET, cls="bad")


def show(spread, fmt=significant) -> Cell | str:
    return spread.cell(fmt) if spread else missing()


def run_ids(table: dict) -> list[str]:
    return [r.run_id for c in table.values() for r in c.runs]


# --------------------------------------------------------------------------- the section

def section(ctx: Context) -> Section:
    table = measured.cells(ctx.runs)
    size = batch_size(table)
    intro = (f"Does server-side batching pay with the one knob a user sets? For each architecture, a stack with "
             f"the defaults, then the same stack with only SB_BATCH_MAX_SIZE={size} set (every other setting, "
             f"the threads included, as the defaults give it; each run records the threads in force as its stack "
             f"reported them). In each stack, repeated: closed-loop bench runs with raw bodies, one image per "
             f"request, at every concurrency, lowest first, then one with JSON bodies at concurrency 1; each run "
             f"its own (latency.hdr, CPU per image per service). The stacks run back to back with the repeats "
             f"inside. The in-process p50 (the model alone at batch 1) and model curve are measured in the same "
             f"study run ({MAKE}; knobs SB_BATCHING_*). Server efficiency: the model's own CPU per image in "
             f"process at the mean batch that ran, divided by the server side's CPU per image.")
    if not table:
        return Section("Batching with one knob", [Text(intro), Text(f"{NOT_MEASURED}: no run yet ({MAKE}).")])
    basis = medians_of(c.throughput for c in table.values())
    blocks = [
        Text(intro),
        Heading(f"Goals, judged on {basis}"),
        goals_table(ctx.runs, table),
        Heading("Throughput and p50 at each concurrency, raw bodies (each cell the median of its row's repeats, n, "
                "min–max)"),
        levels_table(table),
        Heading("Server efficiency at the goal's concurrency, raw bodies"),
        efficiency_table(table),
        Heading("p50 at concurrency 1 with JSON bodies over the model alone"),
        json_table(ctx.runs, table),
        Text("In-process reference runs: " + (", ".join(r.run_id for r in measured.own_runs(ctx.runs, "reference"))
                                              or NOT_MEASURED) + "; model curve runs: "
             + (", ".join(r.run_id for r in measured.curves_of(ctx.runs)) or NOT_MEASURED) + "."),
        Figure("batching_one_knob", PLOTS["concurrency"],
               "Images/s and p50 against closed-loop concurrency; defaults dashed, SB_BATCH_MAX_SIZE alone solid; "
               "each point the median of its repeats with min–max bars. Runs: " + ", ".join(run_ids(table)) + ".",
               lambda path: plot_one_knob(table, path)),
    ]
    return Section("Batching with one knob: SB_BATCH_MAX_SIZE alone against the defaults", blocks)


def goals_table(runs: list[Run], cells: dict) -> Table:
    return table(["goal", "architecture", "target", "measured: median (min–max)", "verdict", "sample"],
                 [[g["goal"], archs.title(g["arch"]), g["target"], g["measured"] or missing(), verdict(g["ok"]),
                   g["sample"]] for g in measured.goal_rows(runs, cells)])


def levels_table(cells: dict) -> Table:
    rows = []
    for arch in arches_of(cells):
        by_level = ratios(cells, arch)
        for c in levels(cells, arch):
            off, on = cells[(arch, "defaults", "raw", c)], cells[(arch, "one-knob", "raw", c)]
            r = by_level.get(c)
            rows.append([archs.title(arch), c, show(off.throughput), show(on.throughput),
                         Cell(f"{r.value:.2f}× ({r.lo:.2f}–{r.hi:.2f})") if r else missing(),
                         show(off.p50), show(on.p50), show(on.batch), f"{off.threads} / {on.threads}",
                         f"{off.n} / {on.n}"])
    return table(["architecture", "concurrency", "defaults (images/s)", "one knob (images/s)", "one knob ÷ defaults",
                  "p50 defaults (ms)", "p50 one knob (ms)", "mean batch, one knob",
                  "threads front end/backend: defaults / one knob", "repeats (n)"], rows)


def efficiency_table(cells: dict) -> Table:
    rows = []
    for arch in arches_of(cells):
        top = goal_level(cells, arch)
        for stack in STACKS:
            cell = cells.get((arch, stack, "raw", top))
            if cell:
                rows.append([archs.title(arch), stack, top, show(cell.batch),
                             show(cell.server_cpu, lambda x: f"{x:.2f}"), show(cell.efficiency, lambda x: f"{x:.0%}"),
                             cell.n])
    return table(["architecture", "stack", "concurrency", "mean batch", "server CPU ms per image",
                  "server efficiency", "repeats (n)"], rows)


def json_table(runs: list[Run], cells: dict) -> Table | Text:
    ref = measured.reference_p50(runs)
    rows = []
    for arch in arches_of(cells):
        for stack in STACKS:
            cell = cells.get((arch, stack, "json", 1))
            d = measured.difference(cell.p50 if cell else None, ref)
            if cell:
                rows.append([archs.title(arch), stack, show(cell.p50), show(ref),
                             Cell(f"{d.value:+.2f} ms ({d.lo:+.2f} to {d.hi:+.2f})") if d else missing(),
                             f"{cell.n} / {ref.n if ref else 0}"])
    if not rows:
        return Text(f"{NOT_MEASURED}: no JSON run at concurrency 1 ({MAKE}).")
    return table(["architecture", "stack", "p50 with JSON at concurrency 1 (ms)", "in-process p50 at batch 1 (ms)",
                  "overhead (min–max)", "repeats (n): stack / in process"], rows)


# --------------------------------------------------------------------------- the README's blocks

def readme(ctx: Context) -> dict[str, str]:
    """The README's batching numbers (:mod:`bench.report.docs`): the goals, and the ratio at each level."""
    table = measured.cells(ctx.runs)
    return {"batching-goals": goals_md(ctx.runs, table), "batching-table": levels_md(table)}


def goals_md(runs: list[Run], cells: dict) -> str:
    from bench.report.docs import md_table

    if not cells:
        return f"Batching with one knob: not measured yet ({MAKE})."
    rows = [[g["goal"], archs.title(g["arch"]), g["target"], g["measured"], measured.verdict_text(g["ok"]),
             g["sample"]] for g in measured.goal_rows(runs, cells)]
    return (f"The issue's goals, each judged on {medians_of(c.throughput for c in cells.values())} "
            f"(`{MAKE}`, runs `results/*-bench-*` of study {STUDY}):\n\n"
            + md_table(["goal", "architecture", "target", "measured: median (min–max)", "verdict", "sample"], rows))


def levels_md(cells: dict) -> str:
    from bench.report.docs import md_table

    raw = [c for c in cells.values() if c.codec == "raw"]
    if not raw:
        return f"One knob against the defaults: not measured yet ({MAKE})."
    rows = []
    for arch in arches_of(cells):
        by_level = ratios(cells, arch)
        rows.append([archs.title(arch)] + [f"{by_level[c].value:.2f}x" if c in by_level else None
                                           for c in sorted({c.concurrency for c in raw})])
    levels_all = sorted({c.concurrency for c in raw})
    ns = sorted({c.n for c in raw})
    many = "-".join(map(str, sorted({ns[0], ns[-1]})))
    counts = "one run each" if ns == [1] else f"the medians of {many} repeats each"
    return (f"SB_BATCH_MAX_SIZE={batch_size(cells)} alone ÷ the defaults, images/s with raw bodies at each "
            f"concurrency (ratio of {counts}):\n\n"
            + md_table(["architecture"] + [f"c={c}" for c in levels_all], rows))
