"""`make sweep ARCH=...`: one architecture under rising load until it saturates, batching off and on.

    python -m bench.sweep --arch ARCH [--runtime native|docker] [--codec raw] [--concurrency "1 2 4 8 16 32 64"]
        [--rates "..." | --rate-fractions "0.25 0.5 0.75 0.9 1 1.1"] [--arrivals poisson|constant]
        [--window-s 2] [--windows-limit 10] [--batching "off on"] [--batch-max-size 16] [--batch-timeout-ms 2]
        [--client servebench|perf_analyzer] [--model-curve latest|fresh|none] [--out results]

For each batching mode the sweep brings up a stack of its own (a running stack
cannot be reconfigured, so it refuses to start while another runs): batching
off is ``batch_max_size=1``, on is ``--batch-max-size``/``--batch-timeout-ms``.
In each stack, after ``--warmup`` requests, it measures closed-loop levels
(``--concurrency``: requests in flight), takes the saturated throughput (the
highest of the stable closed-loop levels), then open-loop levels at
``--rate-fractions`` of it (or at ``--rates`` requests/s). One image per
request by default, raw bodies: JSON decoding is a cost of its own, measured
by ``make bench``.

The stability rule (perf_analyzer's; :class:`bench.shapes.StabilityRule`, the levels
themselves from :class:`bench.shapes.Stepped`): a level runs ``--warmup-s`` unmeasured,
then consecutive windows of ``--window-s``; a request belongs to the window in
which it completes (one in flight at an edge counts where it ends). The level
counts once ``--stable-windows`` (3) consecutive windows agree within
``--tolerance`` (10%: max/min <= 1.1) in both throughput and p50 latency, and
is otherwise measured up to ``--windows-limit`` windows and marked unstable.
perf_analyzer checks throughput and *average* latency; we check p50, the figure
we report, which one slow request (a garbage collection, a page fault) does not
move. The level's figures are the median, over its agreeing windows (the last
three of an unstable level), of each window's throughput, p50, p99 and mean.

Where the CPU goes (:mod:`bench.cpu_accounting`): at each window edge the CPU time of every process of every
service (and of this process, the load generator, reported apart) is read, so
the CPU over a level's chosen windows divided by the images answered in them is
its CPU per image, per service. The servers' ``Server-Timing`` says how many
images each request's model call ran (``batch;desc=<n>``) and how long it
queued (``queue;dur=<ms>``). The in-process model curve (``python -m
bench.reference curve``: the newest one with the servers' threads, measured
first when there is none) gives the machine's limit (the most images/s of the
model alone) and the model's own CPU per image at each batch size:

- ``model_cpu_ms_per_image``: the curve's CPU per image at the batch size each
  request ran with, averaged over the requests (log2-interpolated between the
  measured sizes);
- ``server_efficiency``: that divided by the server side's CPU per image
  (nginx + front end + backend, the client left out);
- ``served_fraction``: throughput divided by the in-process limit.

With ``--client perf_analyzer`` (Triton's C++ load generator, through
:mod:`bench.perf_analyzer`, sending the same test images over KServe v2) each
level is one perf_analyzer run with its own stability rule set to ours
(``--window-s``, ``--tolerance``, ``--windows-limit``, p50); the services' CPU
is read before and after it (its start-up and every trial included, so per
image it assumes a steady load), its own CPU per request is what
:mod:`bench.perf_analyzer` measured (else this process's children's CPU
time), and per-request batch sizes are not seen (so no efficiency).

Writes ``results/<run-id>/`` (``results/latest`` points at it):

- ``summary.json``: a run record (:mod:`bench.records`), kind ``sweep``, study
  ``saturation``; ``settings`` is what was asked (:meth:`SweepOptions.recorded`),
  ``stack`` is None and ``stacks`` the stack of each batching mode
  (:func:`bench.target.stack_record`); then
  ``client`` (servebench or perf_analyzer), ``model_curve`` (``run_id``,
  ``intra_op_threads``, ``inter_op_threads``, ``points``: batch, images_per_s,
  cpu_ms_per_image, ...), ``limit`` (the curve's: ``images_per_s``, ``batch``,
  ``intra_op_threads``, ``cpu_bound_images_per_s``), ``modes``: per batching
  mode ``{"serving": {batch_max_size, batch_timeout_ms}, "levels": [...],
  "saturation": {"level": index, "stable": bool, ...the level's figures},
  "resources": the sampler's summary}``, and ``sampler_cpu_seconds``. A level:
  ``mode`` (closed/open), ``concurrency`` or ``rate`` (requests/s offered),
  ``rate_fraction``, ``arrivals``, ``connections``, ``windows`` (each:
  ``start_s``/``end_s`` from the run's origin, ``seconds``, ``requests``,
  ``images``, ``errors``, ``throughput_images_per_s``, ``p50_ms``, ``p99_ms``,
  ``mean_ms``), ``stable``, ``chosen`` (indices of the windows its figures come
  from), ``throughput_images_per_s``, ``p50_ms``, ``p99_ms``, ``mean_ms``,
  ``requests``, ``images``, ``errors``, ``errors_by_status`` (every window),
  ``accuracy``, ``batch_size`` (mean, median, max over requests; ``seen``: the
  share of answers that said), ``queue_ms_p50``, ``cpu_ms_per_image`` (per
  service, client included), ``cores_busy`` (per service),
  ``server_cpu_ms_per_image``, ``client_cpu_ms_per_image``,
  ``model_cpu_ms_per_image``, ``server_efficiency``, ``served_fraction``,
  ``interrupted``;
- ``levels.csv``: one row per level (CPU by role: nginx, frontend, backend);
- ``windows.csv``: one row per window;
- ``resources.csv``: the sampler's rows (:mod:`bench.resources`) with the
  batching mode first.

Ctrl-C or SIGTERM stops at once: the levels measured are kept, the summary says
``"interrupted": true``, and the stacks the sweep started are stopped.
"""
from __future__ import annotations

