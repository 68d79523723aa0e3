"""`make crosscheck ARCH=...`: our load generator against three that nobody here wrote.

    python -m bench.crosscheck --arch ARCH [--runtime native|docker] [--concurrency "1 4 16"] [--n 2000]
        [--perf-interval-ms 3000] [--wrk-duration-s 8] [--loadgen-min-duration 10] [--loadgen-qps Q]
        [--out results]

The same stack, through nginx, the same protocol and payload for every tool:
KServe v2 infer requests (``POST /v2/models/cifar10_cnn/infer``), one
CIFAR-10 test image each in the binary tensor extension, both outputs asked
for in binary (what perf_analyzer sends). In order:

1. at each ``--concurrency``: our closed loop (:mod:`bench.client`, the N
   images once), then Triton's perf_analyzer at the same concurrency
   (:mod:`bench.perf_analyzer`; the same images as its input data; skipped,
   with a note, without ``.venv-perf``), then wrk (:mod:`bench.wrk`; the same
   encoded bodies; skipped, with a note, where wrk is not installed);
2. MLPerf LoadGen SingleStream over our connections (:mod:`bench.loadgen`);
3. LoadGen Server at ``--loadgen-qps`` (default: half the throughput our
   closed loop reached at the highest concurrency), then our open loop with
   Poisson arrivals at the same rate and as many requests.

``agreement`` compares each tool's p50 and throughput with ours at the same
load (perf_analyzer, wrk and LoadGen SingleStream with our closed loop, LoadGen
Server with our Poisson open loop): within 10% or not, and where not, what
differs between the two measurements. Each tool's own CPU per request is
measured (this process's CPU time during the pass for ours and LoadGen's,
answers checked after it; perf_analyzer's and wrk's rusage): on a 2-core
machine the client shares the cores with the server. ``client_share`` is the
harness's own error at concurrency 1: our p50 minus perf_analyzer's on the same
path in the same run.

Writes ``results/<run-id>/`` (``results/latest`` points at it): ``summary.json``
(a run record, kind ``crosscheck``, study ``saturation``: ``tools``,
``agreement``, ``client_share``, ``steps``, ``notes``), ``requests.csv`` (every request our
harness and LoadGen's SUT sent; ``repeat`` is the step number),
``perf_analyzer/`` (its input data, CSVs and console output), ``wrk/`` (its
console output; the bodies it posted are removed at the end) and
``loadgen-singlestream/``, ``loadgen-server/`` (LoadGen's logs).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np
from pydantic import field_validator
from tqdm import tqdm

from bench import client, loadgen, perf_analyzer, results, shapes, target, workload
from bench import wrk as wrk_tool
from bench import options as opts
from bench.formats import fmt
from bench.options import option
from bench.records import RunRecord
from bench.session import RunSession
from bench.shapes import Level
from servebench import data, registry
from servebench.settings import Settings, from_environment

TOLERANCE_PCT = 10.0  # the agreement rows' within_10pct
OURS, PERF, LOADGEN, WRK = "servebench", "perf_analyzer", "loadgen", "wrk"  # the tools, as their rows name them


class CrosscheckOptions(opts.Options):
    """``python -m bench.crosscheck``: our harness, perf_analyzer and LoadGen on one stack."""

    arch: str = option(..., "architecture")
    runtime: str = option("native", "where the stack runs")
    run_dir: Path | None = option(None, "the stack's state folder (default: SB_RUN_DIR or run/)")
    study: str | None = option("saturation", "the study whose experiment this run is", cli=False)
    concurrency: tuple[int, ...] = option((1, 4, 16), "closed-loop levels (requests in flight)", min_length=1)
    n: int = option(2000, "test images: requests per closed-loop level, LoadGen's minimum query count",
                    ge=1, le=opts.TEST_SET_IMAGES)
    warmup: int = option(50, "requests sent first and not counted", ge=0)
    perf_analyzer: bool = option(True, "perf_analyzer (needs .venv-perf: make setup-perf)")
    perf_interval_ms: int = option(3000, "perf_analyzer's measurement window (ms)", ge=100)
    perf_max_trials: int = option(10, "perf_analyzer's most windows per level before it gives up on stability",
                                  ge=3)
    wrk: bool = option(True, "wrk at the same levels (Debian's wrk; `make setup` installs it)")
    wrk_duration_s: float = option(8.0, "wrk's run length at each level (s)", ge=1)
    loadgen: bool = option(True, "the MLPerf LoadGen scenarios")
    direct: bool = option(True, "also our closed loop and perf_analyzer straight at the model server's own "
                                "port (Flask, FastAPI, Triton: they speak KServe v2), without nginx and Django")
    loadgen_min_duration: float = option(10.0, "LoadGen's minimum run length (s)", ge=0)
    loadgen_qps: float | None = option(None, "LoadGen Server's target queries/s (default: half the throughput of "
                                             "our closed loop at the highest concurrency)", gt=0)
    loadgen_latency_ms: float = option(50.0, "LoadGen Server's p99 latency bound (ms)", gt=0)
    connections: int = option(opts.OPEN_LOOP_CONNECTIONS, "Server scenario and open loop: connections", ge=1)
    seed: int = option(0, "seed of our Poisson arrivals")

    @field_validator("concurrency", mode="before")
    @classmethod
    def _levels(cls, v):
        if isinstance(v, str):
            v = tuple(x for x in v.replace(",", " ").split() if x)
        return v

    @field_validator("concurrency")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 1 for c in v):
            raise ValueError("every level must be at least 1")
        return tuple(dict.fromkeys(v))

    def recorded(self) -> dict:
        return {
            "n": self.n, "batch": 1, "protocol": "v2", "binary": True, "path": client.V2_INFER_PATH,
            "concurrency_levels": list(self.concurrency), "warmup": self.warmup,
            "perf_analyzer": self.perf_analyzer, "perf_interval_ms": self.perf_interval_ms,
            "perf_max_trials": self.perf_max_trials, "perf_stability_pct": 10.0,
            "wrk": self.wrk, "wrk_duration_s": self.wrk_duration_s, "wrk_threads": 1,
            "loadgen": self.loadgen, "direct": self.direct, "loadgen_min_duration_s": self.loadgen_min_duration,
            "loadgen_qps": self.loadgen_qps, "loadgen_latency_ms": self.loadgen_latency_ms,
            "connections": self.connections, "seed": self.seed, "mode": "crosscheck",
        }


def tool_row(tool: str, scenario: str, *, concurrency: int | None = None, target_qps: float | None = None,
             requests: int | None = None, throughput: float | None = None, p50_ms: float | None = None,
             p90_ms: float | None = None, p99_ms: float | None = None, valid: bool | None = None,
             stable: bool | None = None, client_cpu_ms_per_request: float | None = None, note: str = "") -> dict:
    """One row of ``tools`` (the fields the report reads; keep them as they are)."""
    return {"tool": tool, "scenario": scenario, "concurrency": concurrency, "target_qps": target_qps,
            "requests": requests, "throughput": throughput, "p50_ms": p50_ms, "p90_ms": p90_ms, "p99_ms": p99_ms,
            "valid": valid, "stable": stable, "client_cpu_ms_per_request": client_cpu_ms_per_request, "note": note}


def agreement_row(ours: dict, theirs: dict, *, cores: int | None = None) -> dict:
    """``theirs``' p50 against ``ours`` at the same load; what differs between them when not within 10%."""
    a, b = ours.get("p50_ms"), theirs.get("p50_ms")
    diff = results.rounded((b - a) / a * 100.0, 1) if a and b is not None else None
    within = diff is not None and abs(diff) <= TOLERANCE_PCT
    ta, tb = ours.get("throughput"), theirs.get("throughput")
    tdiff = results.rounded((tb - ta) / ta * 100.0, 1) if ta and tb is not None else None
    explanation = "" if within else explain(ours, theirs, diff, cores)
    return {"concurrency": theirs.get("concurrency"), "tool": theirs["tool"], "ours_p50_ms": a, "tool_p50_ms": b,
            "diff_pct": diff, "within_10pct": within, "ours_throughput": ta, "tool_throughput": tb,
            "throughput_diff_pct": tdiff,
            "throughput_within_10pct": tdiff is not None and abs(tdiff) <= TOLERANCE_PCT,
            "explanation": explanation}


