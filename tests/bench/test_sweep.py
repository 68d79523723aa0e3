"""bench.sweep without a server: the stability rule, windows, CPU per image, batch sizes, the record and its CSVs."""
from __future__ import annotations

import csv
import json
import sys
import types

import numpy as np
import pytest

from bench import client, options as opts, records, reference, sweep, target, timing
from bench.records import RunRecord
from servebench import runtime as runtimes
from servebench.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_stacks(monkeypatch):
    """A unit test never starts a stack: one that tries fails at once."""
    def refuse(*a, **kw):
        raise AssertionError("a unit test tried to start a stack")

    monkeypatch.setattr(target, "stack_for", refuse)


def windows(*pairs) -> list[dict]:
    """Synthetic windows from (throughput, p50) pairs."""
    return [{"throughput_images_per_s": t, "p50_ms": p} for t, p in pairs]


def drive(stream: list[dict], limit: int = 10, needed: int = 3, tolerance: float = 0.10) -> tuple[int, list[int], bool]:
    """The sweep's loop on a stream of windows: how many it measured, which it chose, whether stable."""
    seen = []
    for w in stream:
        seen.append(w)
        _, stable = sweep.chosen_windows(seen, needed, tolerance)
        if stable or len(seen) >= limit:
            break
    chosen, stable = sweep.chosen_windows(seen, needed, tolerance)
    return len(seen), chosen, stable


# ------------------------------------------------------------------ the stability rule
def test_three_agreeing_windows_make_a_stable_level():
    n, chosen, stable = drive(windows((100, 5.0), (105, 5.2), (109, 5.4), (300, 1.0)))
    assert (n, chosen, stable) == (3, [0, 1, 2], True)  # the fourth is never measured


def test_drifting_then_stable_takes_the_first_agreeing_run():
    stream = windows((50, 9.0), (80, 7.0), (100, 5.0), (104, 5.1), (101, 5.3), (99, 5.0))
    n, chosen, stable = drive(stream)
    assert (n, chosen, stable) == (5, [2, 3, 4], True)
    assert sweep.stable_run(stream) == 2


def test_never_stable_is_marked_unstable_at_the_limit_with_the_last_windows():
    stream = windows(*[(100 + 20 * (k % 2), 5.0) for k in range(20)])  # throughput flips by 20%
    n, chosen, stable = drive(stream, limit=10)
    assert (n, chosen, stable) == (10, [7, 8, 9], False)


def test_both_metrics_must_agree_and_zero_never_agrees():
    assert sweep.stable_run(windows((100, 5.0), (100, 6.0), (100, 5.0))) is None  # p50 20% apart
    assert sweep.stable_run(windows((100, 5.0), (109, 5.45), (100, 5.0))) == 0  # within 10% both
    assert not sweep.agree([0.0, 0.0, 0.0], 0.1) and not sweep.agree([1.0, None, 1.0], 0.1)
    assert sweep.chosen_windows([], 3, 0.1) == ([], False)
    assert sweep.chosen_windows(windows((1, 1), (1, 1)), 3, 0.1) == ([0, 1], False)


def test_level_figures_are_medians_of_the_chosen_windows():
    ws = windows((100, 5.0), (300, 1.0), (110, 6.0), (90, 4.0))
    for w, p99 in zip(ws, (9, 1, 12, 8)):
        w["p99_ms"], w["mean_ms"] = p99, p99 / 2
    chosen = [0, 2, 3]
    assert sweep.median_of([ws[i] for i in chosen], "throughput_images_per_s") == 100
    assert sweep.median_of([ws[i] for i in chosen], "p99_ms") == 9


# ------------------------------------------------------------------ windows
def result(end: float, *, ok: bool = True, batch: float | None = None, queue: float | None = None,
           scheduled: float | None = None, label: int = 3, predicted: int = 3) -> client.Result:
    req = client.Request(0, b"x" * 3072, "application/octet-stream", np.array([label]))
    timing = {}
    if batch is not None:
        timing["batch"] = batch
    if queue is not None:
        timing["queue"] = queue
    start = end - 0.004 if scheduled is None else scheduled
    r = client.Result(req, start, start, end, 200 if ok else 503, server_timing=timing)
    if ok:
        r.predicted, r.correct = np.array([predicted]), int(predicted == label)
    else:
        r.error = "busy"
    return r


