"""bench.soak's pure parts: durations, rates, the schedule, memory growth and its verdicts, the plot.

Every series here is made up (known inputs, known answers), not a measurement.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import client, formats, resources, results, shapes, soak
from bench.overhead import TrivialServer, _reply_for
from bench.options import SoakOptions, parse

pytestmark = pytest.mark.unit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ durations
@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("10m", 600), ("1h", 3600), ("90", 90), ("2.5", 2.5), ("1h30m", 5400),
    ("1m30s", 90), ("1.5m", 90), (" 10M ", 600), (".5m", 30), (45, 45),
])
def test_parse_duration(text, seconds):
    assert formats.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "  ", "0", "0s", "-5", "-1m", "10x", "m", "1m1m", "1 m", "abc", "inf", "nan",
                                  "1h-5m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        formats.parse_duration(text)


@pytest.mark.parametrize("seconds, text", [(30, "30s"), (600, "10m"), (3600, "1h"), (5430, "1h30m30s"), (0, "0s")])
def test_format_duration(seconds, text):
    assert formats.format_duration(seconds) == text


# ------------------------------------------------------------------ rate and schedule
def test_soak_rate():
    assert shapes.soak_rate(300.0, 0.7, 1) == pytest.approx(210.0)
    assert shapes.soak_rate(300.0, 0.7, 4) == pytest.approx(52.5)  # images/s capacity, requests/s rate
    with pytest.raises(ValueError):
        shapes.soak_rate(0.0, 0.7, 1)


def test_schedule_cycles_and_covers_the_duration():
    prepared = ["a", "b", "c"]
    reqs = soak.schedule(prepared, duration_s=2.0, rate=5.0)
    assert reqs == ["a", "b", "c", "a", "b", "c", "a", "b", "c", "a"]
    assert len(soak.schedule(prepared, 600.0, 210.0)) == 126000
    assert len(soak.schedule(prepared, 0.1, 1.0)) == 1  # never empty
    assert len(soak.schedule(prepared, 1.0, 3.3333333333)) == 4  # ceil, without float noise


# ------------------------------------------------------------------ memory growth
def series(f, seconds: float, hz: float = 1.0):
    t = np.arange(0.0, seconds + 1e-9, 1.0 / hz)
    return [(float(x), float(f(x))) for x in t]


def test_flat_memory_passes():
    g = soak.memory_growth(series(lambda t: 1000.0, 600))
    assert g["measurable"] and g["reason"] is None
    assert g["baseline_mb"] == g["end_mb"] == 1000.0
    assert g["growth_pct"] == 0.0 and g["growth_mb"] == 0.0
    assert g["slope_mb_per_min"] == pytest.approx(0.0, abs=1e-6)
    assert g["verdict"] == "PASS" and g["goal_pct"] == 5.0


def test_linear_growth_known_numbers():
    # 1000 MB at 60 s, +1 MB/min: 1009 MB at the end window's middle (10 min - 10 s).
    g = soak.memory_growth(series(lambda t: 1000.0 + (t - 60.0) / 60.0, 600))
    assert g["baseline_mb"] == pytest.approx(1000.0, abs=0.05)
    assert g["end_mb"] == pytest.approx(1000.0 + (590.0 - 60.0) / 60.0, abs=0.05)
    assert g["growth_pct"] == pytest.approx(0.88, abs=0.01)
    assert g["slope_mb_per_min"] == pytest.approx(1.0, abs=1e-3)
    assert g["verdict"] == "PASS"
    assert g["baseline_samples"] == 21 and g["end_samples"] == 21  # ±10 s at 1 Hz; the last 20 s


def test_start_up_growth_is_not_counted():
    # Doubles during the first minute (model load, arenas), then flat: that is not a leak.
    g = soak.memory_growth(series(lambda t: 500.0 + 500.0 * min(t, 45.0) / 45.0, 300))
    assert g["growth_pct"] == 0.0 and g["verdict"] == "PASS"


def test_leak_fails():
    g = soak.memory_growth(series(lambda t: 1000.0 if t < 120 else 1100.0, 600))
    assert g["growth_pct"] == 10.0 and g["growth_mb"] == 100.0
    assert g["verdict"] == "FAIL" and g["max_mb"] == 1100.0


def test_goal_is_strict_and_adjustable():
    at_goal = series(lambda t: 100.0 if t < 120 else 105.0, 300)
    assert soak.memory_growth(at_goal)["growth_pct"] == 5.0
    assert soak.memory_growth(at_goal)["verdict"] == "FAIL"  # the goal is *under* 5%
    assert soak.memory_growth(at_goal, goal_pct=10.0)["verdict"] == "PASS"


def test_shrinking_memory_passes():
    g = soak.memory_growth(series(lambda t: 1000.0 if t < 120 else 900.0, 300))
    assert g["growth_pct"] == -10.0 and g["verdict"] == "PASS"


def test_median_ignores_a_spike_and_order():
    pts = series(lambda t: 1000.0, 300)
    pts[60] = (60.0, 5000.0)  # one sample at the mark itself
    pts[-1] = (300.0, 5000.0)
    g = soak.memory_growth(list(reversed(pts)))
    assert g["baseline_mb"] == 1000.0 and g["end_mb"] == 1000.0 and g["verdict"] == "PASS"


@pytest.mark.parametrize("seconds", [30, 60, 89])
def test_run_shorter_than_needed_is_not_measurable(seconds):
    g = soak.memory_growth(series(lambda t: 1000.0, seconds))
    assert not g["measurable"] and g["verdict"] is None and g["growth_pct"] is None
    assert "needs at least 90 s" in g["reason"] and f"lasted {seconds} s" in g["reason"]


def test_shortest_measurable_run():
    g = soak.memory_growth(series(lambda t: 1000.0, 90))
    assert g["measurable"] and g["verdict"] == "PASS"


def test_window_changes_what_is_needed():
    g = soak.memory_growth(series(lambda t: 1.0, 100), window_s=40.0)
    assert not g["measurable"] and "at least 120 s" in g["reason"]  # 60 + 40/2 + 40


def test_no_samples_and_gaps():
    assert soak.memory_growth([])["reason"] == "no samples"
    assert soak.memory_growth([(0.0, None), (100.0, None)])["reason"] == "no samples"
    gap = [(t, v) for t, v in series(lambda t: 1000.0, 300) if not 40 <= t <= 80]
    g = soak.memory_growth(gap)
    assert not g["measurable"] and "no samples within 10 s of the 60 s mark" in g["reason"]


def test_end_is_the_runs_end():
    g = soak.memory_growth(series(lambda t: 1000.0, 200), end_s=300.0)
    assert not g["measurable"] and "the service was gone" in g["reason"]
    assert soak.memory_growth(series(lambda t: 1000.0, 300), end_s=300.0)["verdict"] == "PASS"


def test_zero_baseline_is_not_measurable():
    g = soak.memory_growth(series(lambda t: 0.0 if t < 100 else 50.0, 300))
    assert not g["measurable"] and "not running" in g["reason"]


def test_overall_verdict():
    p, f, n = {"verdict": "PASS"}, {"verdict": "FAIL"}, {"verdict": None}
    assert soak.overall_verdict({"nginx": p, "frontend": p}) == "PASS"
    assert soak.overall_verdict({"nginx": p, "frontend": f}) == "FAIL"
    assert soak.overall_verdict({"nginx": p, "frontend": n}) == "NOT MEASURABLE"
    assert soak.overall_verdict({"nginx": f, "frontend": n}) == "FAIL"
    assert soak.overall_verdict({"nginx": p, "client": f}) == "PASS"  # the harness is not the stack
    assert soak.overall_verdict({}) == "NOT MEASURABLE"


# ------------------------------------------------------------------ resources.csv -> report
def write_resources(path: Path, seconds: float, services: dict) -> None:
    """services: name -> f(t) in MB; PSS every other sample, a gone service as n_procs 0."""
    with results.CsvLog(path, resources.COLUMNS) as log:
        for k, t in enumerate(np.arange(-0.5, seconds + 1e-9, 1.0)):
            for name, f in services.items():
                mb = f(t)
                log.row([f"{t:.3f}", name, "" if k == 0 else "50.0", f"{k * 0.5:.3f}",
                         f"{mb:.1f}" if mb else "0.0", f"{mb * 0.8:.1f}" if mb and k % 2 == 0 else "",
                         1 if mb else 0])


def test_memory_report_from_resources_csv(tmp_path):
    path = tmp_path / "resources.csv"
    write_resources(path, 180, {
        "nginx": lambda t: 10.0,
        "frontend": lambda t: 1000.0 if t < 100 else 1200.0,
        "client": lambda t: 300.0 + t,
        "backend": lambda t: 800.0 if t < 150 else None,  # died at 150 s
    })
    samples = soak.read_resources(path)
    assert set(samples) == {"nginx", "frontend", "client", "backend"}
    assert samples["nginx"][0]["cpu_percent"] is None and samples["nginx"][1]["cpu_percent"] == 50.0
    assert all(r["rss_mb"] > 0 for r in samples["backend"])  # no 0 MB from the dead service
    report = soak.memory_report(samples)
    s = report["services"]
    assert s["nginx"]["rss"]["verdict"] == "PASS"
    assert s["frontend"]["rss"]["growth_pct"] == 20.0 and s["frontend"]["rss"]["verdict"] == "FAIL"
    assert s["frontend"]["pss"]["growth_pct"] == 20.0  # PSS read at every other sample only
    assert s["frontend"]["pss"]["baseline_samples"] < s["frontend"]["rss"]["baseline_samples"]
    assert s["client"]["rss"]["verdict"] == "FAIL"
    assert not s["backend"]["rss"]["measurable"] and "gone (last seen at 150 s)" in s["backend"]["rss"]["reason"]
    assert report["verdict"] == "FAIL" and report["verdict_excludes"] == "client"
    cpu = soak.cpu_per_bin(samples, 60.0)
    assert cpu["nginx"] == [50.0, 50.0, 50.0]  # 0-60, 60-120, 120-179.5 s; the -0.5 s sample is before the start


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "resources.csv"
    write_resources(path, 150, {"nginx": lambda t: 10.0, "frontend": lambda t: 1000.0 + t / 10,
                                "client": lambda t: 300.0})
    samples = soak.read_resources(path)
    doc = {
        "arch": "embedded", "runtime": "native", "interrupted": False,
        "settings": {"duration": "2m30s", "load": 0.7, "capacity_images_per_s": 300.0, "rate": 210.0,
                     "batch": 1, "codec": "json", "bin_s": 60.0},
        "memory": soak.memory_report(samples),
        "per_bin": [{"start_s": 60.0 * b, "seconds": 60.0 if b < 2 else 30.0,
                     "latency_ms": {"p50": 5.0 + b, "p99": 20.0 + b}, "errors_by_status": {"502": b}}
                    for b in range(3)],
    }
    json.dumps(doc)  # what the plot reads is what summary.json holds
    out = soak.plot(doc, samples, tmp_path / "soak.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 10_000


# ------------------------------------------------------------------ options (bench.options.SoakOptions)
def test_options_defaults_and_knobs():
    a = parse(SoakOptions, ["--arch", "embedded"])
    assert a.duration_s == 600 and a.load == 0.70 and a.rate is None and a.probe_s == 15 and a.bin_s == 60
    assert a.window_s == soak.DEFAULT_WINDOW_S and a.sample_hz == 1.0 and a.runtime == "native"
    assert a.goal == soak.GOAL_PCT
    a = parse(SoakOptions, ["--arch", "fastapi", "--duration", "1h", "--rate", "50", "--runtime", "docker",
                            "--codec", "raw", "--batch", "4"])
    assert (a.duration_s, a.rate, a.runtime, a.codec, a.batch) == (3600, 50.0, "docker", "raw", 4)


@pytest.mark.parametrize("argv", [["--duration", "soon"], ["--duration", "0"], ["--load", "0"], ["--rate", "-1"],
                                  ["--n", "0"], ["--batch", "0"], ["--probe", "x"]])
def test_options_reject(argv, capsys):
    with pytest.raises(SystemExit):
        parse(SoakOptions, ["--arch", "embedded", *argv])
    assert argv[0] in capsys.readouterr().err  # the message names the flag


def test_recorder_counts_what_it_writes(tmp_path):
    from bench import client
    from bench.session import Recorder

    req = client.Request(0, b"{}", "application/json", np.array([3]))
    log = results.CsvLog(tmp_path / "requests.csv", results.REQUEST_COLUMNS)
    said = []
    rec = Recorder(log, 100.0, **soak.recording(origin=100.0, rate=10.0, passes_of=5, bin_s=1.0, say=said.append))
    for i in range(25):
        due = 100.0 + i / 10.0
        status = 200 if i % 5 else 502
        good = status == 200
        r = client.Result(req, due, due + 0.001, due + 0.005, status, predicted=np.array([3]) if good else None,
                          correct=int(good), error="" if good else "bad gateway")
        rec(r)
    rec.close()
    rec(r)  # a straggler after the close: neither written nor counted
    log.close()
    assert rec.count == log.rows == 25 and rec.late == 1
    assert rec.tally.ok == 20 and rec.tally.correct == 20
    assert sum(sum(b.errors.values()) for b in rec.tally.bins.values()) == 5
    assert sorted(rec.tally.bins) == [0, 1, 2] and rec.tally.bins[0].count == 10
    assert len(said) == 3 and "errors 502: 2" in said[0]
    rows = (tmp_path / "requests.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [i // 5 for i in range(25)]  # the pass over the images
    assert math.isclose(float(rows[0].split(",")[5]), 5.0, abs_tol=1e-3)


# ------------------------------------------------------------------ the shape, run against a trivial server
class _TrivialStack:
    arch = "embedded"

    def __init__(self, url: str):
        self.url = url
        self.doc = {"runtime": "native", "services": {"nginx": {}}}

    def processes(self) -> dict:
        return {}


def test_the_probe_sets_the_soak_rate(tmp_path):
    """Warm-up, the capacity probe, then the soak at ``--load`` x the capacity (bench.shapes.SoakShape)."""
    prepared = client.prepare(np.zeros((12, 32, 32, 3), np.uint8), np.zeros(12, np.int64), 1, "raw")
    options = SoakOptions(arch="embedded", duration="1s", probe="1s", probe_concurrency=2, load=0.05, warmup=3,
                          n=12, out=tmp_path, progress=False, bin="1s")
    with TrivialServer(_reply_for(1)) as url:
        run = soak.Soak(options, _TrivialStack(url), prepared)
        warm = run.shape().tick([])
        record = run.run(tmp_path)
    assert (warm.kind, warm.count, warm.concurrency, warm.measured) == (shapes.CLOSED, 3, 2, False)
    doc = record.doc()
    capacity, s = doc["capacity"], doc["settings"]
    assert capacity["measured"] and capacity["concurrency"] == 2 and capacity["images_per_s"] > 0
    assert s["rate_source"] == "measured" and s["capacity_images_per_s"] == capacity["images_per_s"]
    assert s["rate"] == pytest.approx(0.05 * capacity["images_per_s"], rel=1e-3)
    assert doc["requests"]["count"] == doc["requests"]["planned"]
    assert abs(doc["requests"]["planned"] - s["rate"] * 1.0) <= 1  # 1 s at the rate
    assert not doc["interrupted"] and "error" not in doc
