"""One answer as it is kept and shown: ``results/advice-<UTC time>/`` with advice.json, advice.md, pareto.png.

advice.json holds the inputs, every candidate's operating point, the ranking,
the verification (when run) and the provenance every run record carries
(versions, machine, git commit). It is written before the verification starts
and again after it, so an interrupted check leaves what the advice rested on.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from bench import provenance
from bench.advise.candidates import Configuration, Measurements
from bench.advise.ranking import Constraints, Point, describe_failures
from bench.formats import fmt
from servebench.settings import env_name, knob_defaults

FILE = "advice.json"
SUMMARY = "advice.md"
KIND = "advice"
UP_KNOBS = ("frontend_workers", "frontend_threads", "backend_workers", "backend_threads", "batch_max_size",
            "batch_timeout_ms", "intra_op_threads", "inter_op_threads", "engine")


def new_folder(root: Path) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 100):
        path = root / (f"{KIND}-{stamp}" if attempt == 1 else f"{KIND}-{stamp}-{attempt}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create an advice folder under {root}")


def up_command(cfg: Configuration) -> str:
    """``make up`` for the configuration: its architecture and the knobs that make it (others: defaults)."""
    defaults = knob_defaults()
    shown = {env_name(k) for k in UP_KNOBS}
    knobs = [f"{k}={v}" for k, v in cfg.knobs.items() if k in shown or defaults.get(k) != v]
    if cfg.knob("engine") == "openvino" and cfg.knob("openvino_precision"):
        knobs.append(f"SB_OPENVINO_PRECISION={cfg.knob('openvino_precision')}")
    runtime = f" RUNTIME={cfg.runtime}" if cfg.runtime != "native" else ""
    return " ".join([f"make up ARCH={cfg.arch}{runtime}", *dict.fromkeys(knobs)])


def pick_lines(i: int, p: Point, c: Constraints) -> list[str]:
    lv = p.level
    cores = p.cores(c.rate)
    return [
        f"#{i} {p.config.label}",
        f"   p99 {fmt(lv.p99_ms, 2)} ms, p50 {fmt(lv.p50_ms, 2)} ms at {fmt(lv.throughput)} images/s "
        f"({lv.describe()}{', unstable' if not lv.stable else ''}{f', {lv.repeats} repeats' if lv.repeats > 1 else ''})",
        f"   CPU {fmt(p.cpu_ms_per_image, 3)} ms/image (server side) = {fmt(cores, 2)} cores at {c.rate:g} images/s; "
        f"memory {fmt(p.config.memory_mb, 0)} MB (RSS of its services)",
        f"   rests on: {p.basis(c.rate)}",
        f"   runs: {', '.join(lv.run_id.split(','))}"
        + (f" (the configuration: {len(p.config.run_ids)} runs)" if len(p.config.run_ids) > 1 else ""),
    ]


def text(c: Constraints, ranked: list[Point], near: list[Point], notes: list[str]) -> list[str]:
    limits = [f"p99 <= {c.slo_p99_ms:g} ms at {c.rate:g} images/s"]
    if c.max_cpu is not None:
        limits.append(f"<= {c.max_cpu:g} cores")
    if c.max_mem_mb is not None:
        limits.append(f"<= {c.max_mem_mb:g} MB")
    lines = [f"asked: {', '.join(limits)}"]
    if ranked:
        lines.append(f"{len(ranked)} measured configuration(s) meet it; the cheapest by CPU per image, then memory:")
        for i, p in enumerate(ranked[:3], 1):
            lines += pick_lines(i, p, c)
        lines.append(f"start the top pick: {up_command(ranked[0].config)}")
    else:
        lines.append("no measured configuration meets it; the closest:")
        for p in near:
            lines.append(f"  {p.config.label}: {describe_failures(p, c)}")
    return lines + [f"note: {n}" for n in notes]


def verification_lines(v: dict, c: Constraints) -> list[str]:
    if v.get("error"):
        return [f"verification failed to run: {v['error']}"]
    m, pred = v.get("measured") or {}, v.get("predicted") or {}
    head = "verification (interrupted: what it measured)" if v.get("interrupted") else "verification"
    met = {True: "met", False: "NOT met", None: "not measured"}[v.get("p99_met")]
    err = v.get("cpu_error_pct")
    return [f"{head}, run {v.get('run_id')}: open loop at {c.rate:g} images/s -> {fmt(m.get('throughput_images_per_s'))} "
            f"images/s" + ("" if v.get("kept_up") is not False else
                           " (did not keep up: a machine busy with other work, or the prediction is wrong)"),
            f"   p99 measured {fmt(m.get('p99_ms'), 2)} ms (predicted {fmt(pred.get('p99_ms'), 2)}): SLO "
            f"{c.slo_p99_ms:g} ms {met}",
            f"   CPU/image measured {fmt(m.get('cpu_ms_per_image'), 3)} ms, predicted "
            f"{fmt(pred.get('cpu_ms_per_image'), 3)}: error {fmt(err, 1, '%')} "
            f"({'within' if err is not None and abs(err) <= 15 else 'outside'} the 15% goal)"]


def document(options, c: Constraints, m: Measurements, points: list[Point], ranked: list[Point],
             near: list[Point], verification: dict | None) -> dict:
    return {
        "kind": KIND,
        "inputs": {"slo_p99_ms": c.slo_p99_ms, "rate_images_per_s": c.rate, "max_cpu": c.max_cpu,
                   "max_mem_mb": c.max_mem_mb, "archs": list(options.archs), "results": str(options.out),
                   "verify_s": options.verify_s if options.verify else None},
        "method": "operating point at RATE from the nearest measured level at or above it (open loops first; "
                  "p99 not interpolated); CPU/image at RATE fitted as busy cores = idle + per-image x throughput from the "
                  "two kept-up levels nearest to RATE (else the nearest level's); "
                  "ranked by CPU per image, then memory",
        "limit": m.limit,
        "candidates": [p.as_dict(c.rate) for p in points],
        "configurations": [cfg.as_dict() for cfg in m.configurations],
        "ranking": [{"rank": i, "up": up_command(p.config), **p.as_dict(c.rate)} for i, p in enumerate(ranked, 1)],
        "closest": [p.as_dict(c.rate) for p in near],
        "verification": verification,
        "notes": m.notes,
        "provenance": provenance.record(),
    }


def write(folder: Path, doc: dict, lines: list[str]) -> None:
    tmp = folder / (FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    tmp.replace(folder / FILE)
    inputs = doc["inputs"]
    md = [f"# Advice: p99 <= {inputs['slo_p99_ms']:g} ms at {inputs['rate_images_per_s']:g} images/s", "",
          f"From the measurements under `{inputs['results']}` "
          f"(git {doc['provenance'].get('git_commit')}, {doc['provenance'].get('created_utc')}).", "",
          "```", *lines, "```", "", "![latency-throughput Pareto front](pareto.png)", "",
          f"Method: {doc['method']}.", ""]
    (folder / SUMMARY).write_text("\n".join(md))