def test_window_log_sorts_results_by_completion_and_keeps_stragglers():
    log = sweep.WindowLog()
    got = [result(0.5)]  # warm-up: before the first edge
    log.edge(1.0)
    got += [result(1.2), result(1.9)]
    log.edge(2.0)
    got += [result(2.05)]  # completed after the edge it is read at: waits for the next window
    log.take(got)
    assert [len(w) for w in log.per_window] == [2]
    got += [result(1.99)]  # handed over late, completed in the first window: it counts there
    log.edge(3.0)
    log.take(got)
    assert [len(w) for w in log.per_window] == [3, 1]
    got += [result(3.5)]  # in flight when the level stopped: in no window
    log.take(got)
    assert [len(w) for w in log.per_window] == [3, 1]
    stats = log.stats(origin=1.0)
    assert [s["start_s"] for s in stats] == [0.0, 1.0] and stats[0]["throughput_images_per_s"] == 3.0


def test_window_stats_count_errors_apart_and_time_latency_from_the_schedule():
    rs = [result(1.1, scheduled=1.09), result(1.2, scheduled=1.17), result(1.3, ok=False)]
    w = sweep.window_stats(rs, 1.0, 1.5, origin=0.0)
    assert (w["requests"], w["images"], w["errors"]) == (3, 2, 1)
    assert w["throughput_images_per_s"] == 4.0 and w["p50_ms"] == pytest.approx(20.0)
    assert w["seconds"] == 0.5 and w["end_s"] == 1.5


def test_cycled_repeats_the_requests_without_copying():
    reqs = [result(0).request, result(0).request]
    c = client.Cycled(reqs, 5)
    assert len(c) == 5 and c[0] is reqs[0] and c[3] is reqs[1] and c[-1] is reqs[0]
    with pytest.raises(IndexError):
        c[5]


# ------------------------------------------------------------------ CPU per image
def test_cpu_between_counts_new_processes_whole_and_old_ones_by_difference():
    before = {"nginx": {(1, 0.0): 10.0}, "frontend": {(2, 0.0): 5.0, (3, 0.0): 7.0}, "client": {(9, 0.0): 1.0}}
    after = {"nginx": {(1, 0.0): 10.5},
             "frontend": {(2, 0.0): 6.0, (4, 0.0): 0.25},  # 3 ended (its last slice lost), 4 was born
             "client": {(9, 0.0): 1.2},
             "backend-x": {(5, 0.0): 2.0}}
    used = sweep.cpu_between(before, after)
    assert used == pytest.approx({"nginx": 0.5, "frontend": 1.25, "client": 0.2, "backend-x": 2.0})
    # A pid reused by a new process (another create time) is a new process.
    assert sweep.cpu_between({"a": {(7, 1.0): 9.0}}, {"a": {(7, 2.0): 0.5}}) == {"a": 0.5}


def test_cpu_budget_keeps_the_client_apart():
    budget = sweep.cpu_budget({"nginx": 0.1, "frontend": 0.5, "fastapi": 1.4, "client": 0.3}, images=1000, seconds=2.0)
    assert budget["cpu_ms_per_image"] == pytest.approx({"nginx": 0.1, "frontend": 0.5, "fastapi": 1.4, "client": 0.3})
    assert budget["server_cpu_ms_per_image"] == pytest.approx(2.0)
    assert budget["client_cpu_ms_per_image"] == pytest.approx(0.3)
    assert budget["cores_busy"]["fastapi"] == pytest.approx(0.7)
    assert sweep.by_role(budget["cpu_ms_per_image"]) == pytest.approx(
        {"nginx": 0.1, "frontend": 0.5, "backend": 1.4, "client": 0.3})
    assert sweep.cpu_budget({"nginx": 1.0}, images=0, seconds=1.0)["server_cpu_ms_per_image"] is None