def agreements(tools: list[dict], *, cores: int | None = None) -> list[dict]:
    """Each other tool's row against ours at the same load, in the order they ran: perf_analyzer and wrk against
    our closed loop at their concurrency on the same path, LoadGen SingleStream against our closed loop at
    concurrency 1, our Poisson open loop against LoadGen Server at its rate."""
    rows: list[dict] = []
    ours: dict[tuple[str, int | None], dict] = {}  # our closed loops by (scenario, concurrency)
    server: dict | None = None
    for t in tools:
        if t["tool"] == OURS and t["scenario"] == shapes.SERVER:
            if server is not None:
                rows.append(agreement_row(t, server, cores=cores))
        elif t["tool"] == OURS:
            ours[(t["scenario"], t["concurrency"])] = t
        elif t["tool"] in (PERF, WRK) and (t["scenario"], t["concurrency"]) in ours:
            row = agreement_row(ours[(t["scenario"], t["concurrency"])], t, cores=cores)
            rows.append(row if t["scenario"] == "closed-loop" else {**row, "tool": f"{row['tool']}, {t['scenario']}"})
        elif t["tool"] == LOADGEN and t["scenario"] == shapes.SERVER:
            server = t
        elif t["tool"] == LOADGEN and ("closed-loop", 1) in ours:
            rows.append(agreement_row(ours[("closed-loop", 1)], t, cores=cores))
    return rows


