"""MLPerf LoadGen over the harness's connections: MLCommons' own scheduler and verdict.

LoadGen (``mlcommons-loadgen``, imported as ``mlperf_loadgen``) decides when
each query is issued and which sample it carries, times every query from its
scheduled issue to its completion, and judges the run (VALID or INVALID:
minimum duration and query count, early stopping, and in the Server scenario
the latency bound at its percentile). What it drives here is a system under
test (:class:`Sut`) that sends each query over the same keep-alive
connections and the same pre-encoded bodies as ``make bench``
(:class:`bench.client.Client`), and a query sample library over those
requests (one sample = one prepared request; nothing to load, they are in
memory).

- ``singlestream``: one query at a time, the next issued when the last
  completes (the study's sequential client, as LoadGen runs it);
- ``server``: queries at LoadGen's Poisson arrival times at a target QPS, handed
  to a pool of connections; a query waiting for a free connection is late,
  and LoadGen counts that lateness (latency from its scheduled time).

Only PerformanceOnly mode is used (accuracy is checked against the labels by
the harness, as for every run). LoadGen's own logs
(``mlperf_log_summary.txt``, ``mlperf_log_detail.txt``) go into the run
folder; :func:`read_logs` turns them into the record's ``loadgen`` field.
"""
from __future__ import annotations

import json
import queue
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import mlperf_loadgen as lg

from bench import client, results, shapes
from servebench import interrupts

SCENARIOS = ("singlestream", "server")
_SCENARIO = {"singlestream": lg.TestScenario.SingleStream, "server": lg.TestScenario.Server}
SUMMARY_FILE = "mlperf_log_summary.txt"
DETAIL_FILE = "mlperf_log_detail.txt"
PERCENTILES = ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90")


@dataclass(frozen=True)
class LoadgenSettings:
    """What LoadGen is told (its TestSettings), in the harness's units."""

    scenario: Literal["singlestream", "server"]
    target_qps: float | None = None  # server: LoadGen's Poisson arrival rate (queries/s)
    min_queries: int = 1024
    min_duration_s: float = 10.0
    max_duration_s: float = 600.0  # a bound on the run whatever happens (0: none)
    target_latency_ms: float = 50.0  # server: the latency bound at target_latency_percentile
    target_latency_percentile: float = 0.99
    expected_latency_ms: float = 5.0  # singlestream: LoadGen's estimate, for its query schedule
    connections: int = 16  # server: connections (requests in flight at most)

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}: {', '.join(SCENARIOS)}")
        if self.scenario == "server" and not self.target_qps:
            raise ValueError("the server scenario needs a target QPS")

    def test_settings(self, samples: int) -> lg.TestSettings:
        ts = lg.TestSettings()
        ts.scenario = _SCENARIO[self.scenario]
        ts.mode = lg.TestMode.PerformanceOnly
        ts.min_query_count = self.min_queries
        ts.min_duration_ms = int(self.min_duration_s * 1000)
        ts.max_duration_ms = int(self.max_duration_s * 1000)
        ts.performance_sample_count_override = samples
        if self.scenario == "server":
            ts.server_target_qps = float(self.target_qps)
            ts.server_target_latency_ns = int(self.target_latency_ms * 1e6)
            ts.server_target_latency_percentile = self.target_latency_percentile
        else:
            ts.single_stream_expected_latency_ns = int(self.expected_latency_ms * 1e6)
        return ts

    def recorded(self) -> dict:
        doc = asdict(self)
        if self.scenario == "singlestream":
            for key in ("target_qps", "target_latency_ms", "target_latency_percentile", "connections"):
                doc[key] = None
        else:
            doc["expected_latency_ms"] = None
        return doc

    @property
    def workers(self) -> int:
        return 1 if self.scenario == "singlestream" else self.connections


def level_settings(level: shapes.Level) -> LoadgenSettings:
    """What LoadGen is told for a :class:`bench.shapes.LoadGenScenario` level: the level's count and seconds
    are its minimum query count and duration, its concurrency the connections, its ``extra`` the rest."""
    return LoadgenSettings(scenario=level.kind, target_qps=level.rate, min_queries=level.count,
                           min_duration_s=level.seconds, connections=level.concurrency, **level.extra)