import importlib
import inspect
import math
import resource
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from bench import client, provenance, reference, resources, results, shapes, target, timing, workload
from bench import options as opts
from bench.cpu_accounting import (CLIENT, SERVER_ROLES, Snapshot, by_role, cpu_between, cpu_budget, cpu_snapshot,
                                  model_cpu)
from bench.formats import fmt
from bench.records import RunRecord
from bench.session import RunSession
from bench.shapes import STABILITY_METRICS, agree, chosen_windows, median_of, saturation, stable_run
from bench.windows import WindowLog, window_stats
from servebench import interrupts
from servebench import runtime as runtimes
from servebench.settings import Settings, from_environment

# What moved out of this module, still reachable here (tests and studies read these names from bench.sweep).
__all__ = ["STABILITY_METRICS", "agree", "stable_run", "chosen_windows", "median_of", "saturation", "WindowLog",
           "window_stats", "cpu_snapshot", "cpu_between", "cpu_budget", "by_role", "model_cpu", "sweep", "main"]

KIND = "sweep"
GRACE_S = 0.1  # a request timed before a window's edge has been handed over by then
SPAN_MARGIN_S = 5.0  # load generated past the last possible window, so that it never runs dry
PSS_HZ = 0.1  # PSS walks every page table (~17 ms per TensorFlow worker): rarely, memory is not the point

LEVEL_COLUMNS = [
    "batching", "mode", "concurrency", "rate", "rate_fraction", "stable", "windows", "chosen_first",
    "throughput_images_per_s", "p50_ms", "p99_ms", "mean_ms", "requests", "images", "errors", "accuracy",
    "batch_mean", "batch_median", "batch_max", "queue_ms_p50",
    *[f"cpu_ms_per_image_{r}" for r in SERVER_ROLES], "server_cpu_ms_per_image", "client_cpu_ms_per_image",
    "model_cpu_ms_per_image", "server_efficiency", "served_fraction", "saturation", "interrupted",
]
WINDOW_COLUMNS = [
    "batching", "mode", "concurrency", "rate", "window", "start_s", "end_s", "seconds", "requests", "images",
    "errors", "throughput_images_per_s", "p50_ms", "p99_ms", "mean_ms", "chosen",
]


class SweepError(runtimes.StackError):
    """The sweep cannot run as asked (a load generator that is not there, a stack someone else started);
    a StackError, so that every command runner reports it as one, without a traceback."""


