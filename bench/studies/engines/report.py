"""The engines study's section: which engine to pick for latency and which for throughput, at what accuracy
cost; the issue's goals; the in-process curve, the correctness check and the stacks per engine; the issue's
own table beside ours. Every number comes from the runs (:mod:`bench.studies.engines.measured`), with the
count of repeats it is the median of; where one is missing the row says "not measured".
"""
from __future__ import annotations

from bench.formats import number, significant
from bench.report import archs
from bench.report.docs import dataset_note, md_table
from bench.report.runs import Run
from bench.report.sections import Answer, Context, Figure, Heading, Section, Text
from bench.report.tables import NOT_MEASURED, Cell, Table, missing, table
from bench.studies.engines import measured, published
from bench.studies.engines.figures import PLOT, plot_curves
from bench.studies.engines.measured import TF, name_of

STUDY = "engines"
MET, NOT_MET = "met", "not met"
HOW = f"make study STUDY={STUDY}"


def verdict(ok: bool | None) -> Cell:
    if ok is None:
        return missing()
    return Cell(MET) if ok else Cell(NOT_MET, cls="bad")


def _show(s, fmt=significant) -> Cell | str:
    return s.cell(fmt) if s else missing()


def _runs(rs: list[Run]) -> Cell:
    return Cell(", ".join(r.run_id for r in rs), cls="small")


# --------------------------------------------------------------------------- captions

def study_runs(runs: list[Run]) -> list[Run]:
    curves = [r for found in measured.curve_runs(runs).values() for r in found]
    cells = [r for c in measured.stack_cells(runs).values() for r in c.runs]
    return curves + list(measured.evaluations(runs).values()) + cells


def source_caption(runs: list[Run]) -> str:
    """Machine, load, versions and engines of the runs the section rests on."""
    mine = study_runs(runs)
    if not mine:
        return ""
    machines = {(r.record.provenance.machine.get("cpu_model"), r.record.provenance.machine.get("logical_cpus"))
                for r in mine if r.record.provenance.machine}
    loads = [number(r.record.provenance.machine.get("load_average_1m")) for r in mine]
    loads = [x for x in loads if x is not None]
    engines = {}
    for r in mine:
        model = r.get("model") or r.get("stack", "info") or {}
        if isinstance(model, dict) and model.get("engine"):
            engines.setdefault(model["engine"], model.get("engine_version"))
    parts = [f"{len(mine)} runs (results/<run>/summary.json)."]
    if machines:
        parts.append("Machine: " + "; ".join(f"{m or '?'}, {n or '?'} logical CPUs" for m, n in sorted(
            machines, key=str)) + ".")
    if loads:
        parts.append(f"The machine is shared: its 1-minute load average at the start of the runs was "
                     f"{min(loads):.2f}–{max(loads):.2f}, recorded in each run; the repeats go round the engines "
                     f"in turn so that a load falls on all of them alike.")
    if engines:
        parts.append("Engines: " + ", ".join(f"{k} {v or '?'}" for k, v in engines.items()) + ".")
    return " ".join(parts)


# --------------------------------------------------------------------------- tables

def goals_table(runs: list[Run]) -> Table:
    return table(["goal", "target", "measured", "verdict"],
                 [[g["goal"], g["target"], g["measured"] or missing(), verdict(g["ok"])]
                  for g in measured.goal_rows(runs)])


def curve_table(runs: list[Run]) -> Table | Text:
    points = measured.curve_points(runs)
    sets = measured.curve_runs(runs)
    errors = measured.curve_errors(runs)
    if not points and not errors:
        return Text(f"{NOT_MEASURED}: no in-process curve yet ({HOW} SB_ENGINES_PARTS=curve).")
    sizes = sorted({b for (_, _, b) in points})
    threads = sorted({t for (_, t, _) in points})
    rows = []
    for v, found in sets.items():
        if v in errors:
            rows.append([name_of(v), "–", len(found), Cell(f"did not run: {errors[v]}", cls="bad"),
                         *[missing() for _ in range(len(sizes) + 1)], _runs(found)])
            continue
        for t in threads:
            b1 = points.get((v, t, 1))
            rows.append([name_of(v), t, len(found), _show(b1.p50_ms if b1 else None, lambda x: f"{x:.3f}"),
                         *[_show(points[(v, t, b)].images_per_s) if (v, t, b) in points else missing()
                           for b in sizes],
                         _show(b1.cpu_ms if b1 else None, lambda x: f"{x:.3f}"), _runs(found)])
    return table(["engine", "intra-op threads", "repeats (n)", "batch-1 p50 (ms), median (min–max)",
                  *[f"images/s at batch {b}" for b in sizes], "CPU ms per image at batch 1", "runs"], rows)


def evaluate_table(runs: list[Run]) -> Table | Text:
    evals = measured.evaluations(runs)
    if not evals:
        return Text(f"{NOT_MEASURED}: no correctness check yet (make evaluate ENGINE=..., or {HOW}).")
    rows = []
    for v, r in evals.items():
        acc, ref = number(r.get("test_accuracy")), number(r.get("reference_accuracy"))
        share, diff = number(r.get("class_changed_share")), number(r.get("max_abs_diff"))
        lost = measured.accuracy_lost(r)
        bad = lost is not None and lost > measured.GOALS["accuracy_points"]
        rows.append([name_of(v), r.get("inputs"), f"{acc:.2%}" if acc is not None else missing(),
                     f"{ref:.2%}" if ref is not None else missing(),
                     Cell(f"{lost:+.2f}", cls="bad" if bad else "") if lost is not None else missing(),
                     f"{diff:.2g}" if diff is not None else missing(),
                     f"{share:.2%}" if share is not None else missing(),
                     Cell(str(r.get("data", "note") or ""), cls="small"), _runs([r])])
    return table(["engine", "test inputs", "test accuracy", "TensorFlow's", "points lost",
                  "largest |difference| of the probabilities", "classes changed", "inputs", "run"], rows)