def client_share(tools: list[dict]) -> list[dict]:
    """The harness's own error at concurrency 1, per path: our p50 minus perf_analyzer's, in the same run."""
    ours = {t["scenario"]: t for t in tools if t["tool"] == OURS and t["concurrency"] == 1}
    rows = []
    for t in tools:
        mine = ours.get(t["scenario"])
        if t["tool"] != PERF or t["concurrency"] != 1 or mine is None:
            continue
        a, b = mine.get("p50_ms"), t.get("p50_ms")
        if a is None or b is None:
            continue
        rows.append({"scenario": t["scenario"], "ours_p50_ms": a, "perf_analyzer_p50_ms": b,
                     "share_ms": results.rounded(a - b, 3), "share_pct": results.rounded((a - b) / a * 100.0, 1)})
    return rows


def explain(ours: dict, theirs: dict, diff: float | None, cores: int | None) -> str:
    """What differs between two measurements that disagree (facts measured in this run, not a verdict)."""
    tool = theirs["tool"]
    if diff is None:
        return f"no p50 from {tool if theirs.get('p50_ms') is None else 'our harness'}: {theirs.get('note') or ''}".strip()
    parts = [f"{tool}'s p50 is {abs(diff):.0f}% {'higher' if diff > 0 else 'lower'}"]
    ca, cb = ours.get("client_cpu_ms_per_request"), theirs.get("client_cpu_ms_per_request")
    if ca is not None and cb is not None:
        parts.append(f"client CPU per request: ours {ca:.3f} ms, {tool} {cb:.3f} ms"
                     + (f", on the same {cores} cores as the server" if cores else ""))
    if tool == "perf_analyzer":
        if theirs.get("stable") is False:
            parts.append("perf_analyzer found no stable windows: its figures come from one fixed-count window")
        else:
            parts.append("perf_analyzer reports its last stable measurement windows, "
                         f"ours the whole pass of {ours.get('requests')} requests")
    if tool == WRK:
        parts.append("wrk times each request on its side of the socket over a fixed duration from one event loop, "
                     f"ours over the pass of {ours.get('requests')} requests from a thread per connection; "
                     "wrk checks no answer")
    if tool == "loadgen":
        parts.append("LoadGen times each query from its own issue time (its callback into Python and the hand-off "
                     "to a connection thread included), ours from just before the send")
        if theirs.get("valid") is False:
            parts.append(theirs.get("note") or "LoadGen's run was INVALID")
    ta, tb = ours.get("throughput"), theirs.get("throughput")
    if ta and tb:
        parts.append(f"throughput: ours {ta:g}, {tool} {tb:g} images/s")
    parts.append("the two ran one after the other on a shared machine, whose speed drifts")
    return "; ".join(parts)