# ------------------------------------------------------------------ one level's figures
def level_figures(windows: list[dict], per_window: list[list[client.Result]], chosen: list[int],
                  cpu_s: dict[str, float] | None, cpu_seconds: float, batching_off: bool,
                  curve: list[dict] | None, limit: float | None) -> dict:
    """A level's figures from its windows (see the module docstring)."""
    picked = [windows[i] for i in chosen]
    rs = [r for i in chosen for r in per_window[i]]
    ok = [r for r in rs if r.ok]
    every = [r for w in per_window for r in w]
    images = sum(r.request.images for r in ok)
    sizes = [timing.batch_size(r.server_timing) for r in ok]
    queue = [r.server_timing["queue"] for r in ok if "queue" in r.server_timing]
    out = {
        "throughput_images_per_s": median_of(picked, "throughput_images_per_s"),
        "p50_ms": median_of(picked, "p50_ms"),
        "p99_ms": median_of(picked, "p99_ms"),
        "mean_ms": median_of(picked, "mean_ms"),
        "requests": len(rs), "images": images, "errors": len(rs) - len(ok),
        "errors_by_status": dict(Counter(str(r.status) for r in every if not r.ok)),
        "accuracy": results.accuracy(ok, 5),  # None: not checked (no labels, or not a classifier)
        "batch_size": timing.batch_summary(sizes, batching_off),
        "queue_ms_p50": results.median(queue),
        **cpu_budget(cpu_s or {}, images, cpu_seconds),
        "model_cpu_ms_per_image": model_cpu(sizes, curve, batching_off),
    }
    out.update(derived(out, limit))
    return out


def derived(level: dict, limit: float | None) -> dict:
    server, model = level.get("server_cpu_ms_per_image"), level.get("model_cpu_ms_per_image")
    thr = level.get("throughput_images_per_s")
    return {"server_efficiency": results.rounded(model / server, 4) if model and server else None,
            "served_fraction": results.rounded(thr / limit, 4) if thr and limit else None}


def open_rates(options: opts.SweepOptions, saturated_images_per_s: float | None) -> list[tuple[float, float | None]]:
    """(requests/s, fraction of the saturated throughput or None) of the open-loop levels."""
    return shapes.open_rates(options.rates, options.rate_fractions, options.batch, saturated_images_per_s)


def stepped_shape(options: opts.SweepOptions) -> shapes.Stepped:
    """The sweep's load shape: its closed-loop levels, then its open-loop ones, under its stability rule."""
    o = options
    return shapes.Stepped(o.concurrency, rule=shapes.StabilityRule(o.stable_windows, o.tolerance, o.windows_limit),
                          window_s=o.window_s, warmup_s=o.warmup_s, rates=o.rates, fractions=o.rate_fractions,
                          batch=o.batch, arrivals=o.arrivals, connections=o.connections)


def level_row(mode: str, lv: dict, is_saturation: bool) -> list:
    roles = by_role(lv.get("cpu_ms_per_image") or {})
    bs = lv.get("batch_size") or {}
    chosen = lv.get("chosen") or []
    return [mode, lv["mode"], lv.get("concurrency"), lv.get("rate"), lv.get("rate_fraction"), lv.get("stable"),
            len(lv.get("windows", [])), chosen[0] if chosen else None,
            *(lv.get(k) for k in ("throughput_images_per_s", "p50_ms", "p99_ms", "mean_ms", "requests", "images",
                                  "errors", "accuracy")),
            bs.get("mean"), bs.get("median"), bs.get("max"), lv.get("queue_ms_p50"),
            *(results.rounded(roles.get(r), 4) for r in SERVER_ROLES), lv.get("server_cpu_ms_per_image"),
            lv.get("client_cpu_ms_per_image"), lv.get("model_cpu_ms_per_image"), lv.get("server_efficiency"),
            lv.get("served_fraction"), is_saturation, lv.get("interrupted", False)]


def window_rows(mode: str, lv: dict) -> list[list]:
    chosen = set(lv.get("chosen") or [])
    return [[mode, lv["mode"], lv.get("concurrency"), lv.get("rate"), k,
             *(w.get(c) for c in WINDOW_COLUMNS[5:-1]), k in chosen] for k, w in enumerate(lv.get("windows", []))]


def csv_value(v) -> str:
    return "" if v is None else str(v)