def stacks_table(runs: list[Run]) -> Table | Text:
    cells = measured.stack_cells(runs)
    if not cells:
        return Text(f"{NOT_MEASURED}: no stack run yet ({HOW} SB_ENGINES_PARTS=stacks).")
    services = list(dict.fromkeys(s for c in cells.values() for s in c.services))
    rows = []
    for (arch, v, mode, c), cell in cells.items():
        rows.append([archs.title(arch), name_of(v), mode, c, cell.n, _show(cell.p50), _show(cell.throughput),
                     _show(cell.server_cpu, lambda x: f"{x:.3f}"),
                     *[_show(cell.services.get(s), lambda x: f"{x:.3f}") for s in services],
                     _show(cell.client_cpu, lambda x: f"{x:.3f}"), _runs(cell.runs)])
    return table(["architecture", "engine", "batching", "concurrency", "repeats (n)", "p50 (ms), median (min–max)",
                  "images/s", "server CPU ms per image", *[f"{s} (CPU ms per image)" for s in services],
                  "load generator CPU ms per image (apart)", "runs"], rows)


def issue_table(runs: list[Run]) -> Table:
    """The issue's one-run table beside our medians (1 thread, batch 1 and batch 32)."""
    points = measured.curve_points(runs)
    rows = []
    for name, b1, b32 in published.TABLE:
        v = published.OURS[name]
        ours1, ours32 = points.get((v, 1, 1)), points.get((v, 1, 32))
        rows.append([name, b1 or "–", _show(ours1.p50_ms if ours1 else None, lambda x: f"{x:.3f}"),
                     b32 or "–", _show(ours32.images_per_s if ours32 else None)])
    return table(["engine (the issue's name)", "issue: batch 1 (ms)", "ours: batch-1 p50 (ms), median (min–max)",
                  "issue: batch 32 (images/s)", "ours: batch 32 (images/s)"], rows)


# --------------------------------------------------------------------------- the section

def pick_text(runs: list[Run]) -> str:
    found = measured.picks(runs)
    if not found:
        return f"{NOT_MEASURED}: no engine run yet ({HOW})."
    text = "; ".join(p["text"] for p in found.values()) + "."
    return text[0].upper() + text[1:]


def section(ctx: Context) -> Section:
    runs = ctx.runs
    intro = ("Which runtime executes the model, with everything else the same: TensorFlow's SavedModel "
             "signature, XLA (jit_compile), ONNX Runtime, OpenVINO (f32 and bf16, always explicit) and LiteRT "
             "(SB_ENGINE, SB_OPENVINO_PRECISION). Per engine: the model alone in process at batch 1 to 64 with "
             "1 and 2 intra-op threads; the embedded and FastAPI stacks at concurrency 1 and saturated, "
             "batching off and on, with CPU per image per service; and its answers against TensorFlow's "
             f"(make evaluate MODEL=... ENGINE=...). Every figure is the median of its repeats with their "
             f"min–max ({HOW}; SB_ENGINES_REPEATS, SB_ENGINES_LIST). " + dataset_note())
    caption = source_caption(runs)
    return Section("Inference engines: TensorFlow, XLA, ONNX Runtime, OpenVINO and LiteRT", [
        Text(intro + (" " + caption if caption else "")),
        Heading("Which engine"),
        Text(pick_text(runs)),
        Heading("Goals"),
        goals_table(runs),
        Heading("The model alone, in process"),
        curve_table(runs),
        Figure("engines_curve", PLOT, "Images/s against batch size per engine, in process, at each intra-op "
               "thread count: medians of the curve's repeats, min–max as bars. " + caption,
               lambda path: plot_curves(runs, path)),
        Heading("Correctness against TensorFlow"),
        evaluate_table(runs),
        Heading("Through the embedded and FastAPI stacks (raw bodies, one image per request)"),
        stacks_table(runs),
        Heading("The issue's table beside ours"),
        Text(f"{published.SOURCE}; ours: the medians of the in-process curve at 1 thread (batch-1 p50, images/s "
             f"at batch 32) on this run's machine and load."),
        issue_table(runs),
    ])


def answer(ctx: Context) -> Answer:
    rows = measured.goal_rows(ctx.runs)
    judged = [g for g in rows if g["ok"] is not None]
    goals = (f" Goals met: {sum(g['ok'] for g in judged)} of {len(rows)}"
             + (f" ({len(rows) - len(judged)} not measured)." if len(judged) < len(rows) else ".")) if judged else ""
    return Answer(pick_text(ctx.runs) + goals, PLOT)


def readme(ctx: Context) -> dict[str, str]:
    rows = measured.goal_rows(ctx.runs)
    goals = md_table(["goal", "target", "measured", "verdict"],
                     [[g["goal"], g["target"], g["measured"] or "not measured",
                       NOT_MEASURED if g["ok"] is None else MET if g["ok"] else NOT_MET] for g in rows])
    return {"engines-goals": goals, "engines-pick": pick_text(ctx.runs)}


__all__ = ["section", "answer", "readme", "TF"]
