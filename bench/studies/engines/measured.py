"""The engines study's figures, read back from the results: each a median over its repeats with their range
(:class:`bench.studies.saturation.headline.Spread`), never typed in.

- the in-process curve: per engine, thread count and batch size (runs of kind ``engines-curve``, the newest
  set: the newest run's commit and settings);
- the correctness check: the newest ``evaluate`` run per engine (the study's own first);
- the stacks: per architecture, engine, batching mode and concurrency, the newest set of bench runs.

An engine is ``(engine, precision)``: OpenVINO's f32 and bf16 are two.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.formats import number
from bench.report.runs import Run
from bench.studies.saturation.headline import Spread, batching_mode, client_cpu_ms, server_cpu_ms, spread

STUDY = "engines"
CURVE = "engines-curve"
EVALUATE = "evaluate"
TF = ("tensorflow", "f32")
CLIENT = "client"
GOALS = {"b1_p50_ratio": 0.7, "throughput_ratio": 2.0, "accuracy_points": 0.3, "embedded_p50_ms": 0.5}
LATENCY_THREADS = 1  # the table: one thread
THROUGHPUT_THREADS = 2

Variant = tuple[str, str]  # (engine, precision)


def name_of(v: Variant) -> str:
    return f"{v[0]} ({v[1]})" if v[0] == "openvino" else v[0]


def variant_of(run: Run) -> Variant | None:
    """The engine a run measured: its settings (curve, evaluate), else its stack's knobs (bench)."""
    engine = run.get("settings", "engine") if run.kind != "bench" else None
    if engine:
        return engine, run.get("settings", "precision") or "f32"
    knobs = run.get("stack", "knobs") or {}
    engine = knobs.get("SB_ENGINE") or run.get("stack", "info", "engine")
    if not engine:
        return None
    return engine, (knobs.get("SB_OPENVINO_PRECISION") or "f32") if engine == "openvino" else "f32"


def _order(variants) -> list[Variant]:
    """TensorFlow first, then as measured."""
    found = list(dict.fromkeys(variants))
    return sorted(found, key=lambda v: v != TF)


# --------------------------------------------------------------------------- the curve

def curve_runs(runs: list[Run]) -> dict[Variant, list[Run]]:
    """Per engine, the curve's repeats: complete runs with the newest one's commit and settings (bar engine)."""
    done = [r for r in runs if r.kind == CURVE and not r.interrupted]
    if not done:
        return {}
    newest = max(done, key=lambda r: r.newest_key)

    def shape(r: Run) -> tuple:
        s = r.settings
        return (tuple(s.get("threads") or ()), tuple(s.get("batch_sizes") or ()), s.get("seconds"),
                r.record.provenance.git_commit)

    out: dict[Variant, list[Run]] = {}
    for r in done:
        if shape(r) == shape(newest):
            out.setdefault(variant_of(r), []).append(r)
    return {v: out[v] for v in _order(out)}


@dataclass
class Point:
    """One engine, thread count and batch size over the curve's repeats."""

    images_per_s: Spread | None
    p50_ms: Spread | None
    cpu_ms: Spread | None


def curve_points(runs: list[Run]) -> dict[tuple[Variant, int, int], Point]:
    out: dict[tuple[Variant, int, int], Point] = {}
    for v, found in curve_runs(runs).items():
        pts: dict[tuple[int, int], list[dict]] = {}
        for r in found:
            for c in r.get("curves", default=[]) or []:
                for p in c.get("points") or []:
                    pts.setdefault((c.get("intra_op_threads"), p.get("batch")), []).append(p)
        for (threads, batch), ps in sorted(pts.items()):
            out[(v, threads, batch)] = Point(spread(p.get("images_per_s") for p in ps),
                                             spread(p.get("p50_ms") for p in ps),
                                             spread(p.get("cpu_ms_per_image") for p in ps))
    return out


def curve_errors(runs: list[Run]) -> dict[Variant, str]:
    """The engines that could not run the model in the newest curve set, and why."""
    return {v: found[-1].get("error") for v, found in curve_runs(runs).items() if found[-1].get("error")}


def best_batched(points: dict, v: Variant, threads: int) -> tuple[int, Spread] | None:
    """The batch size with the most images/s (median over repeats) at ``threads``, and that figure."""
    mine = [(b, p.images_per_s) for (vv, t, b), p in points.items() if vv == v and t == threads and p.images_per_s]
    return max(mine, key=lambda x: x[1].median) if mine else None


# --------------------------------------------------------------------------- correctness

def evaluations(runs: list[Run]) -> dict[Variant, Run]:
    """The newest complete evaluate run per engine, the study's own before any other."""
    done = [r for r in runs if r.kind == EVALUATE and not r.interrupted]
    out: dict[Variant, Run] = {}
    for r in sorted(done, key=lambda r: (r.get("study") == STUDY, r.newest_key)):
        out[variant_of(r)] = r
    return {v: out[v] for v in _order(out)}