# ------------------------------------------------------------------ the load

class _ModeLog:
    """resources.csv rows of one batching mode: the sampler's row with the mode first."""

    def __init__(self, log: results.CsvLog, mode: str):
        self.log, self.mode = log, mode

    def row(self, values) -> None:
        self.log.row([self.mode, *values])


def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)  # the main thread: Ctrl-C interrupts it


class Sweep:
    """One architecture's sweep: a stack per batching mode, its levels, the record."""

    MAX_CLOSED_RATE = 20000.0  # requests/s no stack here reaches: the closed loop's request list never runs dry

    def __init__(self, options: opts.SweepOptions, requests: list[client.Request], curve: RunRecord | None,
                 settings: Settings, log: Callable = print, images: np.ndarray | None = None,
                 work: workload.Workload | None = None):
        self.options = options
        self.requests = requests
        self.images = images  # perf_analyzer's input data
        self.work = work  # the model, its inputs and the protocol (a record's model_card, data, synthetic_inputs)
        self.settings = settings
        self.log = log
        self.curve = curve
        self.points = reference.curve_of(curve, settings.intra_op_threads, settings.inter_op_threads) \
            if curve is not None else None
        self.limit = curve.get("limit") if curve is not None else None
        self.modes: dict[str, dict] = {}
        self.stacks: dict[str, dict] = {}
        self.run_dir: Path | None = None
        self.origin = time.perf_counter()
        self.interrupted = False
        self.sampler_cpu = 0.0

    @property
    def limit_images_per_s(self) -> float | None:
        return self.limit.get("images_per_s") if self.limit else None

    # ---------------------------------------------------------- run
    def run(self) -> RunRecord:
        o = self.options
        # An error (a stack that would not start) leaves a record too, marked interrupted.
        session = RunSession(label=f"sweep-{o.arch}", root=o.out, header=self.header,
                             summary=lambda interrupted: self.measurements(), after=lambda _: self.write_csvs(),
                             resources_csv=True, resource_columns=["batching", *resources.COLUMNS],
                             record_errors=True)
        with session:
            self.run_dir = session.run_dir
            try:
                for mode in o.batching:
                    serving = self.settings.model_copy(update=o.serving(mode))
                    with target.stack_for(o.arch, o.runtime, o.run_dir, serving, log=self.log) as (st, started):
                        if not started:  # checked before; someone started one since
                            raise SweepError("a stack was started by someone else meanwhile; the sweep needs its own")
                        self.stacks[mode] = target.stack_record(st)
                        self.measure_mode(mode, st, session.resources_log)
                    if self.interrupted:
                        break
            except KeyboardInterrupt:
                self.interrupted = True  # stopped on purpose: what was measured is the record
            session.interrupted = self.interrupted
        self.interrupted = self.interrupted or session.record.interrupted
        self.record = session.record
        return self.record

    def header(self) -> dict:
        o = self.options
        return {"kind": KIND, "study": o.study, "arch": o.arch, "runtime": o.runtime,
                "settings": o.recorded(), "stack": None}

    def summary(self) -> dict:
        """The whole record as it stands (the session writes the same: its header, then the measurements)."""
        return {**self.header(), "run_id": self.run_dir.name, "interrupted": self.interrupted,
                "provenance": provenance.record(), **self.measurements()}

    def measurements(self) -> dict:
        return {
            **(self.work.record() if self.work is not None else {}),
            "stacks": self.stacks,
            "client": self.options.client,
            "model_curve": None if self.curve is None else {
                "run_id": self.curve.run_id, "intra_op_threads": self.settings.intra_op_threads,
                "inter_op_threads": self.settings.inter_op_threads, "points": self.points},
            "limit": self.limit,
            "modes": self.modes,
            "sampler_cpu_seconds": results.rounded(self.sampler_cpu, 3),
        }

    def write_csvs(self) -> None:
        with results.CsvLog(self.run_dir / "levels.csv", LEVEL_COLUMNS) as levels, \
                results.CsvLog(self.run_dir / "windows.csv", WINDOW_COLUMNS) as windows:
            for mode, m in self.modes.items():
                sat = (m.get("saturation") or {}).get("level")
                for i, lv in enumerate(m["levels"]):
                    levels.row([csv_value(v) for v in level_row(mode, lv, i == sat)])
                    for row in window_rows(mode, lv):
                        windows.row([csv_value(v) for v in row])

    # ---------------------------------------------------------- one stack
    def measure_mode(self, mode: str, st, res_log: results.CsvLog) -> None:
        o = self.options
        m = self.modes[mode] = {"serving": o.serving(mode), "levels": [], "saturation": None, "resources": None}
        label = self.work.label if self.work is not None else ""  # every level's numbers below are on these inputs
        self.log(f"{o.arch}, batching {mode} ({', '.join(f'{k}={v}' for k, v in o.serving(mode).items())})"
                 + (f"  [{label}]" if label else ""))
        self.warm_up(st)
        sources = lambda: {**st.processes(), CLIENT: resources.client_process()}  # noqa: E731
        # One sampler per stack (the session's takes no PSS rate), its rows in the session's resources.csv.
        sampler = resources.Sampler(sources, _ModeLog(res_log, mode), hz=o.sample_hz, origin=self.origin,
                                    pss_hz=min(PSS_HZ, o.sample_hz), parts=runtimes.part_classifiers(st))
        try:
            with sampler:
                shapes.drive(stepped_shape(o), lambda level: self.level(mode, st, level))
        finally:
            m["saturation"] = saturation(m["levels"])
            self.sampler_cpu += sampler.cpu_seconds
            # CPU %, RSS and PSS over the whole stack's life; per-image figures are the levels' own.
            m["resources"] = sampler.summary(0)

    def warm_up(self, st) -> None:
        if not self.options.warmup:
            return
        c = client.Client(st.url)
        try:
            statuses = client.warm_up(c, self.requests, self.options.warmup, 8)
        finally:
            c.close()
        if set(statuses) != {200}:
            self.log(f"  warm-up answers by status: {dict(statuses)}")

    def level(self, mode: str, st, level: shapes.Level) -> dict:
        """Measure one level into the mode's record; its record ("interrupted": the sweep stops)."""
        lv = level.spec()
        self.modes[mode]["levels"].append(lv)
        try:
            if self.options.client == "perf_analyzer":
                self._level_perf_analyzer(st, lv, batching_off=(mode == "off"))
            else:
                self._level_ours(st, lv, batching_off=(mode == "off"), level=level)
        except KeyboardInterrupt:
            lv["interrupted"] = True
            self.interrupted = True
        self.log("  " + describe(lv))
        return lv

    # ---------------------------------------------------------- our client
    def _level_ours(self, st, lv: dict, batching_off: bool, level: shapes.Level) -> None:
        o = self.options
        rule = level.rule
        span = level.longest_s + SPAN_MARGIN_S
        got: list[client.Result] = []  # list.append is atomic: the workers' results, as they complete
        stop = threading.Event()
        load = client.Client(st.url)
        if level.kind == shapes.CLOSED:
            requests = client.Cycled(self.requests, math.ceil(span * self.MAX_CLOSED_RATE))
            work = lambda: load.closed_loop(requests, level.concurrency, got.append, stop)  # noqa: E731
        else:
            n = math.ceil(span * level.rate) + 1
            offsets = client.arrival_offsets(n, level.rate, level.arrivals, o.seed)
            requests = client.Cycled(self.requests, n)
            begin = time.perf_counter() + 0.01  # the pool's threads are up before the first request is due
            work = lambda: load.open_loop(requests, offsets, level.connections, got.append, stop, begin)  # noqa: E731
        sources = lambda: {**st.processes(), CLIENT: resources.client_process()}  # noqa: E731
        thread = threading.Thread(target=work, name="sweep-load", daemon=True)
        log = WindowLog()
        snaps: list[Snapshot] = []
        windows: list[dict] = []

        def mark() -> None:
            trees = sources()
            log.edge(time.perf_counter())
            snaps.append(cpu_snapshot(trees))

        try:
            start = time.perf_counter()
            thread.start()
            _sleep_until(start + level.warmup_s)
            mark()
            while True:
                _sleep_until(log.edges[-1] + level.window_s)
                mark()
                time.sleep(GRACE_S)
                log.take(got)
                windows += log.stats(self.origin, first=len(windows))
                if rule.settled(windows) or not thread.is_alive():
                    break
        finally:
            stop.set()
            with interrupts.shielded():
                thread.join(client.JOIN_GRACE_S)
                load.close()
                # Final figures from every answer in (stragglers included): the record is self-consistent.
                log.take(got)
                windows = log.stats(self.origin)
                chosen, stable = rule.chosen(windows)
                lv.update({"windows": windows, "stable": stable, "chosen": chosen})
                if chosen:
                    first, last = chosen[0], chosen[-1] + 1
                    cpu_s = cpu_between(snaps[first], snaps[last])
                    lv.update(level_figures(windows, log.per_window, chosen, cpu_s,
                                            log.edges[last] - log.edges[first], batching_off, self.points,
                                            self.limit_images_per_s))

    # ---------------------------------------------------------- perf_analyzer
    def _level_perf_analyzer(self, st, lv: dict, batching_off: bool) -> None:
        pa = perf_analyzer_module()
        o = self.options
        load = {"concurrency": lv["concurrency"]} if lv["mode"] == "closed" else {"rate": lv["rate"]}
        # Its stability rule set to ours (p50 instead of its default, the mean); real images, not random bytes.
        wanted = {"measurement_interval_ms": int(o.window_s * 1000), "stability_pct": o.tolerance * 100,
                  "max_trials": o.windows_limit, "percentile": 50, "distribution": o.arrivals, "batch": o.batch,
                  "images": self.images}
        accepted = inspect.signature(pa.run).parameters
        extra = {k: v for k, v in wanted.items() if k in accepted}
        trees = st.processes()
        t0, snap0 = time.perf_counter(), cpu_snapshot(trees)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = pa.run(st.url, **load, **extra)
        trees = st.processes()
        t1, snap1 = time.perf_counter(), cpu_snapshot(trees)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = t1 - t0
        cpu_s = cpu_between(snap0, snap1)
        thr = out.get("throughput")
        # The server's CPU over the whole perf_analyzer run (its start-up and every trial): steady load assumed.
        images = thr * seconds if thr else 0.0
        budget = cpu_budget(cpu_s, images, seconds)
        client_ms = out.get("client_cpu_ms_per_request")
        if client_ms is None and images:  # reaped by now: its CPU is this process's children's
            client_ms = ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) * 1000.0 / images * o.batch
        client_per_image = results.rounded(client_ms / o.batch, 4) if client_ms is not None else None
        budget["cpu_ms_per_image"][CLIENT] = client_per_image
        budget["client_cpu_ms_per_image"] = client_per_image
        lv.update({
            "windows": [], "stable": bool(out.get("stable")), "chosen": [],
            "throughput_images_per_s": results.rounded(thr, 2) if thr else None,
            "p50_ms": out.get("p50_ms"), "p90_ms": out.get("p90_ms"), "p99_ms": out.get("p99_ms"),
            "mean_ms": out.get("avg_ms"), "requests": out.get("requests"), "images": int(round(images)),
            "errors": None,
            "errors_by_status": {}, "accuracy": None,
            "batch_size": {"mean": None, "median": None, "max": None, "seen": None},  # perf_analyzer does not say
            "queue_ms_p50": None, **budget, "model_cpu_ms_per_image": None,
            "perf_analyzer": {**{k: v for k, v in out.items() if k != "raw"},
                              "trials": len((out.get("raw") or {}).get("passes") or [])},
        })
        lv.update(derived(lv, self.limit_images_per_s))


