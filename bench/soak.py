"""`make soak`: hold a stack at a steady share of its capacity for a long time, and watch its memory.

    python -m bench.soak --arch ARCH [--runtime native|docker] [--duration 10m] [--load 0.70 | --rate R]
        [--probe 15s] [--probe-concurrency 8] [--codec json] [--batch 1] [--n 10000] [--out results/]

The steps are a :class:`bench.shapes.SoakShape`:

1. Capacity: ``--warmup`` requests are sent, then, unless ``--rate``
   (requests/s) is given, a closed loop with ``--probe-concurrency``
   connections saturates the stack for ``--probe``; capacity = images
   answered per second.
2. Soak: an open loop with constant arrivals at ``--load`` x capacity for
   ``--duration`` (30s, 10m, 1h, 1h30m or plain seconds), cycling through the first ``--n`` input rows
   (:mod:`bench.workload`: the model's, CIFAR-10 images by default); latency is from the scheduled send.
3. Memory: every service's RSS and PSS (and CPU) is sampled ``--sample-hz``
   times a second. Growth per service = RSS at the end (median of the last
   ``--window`` seconds) against RSS at the 1-minute mark (median of the
   samples within ``--window``/2 of it); the goal is under 5%. A run that ends
   before the end window clears the 1-minute window reports growth as not
   measurable, with the reason.

Writes ``<out>/<run-id>/`` (``soak-<arch>``): ``requests.csv`` and ``resources.csv`` (the columns of
``bench.run``; ``repeat`` is the pass over the inputs, times are from the soak's start), ``summary.json``
(kind ``soak``, a run record: settings, model and data, capacity, errors by status, latency overall and per
minute, throughput, memory growth per service with its verdict) and ``soak.png``. Ctrl-C or SIGTERM stops sending: the rows are kept, the summary
says ``"interrupted": true`` and a stack started here is brought down.
"""
from __future__ import annotations

import csv
import math
import sys
import threading
import time
from array import array
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import client, records, resources, results, shapes, target, workload
from bench import options as opts
from bench.formats import fmt, format_duration, parse_duration
from bench.records import RunRecord
from bench.session import RunSession, warm_up
from servebench.settings import Settings, from_environment

_DEFAULTS = opts.SoakOptions.model_fields
GOAL_PCT = _DEFAULTS["goal"].default
BASELINE_AT_S = 60.0  # growth counts from here: the first minute is start-up (caches, pools, arenas)
DEFAULT_WINDOW_S = parse_duration(_DEFAULTS["window"].default)
CLIENT = "client"  # the harness's own process: reported, never part of the verdict
PLOT_FILE = "soak.png"


class CapacityError(RuntimeError):
    """The capacity measurement got no good answer, so there is no rate to soak at."""


# ------------------------------------------------------------------ pure helpers
def schedule(prepared: list, duration_s: float, rate: float) -> list:
    """The prepared requests repeated in order, enough for ``duration_s`` at ``rate`` requests/s."""
    n = max(1, math.ceil(duration_s * rate - 1e-9))
    return [prepared[i % len(prepared)] for i in range(n)]