def test_cpu_snapshot_reads_live_processes(tmp_path):
    import psutil

    snap = sweep.cpu_snapshot({"me": [psutil.Process()]})
    ((key, cpu),) = snap["me"].items()
    assert key[0] == psutil.Process().pid and cpu > 0


# ------------------------------------------------------------------ batch sizes and the model's CPU
CURVE = [{"batch": 1, "cpu_ms_per_image": 2.0}, {"batch": 4, "cpu_ms_per_image": 1.0},
         {"batch": 16, "cpu_ms_per_image": 0.5}]


def test_cpu_at_a_batch_size_is_interpolated_in_log2_and_clamped():
    assert reference.cpu_ms_per_image_at(CURVE, 2) == pytest.approx(1.5)
    assert reference.cpu_ms_per_image_at(CURVE, 8) == pytest.approx(0.75)
    assert reference.cpu_ms_per_image_at(CURVE, 64) == pytest.approx(0.5)
    assert reference.cpu_ms_per_image_at(CURVE, 0.5) == pytest.approx(2.0)
    assert reference.cpu_ms_per_image_at([], 4) is None


def test_batch_sizes_and_the_model_cpu_that_ran():
    rs = [result(1, batch=4), result(1, batch=4), result(1, batch=1), result(1)]
    sizes = [timing.batch_size(r.server_timing) for r in rs]
    assert sizes == [4, 4, 1, None]
    on = timing.batch_summary(sizes, batching_off=False)
    assert on == {"mean": 3.0, "median": 4.0, "max": 4, "seen": 0.75}
    off = timing.batch_summary(sizes, batching_off=True)  # an answer that does not say ran alone
    assert off["mean"] == 2.5 and off["seen"] == 0.75
    # Averaged over requests: (1.0 + 1.0 + 2.0) / 3 with batching on (the silent one left out).
    assert sweep.model_cpu(sizes, CURVE, batching_off=False) == pytest.approx(4.0 / 3, abs=1e-4)
    assert sweep.model_cpu(sizes, CURVE, batching_off=True) == pytest.approx(1.5)
    assert sweep.model_cpu(sizes, None, batching_off=True) is None
    assert timing.batch_summary([], batching_off=False)["mean"] is None


def test_level_figures_put_cpu_model_and_limit_together():
    per_window = [[result(1.1, batch=4, queue=0.5), result(1.2, batch=4, queue=1.5)],
                  [result(2.1, batch=1, queue=0.1), result(2.2, ok=False)]]
    ws = [sweep.window_stats(w, k + 1.0, k + 2.0, 0.0) for k, w in enumerate(per_window)]
    lv = sweep.level_figures(ws, per_window, [0, 1], {"nginx": 0.0003, "frontend": 0.0027, "client": 0.0006},
                             2.0, batching_off=False, curve=CURVE, limit=10.0)
    assert (lv["requests"], lv["images"], lv["errors"]) == (4, 3, 1)
    assert lv["errors_by_status"] == {"503": 1} and lv["accuracy"] == 1.0
    assert lv["server_cpu_ms_per_image"] == pytest.approx(1.0) and lv["client_cpu_ms_per_image"] == pytest.approx(0.2)
    assert lv["model_cpu_ms_per_image"] == pytest.approx((1.0 + 1.0 + 2.0) / 3, abs=1e-4)
    assert lv["server_efficiency"] == pytest.approx(4 / 3, abs=1e-3)
    assert lv["served_fraction"] == pytest.approx(lv["throughput_images_per_s"] / 10.0, abs=1e-4)
    assert lv["queue_ms_p50"] == 0.5 and lv["batch_size"]["max"] == 4


# ------------------------------------------------------------------ saturation and the open-loop rates
def test_saturation_prefers_stable_levels_and_says_when_none_was():
    lv = [{"mode": "closed", "concurrency": c, "throughput_images_per_s": t, "stable": s}
          for c, t, s in ((1, 100, True), (4, 300, True), (16, 320, False))]
    lv.append({"mode": "open", "rate": 500, "throughput_images_per_s": 999, "stable": True})
    sat = sweep.saturation(lv)
    assert (sat["level"], sat["concurrency"], sat["stable"]) == (1, 4, True)
    for x in lv:
        x["stable"] = False
    sat = sweep.saturation(lv)
    assert (sat["level"], sat["throughput_images_per_s"], sat["stable"]) == (2, 320, False)
    assert sweep.saturation([]) is None