def perf_analyzer_module():
    """bench.perf_analyzer, or a SweepError that says what is missing (its venv included)."""
    try:
        perf_analyzer = importlib.import_module("bench.perf_analyzer")
    except ImportError as exc:
        raise SweepError(f"--client perf_analyzer needs bench/perf_analyzer.py ({exc}); "
                         f"use --client servebench") from None
    why = perf_analyzer.missing() if callable(getattr(perf_analyzer, "missing", None)) else None
    if why:
        raise SweepError(f"--client perf_analyzer: {why}")
    return perf_analyzer


def describe(lv: dict) -> str:
    what = f"concurrency {lv['concurrency']}" if lv["mode"] == "closed" else f"rate {lv['rate']:g}/s"
    if lv.get("interrupted"):
        state = "INTERRUPTED"
    elif "perf_analyzer" in lv:
        state = f"{'stable' if lv.get('stable') else 'UNSTABLE'} by perf_analyzer's rule"
    else:
        state = f"{'stable' if lv.get('stable') else 'UNSTABLE'} after {len(lv.get('windows') or [])} windows"
    bs = (lv.get("batch_size") or {}).get("mean")
    eff = lv.get("server_efficiency")
    served = lv.get("served_fraction")
    return (f"{what:<18} {fmt(lv.get('throughput_images_per_s'))} img/s  p50 {fmt(lv.get('p50_ms'), 2)}  "
            f"p99 {fmt(lv.get('p99_ms'), 2)} ms  batch {fmt(bs, 2)}  server CPU "
            f"{fmt(lv.get('server_cpu_ms_per_image'), 2)} ms/img (client {fmt(lv.get('client_cpu_ms_per_image'), 2)})"
            f"  efficiency {fmt(eff * 100 if eff else None, 0, '%')}  of limit "
            f"{fmt(served * 100 if served else None, 0, '%')}  errors {lv.get('errors')}  [{state}]")


