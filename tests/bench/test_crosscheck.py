"""bench.crosscheck without a server: its rows, its agreement rule, its options, and a whole record.

The whole-record test runs the crosscheck's steps with the HTTP exchange
replaced (LoadGen itself runs) and perf_analyzer reported missing, so it
checks the fields the report reads and the note that says `make setup-perf`.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from bench import client, crosscheck, loadgen, perf_analyzer, records, shapes, wrk
from bench import options as opts

pytestmark = pytest.mark.unit

TOOL_FIELDS = ["tool", "scenario", "concurrency", "target_qps", "requests", "throughput", "p50_ms", "p90_ms",
               "p99_ms", "valid", "stable", "client_cpu_ms_per_request", "note"]
AGREEMENT_FIELDS = ["concurrency", "tool", "ours_p50_ms", "tool_p50_ms", "diff_pct", "within_10pct", "ours_throughput",
                    "tool_throughput", "throughput_diff_pct", "throughput_within_10pct", "explanation"]


def ours(p50: float, **kw) -> dict:
    return crosscheck.tool_row("servebench", "closed-loop", concurrency=4, requests=2000, throughput=300.0,
                               p50_ms=p50, client_cpu_ms_per_request=0.3, **kw)


def test_rows_carry_exactly_the_fields_the_report_reads():
    assert list(crosscheck.tool_row("loadgen", "server")) == TOOL_FIELDS
    row = crosscheck.agreement_row(ours(5.0), crosscheck.tool_row("perf_analyzer", "closed-loop", concurrency=4,
                                                                  p50_ms=5.2))
    assert list(row) == AGREEMENT_FIELDS


def test_within_ten_percent_needs_no_explanation():
    theirs = crosscheck.tool_row("perf_analyzer", "closed-loop", concurrency=4, p50_ms=5.45, stable=True,
                                 throughput=270.0)
    row = crosscheck.agreement_row(ours(5.0), theirs)
    assert row == {"concurrency": 4, "tool": "perf_analyzer", "ours_p50_ms": 5.0, "tool_p50_ms": 5.45,
                   "diff_pct": 9.0, "within_10pct": True, "ours_throughput": 300.0, "tool_throughput": 270.0,
                   "throughput_diff_pct": -10.0, "throughput_within_10pct": True, "explanation": ""}


def test_wrk_is_compared_like_perf_analyzer_and_the_client_share_is_ours_minus_perf_analyzers():
    tools = [ours(5.0) | {"concurrency": 1}, crosscheck.tool_row("perf_analyzer", "closed-loop", concurrency=1,
                                                                 p50_ms=4.0, throughput=310.0),
             crosscheck.tool_row("wrk", "closed-loop", concurrency=1, p50_ms=4.6, throughput=290.0),
             ours(3.0) | {"concurrency": 1, "scenario": "closed-loop direct to fastapi"},
             crosscheck.tool_row("perf_analyzer", "closed-loop direct to fastapi", concurrency=1, p50_ms=2.7)]
    rows = crosscheck.agreements(tools)
    assert [(a["tool"], a["within_10pct"]) for a in rows] == [
        ("perf_analyzer", False), ("wrk", True), ("perf_analyzer, closed-loop direct to fastapi", True)]
    assert "event loop" in crosscheck.agreement_row(tools[0], crosscheck.tool_row(
        "wrk", "closed-loop", concurrency=1, p50_ms=2.0))["explanation"]
    share = crosscheck.client_share(tools)
    assert [(c["scenario"], c["share_ms"], c["share_pct"]) for c in share] == [
        ("closed-loop", 1.0, 20.0), ("closed-loop direct to fastapi", 0.3, 10.0)]


def test_a_disagreement_says_what_differs():
    theirs = crosscheck.tool_row("perf_analyzer", "closed-loop", concurrency=4, p50_ms=3.5, stable=False,
                                 throughput=320.0, client_cpu_ms_per_request=0.2)
    row = crosscheck.agreement_row(ours(5.0), theirs, cores=2)
    assert row["diff_pct"] == -30.0 and row["within_10pct"] is False
    text = row["explanation"]
    assert "30% lower" in text and "ours 0.300 ms, perf_analyzer 0.200 ms" in text and "2 cores" in text
    assert "no stable windows" in text and "one after the other" in text
    lg = crosscheck.tool_row("loadgen", "server", target_qps=100.0, p50_ms=7.0, valid=False,
                             note="LoadGen INVALID (early_stopping_met not met)")
    text = crosscheck.agreement_row(ours(5.0), lg)["explanation"]
    assert "40% higher" in text and "issue time" in text and "early_stopping_met" in text


def test_no_figure_is_no_agreement():
    theirs = crosscheck.tool_row("perf_analyzer", "closed-loop", concurrency=1, note="failed: exited 1")
    row = crosscheck.agreement_row(ours(5.0), theirs)
    assert row["diff_pct"] is None and row["within_10pct"] is False and "failed: exited 1" in row["explanation"]


def test_options_from_the_command_line():
    o = opts.parse(crosscheck.CrosscheckOptions, ["--arch", "embedded", "--concurrency", "1 4 16 4", "--n", "100"])
    assert o.concurrency == (1, 4, 16) and o.n == 100 and o.study == "saturation"
    assert o.recorded()["protocol"] == "v2" and o.recorded()["concurrency_levels"] == [1, 4, 16]
    with pytest.raises(SystemExit):
        opts.parse(crosscheck.CrosscheckOptions, ["--arch", "embedded", "--concurrency", "0"])


# ------------------------------------------------------------------ a whole record, no server
class StandIn(client.Client):
    def exchange(self, conn, req, scheduled):
        time.sleep(0.001)
        return client.Result(req, scheduled, scheduled, time.perf_counter(), 200, predicted=req.labels,
                             correct=req.images)


class FakeStack:
    arch = "embedded"
    url = "http://127.0.0.1:9"  # nothing listens: /v1/info is recorded as an error
    doc = {"runtime": "native", "services": {}}


def test_record_without_perf_analyzer(tmp_path, monkeypatch):
    monkeypatch.setattr(perf_analyzer, "missing", lambda venv=perf_analyzer.VENV: perf_analyzer.MISSING)
    monkeypatch.setattr(wrk, "missing", lambda: wrk.MISSING)
    options = crosscheck.CrosscheckOptions(arch="embedded", concurrency=(1, 2), n=80, warmup=0,
                                           loadgen_min_duration=0.0, progress=False)
    reqs = [client.Request(i, b"x", "application/octet-stream", np.array([i % 10]), path=client.V2_INFER_PATH,
                           protocol="v2") for i in range(80)]
    check = crosscheck.Crosscheck(options, FakeStack(), reqs, np.zeros((80, 32, 32, 3), np.uint8),
                                  log=lambda *_: None)
    check.client = StandIn(FakeStack.url)
    (tmp_path / "run").mkdir()
    record = check.measure(tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert records.read(tmp_path / "run").kind == "crosscheck" == doc["kind"]
    assert doc["study"] == "saturation" and not doc["interrupted"] and "running" not in doc
    assert [(t["tool"], t["scenario"], t["concurrency"]) for t in doc["tools"]] == [
        ("servebench", "closed-loop", 1), ("servebench", "closed-loop", 2), ("loadgen", "singlestream", 1),
        ("loadgen", "server", None), ("servebench", "server", None)]
    for t in doc["tools"]:
        assert list(t) == TOOL_FIELDS and t["p50_ms"] > 0 and t["requests"] >= 80
    server = [t for t in doc["tools"] if t["scenario"] == "server"]
    assert server[0]["target_qps"] == server[1]["target_qps"] == pytest.approx(
        doc["tools"][1]["throughput"] / 2, abs=0.1)  # half our closed loop's throughput at the top concurrency
    assert server[1]["requests"] == server[0]["requests"]  # ours sent as many as LoadGen did
    assert [(a["tool"], a["concurrency"]) for a in doc["agreement"]] == [("loadgen", 1), ("loadgen", None)]
    assert all(list(a) == AGREEMENT_FIELDS for a in doc["agreement"])
    assert any("make setup-perf" in n for n in doc["notes"]) and any("apt-get install wrk" in n for n in doc["notes"])
    assert doc["perf_analyzer"]["available"] is False
    assert set(doc["loadgen"]) == {"singlestream", "server"}
    assert (tmp_path / "run" / "loadgen-singlestream" / "mlperf_log_summary.txt").is_file()
    rows = (tmp_path / "run" / "requests.csv").read_text().splitlines()
    assert len(rows) - 1 == sum(t["requests"] for t in doc["tools"])  # every request of ours and LoadGen's SUT
    assert [s["step"] for s in doc["steps"]] == list(range(5)) and record.get("settings", "n") == 80


# ------------------------------------------------------------------ the Makefile's wiring
REPO = Path(__file__).resolve().parents[2]


def make_line(*args: str) -> list[str]:
    """The python command `make -n` would run for ``args`` (its flags, split as the shell would)."""
    out = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=REPO, text=True, capture_output=True,
                         timeout=30, check=True).stdout.replace("\\\n", " ")
    line = next(l for l in out.splitlines() if " -m bench." in l)
    return shlex.split(line)[3:]  # after `python -m module`


def test_make_bench_loadgen_and_make_crosscheck_reach_the_options():
    argv = make_line("bench", "ARCH=embedded", "LOADGEN=server", "LOADGEN_QPS=75", "LOADGEN_MIN_DURATION=3")
    o = opts.parse(opts.BenchOptions, argv)
    assert (o.loadgen, o.loadgen_qps, o.loadgen_min_duration) == ("server", 75.0, 3.0)
    assert opts.parse(opts.BenchOptions, make_line("bench", "ARCH=embedded")).loadgen is None
    argv = make_line("crosscheck", "ARCH=flask", "CROSSCHECK_N=300", "CROSSCHECK_CONCURRENCY=2 8")
    o = opts.parse(crosscheck.CrosscheckOptions, argv)
    assert (o.arch, o.n, o.concurrency, o.loadgen_qps) == ("flask", 300, (2, 8), None)


# ------------------------------------------------------------------ the plan and its agreements
def test_the_plan_runs_each_tool_in_turn_and_sets_the_server_rate_from_our_top_concurrency():
    """The crosscheck's shape, answered with made-up rows: which tool measures what, in which order."""
    options = crosscheck.CrosscheckOptions(arch="flask", concurrency=(4, 1), n=80, perf_interval_ms=2000,
                                           perf_max_trials=6, connections=8)
    stack = type("Stack", (), {"url": "http://127.0.0.1:9", "doc": {"services": {"flask": {"port": 8001}}}})()
    check = crosscheck.Crosscheck(options, stack, [None] * 80, np.zeros((80, 32, 32, 3), np.uint8))
    rows = {(shapes.CLOSED, 4): {"throughput": 301.0}, (shapes.SERVER, None): {"requests": 77}}
    levels = []

    def answer(level: shapes.Level) -> dict:
        levels.append(level)
        return rows.get((level.kind, level.concurrency if level.kind == shapes.CLOSED else None),
                        {"throughput": 100.0, "requests": None})

    shapes.drive(shapes.Scripted(lambda: check.plan(use_perf=True)), answer)
    assert [(lv.label, lv.kind, lv.concurrency, lv.extra.get("backend")) for lv in levels] == [
        ("servebench", "closed", 4, None), ("perf_analyzer", "closed", 4, None),
        ("servebench", "closed", 1, None), ("perf_analyzer", "closed", 1, None),
        ("LoadGen singlestream", "singlestream", 1, None), ("LoadGen server", "server", 8, None),
        ("servebench", "open", None, None),
        ("servebench", "closed", 4, "flask"), ("perf_analyzer", "closed", 4, "flask"),
        ("servebench", "closed", 1, "flask"), ("perf_analyzer", "closed", 1, "flask")]
    perf = levels[1]
    assert (perf.window_s, perf.rule.limit, perf.rule.tolerance) == (2.0, 6, 0.10)
    server, ours = levels[5], levels[6]
    assert server.rate == ours.rate == 150.5  # half our closed loop's throughput at c4, the top concurrency
    assert (ours.count, ours.arrivals, ours.connections) == (77, "poisson", 8)  # as many as LoadGen sent
    assert levels[7].extra["url"] == "http://127.0.0.1:8001" and check.notes == []
    settings = loadgen.level_settings(server)
    assert (settings.min_queries, settings.target_latency_ms, settings.connections) == (80, 50.0, 8)