def test_open_loop_rates_follow_the_saturation_unless_given():
    o = opts.SweepOptions(arch="embedded", rate_fractions=(0.5, 1.1))
    assert sweep.open_rates(o, 400.0) == [(200.0, 0.5), (440.0, 1.1)]
    assert sweep.open_rates(o, None) == []
    o = opts.SweepOptions(arch="embedded", rates=(10, 20))
    assert sweep.open_rates(o, 400.0) == [(10.0, None), (20.0, None)]


# ------------------------------------------------------------------ options
def test_sweep_options_read_make_style_lists_and_say_what_each_stack_runs():
    o = opts.parse(opts.SweepOptions, ["--arch", "flask", "--concurrency", "1 2 4", "--rates", "5,10",
                                       "--batching", "on", "--batch-max-size", "8", "--batch-timeout-ms", "3"])
    assert o.concurrency == (1, 2, 4) and o.rates == (5.0, 10.0) and o.batching == ("on",)
    assert o.codec == "raw" and o.study == "saturation"
    threads = {"frontend_threads": 16, "backend_threads": 16}  # the same in both modes
    assert o.serving("off") == {**threads, "batch_max_size": 1, "batch_timeout_ms": 0.0}
    assert o.serving("on") == {**threads, "batch_max_size": 8, "batch_timeout_ms": 3.0}
    assert o.recorded()["concurrency_levels"] == [1, 2, 4] and o.recorded()["rate_fractions"] is None
    with pytest.raises(SystemExit):
        opts.parse(opts.SweepOptions, ["--arch", "flask", "--batching", "maybe"])
    with pytest.raises(SystemExit):
        opts.parse(opts.SweepOptions, ["--arch", "flask", "--windows-limit", "2"])


# ------------------------------------------------------------------ the record and its CSVs
def synthetic_levels() -> list[dict]:
    out = []
    for c, thr, stable in ((1, 200.0, True), (8, 400.0, False)):
        ws = [{"start_s": k, "end_s": k + 1, "seconds": 1.0, "requests": thr, "images": thr, "errors": 0,
               "throughput_images_per_s": thr, "p50_ms": 5.0, "p99_ms": 9.0, "mean_ms": 5.5} for k in range(4)]
        out.append({"mode": "closed", "concurrency": c, "windows": ws, "stable": stable, "chosen": [1, 2, 3],
                    "throughput_images_per_s": thr, "p50_ms": 5.0, "p99_ms": 9.0, "mean_ms": 5.5,
                    "requests": 3 * thr, "images": 3 * thr, "errors": 0, "errors_by_status": {}, "accuracy": 0.75,
                    "batch_size": {"mean": 1.0, "median": 1.0, "max": 1, "seen": 1.0}, "queue_ms_p50": None,
                    **sweep.cpu_budget({"nginx": 0.3, "frontend": 2.0, "flask": 3.0, "client": 0.6}, 3 * int(thr), 3.0),
                    "model_cpu_ms_per_image": 1.0, "server_efficiency": 0.3, "served_fraction": 0.2})
    return out