# ------------------------------------------------------------------ main
def model_curve(options: opts.SweepOptions, settings: Settings, log: Callable = print) -> RunRecord | None:
    """The curve the sweep compares with: the newest matching one, or a fresh one (none: no limit)."""
    if options.model_curve == "none":
        return None
    if options.model_curve == "latest":
        found = reference.latest_curve(options.out, settings)
        if found is not None:
            log(f"model curve: {found.run_id} (the newest with intra/inter-op threads "
                f"{settings.intra_op_threads}/{settings.inter_op_threads})")
            return found
    curve_options = opts.ModelCurveOptions(out=options.out, data_dir=options.data_dir, progress=options.progress,
                                           study=options.study, seconds=options.curve_seconds)
    return reference.measure_curve(curve_options, settings, log=log)


def prepare(options: opts.SweepOptions, settings: Settings,
            log: Callable = print) -> tuple[workload.Workload, list[client.Request], np.ndarray | None]:
    """The model's first N input rows as request bodies, and an image model's images (perf_analyzer's input)."""
    work = workload.load(settings, options.n, codec=options.codec, data_dir=options.data_dir)
    log(work.describe())
    images = work.inputs.arrays[work.card.inputs[0].name] if work.card.is_image else None
    return work, workload.requests(work, options.batch, options.codec), images