def memory_growth(samples, *, baseline_at_s: float = BASELINE_AT_S, window_s: float = DEFAULT_WINDOW_S,
                  goal_pct: float = GOAL_PCT, end_s: float | None = None) -> dict:
    """Growth from the ``baseline_at_s`` mark to the end, from ``(t_s, mb)`` samples.

    Baseline: median of the samples within ``window_s``/2 of the mark; end:
    median of the last ``window_s`` seconds before ``end_s`` (the run's end;
    default: the last sample). The end window must start after the baseline
    window ends, else growth is not measurable (``reason`` says why).
    Slope: least squares over the samples from the baseline window on, MB/min.
    """
    out = {"measurable": False, "reason": None, "baseline_at_s": baseline_at_s, "window_s": window_s,
           "baseline_mb": None, "baseline_samples": 0, "end_mb": None, "end_at_s": None, "end_samples": 0,
           "growth_mb": None, "growth_pct": None, "slope_mb_per_min": None, "max_mb": None,
           "goal_pct": goal_pct, "verdict": None}
    pts = sorted((float(t), float(v)) for t, v in samples if v is not None and math.isfinite(float(v)))
    if not pts:
        out["reason"] = "no samples"
        return out
    t = np.array([p[0] for p in pts])
    v = np.array([p[1] for p in pts])
    t_end = float(t[-1]) if end_s is None else float(end_s)
    out["end_at_s"], out["max_mb"] = results.rounded(t_end, 1), results.rounded(v.max(), 1)
    half = window_s / 2.0
    need = baseline_at_s + half + window_s
    if t_end < need:
        out["reason"] = (f"the run lasted {t_end:.0f} s: growth counts from the {baseline_at_s:g} s mark "
                         f"(window {window_s:g} s), so it needs at least {need:.0f} s")
        return out
    base = v[np.abs(t - baseline_at_s) <= half]
    end = v[t >= t_end - window_s]
    out["baseline_samples"], out["end_samples"] = int(base.size), int(end.size)
    if base.size == 0:
        out["reason"] = f"no samples within {half:g} s of the {baseline_at_s:g} s mark"
        return out
    if end.size == 0:
        out["reason"] = f"no samples in the last {window_s:g} s: the service was gone (last seen at {t[-1]:.0f} s)"
        return out
    base_mb, end_mb = float(np.median(base)), float(np.median(end))
    out["baseline_mb"], out["end_mb"] = results.rounded(base_mb, 1), results.rounded(end_mb, 1)
    if base_mb <= 0:
        out["reason"] = f"no memory at the {baseline_at_s:g} s mark (the service was not running)"
        return out
    growth_pct = 100.0 * (end_mb - base_mb) / base_mb
    tail = t >= baseline_at_s - half
    if np.unique(t[tail]).size >= 2:
        out["slope_mb_per_min"] = results.rounded(np.polyfit(t[tail], v[tail], 1)[0] * 60.0, 3)
    out.update(measurable=True, growth_mb=results.rounded(end_mb - base_mb, 1),
               growth_pct=results.rounded(growth_pct, 2),
               verdict="PASS" if growth_pct < goal_pct else "FAIL")
    return out


def overall_verdict(growth_by_service: dict[str, dict]) -> str:
    """FAIL if any service grew past the goal, PASS if every one was measured and stayed under it."""
    verdicts = [g.get("verdict") for name, g in growth_by_service.items() if name != CLIENT]
    if "FAIL" in verdicts:
        return "FAIL"
    if verdicts and all(v == "PASS" for v in verdicts):
        return "PASS"
    return "NOT MEASURABLE"


def read_resources(path: Path) -> dict[str, list[dict]]:
    """resources.csv -> per service, its samples while it had processes (a gone service is not 0 MB)."""
    out: dict[str, list[dict]] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("n_procs") or int(row["n_procs"]) < 1:
                out.setdefault(row["service"], [])
                continue
            out.setdefault(row["service"], []).append({
                "t": float(row["t"]), "rss_mb": float(row["rss_mb"]),
                "pss_mb": float(row["pss_mb"]) if row.get("pss_mb") else None,
                "cpu_percent": float(row["cpu_percent"]) if row.get("cpu_percent") else None,
            })
    return out


def memory_report(samples: dict[str, list[dict]], *, baseline_at_s: float = BASELINE_AT_S,
                  window_s: float = DEFAULT_WINDOW_S, goal_pct: float = GOAL_PCT) -> dict:
    """Growth of RSS (the verdict) and PSS per service, and the verdict over the stack's services."""
    # One end for all: a service that vanished early has no samples in the end window.
    end_s = max((r["t"] for rows in samples.values() for r in rows), default=None)
    kw = {"baseline_at_s": baseline_at_s, "window_s": window_s, "goal_pct": goal_pct, "end_s": end_s}
    services = {}
    for name, rows in samples.items():
        services[name] = {
            "rss": memory_growth([(r["t"], r["rss_mb"]) for r in rows], **kw),
            "pss": memory_growth([(r["t"], r["pss_mb"]) for r in rows], **kw),
        }
    return {"metric": "rss", "goal_pct": goal_pct, "baseline_at_s": baseline_at_s, "window_s": window_s,
            "verdict": overall_verdict({n: s["rss"] for n, s in services.items()}),
            "verdict_excludes": CLIENT, "services": services}