def accuracy_lost(ev: Run | None) -> float | None:
    return number(ev.get("accuracy_lost_points")) if ev else None


# --------------------------------------------------------------------------- the stacks

def is_stack_run(run: Run) -> bool:
    return (run.kind == "bench" and not run.interrupted and run.arch is not None and run.get("study") == STUDY
            and run.codec == "raw" and run.batch == 1 and run.rate is None)


@dataclass
class StackCell:
    runs: list[Run]
    p50: Spread | None
    throughput: Spread | None
    server_cpu: Spread | None
    client_cpu: Spread | None
    services: dict[str, Spread]  # service -> CPU ms per image

    @property
    def n(self) -> int:
        return len(self.runs)


def stack_cells(runs: list[Run]) -> dict[tuple[str, Variant, str, int], StackCell]:
    """(arch, engine, batching mode, concurrency) -> the repeats of the newest set measured."""
    sets: dict[tuple, dict[tuple, list[Run]]] = {}
    for run in runs:
        if is_stack_run(run) and variant_of(run):
            key = (run.arch, variant_of(run), batching_mode(run), run.concurrency)
            origin = (run.runtime, run.n, run.record.provenance.git_commit)
            sets.setdefault(key, {}).setdefault(origin, []).append(run)
    out = {}
    for key, found in sets.items():
        rs = max(found.values(), key=lambda rs: max(r.newest_key for r in rs))
        names = [k for r in rs for k in (r.get("resources") or {}) if k != CLIENT]
        services = {name: s for name in dict.fromkeys(names)
                    if (s := spread(1000.0 * (number(r.get("resources", name, "cpu_seconds_per_image")) or 0)
                                    for r in rs if r.get("resources", name, "cpu_seconds_per_image") is not None))}
        out[key] = StackCell(rs, spread(r.get("latency_ms", "p50") for r in rs),
                             spread(r.get("throughput_images_per_s") for r in rs),
                             spread(server_cpu_ms(r) for r in rs), spread(client_cpu_ms(r) for r in rs), services)
    order = {v: i for i, v in enumerate(_order(k[1] for k in out))}
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2], kv[0][3])))


def saturated(cells: dict) -> int | None:
    levels = [c for (_, _, _, c) in cells if c > 1]
    return max(levels) if levels else None


# --------------------------------------------------------------------------- goals and picks

def _n(*spreads) -> str:
    ns = sorted({s.n for s in spreads if s is not None})
    if not ns:
        return ""
    return "one run each" if ns == [1] else f"medians of {ns[0] if len(ns) == 1 else f'{ns[0]}-{ns[-1]}'} repeats"


def goal_rows(runs: list[Run]) -> list[dict]:
    """The issue's three engine goals, each {goal, target, measured (text or None), ok (bool or None)}."""
    points, evals, cells = curve_points(runs), evaluations(runs), stack_cells(runs)
    rows = []

    b1 = {v: p.p50_ms for (v, t, b), p in points.items() if t == LATENCY_THREADS and b == 1 and p.p50_ms}
    others = {v: s for v, s in b1.items() if v != TF}
    best = min(others.items(), key=lambda x: x[1].median) if others else None
    ok = text = None
    if best and TF in b1:
        ratio = best[1].median / b1[TF].median
        ok = ratio <= GOALS["b1_p50_ratio"]
        text = (f"{ratio:.2f}× ({name_of(best[0])} {best[1].median:.3f} ms against TensorFlow's "
                f"{b1[TF].median:.3f} ms; {_n(best[1], b1[TF])})")
    rows.append({"goal": f"best engine's in-process batch-1 p50 ÷ TensorFlow's ({LATENCY_THREADS} thread)",
                 "target": f"≤ {GOALS['b1_p50_ratio']}×", "measured": text, "ok": ok})

    tops = {v: bb for v in {v for (v, _, _) in points} if (bb := best_batched(points, v, THROUGHPUT_THREADS))}
    ok = text = None
    if TF in tops and len(tops) > 1:
        tf = tops[TF][1]
        fair = {v: bb for v, bb in tops.items() if v != TF and accuracy_lost(evals.get(v)) is not None
                and accuracy_lost(evals.get(v)) <= GOALS["accuracy_points"]}
        fastest = max(((v, bb) for v, bb in tops.items() if v != TF), key=lambda x: x[1][1].median)
        parts = []
        if fair:
            v, (batch, s) = max(fair.items(), key=lambda x: x[1][1].median)
            ratio = s.median / tf.median
            ok = ratio >= GOALS["throughput_ratio"]
            parts.append(f"{ratio:.2f}× ({name_of(v)} {s.median:,.0f} images/s at batch {batch} against "
                         f"TensorFlow's {tf.median:,.0f} at batch {tops[TF][0]}; {accuracy_lost(evals[v]):+.2f} "
                         f"points of accuracy; {_n(s, tf)})")
        f32 = {v: bb for v, bb in tops.items() if v != TF and v[1] == "f32"}
        if f32 and (not fair or max(fair.items(), key=lambda x: x[1][1].median)[0][1] != "f32"):
            v, (batch, s) = max(f32.items(), key=lambda x: x[1][1].median)
            parts.append(f"the best f32 engine: {s.median / tf.median:.2f}× ({name_of(v)} {s.median:,.0f} "
                         f"images/s at batch {batch})")
        lost = accuracy_lost(evals.get(fastest[0]))
        if fastest[0] not in fair:
            why = ("its accuracy was not measured" if lost is None
                   else f"it loses {lost:.2f} points of accuracy, more than {GOALS['accuracy_points']}")
            parts.append(f"{name_of(fastest[0])} is faster, {fastest[1][1].median / tf.median:.2f}×, but {why}")
        text = "; ".join(parts)
    rows.append({"goal": f"best engine's batched throughput ÷ TensorFlow's ({THROUGHPUT_THREADS} threads), at "
                         f"≤ {GOALS['accuracy_points']} points of accuracy lost",
                 "target": f"≥ {GOALS['throughput_ratio']}×", "measured": text, "ok": ok})

    c1 = {v: cell.p50 for (a, v, m, c), cell in cells.items() if a == "embedded" and m == "off" and c == 1
          and cell.p50}
    others = {v: s for v, s in c1.items() if v != TF}
    best = min(others.items(), key=lambda x: x[1].median) if others else None
    ok = text = None
    if best and TF in c1:
        gain = c1[TF].median - best[1].median
        ok = gain >= GOALS["embedded_p50_ms"]
        text = (f"{gain:.2f} ms below ({name_of(best[0])} {best[1].median:.2f} ms against TensorFlow's "
                f"{c1[TF].median:.2f} ms; {_n(best[1], c1[TF])})")
    rows.append({"goal": "embedded stack at concurrency 1 (batching off): TensorFlow's p50 − the best engine's",
                 "target": f"≥ {GOALS['embedded_p50_ms']} ms", "measured": text, "ok": ok})
    return rows