@dataclass(eq=False)
class Crosscheck:
    """One stack, every tool in turn (:meth:`plan`, a :class:`bench.shapes.Scripted` shape); each step's
    figures as a ``tools`` row."""

    o: CrosscheckOptions
    st: Any  # the running stack
    requests: list[client.Request]
    images: np.ndarray
    log: Callable = print
    # What the steps gather: the tools' rows, the steps, notes, LoadGen's outcomes, perf_analyzer's figures.
    tools: list[dict] = field(default_factory=list, init=False)
    steps: list[dict] = field(default_factory=list, init=False)
    notes: list[str] = field(default_factory=list, init=False)
    loadgen_outcomes: dict[str, dict] = field(default_factory=dict, init=False)
    perf: dict = field(default_factory=dict, init=False)
    stop: threading.Event = field(default_factory=threading.Event, init=False)
    direct_client: client.Client | None = field(default=None, init=False)  # to the model server, once warmed up

    def __post_init__(self):
        self.client = client.Client(self.st.url)

    # ---------------------------------------------------------- the plan
    def plan(self, use_perf: bool, use_wrk: bool = False) -> Generator[Level, dict, None]:
        """The steps as levels, each answered with its tool's row (``label`` names the tool, LoadGen's are its
        scenarios): at each concurrency our closed loop, perf_analyzer, wrk; LoadGen SingleStream; LoadGen Server
        at ``--loadgen-qps`` or half our throughput at the highest concurrency, then our Poisson open loop at that
        rate with as many requests as LoadGen sent; then the closed-loop levels again straight at the model
        server."""
        o = self.o
        ours_by_c: dict[int, dict] = {}
        for c in o.concurrency:
            ours_by_c[c] = yield Level(shapes.CLOSED, concurrency=c, count=len(self.requests), label=OURS)
            if use_perf:
                yield self._perf_level(c)
            if use_wrk:
                yield Level(shapes.CLOSED, concurrency=c, seconds=o.wrk_duration_s, label=WRK)
        if o.loadgen:
            lg = {"connections": o.connections, "min_queries": o.n, "min_duration_s": o.loadgen_min_duration,
                  "target_latency_ms": o.loadgen_latency_ms}
            yield shapes.LoadGenScenario(shapes.SINGLESTREAM, **lg).levels[0]
            top = ours_by_c[max(ours_by_c)]
            qps = o.loadgen_qps or (results.rounded(top["throughput"] / 2.0, 1) if top["throughput"] else None)
            if qps:
                server = yield shapes.LoadGenScenario(shapes.SERVER, target_qps=qps, **lg).levels[0]
                yield Level(shapes.OPEN, rate=qps, arrivals="poisson", connections=o.connections,
                            count=server["requests"] or o.n, label=OURS)
            else:
                self.notes.append("LoadGen Server left out: no throughput to set its target QPS from")
        if o.direct:
            found = self.direct_url()
            if found is None:
                self.notes.append(f"no direct measurement: {o.arch} runs the model inside the front end")
                return
            backend, url = found
            to = {"backend": backend, "url": url}
            for c in o.concurrency:
                yield Level(shapes.CLOSED, concurrency=c, count=len(self.requests), label=OURS, extra=to)
                if use_perf:
                    yield self._perf_level(c, to)
                if use_wrk:
                    yield Level(shapes.CLOSED, concurrency=c, seconds=o.wrk_duration_s, label=WRK, extra=to)

    def _perf_level(self, concurrency: int, to: dict | None = None) -> Level:
        """perf_analyzer's level: its windows under its own stability rule (10%, at most ``--perf-max-trials``)."""
        return Level(shapes.CLOSED, concurrency=concurrency, window_s=self.o.perf_interval_ms / 1000.0,
                     rule=shapes.StabilityRule(3, 0.10, self.o.perf_max_trials), label=PERF, extra=to or {})

    def step(self, level: Level) -> dict:
        """One level of :meth:`plan`, measured by the tool it names; that tool's row."""
        backend, url = level.extra.get("backend"), level.extra.get("url")
        scenario = f"closed-loop direct to {backend}" if backend else "closed-loop"
        where = f" straight at {backend}" if backend else ""
        if level.kind in (shapes.SINGLESTREAM, shapes.SERVER):  # LoadGen's scenarios: LoadGen runs them
            self.log("LoadGen SingleStream ..." if level.kind == shapes.SINGLESTREAM
                     else f"LoadGen Server at {level.rate:g} QPS ...")
            return self.loadgen(level)
        if level.label == PERF:
            self.log(f"concurrency {level.concurrency}: perf_analyzer{where} ...")
            return self.perf_analyzer(level, url, scenario)
        if level.label == WRK:
            self.log(f"concurrency {level.concurrency}: wrk{where} for {level.seconds:g} s ...")
            return self.wrk(level, url, scenario)
        if level.kind == shapes.OPEN:
            self.log(f"our Poisson open loop at {level.rate:g} requests/s ...")
            return self.open_loop(level.rate, level.count)
        self.log(f"concurrency {level.concurrency}: our closed loop{where or f' over {level.count} requests'} ...")
        return self.closed_loop(level.concurrency, self._direct(url) if url else None, scenario)

    # ---------------------------------------------------------- our harness
    def warm_up(self) -> None:
        statuses = client.warm_up(self.client, self.requests, self.o.warmup, max(self.o.concurrency))
        if statuses and set(statuses) != {200}:
            raise CrosscheckFailed(f"warm-up answers by status {dict(statuses)}: the {self.o.arch} stack does not answer "
                                   f"{client.V2_INFER_PATH} (KServe v2)")

    def _step(self, tool: str, scenario: str, **load) -> dict:
        step = {"step": len(self.steps), "tool": tool, "scenario": scenario, **load,
                "start_s": results.rounded(time.perf_counter() - self.origin, 3), "end_s": None}
        self.steps.append(step)
        self.recorder.repeat = step["step"]
        return step

    def _ours(self, scenario: str, run: Callable[[Callable], None], **load) -> dict:
        """Our harness over ``run`` (our closed or open loop, given the recorder); its row."""
        step = self._step(OURS, scenario, **load)
        seen: list[client.Result] = []

        def record(r: client.Result) -> None:
            seen.append(r)
            self.recorder(r)

        cpu0, t0 = time.process_time(), time.perf_counter()
        run(record)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        step["end_s"] = results.rounded(time.perf_counter() - self.origin, 3)
        ok = [r for r in seen if r.ok]
        lat = results.latency_stats([r.latency_ms for r in ok])
        images = sum(r.request.images for r in ok)
        errors = len(seen) - len(ok)
        accuracy = sum(r.correct for r in ok) / images if images else None
        note = (f"accuracy {accuracy:.4f}" if accuracy is not None else "no answer") + (
            f", {errors} errors" if errors else "")
        return tool_row(OURS, scenario, concurrency=load.get("concurrency"),
                        target_qps=load.get("target_qps"), requests=len(seen),
                        throughput=results.rounded(images / wall, 2) if wall > 0 else None,
                        p50_ms=lat["p50"], p90_ms=lat["p90"], p99_ms=lat["p99"],
                        client_cpu_ms_per_request=results.rounded(cpu * 1000.0 / len(seen), 4) if seen else None,
                        note=note)

    def closed_loop(self, concurrency: int, to: client.Client | None = None, scenario: str = "closed-loop") -> dict:
        c = to or self.client
        row = self._ours(scenario, lambda rec: c.closed_loop(self.requests, concurrency, rec, self.stop),
                         concurrency=concurrency)
        self.tools.append(row)
        return row

    def direct_url(self) -> tuple[str, str] | None:
        """(the model server's name, its own URL) when the architecture has one, else None."""
        arch = registry.get(self.o.arch)
        if arch.backend_port is None:
            return None
        backend = arch.services[0]  # start order: the backend first
        return backend, f"http://127.0.0.1:{self.st.doc['services'][backend]['port']}"

    def _direct(self, url: str) -> client.Client:
        """Our client straight at the model server (warmed up the first time): what nginx and Django add."""
        if self.direct_client is None:
            self.direct_client = client.Client(url)
            client.warm_up(self.direct_client, self.requests, self.o.warmup, max(self.o.concurrency))
        return self.direct_client

    def open_loop(self, qps: float, count: int) -> dict:
        reqs = [self.requests[i % len(self.requests)] for i in range(count)]
        offsets = client.arrival_offsets(count, qps, "poisson", self.o.seed)

        def run(rec):
            start = time.perf_counter() + 0.01  # the pool's threads are up before the first request is due
            self.client.open_loop(reqs, offsets, self.o.connections, rec, self.stop, start)

        row = self._ours("server", run, target_qps=qps)
        row["note"] += f"; Poisson arrivals over {self.o.connections} connections, latency from the scheduled time"
        self.tools.append(row)
        return row

    # ---------------------------------------------------------- perf_analyzer
    def perf_analyzer(self, level: Level, url: str | None = None, scenario: str = "closed-loop") -> dict:
        concurrency = level.concurrency
        step = self._step(PERF, scenario, concurrency=concurrency)
        try:
            out = perf_analyzer.run(url or self.st.url, concurrency=concurrency, images=self.images,
                                    measurement_interval_ms=round(level.window_s * 1000.0),
                                    max_trials=level.rule.limit, work_dir=self.run_dir / "perf_analyzer")
        except perf_analyzer.PerfAnalyzerError as exc:
            step["end_s"] = results.rounded(time.perf_counter() - self.origin, 3)
            row = tool_row(PERF, scenario, concurrency=concurrency, note=f"failed: {exc}"[:500])
            self.tools.append(row)
            return row
        step["end_s"] = results.rounded(time.perf_counter() - self.origin, 3)
        self.perf[str(concurrency) if url is None else f"{scenario} {concurrency}"] = {k: v for k, v in out.items() if k != "raw"} | {"csv": out["raw"]["csv"]}
        note = out["note"] or (f"stable within 10% over {self.o.perf_interval_ms} ms windows; "
                               f"its own client overhead {out['raw'].get('client_overhead_pct')}%")
        row = tool_row(PERF, scenario, concurrency=concurrency, requests=out["requests"],
                       throughput=out["throughput"], p50_ms=out["p50_ms"], p90_ms=out["p90_ms"], p99_ms=out["p99_ms"],
                       stable=out["stable"], client_cpu_ms_per_request=out["client_cpu_ms_per_request"], note=note)
        self.tools.append(row)
        return row

    # ---------------------------------------------------------- wrk
    def wrk(self, level: Level, url: str | None = None, scenario: str = "closed-loop") -> dict:
        concurrency = level.concurrency
        step = self._step(WRK, scenario, concurrency=concurrency)
        try:
            out = wrk_tool.run(url or self.st.url, self.requests, concurrency=concurrency, duration_s=level.seconds,
                               work_dir=self.run_dir / "wrk")
        except wrk_tool.WrkError as exc:
            row = tool_row(WRK, scenario, concurrency=concurrency, note=f"failed: {exc}"[:500])
        else:
            errors = f", {out['errors']} errors {out['errors_by_kind']}" if out["errors"] else ""
            row = tool_row(WRK, scenario, concurrency=concurrency, requests=out["requests"],
                           throughput=out["throughput"], p50_ms=out["p50_ms"], p90_ms=out["p90_ms"],
                           p99_ms=out["p99_ms"], client_cpu_ms_per_request=out["client_cpu_ms_per_request"],
                           note=f"{out['duration_s']:g} s, 1 thread, {concurrency} connections, no answer check"
                                + errors)
        step["end_s"] = results.rounded(time.perf_counter() - self.origin, 3)
        self.tools.append(row)
        return row

    # ---------------------------------------------------------- LoadGen
    def loadgen(self, level: Level) -> dict:
        scenario, qps = level.kind, level.rate
        concurrency = 1 if scenario == shapes.SINGLESTREAM else None
        step = self._step(LOADGEN, scenario, concurrency=concurrency, target_qps=qps)
        cpu0 = time.process_time()
        try:
            out = loadgen.run(self.client, self.requests, loadgen.level_settings(level),
                              self.run_dir / f"loadgen-{scenario}", self.recorder, self.stop, log=self.log)
        finally:
            step["end_s"] = results.rounded(time.perf_counter() - self.origin, 3)
        cpu = time.process_time() - cpu0
        self.loadgen_outcomes[scenario] = out
        lat = out["latency_ms"]
        note = f"LoadGen {out['verdict']}"
        if out["verdict"] != "VALID":
            unmet = [k for k, v in out["checks"].items() if v is False]
            note += f" ({', '.join(unmet) or out.get('invalid_reason') or 'see its summary'} not met)"
        row = tool_row(LOADGEN, scenario, concurrency=concurrency, target_qps=qps,
                       requests=out["queries"], throughput=out["qps"], p50_ms=lat["p50"], p90_ms=lat["p90"],
                       p99_ms=lat["p99"], valid=out["valid"],
                       client_cpu_ms_per_request=results.rounded(cpu * 1000.0 / out["sent"], 4) if out["sent"] else None,
                       note=note)
        self.tools.append(row)
        return row

    # ---------------------------------------------------------- the run
    def measure(self, run_dir: Path) -> RunRecord:
        """Every tool in turn in a run session on ``run_dir``; the record it wrote (the table printed)."""
        o, self.run_dir = self.o, run_dir
        self.stack = target.stack_record(self.st)
        session = RunSession(run_dir, header=self._header, table=print_table, requests_csv=True, summary=lambda _: {
            "tools": self.tools, "agreement": agreements(self.tools, cores=os.cpu_count()),
            "client_share": client_share(self.tools),
            "wrk": {"available": wrk_tool.missing() is None, "version": wrk_tool.version()}, "steps": self.steps,
            "notes": self.notes, "perf_analyzer": self._perf_analyzer_info(), "loadgen": self.loadgen_outcomes,
            "data": {"source": "CIFAR-10 test set", "images": len(self.requests)}})
        with session:
            self.stop = session.stop
            self.origin = time.perf_counter()
            bar = tqdm(disable=not o.progress, unit="req", desc=f"crosscheck {o.arch}", dynamic_ncols=True,
                       mininterval=0.5)
            self.recorder = session.recorder(self.origin, bar)
            session.on_close(self.client.close)
            session.on_close(lambda: self.direct_client and self.direct_client.close())
            # perf_analyzer's copy of the test images (MBs of base64): the dataset is where they come from.
            session.on_close(lambda: (run_dir / "perf_analyzer" / "input-data.json").unlink(missing_ok=True))
            if o.perf_analyzer and perf_analyzer.missing():
                self.notes.append(f"perf_analyzer left out: {perf_analyzer.missing()}")
            use_perf = o.perf_analyzer and not perf_analyzer.missing()
            if o.wrk and wrk_tool.missing():
                self.notes.append(f"wrk left out: {wrk_tool.missing()}")
            use_wrk = o.wrk and not wrk_tool.missing()
            # wrk's copy of the encoded bodies (MBs): the dataset is where they come from.
            session.on_close(lambda: [(run_dir / "wrk" / f).unlink(missing_ok=True) for f in ("bodies.bin", "index.txt")])
            try:
                shapes.drive(shapes.Scripted(lambda: self.plan(use_perf, use_wrk)), self.step)
            except loadgen.Interrupted as exc:
                self.loadgen_outcomes[exc.outcome.get("settings", {}).get("scenario", "?")] = exc.outcome
                raise
        return session.record

    def _perf_analyzer_info(self) -> dict:
        return {"available": perf_analyzer.missing() is None, "version": perf_analyzer.version()
                if perf_analyzer.missing() is None else None, "runs": self.perf}

    def _header(self) -> dict:
        return {"kind": "crosscheck", "study": self.o.study, "arch": self.o.arch, "runtime": self.o.runtime,
                "settings": self.o.recorded(), "stack": self.stack}