def cpu_per_bin(samples: dict[str, list[dict]], bin_s: float) -> dict[str, list]:
    """Mean CPU % per service in each bin of ``bin_s`` seconds."""
    out = {}
    for name, rows in samples.items():
        bins: dict[int, list[float]] = {}
        for r in rows:
            if r["cpu_percent"] is not None and r["t"] >= 0:
                bins.setdefault(int(r["t"] // bin_s), []).append(r["cpu_percent"])
        n = max(bins, default=-1) + 1
        out[name] = [results.rounded(sum(bins[b]) / len(bins[b]), 1) if b in bins else None for b in range(n)]
    return out


# ------------------------------------------------------------------ recording
class _Bin:
    __slots__ = ("latency", "lag", "count", "ok", "images_ok", "errors")

    def __init__(self):
        self.latency, self.lag = array("d"), array("d")  # 8 bytes a request: an hour-long soak stays small
        self.count = self.ok = self.images_ok = 0
        self.errors: Counter = Counter()


class Bins:
    """The soak's tally (see :class:`bench.session.Recorder`): compact per-bin aggregates, no Result kept."""

    def __init__(self, origin: float, bin_s: float, say=print):
        self.origin, self.bin_s, self.say = origin, bin_s, say
        self.bins: dict[int, _Bin] = {}
        self.ok = self.correct = self.checked = self.images = self.invalid = 0  # checked: rows with a label
        self._announced = 0

    def __call__(self, repeat: int, r: client.Result) -> None:
        b = int(max(r.scheduled - self.origin, 0.0) // self.bin_s)
        self.images += r.request.images
        agg = self.bins.get(b) or self.bins.setdefault(b, _Bin())
        agg.count += 1
        agg.lag.append((r.sent - r.scheduled) * 1000.0)
        if r.ok:
            self.ok += 1
            if r.correct is not None:  # None: not checked (no labels, or not a classifier)
                self.correct, self.checked = self.correct + r.correct, self.checked + r.request.images
            agg.ok += 1
            agg.images_ok += r.request.images
            agg.latency.append(r.latency_ms)
        else:
            agg.errors[str(r.status)] += 1
            if r.status == 200:
                self.invalid += 1
        while b > self._announced:  # the first answer of a bin closes the one before (a progress line only)
            self._announce(self._announced)
            self._announced += 1

    def _announce(self, b: int) -> None:
        agg = self.bins.get(b)
        if agg is None:
            return
        lat = results.latency_stats(agg.latency)
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(agg.errors.items())) or "none"
        self.say(f"  [{format_duration(b * self.bin_s)}-{format_duration((b + 1) * self.bin_s)}] "
                 f"{agg.count} requests, p50 {lat['p50']} ms, p99 {lat['p99']} ms, errors {errors}")

    def close(self) -> None:
        for b in range(self._announced, max(self.bins, default=-1) + 1):
            self._announce(b)
        self._announced = max(self.bins, default=-1) + 1


SOAK_BATCH = 256  # answers written at a time: bins are announced within a second of closing, memory stays flat


def recording(origin: float, rate: float, passes_of: int, bin_s: float, say=print) -> dict:
    """A soak's options of :class:`bench.session.Recorder`: the pass over the images from each answer's
    scheduled position (constant arrivals: request i is due at i / rate), aggregates per bin (:class:`Bins`)."""
    return {"keep": False, "tally": Bins(origin, bin_s, say), "bar_counts": "requests", "batch": SOAK_BATCH,
            "repeat_of": lambda r: int(round((r.scheduled - origin) * rate)) // passes_of}


# ------------------------------------------------------------------ the run
class Soak:
    def __init__(self, args: opts.SoakOptions, st, prepared: list[client.Request], work: workload.Workload | None = None):
        self.args, self.st, self.prepared, self.work = args, st, prepared, work
        self.client = client.Client(st.url)
        self.capacity: dict = {"measured": False}
        self.rate: float | None = args.rate
        self.planned = 0
        self.start = self.end = None
        self.run_dir: Path | None = None
        self.stack: dict = {}
        self.session: RunSession | None = None
        self.error: str | None = None

    def say(self, text: str) -> None:
        if not self.args.progress:
            print(text, flush=True)
        else:
            tqdm.write(text)  # above the progress bar, not through it

    # ---------------------------------------------------------- phases
    def _closed(self, requests: list[client.Request], concurrency: int, seconds: float):
        """A closed loop over ``requests``, stopped after ``seconds``; (start, stop time, results)."""
        got: list[client.Result] = []
        stop = threading.Event()
        timer = threading.Timer(seconds, stop.set)
        timer.daemon = True
        start = time.perf_counter()
        timer.start()
        try:
            self.client.closed_loop(requests, concurrency, got.append, stop)
        finally:
            timer.cancel()
        stopped = time.perf_counter() if not stop.is_set() else min(time.perf_counter(), start + seconds)
        return start, stopped, got

    def shape(self) -> shapes.SoakShape:
        """Warm-up, the capacity probe unless ``--rate`` is given, then constant arrivals at ``--load`` x it."""
        a = self.args
        return shapes.SoakShape(seconds=a.duration_s, load=a.load, batch=a.batch, rate=a.rate,
                                probe_concurrency=a.probe_concurrency, probe_s=a.probe_s, warmup=a.warmup,
                                connections=a.connections)

    def run_level(self, level: shapes.Level) -> dict:
        """The shape's levels: the warm-up (not counted), the capacity probe, the soak."""
        if not level.measured:
            warm_up(self.client, self.prepared, level.count, level.concurrency, warn=self.say)
            return {}
        if level.kind == shapes.CLOSED:
            return self.measure_capacity(level)
        self.soak(level)
        return {}

    def measure_capacity(self, level: shapes.Level) -> dict:
        """The probe's figures in ``capacity``; its outcome: the capacity in images/s, unrounded."""
        self.say(f"capacity: closed loop, {level.concurrency} connections, {format_duration(level.seconds)} ...")
        # Enough requests that the timer, not the list, ends the probe (an upper bound of 2,000 req/s).
        requests = schedule(self.prepared, level.seconds, 2000.0)
        start, stopped, got = self._closed(requests, level.concurrency, level.seconds)
        ok = [r for r in got if r.ok and r.end <= stopped]
        wall = stopped - start
        images = sum(r.request.images for r in ok)
        self.capacity = {
            "measured": True, "concurrency": level.concurrency, "seconds": results.rounded(wall, 3),
            "requests": len(got), "ok": len(ok),
            "errors_by_status": dict(Counter(str(r.status) for r in got if not r.ok)),
            "images_per_s": results.rounded(images / wall, 2) if wall > 0 else None,
            "requests_per_s": results.rounded(len(ok) / wall, 2) if wall > 0 else None,
            "latency_ms": results.latency_stats(r.latency_ms for r in ok),
        }
        if not images:
            raise CapacityError(f"the capacity measurement got no good answer: {self.capacity['errors_by_status']}")
        return {"images_per_s": images / wall}

    def soak(self, level: shapes.Level) -> None:
        a, session = self.args, self.session
        self.rate = level.rate
        if self.capacity["measured"]:
            self.say(f"capacity {self.capacity['images_per_s']} images/s -> soak at {a.load:.0%}: "
                     f"{self.rate:.1f} requests/s")
        requests = schedule(self.prepared, level.seconds, self.rate)
        offsets = client.arrival_offsets(len(requests), self.rate, level.arrivals, 0)
        self.planned = len(requests)
        bar = tqdm(total=len(requests), unit="req", desc=f"soak {self.st.arch}", disable=not a.progress,
                   dynamic_ncols=True, mininterval=1.0)
        self.say(f"soak: {len(requests)} requests at {self.rate:.1f}/s for {format_duration(level.seconds)}, "
                 f"{level.connections} connections")
        self.start = time.perf_counter() + 0.5  # the sampler's baseline and the pool's threads come first
        rec = session.recorder(self.start, bar, **recording(self.start, self.rate, len(self.prepared), a.bin_s,
                                                            self.say))
        sampler = session.sample(lambda: {**self.st.processes(), CLIENT: resources.client_process()},
                                 hz=a.sample_hz, origin=self.start)
        try:
            self.client.open_loop(requests, offsets, level.connections, rec, session.stop, self.start)
        finally:
            sampler.stop()
            self.end = time.perf_counter()
            bar.close()

    def run(self, out: Path) -> RunRecord:
        """Warm-up, capacity and the soak (:meth:`shape`) in a run session under ``out``; the record (table
        printed)."""
        self.stack = target.stack_record(self.st)
        self.session = RunSession(header=self._header, summary=self.summary, after=self._plot, table=print_table,
                                  label=f"soak-{self.st.arch}", root=out, requests_csv=True, resources_csv=True)
        with self.session:
            self.run_dir = self.session.run_dir
            self.session.on_close(self.client.close)
            try:
                shapes.drive(self.shape(), self.run_level)
            except KeyboardInterrupt:
                self.say("\ninterrupted: writing what was measured")
                raise
            except CapacityError as exc:
                self.error = str(exc)
        return self.session.record

    def _plot(self, record: RunRecord) -> None:
        try:
            plot(record.doc(), read_resources(self.run_dir / "resources.csv"), self.run_dir / PLOT_FILE)
        except Exception as exc:  # a plot is never worth losing the run over
            self.say(f"  no plot: {type(exc).__name__}: {exc}")

    # ---------------------------------------------------------- summary
    def settings(self) -> dict:
        a = self.args
        return {
            "duration": a.duration, "duration_s": a.duration_s, "load": a.load,
            "rate": results.rounded(self.rate, 3), "rate_source": "given" if a.rate else "measured",
            "capacity_images_per_s": self.capacity.get("images_per_s"),
            "mode": "open", "arrivals": "constant", "open_loop_connections": a.connections,
            "n": a.n, "batch": a.batch, "codec": a.codec, "warmup": a.warmup,
            "probe": a.probe, "probe_s": a.probe_s, "probe_concurrency": a.probe_concurrency,
            "sample_hz": a.sample_hz, "window_s": a.window_s, "baseline_at_s": BASELINE_AT_S,
            "goal_pct": a.goal, "bin_s": a.bin_s,
        }

    def _header(self) -> dict:
        return {"kind": "soak", "study": self.args.study, "arch": self.st.arch, "runtime": self.args.runtime,
                "settings": self.settings(), "capacity": self.capacity, "stack": self.stack}

    def summary(self, interrupted: bool) -> dict:
        """The measurements (the session adds the header)."""
        doc = self._measurements()
        if self.error:
            doc["error"] = self.error
        return doc

    def _measurements(self) -> dict:
        rec = self.session.rec
        if rec is None:  # stopped before the soak began
            return {"requests": {"planned": 0, "count": 0, "ok": 0, "errors_by_status": {}, "images": 0},
                    "memory": {"verdict": "NOT MEASURABLE", "services": {}}}
        tally, sampler = rec.tally, self.session.sampler
        if rec.count != self.session.rows_written:
            self.say(f"  warning: {rec.count} answers counted, {self.session.rows_written} rows written")
        span = max((self.end or self.start) - self.start, 0.0)
        errors: Counter = Counter()
        for agg in tally.bins.values():
            errors.update(agg.errors)
        latency = np.concatenate([np.asarray(agg.latency, dtype=float) for agg in tally.bins.values()] or [[]])
        lag = np.concatenate([np.asarray(agg.lag, dtype=float) for agg in tally.bins.values()] or [[]])
        images_ok = sum(agg.images_ok for agg in tally.bins.values())
        samples = read_resources(self.run_dir / "resources.csv")
        cpu = cpu_per_bin(samples, self.args.bin_s)
        return {
            **(self.work.record() if self.work else {"data": {"source": "CIFAR-10 test set", "images": self.args.n}}),
            "requests": {"planned": self.planned, "count": rec.count, "ok": tally.ok,
                         "errors_by_status": dict(sorted(errors.items())), "invalid_answers": tally.invalid,
                         "images": tally.images, "rows_written": self.session.rows_written,
                         "late_answers_dropped": rec.late},
            "accuracy": results.rounded(tally.correct / tally.checked, 6) if tally.checked else None,
            "latency_ms": results.latency_stats(latency),
            "schedule_lag_ms": {k: v for k, v in results.latency_stats(lag).items() if k in ("p50", "p99", "max")},
            "throughput_images_per_s": results.rounded(images_ok / span, 2) if span > 0 else None,
            "requests_per_s": results.rounded(rec.count / span, 2) if span > 0 else None,
            "wall_s": results.rounded(span, 3),
            "per_bin": [self._bin(b, tally.bins.get(b), span, cpu) for b in range(max(tally.bins, default=-1) + 1)],
            "memory": memory_report(samples, window_s=self.args.window_s, goal_pct=self.args.goal),
            "resources": sampler.summary(tally.images) if sampler else {},
            "sampler_cpu_seconds": results.rounded(sampler.cpu_seconds, 3) if sampler else None,
        }

    def _bin(self, b: int, agg: _Bin | None, span: float, cpu: dict) -> dict:
        bin_s = self.args.bin_s
        length = max(min(bin_s, span - b * bin_s), 1e-9)
        agg = agg or _Bin()
        return {"bin": b, "start_s": b * bin_s, "seconds": results.rounded(length, 3), "requests": agg.count,
                "ok": agg.ok, "errors_by_status": dict(sorted(agg.errors.items())),
                "images_per_s": results.rounded(agg.images_ok / length, 2),
                "latency_ms": results.latency_stats(agg.latency),
                "schedule_lag_p99_ms": results.latency_stats(agg.lag)["p99"],
                "cpu_percent": {name: (v[b] if b < len(v) else None) for name, v in cpu.items()}}


# ------------------------------------------------------------------ output
def plot(doc: dict, samples: dict[str, list[dict]], path: Path) -> Path:
    """RSS per service (MB, and % of its 1-minute value against the goal) and latency per bin."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def plain_log(ax) -> None:  # 1, 2, 5, 10, 20 ... rather than 2x10^1
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())

    mem = doc.get("memory", {})
    growth = mem.get("services", {})
    goal, base_at = mem.get("goal_pct", GOAL_PCT), mem.get("baseline_at_s", BASELINE_AT_S)
    window = mem.get("window_s", DEFAULT_WINDOW_S)
    s = doc["settings"]
    fig, (ax_mb, ax_pct, ax_lat) = plt.subplots(3, 1, figsize=(11, 10), sharex=True,
                                                gridspec_kw={"height_ratios": [3, 3, 2.4]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    refs = set()
    for k, (name, rows) in enumerate(sorted(samples.items())):
        if not rows:
            continue
        color = colors[k % len(colors)]
        t = np.array([r["t"] for r in rows]) / 60.0
        v = np.array([r["rss_mb"] for r in rows])
        g = growth.get(name, {}).get("rss", {})
        if g.get("measurable"):
            tag = f"{g['growth_pct']:+.1f}% {g['verdict']}" + (" (harness)" if name == CLIENT else "")
            ref = g["baseline_mb"]
            refs.add(f"the {base_at:g} s median")
        else:
            tag, ref = "growth n/a", v[0]
            refs.add("the first sample")
        style = ":" if name == CLIENT else "-"
        ax_mb.plot(t, v, style, color=color, lw=1.4, label=f"{name}: {v[-1]:.0f} MB, {tag}")
        ax_pct.plot(t, 100.0 * (v - ref) / ref, style, color=color, lw=1.4, label=name)
    plain_log(ax_mb)  # nginx (MB) and model workers (GB) on one axis; growth is in the panel below
    ax_mb.set_ylabel("RSS (MB, log scale)")
    ax_mb.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    ax_mb.grid(True, which="both", alpha=0.3)
    ax_pct.axhline(goal, color="#c0392b", ls="--", lw=1)
    ax_pct.text(0.005, goal, f" goal +{goal:g}%", color="#c0392b", va="bottom", fontsize=9,
                transform=ax_pct.get_yaxis_transform())
    ax_pct.axhline(0, color="#555555", lw=0.8)
    t_end = max((r["t"] for rows in samples.values() for r in rows), default=0.0)
    if t_end >= base_at + window * 1.5:  # else growth was not measured: no windows to show
        for ax in (ax_mb, ax_pct):
            ax.axvspan((base_at - window / 2) / 60, (base_at + window / 2) / 60, color="#2c7fb8", alpha=0.12, lw=0)
            ax.axvspan((t_end - window) / 60, t_end / 60, color="#2c7fb8", alpha=0.12, lw=0)
    ax_pct.set_ylabel("RSS change (%)\nvs " + " or ".join(sorted(refs, reverse=True)))
    ax_pct.grid(True, alpha=0.3)
    lo, hi = ax_pct.get_ylim()
    ax_pct.set_ylim(min(lo, -2 * goal), max(hi, 2 * goal))
    ax_pct.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)

    bins = doc.get("per_bin", [])
    if bins:
        mid = np.array([(b["start_s"] + b["seconds"] / 2) / 60.0 for b in bins])
        for stat, marker in (("p50", "o"), ("p99", "s")):
            y = np.array([np.nan if b["latency_ms"][stat] is None else b["latency_ms"][stat] for b in bins])
            ax_lat.plot(mid, y, marker=marker, ms=4, lw=1.4, label=f"{stat} per {format_duration(s['bin_s'])}")
        errs = np.array([sum(b["errors_by_status"].values()) for b in bins])
        handles, labels = ax_lat.get_legend_handles_labels()
        anchor = 1.01
        if errs.any():
            ax_err = ax_lat.twinx()
            ax_err.bar([b["start_s"] / 60.0 for b in bins], errs, width=[b["seconds"] / 60.0 for b in bins],
                       align="edge", color="#c0392b", alpha=0.25, label="errors per bin")
            ax_err.set_ylabel("errors", color="#c0392b")
            ax_lat.set_zorder(ax_err.get_zorder() + 1)  # latency lines over the bars
            ax_lat.patch.set_visible(False)
            h, lab = ax_err.get_legend_handles_labels()
            handles, labels, anchor = handles + h, labels + lab, 1.09
        ax_lat.legend(handles, labels, loc="center left", bbox_to_anchor=(anchor, 0.5), fontsize=9, frameon=False)
    ax_lat.set_ylabel("latency (ms)\nfrom scheduled time")
    shown = [b["latency_ms"][k] for b in bins for k in ("p50", "p99") if b["latency_ms"][k]]
    if shown and max(shown) > 20 * min(shown):
        plain_log(ax_lat)  # a stall's p99 would flatten the p50 line
    else:
        ax_lat.set_ylim(bottom=0)
    ax_lat.grid(True, alpha=0.3)
    ax_lat.set_xlabel("minutes since the soak started (shaded: the growth windows)")
    ax_lat.set_xlim(left=0)
    cap = s.get("capacity_images_per_s")
    load = f"{s['load']:.0%} of {cap:g} images/s = " if cap else ""
    rate = f"{s['rate']:.1f}" if s.get("rate") else "-"
    title = (f"soak {doc['arch']} ({doc['runtime']}): {load}{rate} req/s for {s['duration']}, "
             f"batch {s['batch']} {s['codec']}  -  memory {mem.get('verdict', '-')}"
             + ("  (INTERRUPTED)" if doc.get("interrupted") else ""))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def print_table(doc: dict, run_dir: Path) -> None:
    s, req, lat = doc["settings"], doc["requests"], doc.get("latency_ms") or {}
    cap = s.get("capacity_images_per_s")
    how = f"{s['load']:.0%} of {cap} images/s measured" if cap else "rate given"
    print(f"\nsoak {doc['arch']} ({doc['runtime']}): {s['rate']} req/s ({how}), {s['duration']}, "
          f"batch {s['batch']}, {s['codec']}" + ("  INTERRUPTED" if doc["interrupted"] else "")
          + (f"  [{records.synthetic_label(doc)}]" if records.synthetic_label(doc) else ""))
    errors = ", ".join(f"{k}: {v}" for k, v in req["errors_by_status"].items()) or "none"
    acc = doc.get("accuracy")
    print(f"  {req['count']} of {req['planned']} requests answered, errors {errors}, "
          f"throughput {doc.get('throughput_images_per_s')} images/s, accuracy {'not checked' if acc is None else acc}")
    if lat.get("p50") is not None:
        print(f"  latency ms  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}")
        worst = max(doc["per_bin"], key=lambda b: b["latency_ms"]["p99"] or 0)
        print(f"  worst p99 per {format_duration(s['bin_s'])}: {worst['latency_ms']['p99']} ms "
              f"(from {format_duration(worst['start_s'])})")
    mem = doc["memory"]
    print(f"  memory growth, RSS at the end vs at {format_duration(mem.get('baseline_at_s', BASELINE_AT_S))} "
          f"(goal < {mem.get('goal_pct', GOAL_PCT):g}%): {mem['verdict']}")
    print(f"  {'service':<10}{'RSS@1m':>9}{'RSS@end':>9}{'growth':>9}{'MB/min':>9}{'PSS@end':>9}{'CPU %':>7}  verdict")
    res = doc.get("resources", {})
    reasons: list[str] = []
    for name, g in mem.get("services", {}).items():
        r, p = g["rss"], g["pss"]
        cpu = res.get(name, {}).get("cpu_percent_mean")
        verdict = r["verdict"]
        if verdict is None:
            reasons += [] if r["reason"] in reasons else [r["reason"]]
            verdict = f"n/a ({reasons.index(r['reason']) + 1})"
        if name == CLIENT:
            verdict += " (the harness: not in the verdict)"
        print(f"  {name:<10}{fmt(r['baseline_mb']):>9}{fmt(r['end_mb']):>9}{fmt(r['growth_pct'], 2, '%'):>9}"
              f"{fmt(r['slope_mb_per_min'], 2):>9}{fmt(p['end_mb']):>9}{fmt(cpu):>7}  {verdict}")
    for k, reason in enumerate(reasons, 1):
        print(f"  ({k}) {reason}")
    print(f"  results in {run_dir}")


# ------------------------------------------------------------------ main
def soak(options: opts.SoakOptions, settings: Settings) -> RunRecord:
    """A soak of the running stack of ``options.arch``, or of one started (and stopped) here."""
    work = workload.load(settings, options.n, codec=options.codec, data_dir=options.data_dir)
    print(work.describe())
    bar = (lambda it: tqdm(it, desc=f"encoding ({options.codec})", unit="req", leave=False, disable=not options.progress))
    prepared = workload.requests(work, options.batch, options.codec, progress=bar)
    with target.stack_for(options.arch, options.runtime, options.run_dir, settings) as (st, _started):
        record = Soak(options, st, prepared, work).run(options.out)
    return record


def main(argv=None) -> int:
    options = opts.parse(opts.SoakOptions, argv, __doc__)
    record, rc = target.command(lambda: soak(options, from_environment()), prefix=f"{options.arch}: ")
    if rc is not None:
        return rc
    if record.get("error"):
        print(f"error: {record.get('error')}", file=sys.stderr)
        return 1
    return 130 if record.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