class Sut:
    """LoadGen's system under test: each query's request sent over one of ``workers`` connections.

    LoadGen calls :meth:`issue` from its own thread and must not be held up
    there, so queries go to a queue that the connection threads serve. After
    ``stop`` is set (Ctrl-C) nothing more is sent: queries are completed at
    once, unsent, so that LoadGen can reach the end of its schedule (it has no
    abort).
    """

    def __init__(self, cl: client.Client, requests: list[client.Request], workers: int,
                 on_result: Callable[[client.Result], None], stop: threading.Event):
        self.client = cl
        self.requests = requests
        self.on_result = on_result
        self.stop = stop
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.sent = 0
        self.unsent = 0
        self._count = threading.Lock()  # += from several connection threads
        self._threads = [threading.Thread(target=self._serve, args=(cl.connection(k),), name=f"loadgen-sut-{k}",
                                          daemon=True) for k in range(workers)]

    def issue(self, samples) -> None:
        now = time.perf_counter()
        for s in samples:
            self.queue.put((s.id, s.index, now))

    def flush(self) -> None:
        pass

    def _serve(self, conn: client.Connection) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            query_id, index, issued = item
            try:
                if self.stop.is_set():
                    with self._count:
                        self.unsent += 1
                else:
                    with self._count:
                        self.sent += 1
                    self.on_result(self.client.exchange(conn, self.requests[index], issued))
            finally:  # a query never completed would keep LoadGen waiting for ever
                # PerformanceOnly: LoadGen needs to know it is done, not what it answered.
                lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, 0, 0)])

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        for _ in self._threads:
            self.queue.put(None)
        for t in self._threads:
            t.join(timeout=client.JOIN_GRACE_S)


def run(cl: client.Client, requests: list[client.Request], settings: LoadgenSettings, log_dir: Path,
        on_result: Callable[[client.Result], None], stop: threading.Event,
        log: Callable[[str], None] = print) -> dict:
    """One LoadGen test over ``requests``; LoadGen's logs in ``log_dir``; its verdict and figures (:func:`read_logs`).

    LoadGen runs in a thread of its own, so that Ctrl-C reaches this one: then
    ``stop`` is set and the SUT stops sending; LoadGen has no abort, so its
    remaining queries are completed unsent (SingleStream: at once; Server: as
    its schedule issues them, in real time), then :class:`Interrupted` is raised.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    samples = len(requests)
    sut_impl = Sut(cl, requests, settings.workers, on_result, stop)
    sut = lg.ConstructSUT(sut_impl.issue, sut_impl.flush)
    qsl = lg.ConstructQSL(samples, samples, lambda _: None, lambda _: None)  # requests are already in memory
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    failure: list[BaseException] = []
    done = threading.Event()

    def test() -> None:
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings.test_settings(samples), log_settings)
        except BaseException as exc:  # reported by the caller's thread
            failure.append(exc)
        finally:
            done.set()

    interrupted: float | None = None  # when Ctrl-C came (perf_counter)
    with sut_impl:
        runner = threading.Thread(target=test, name="loadgen", daemon=True)
        runner.start()
        # An Event, not Thread.join: Python 3.11 marks a thread stopped when Ctrl-C interrupts a join on it,
        # and LoadGen's objects must not be destroyed while its test still runs.
        try:
            while not done.wait(0.2):  # short waits: the main thread stays free for signals
                pass
        except KeyboardInterrupt:
            interrupted = time.perf_counter()
            stop.set()
            rest = ("in real time: its Poisson arrivals until the end of its schedule" if settings.scenario == "server"
                    else "at once")
            log(f"interrupted: sending stopped; LoadGen has no abort, so it plays the rest of its queries, "
                f"completed unsent, {rest}")
            try:
                with interrupts.shielded():  # a second Ctrl-C is counted, not raised: LoadGen ends first
                    done.wait()
            except KeyboardInterrupt:
                pass  # already interrupted
        runner.join(timeout=5.0)
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
    if failure:
        raise RuntimeError(f"LoadGen failed: {failure[0]}") from failure[0]
    outcome = read_logs(log_dir)
    outcome.update({"settings": settings.recorded(), "log_dir": log_dir.name, "sent": sut_impl.sent,
                    "completed_unsent": sut_impl.unsent})
    if interrupted is not None:
        outcome["verdict"], outcome["valid"] = "INTERRUPTED", False
        raise Interrupted(outcome, interrupted)
    return outcome


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a LoadGen test; ``outcome`` holds what its logs say (not a measurement), ``at`` when it came."""

    def __init__(self, outcome: dict, at: float):
        super().__init__("LoadGen test interrupted")
        self.outcome, self.at = outcome, at