def test_summary_and_csvs_have_the_documented_shape(tmp_path):
    o = opts.SweepOptions(arch="flask", out=tmp_path)
    s = sweep.Sweep(o, [], None, Settings(), log=lambda *a: None)
    s.run_dir = tmp_path / "run"
    s.run_dir.mkdir()
    s.modes = {"off": {"serving": o.serving("off"), "levels": synthetic_levels(), "saturation": None,
                       "resources": {}}}
    s.modes["off"]["saturation"] = sweep.saturation(s.modes["off"]["levels"])
    record = RunRecord.model_validate(s.summary())
    records.write(s.run_dir, record)
    s.write_csvs()
    back = records.read(s.run_dir)
    assert back.kind == "sweep" and back.study == "saturation" and back.arch == "flask"
    assert {"stacks", "client", "model_curve", "limit", "modes", "sampler_cpu_seconds"} <= set(back.doc())
    assert back.get("modes", "off", "saturation", "concurrency") == 1  # the stable one
    with (s.run_dir / "levels.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == sweep.LEVEL_COLUMNS and len(rows) == 2
    assert rows[0]["saturation"] == "True" and rows[1]["saturation"] == "False"
    assert float(rows[0]["cpu_ms_per_image_backend"]) == pytest.approx(3.0 / 600 * 1000, rel=1e-3)
    assert rows[0]["batching"] == "off" and rows[1]["stable"] == "False" and rows[0]["chosen_first"] == "1"
    with (s.run_dir / "windows.csv").open() as f:
        wrows = list(csv.DictReader(f))
    assert list(wrows[0]) == sweep.WINDOW_COLUMNS and len(wrows) == 8
    assert [r["chosen"] for r in wrows[:4]] == ["False", "True", "True", "True"]
    json.dumps(back.doc())  # plain JSON all the way down


# ------------------------------------------------------------------ refusals and the perf_analyzer hook
def test_the_sweep_refuses_while_another_stack_runs(monkeypatch, tmp_path):
    class Running:
        arch = "fastapi"

    monkeypatch.setattr(target, "running", lambda runtime, run_dir=None: Running())
    with pytest.raises(runtimes.StackError, match="make down"):
        sweep.sweep(opts.SweepOptions(arch="embedded", out=tmp_path), Settings(), log=lambda *a: None)
    assert not any(tmp_path.iterdir())  # nothing measured, nothing written


def test_perf_analyzer_hook_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "bench.perf_analyzer", None)  # as if the module were not there
    with pytest.raises(sweep.SweepError, match="bench/perf_analyzer.py"):
        sweep.perf_analyzer_module()
    fake = types.ModuleType("bench.perf_analyzer")
    fake.missing = lambda: "no .venv-perf: create it with `make setup-perf`"
    fake.run = lambda url, **kw: {}
    monkeypatch.setitem(sys.modules, "bench.perf_analyzer", fake)
    with pytest.raises(sweep.SweepError, match="make setup-perf"):
        sweep.perf_analyzer_module()


def test_a_perf_analyzer_level_reads_its_figures_and_the_services_cpu(monkeypatch):
    calls = []
    fake = types.ModuleType("bench.perf_analyzer")
    fake.missing = lambda: None

    def run(url, *, concurrency=None, rate=None, measurement_interval_ms=5000, stability_pct=10.0, max_trials=10,
            percentile=None, images=None):
        calls.append({"url": url, "concurrency": concurrency, "rate": rate, "interval": measurement_interval_ms,
                      "pct": stability_pct, "trials": max_trials, "percentile": percentile})
        return {"throughput": 250.0, "p50_ms": 4.0, "p90_ms": 6.0, "p99_ms": 9.0, "avg_ms": 4.5, "requests": 500,
                "stable": True, "client_cpu_ms_per_request": 0.25, "raw": {"big": "left out"}}

    fake.run = run
    monkeypatch.setitem(sys.modules, "bench.perf_analyzer", fake)

    class Stack:
        url = "http://127.0.0.1:1"

        def processes(self):
            return {}

    o = opts.SweepOptions(arch="embedded", client="perf_analyzer", window_s=1.5, windows_limit=6)
    s = sweep.Sweep(o, [], None, Settings(), log=lambda *a: None)
    lv = {"mode": "closed", "concurrency": 4}
    s._level_perf_analyzer(Stack(), lv, batching_off=True)
    assert calls == [{"url": Stack.url, "concurrency": 4, "rate": None, "interval": 1500, "pct": 10.0, "trials": 6,
                      "percentile": 50}]
    assert lv["throughput_images_per_s"] == 250.0 and lv["p50_ms"] == 4.0 and lv["stable"] is True
    assert lv["client_cpu_ms_per_image"] == 0.25 and lv["server_cpu_ms_per_image"] == 0.0
    assert "raw" not in lv["perf_analyzer"] and lv["model_cpu_ms_per_image"] is None