def test_no_throughput_means_no_server_step_and_a_note():
    options = crosscheck.CrosscheckOptions(arch="embedded", concurrency=(1,), n=80, direct=True)
    check = crosscheck.Crosscheck(options, FakeStack(), [None] * 80, np.zeros((80, 32, 32, 3), np.uint8))
    levels = []
    shapes.drive(shapes.Scripted(lambda: check.plan(use_perf=False)),
                 lambda level: levels.append(level) or {"throughput": None, "requests": None})
    assert [lv.kind for lv in levels] == ["closed", "singlestream"]
    assert check.notes == ["LoadGen Server left out: no throughput to set its target QPS from",
                           "no direct measurement: embedded runs the model inside the front end"]


def test_agreements_pair_each_tool_with_ours_in_the_order_they_ran():
    row = crosscheck.tool_row
    direct = "closed-loop direct to flask"
    tools = [row("servebench", "closed-loop", concurrency=1, p50_ms=2.0),
             row("perf_analyzer", "closed-loop", concurrency=1, p50_ms=2.1),
             row("servebench", "closed-loop", concurrency=4, p50_ms=4.0),
             row("perf_analyzer", "closed-loop", concurrency=4, p50_ms=6.0),
             row("loadgen", "singlestream", concurrency=1, p50_ms=2.2),
             row("loadgen", "server", target_qps=50.0, p50_ms=3.0),
             row("servebench", "server", target_qps=50.0, p50_ms=3.1),
             row("servebench", direct, concurrency=1, p50_ms=1.0),
             row("perf_analyzer", direct, concurrency=1, p50_ms=1.05)]
    got = crosscheck.agreements(tools, cores=2)
    assert [(a["tool"], a["concurrency"], a["ours_p50_ms"], a["tool_p50_ms"]) for a in got] == [
        ("perf_analyzer", 1, 2.0, 2.1), ("perf_analyzer", 4, 4.0, 6.0), ("loadgen", 1, 2.0, 2.2),
        ("loadgen", None, 3.1, 3.0), (f"perf_analyzer, {direct}", 1, 1.0, 1.05)]
    assert [a["within_10pct"] for a in got] == [True, False, True, True, True]
    assert crosscheck.agreements(tools[2:3] + tools[4:6]) == []  # no c1 of ours, no open loop of ours: no pair