# ------------------------------------------------------------------ its logs
def parse_detail(text: str) -> dict:
    """``mlperf_log_detail.txt``: its ``:::MLLOG {json}`` lines as {key: value} (the last value of a key)."""
    found: dict = {}
    errors: list[str] = []
    for line in text.splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            entry = json.loads(line[len(":::MLLOG "):])
        except ValueError:
            continue
        key = entry.get("key")
        if key in ("error", "warning") or (entry.get("metadata") or {}).get("is_error"):
            errors.append(str(entry.get("value"))[:200])
        if key:
            found[key] = entry.get("value")
    found["_errors"] = errors
    return found


_SUMMARY_LINE = re.compile(r"^\s*([^:]+?)\s*:\s*(.+?)\s*$")


def parse_summary(text: str) -> dict:
    """``mlperf_log_summary.txt``: its ``name : value`` lines (numbers as numbers), first occurrence each."""
    found: dict = {}
    for line in text.splitlines():
        match = _SUMMARY_LINE.match(line)
        if not match or line.lstrip().startswith("*"):
            continue
        key, value = match.group(1), match.group(2)
        if key in found:
            continue
        try:
            found[key] = int(value)
        except ValueError:
            try:
                found[key] = float(value)
            except ValueError:
                found[key] = value
    return found


def _ms(ns) -> float | None:
    return results.rounded(ns / 1e6, 3) if isinstance(ns, (int, float)) else None


def read_logs(log_dir: Path) -> dict:
    """LoadGen's verdict and figures from its logs (the detail log's keys; the summary for what it alone says)."""
    log_dir = Path(log_dir)
    detail = parse_detail((log_dir / DETAIL_FILE).read_text()) if (log_dir / DETAIL_FILE).is_file() else {}
    summary = parse_summary((log_dir / SUMMARY_FILE).read_text()) if (log_dir / SUMMARY_FILE).is_file() else {}
    verdict = detail.get("result_validity") or summary.get("Result is")
    scenario = str(detail.get("effective_scenario") or summary.get("Scenario") or "")
    if "result_completed_samples_per_sec" in detail:  # server: what was answered per second
        qps = detail["result_completed_samples_per_sec"]
    else:  # singlestream: queries per second, LoadGen's own overhead included
        qps = detail.get("result_qps_with_loadgen_overhead", summary.get("QPS w/ loadgen overhead"))
    latency = {f"p{p.rstrip('0').rstrip('.').replace('.', '')}": _ms(
        detail.get(f"result_{p}_percentile_latency_ns", summary.get(f"{p} percentile latency (ns)")))
        for p in PERCENTILES}
    latency.update({"min": _ms(detail.get("result_min_latency_ns")), "max": _ms(detail.get("result_max_latency_ns")),
                    "mean": _ms(detail.get("result_mean_latency_ns"))})
    return {
        "scenario": scenario or None,
        "verdict": verdict,
        "valid": verdict == "VALID" if verdict else None,
        "qps": results.rounded(qps, 2) if isinstance(qps, (int, float)) else None,
        "scheduled_qps": results.rounded(detail.get("result_scheduled_samples_per_sec"), 2),
        "queries": detail.get("result_query_count"),
        "latency_ms": latency,
        "checks": {
            "min_duration_met": detail.get("result_min_duration_met"),
            "min_queries_met": detail.get("result_min_queries_met"),
            "perf_constraints_met": detail.get("result_perf_constraints_met"),
            "early_stopping_met": detail.get("early_stopping_met"),
            "overlatency_queries": detail.get("result_overlatency_query_count"),
        },
        "early_stopping": (detail.get("early_stopping_result") or "").strip() or None,
        "invalid_reason": detail.get("result_invalid_reason") or None,
        "errors": detail.get("_errors", []),
        "loadgen_version": detail.get("loadgen_version"),
    }