def cost_of(ev: Run | None) -> str:
    """An engine's accuracy cost in words."""
    if ev is None:
        return "accuracy not measured"
    parts = []
    lost = accuracy_lost(ev)
    if lost is not None:
        parts.append(f"{lost:+.2f} points of test accuracy lost")
    diff, share = number(ev.get("max_abs_diff")), number(ev.get("class_changed_share"))
    if diff is not None:
        parts.append(f"probabilities within {diff:.2g} of TensorFlow's")
    if share is not None:
        parts.append(f"{share:.2%} of classes changed")
    return ", ".join(parts) + f" ({ev.get('inputs')} inputs)"


def picks(runs: list[Run]) -> dict[str, dict]:
    """Which engine for latency and which for throughput: {"latency"|"throughput": {variant, text}}."""
    points, evals, cells = curve_points(runs), evaluations(runs), stack_cells(runs)
    out = {}
    c1 = {v: cell.p50 for (a, v, m, c), cell in cells.items() if a == "embedded" and m == "off" and c == 1
          and cell.p50}
    b1 = {v: p.p50_ms for (v, t, b), p in points.items() if t == LATENCY_THREADS and b == 1 and p.p50_ms}
    if c1 or b1:
        where, found = ("the embedded stack's p50 at concurrency 1", c1) if c1 else \
            (f"the in-process batch-1 p50 ({LATENCY_THREADS} thread)", b1)
        v, s = min(found.items(), key=lambda x: x[1].median)
        tf = found.get(TF)
        out["latency"] = {"variant": v, "text": f"for latency, {name_of(v)}: {s.text(unit=' ms')} as {where}"
                          + (f", TensorFlow's {tf.text(unit=' ms')}" if tf and v != TF else "")
                          + f"; {cost_of(evals.get(v))}"}
    top = saturated(cells)
    sat = {(a, v, m): cell.throughput for (a, v, m, c), cell in cells.items() if c == top and cell.throughput}
    tops = {v: bb for v in {v for (v, _, _) in points} if (bb := best_batched(points, v, THROUGHPUT_THREADS))}
    if sat:
        (a, v, m), s = max(sat.items(), key=lambda x: x[1].median)
        tf = sat.get((a, TF, m))
        out["throughput"] = {"variant": v, "text": f"for throughput, {name_of(v)}: {s.text(unit=' images/s')} "
                             f"through {a} at {top} in flight, batching {m}"
                             + (f", TensorFlow's {tf.text(unit=' images/s')}" if tf and v != TF else "")
                             + f"; {cost_of(evals.get(v))}"}
    elif tops:
        v, (batch, s) = max(tops.items(), key=lambda x: x[1][1].median)
        out["throughput"] = {"variant": v, "text": f"for throughput, {name_of(v)}: {s.text(unit=' images/s')} in "
                             f"process at batch {batch}, {THROUGHPUT_THREADS} threads; {cost_of(evals.get(v))}"}
    return out