def sweep(options: opts.SweepOptions, settings: Settings, log: Callable = print) -> RunRecord:
    """Sweep ``options.arch``: the model curve first (no stack up), then a stack per batching mode."""
    other = target.running(options.runtime, options.run_dir)
    if other is not None:
        raise runtimes.StackError(
            f"a {other.arch} stack is running; the sweep brings up its own (one per batching mode, since a "
            f"running stack cannot be reconfigured): `make down RUNTIME={options.runtime}` first")
    if options.client == "perf_analyzer":
        perf_analyzer_module()  # before anything is measured
    unmet = target.runnable_arches(options.runtime, [options.arch])[1]
    if unmet:
        raise runtimes.StackError(f"{options.arch} cannot run here: {unmet[options.arch]}")
    work, requests, images = prepare(options, settings, log)  # a bad MODEL or DATA fails before anything runs
    if options.client == "perf_analyzer" and work.card.name != perf_analyzer_module().MODEL:
        raise SweepError(f"--client perf_analyzer sends CIFAR-10 images to {perf_analyzer_module().MODEL}; "
                         f"for {work.card.name} use --client servebench")
    curve = model_curve(options, settings, log)
    record = Sweep(options, requests, curve, settings, log, images, work).run()
    log(f"wrote {options.out / record.run_id}/ (summary.json, levels.csv, windows.csv, resources.csv)")
    return record


def main(argv=None) -> int:
    options = opts.parse(opts.SweepOptions, argv, __doc__)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    failures: tuple[type[Exception], ...] = (SweepError, reference.MeasurementFailed)
    try:
        failures += (importlib.import_module("bench.perf_analyzer").PerfAnalyzerError,)
    except (ImportError, AttributeError):
        pass
    record, rc = target.command(lambda: sweep(options, from_environment()), failures, prefix=f"{options.arch}: ")
    if rc is not None:
        return rc
    return 130 if record.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
