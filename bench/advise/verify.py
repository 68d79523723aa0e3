"""The top pick checked: its stack started as it was measured, one open-loop level at RATE, the same figures.

The run is a one-level sweep (:class:`bench.sweep.Sweep`): the same lean client,
Poisson arrivals, window edges, stability rule and CPU accounting as the sweeps
the prediction came from; its record lies in the advice folder. Three windows
of VERIFY_S / 3 seconds after one second of warm-up: the level's p99 is the
median of its windows' p99, its CPU per image the server side's over them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from bench import options as opts
from bench import sweep, target
from bench.advise.candidates import Configuration
from bench.advise.inputs import AdviceError
from bench.advise.ranking import Constraints, Point
from servebench import runtime as runtimes
from servebench import settings as settings_mod

WINDOWS = 3
WARMUP_S = 1.0
NO_BATCHING_SIZE = 16  # SweepOptions wants a size even when batching is off; unused then


def stack_settings(cfg: Configuration):
    """The settings the configuration was measured with, over this environment's (ports, run folder)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(settings_mod.ENV_PREFIX)}
    env.update(cfg.knobs)
    try:
        return settings_mod.Settings.from_env(env)
    except ValidationError as exc:
        raise AdviceError(f"the recorded knobs of {cfg.label} are no longer valid settings ({exc.errors()[0]['msg']});"
                          f" measure it again: make sweep ARCH={cfg.arch}", code=1) from None


def sweep_options(cfg: Configuration, c: Constraints, verify_s: float, out: Path, runtime: str,
                  run_dir: Path | None) -> opts.SweepOptions:
    threads = cfg.knob("frontend_threads") or cfg.knob("backend_threads") or 16
    return opts.SweepOptions(
        arch=cfg.arch, runtime=runtime, run_dir=run_dir, codec=cfg.codec, batch=cfg.batch, concurrency=(),
        rates=(c.rate / cfg.batch,), batching=(cfg.batching,),
        batch_max_size=int(cfg.knob("batch_max_size")) if cfg.batching == "on" else NO_BATCHING_SIZE,
        batch_timeout_ms=float(cfg.knob("batch_timeout_ms") or 0), threads=int(threads),
        window_s=verify_s / WINDOWS, windows_limit=WINDOWS, stable_windows=WINDOWS, warmup_s=WARMUP_S,
        model_curve="none", out=out, progress=False, study=None)


def verify(point: Point, c: Constraints, verify_s: float, out: Path, runtime: str = "native",
           run_dir: Path | None = None, log: Callable = print) -> dict:
    """Run the check; the comparison of predicted against measured (``interrupted`` when it was cut short)."""
    cfg = point.config
    options = sweep_options(cfg, c, verify_s, out, runtime, run_dir)
    settings = stack_settings(cfg)
    other = target.running(runtime, run_dir)
    if other is not None:
        raise AdviceError(f"a {other.arch} stack is running; the check starts its own: `make down RUNTIME={runtime}`"
                          f" first, or run with NO_VERIFY=1", code=1)
    unmet = target.runnable_arches(runtime, [cfg.arch])[1]
    if unmet:
        raise AdviceError(f"{cfg.arch} cannot run here ({unmet[cfg.arch]}); NO_VERIFY=1 skips the check", code=1)
    log(f"verifying {cfg.label}: open loop at {c.rate:g} images/s for {verify_s:g} s")
    try:
        work, requests, images = sweep.prepare(options, settings, log)
        record = sweep.Sweep(options, requests, None, settings, log, images, work).run()
    except runtimes.StackError as exc:
        return {"run_id": None, "error": str(exc), "interrupted": False, **_predicted(point, c)}
    return compare(point, c, record.doc(), cfg.batching)


def _predicted(point: Point, c: Constraints) -> dict:
    return {"predicted": {"p99_ms": point.level.p99_ms if point.level else None,
                          "cpu_ms_per_image": point.cpu_ms_per_image}}


def compare(point: Point, c: Constraints, doc: dict, mode: str) -> dict:
    """Predicted against measured, from the verification sweep's record."""
    levels = ((doc.get("modes") or {}).get(mode) or {}).get("levels") or []
    lv = levels[0] if levels else {}
    p99, cpu = lv.get("p99_ms"), lv.get("server_cpu_ms_per_image")
    predicted_cpu = point.cpu_ms_per_image
    error = round(100.0 * (predicted_cpu - cpu) / cpu, 1) if predicted_cpu is not None and cpu else None
    return {
        "run_id": doc.get("run_id"), "interrupted": bool(doc.get("interrupted") or lv.get("interrupted")),
        **_predicted(point, c),
        "measured": {"offered_images_per_s": c.rate, "throughput_images_per_s": lv.get("throughput_images_per_s"),
                     "p50_ms": lv.get("p50_ms"), "p99_ms": p99, "cpu_ms_per_image": cpu,
                     "cpu_ms_per_image_by_service": lv.get("cpu_ms_per_image"), "stable": lv.get("stable"),
                     "windows": len(lv.get("windows") or []), "errors": lv.get("errors")},
        # Below 95% of RATE the stack (or this machine, now) did not keep up: its p99 is a queue's.
        "kept_up": None if not lv.get("throughput_images_per_s") else lv["throughput_images_per_s"] >= 0.95 * c.rate,
        "p99_met": None if p99 is None else p99 <= c.slo_p99_ms,
        "cpu_error_pct": error,
        "cpu_within_15pct": None if error is None else abs(error) <= 15.0,
    }