def test_the_command_says_why_it_refuses_and_exits_1(monkeypatch, tmp_path, capsys):
    class Running:
        arch = "flask"

    monkeypatch.setattr(target, "running", lambda runtime, run_dir=None: Running())
    assert sweep.main(["--arch", "embedded", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: embedded: a flask stack is running" in err and "Traceback" not in err
    monkeypatch.setattr(target, "running", lambda runtime, run_dir=None: None)
    monkeypatch.setitem(sys.modules, "bench.perf_analyzer", None)

    def never(*a, **kw):
        raise AssertionError("the sweep went on to measure")

    monkeypatch.setattr(sweep, "model_curve", never)
    monkeypatch.setattr(sweep, "prepare", never)
    assert sweep.main(["--arch", "embedded", "--client", "perf_analyzer", "--out", str(tmp_path)]) == 1
    assert "use --client servebench" in capsys.readouterr().err


# ------------------------------------------------------------------ the run session
class FakeStack:
    arch = "embedded"
    url = "http://127.0.0.1:1"
    doc: dict = {}

    def processes(self):
        return {}


def fake_stack_for(monkeypatch, started: bool = True):
    import contextlib

    @contextlib.contextmanager
    def stack_for(*a, **kw):
        yield FakeStack(), started

    monkeypatch.setattr(target, "stack_for", stack_for)
    monkeypatch.setattr(target, "stack_record", lambda st: {"arch": st.arch})


def test_a_run_writes_its_record_and_csvs_through_the_session(monkeypatch, tmp_path):
    fake_stack_for(monkeypatch)
    o = opts.SweepOptions(arch="embedded", out=tmp_path, batching=("off", "on"))
    s = sweep.Sweep(o, [], None, Settings(), log=lambda *a: None)

    def measure_mode(mode, st, res_log):
        assert records.read(s.run_dir).get("running") is True  # the marker, while it runs
        s.modes[mode] = {"serving": o.serving(mode), "levels": synthetic_levels(), "saturation": None,
                         "resources": {}}
        if mode == "on":
            raise KeyboardInterrupt  # Ctrl-C in the second stack: what was measured is kept

    monkeypatch.setattr(s, "measure_mode", measure_mode)
    record = s.run()
    assert record.interrupted and set(record.get("modes")) == {"off", "on"}
    back = records.read(s.run_dir)
    assert back.interrupted and back.get("running") is None and back.get("stacks", "off", "arch") == "embedded"
    with (s.run_dir / "levels.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (s.run_dir / "resources.csv").read_text().startswith("batching,")


def test_a_stack_someone_else_started_leaves_an_interrupted_record(monkeypatch, tmp_path):
    fake_stack_for(monkeypatch, started=False)
    s = sweep.Sweep(opts.SweepOptions(arch="embedded", out=tmp_path), [], None, Settings(), log=lambda *a: None)
    with pytest.raises(sweep.SweepError, match="someone else"):
        s.run()
    back = records.read(s.run_dir)
    assert back.interrupted and back.get("running") is None and back.get("modes") == {}


def test_the_sweep_shape_follows_the_options():
    o = opts.SweepOptions(arch="embedded", concurrency=(1, 2), rates=(5,), window_s=1.5, windows_limit=4,
                          stable_windows=3, tolerance=0.2, warmup_s=0.5, connections=7)
    shape = sweep.stepped_shape(o)
    first = shape.tick([])
    assert (first.kind, first.concurrency, first.window_s, first.warmup_s) == ("closed", 1, 1.5, 0.5)
    assert (first.rule.needed, first.rule.tolerance, first.rule.limit) == (3, 0.2, 4)
    third = shape.tick([{"mode": "closed"}, {"mode": "closed"}])
    assert third.spec() == {"mode": "open", "rate": 5.0, "rate_fraction": None, "arrivals": "poisson",
                            "connections": 7}