class CrosscheckFailed(RuntimeError):
    """The stack cannot be cross-checked (it does not speak KServe v2)."""


def crosscheck(options: CrosscheckOptions, settings: Settings, log: Callable = print) -> RunRecord:
    card = workload.read_model(settings)  # a bad MODEL or DATA fails here, before anything starts
    if card.name != perf_analyzer.MODEL or workload.data_of(settings):
        raise workload.WorkloadError(f"the crosscheck's tools send CIFAR-10 test images to {perf_analyzer.MODEL}; "
                                     f"for {card.name} on its own inputs use make bench (bench/workload.py)")
    split = data.load_test(options.data_dir, limit=options.n)
    requests = client.prepare_v2(split.images, split.labels)
    with target.stack_for(options.arch, options.runtime, options.run_dir, settings, log=log) as (st, _started):
        check = Crosscheck(options, st, requests, split.images, log)
        check.warm_up()
        record = check.measure(results.new_run_dir(f"crosscheck-{options.arch}", options.out))
    return record


def print_table(doc: dict, run_dir: Path) -> None:
    print(f"\ncrosscheck {doc['arch']} ({doc['runtime']}): KServe v2 binary, one image per request"
          + ("  INTERRUPTED" if doc["interrupted"] else ""))
    print(f"  {'tool':<14}{'scenario':<13}{'load':>9}{'requests':>9}{'img/s':>9}{'p50':>8}{'p90':>8}{'p99':>8}"
          f"{'cpu ms/req':>11}  note")
    for t in doc["tools"]:
        load = f"c{t['concurrency']}" if t["concurrency"] is not None else (
            f"{t['target_qps']:g}/s" if t["target_qps"] else "-")
        print(f"  {t['tool']:<14}{t['scenario']:<13}{load:>9}{fmt(t['requests'], 0):>9}{fmt(t['throughput'], 1):>9}"
              f"{fmt(t['p50_ms'], 2):>8}{fmt(t['p90_ms'], 2):>8}{fmt(t['p99_ms'], 2):>8}"
              f"{fmt(t['client_cpu_ms_per_request'], 3):>11}  {t['note']}")
    for a in doc["agreement"]:
        verdict = "within 10%" if a["within_10pct"] else f"NOT within 10%: {a['explanation']}"
        rate = (f"; images/s {a['tool_throughput']} vs {a['ours_throughput']} ({a['throughput_diff_pct']}%)"
                if a.get("throughput_diff_pct") is not None else "")
        print(f"  {a['tool']} vs ours at {'c' + str(a['concurrency']) if a['concurrency'] else 'the same rate'}: "
              f"p50 {a['tool_p50_ms']} vs {a['ours_p50_ms']} ms ({a['diff_pct']}%){rate}, {verdict}")
    for c in doc.get("client_share") or []:
        print(f"  client share at c1, {c['scenario']}: ours {c['ours_p50_ms']} - perf_analyzer "
              f"{c['perf_analyzer_p50_ms']} = {c['share_ms']} ms ({c['share_pct']}% of our p50)")
    for note in doc.get("notes") or []:
        print(f"  note: {note}")
    print(f"  results in {run_dir}")


def main(argv=None) -> int:
    options = opts.parse(CrosscheckOptions, argv, __doc__)
    record, rc = target.command(lambda: crosscheck(options, from_environment()),
                                (CrosscheckFailed, perf_analyzer.PerfAnalyzerError), prefix=f"{options.arch}: ")
    if rc is not None:
        return rc
    return 130 if record.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
