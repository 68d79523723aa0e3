"""The ensemble study's plug-in: its plan, its published numbers, and its report section from records."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import records, study
from bench.options import BenchOptions, StudyOptions
from bench.report.sections import Context
from bench.report.runs import load_runs
from bench.studies.ensemble import published, report
from bench.studies.ensemble.experiments import BATCHES, MEMBERS, STUDY

pytestmark = pytest.mark.unit


def test_the_registry_finds_the_study_and_its_architectures():
    from servebench import registry

    assert registry.study(STUDY).module == "bench.studies.ensemble"
    assert {a.name for a in registry.in_study(STUDY)} == {"ensemble-serial", "ensemble-parallel"}


def test_plan_covers_every_stack_and_batch_size():
    plan = study.load(STUDY).experiments(StudyOptions(study=STUDY, quick=True))
    assert len(plan) == 5 * len(BATCHES)
    assert all(isinstance(e.options, BenchOptions) and e.options.study == STUDY for e in plan)
    assert {e.options.batch for e in plan} == set(BATCHES)
    alone = [e for e in plan if e.settings.get("ensemble_members") and len(e.settings["ensemble_members"]) == 1]
    assert {e.settings["ensemble_members"][0] for e in alone} == set(MEMBERS)
    assert all(e.settings["max_batch"] >= 1000 for e in plan)  # batch 1,000 must fit
    assert all(e.options.n >= e.options.batch for e in plan)


def test_plan_follows_the_architectures_asked_for():
    plan = study.load(STUDY).experiments(StudyOptions(study=STUDY, quick=True, arches=("ensemble-serial",)))
    assert {e.arch for e in plan} == {"ensemble-serial"} and len(plan) == len(BATCHES)


def test_published_numbers_are_the_study_s():
    assert published.ACCURACY_PERCENT["Ensemble"] == 77.36
    assert published.gain_over_best_points() == 2.47
    assert published.PARALLEL_SPEEDUP_UP_TO == 2.6 and published.BATCH_1000_SLOWER_THAN_SLOWEST_PERCENT == 7.7


def _write(root: Path, kind: str, n: int, **doc) -> None:
    path = root / f"20260101T{n:06d}Z-{kind}"  # run ids sort in write order
    path.mkdir()
    records.write(path, {"kind": kind, "run_id": path.name, "study": STUDY,
                         "provenance": {"machine": {"logical_cpus": 2}}, **doc})


@pytest.fixture
def results(tmp_path):
    times = {"cnn alone": 10.0, "resnet20 alone": 6.0, "mobilenetv2 alone": 8.0, "serial": 25.0, "parallel": 15.0}
    n = 1
    for label, t in times.items():
        member = label.split()[0] if "alone" in label else None
        arch = "ensemble-serial" if label == "serial" else "ensemble-parallel"
        knobs = {"SB_ENSEMBLE_MEMBERS": member or ",".join(MEMBERS)}
        for b in BATCHES:
            _write(tmp_path, "bench", n, arch=arch, settings={"batch": b}, stack={"knobs": knobs},
                   latency_ms={"p50": t * b ** 0.5})
            n += 1
    _write(tmp_path, "ensemble-inprocess", 101, accuracy={
        "test_images": 10000, "members": {m: {"model": f"cifar10_{m}", "test_accuracy": a}
                                          for m, a in zip(MEMBERS, (0.76, 0.74, 0.72))},
        "ensemble": {"test_accuracy": 0.79}, "gain_points_over_best": 3.0},
        latency={str(b): {"inprocess-serial": {"p50_ms": 5.0 * b}, "inprocess-threads": {"p50_ms": 3.0 * b}}
                 for b in BATCHES})
    _write(tmp_path, "ensemble-functions", 102, arch="ensemble-parallel", label="parallel", functions={
        f"ensemble-{m}": {"cold_start_s": 9.0, "limits": {"memory_mb": 1769, "cpus": 1.0}, "peak_memory_mb": 400.0,
                          "cpu_seconds": 12.0, "throttled_s": 0.5, "oom_kills": 0} for m in MEMBERS})
    _write(tmp_path, "ensemble-deadline", 103, arch="ensemble-parallel", deadline={"batch": 10, "rows": [
        {"deadline_ms": 5.0, "accuracy": 0.7, "members_used_mean": 1.2, "member_used_fraction": {"cnn": 0.5},
         "no_answer_requests": 3, "p50_ms": 5.1},
        {"deadline_ms": None, "accuracy": 0.79, "members_used_mean": 3.0, "member_used_fraction": {}, "p50_ms": 20.0}]})
    return tmp_path


def _text(section) -> str:
    out = []
    for b in section.blocks:
        if b.kind == "table":
            out += [" | ".join(c.text for c in row) for row in b.rows]
        elif hasattr(b, "text"):
            out.append(b.text)
    return "\n".join(out)


def test_the_section_sets_ours_beside_the_study_s(results):
    runs, _ = load_runs(results)
    ctx = Context(results, runs, [])
    p50 = report.bench_p50(ctx)
    assert set(p50) == {"cnn alone", "resnet20 alone", "mobilenetv2 alone", "serial", "parallel"}
    refs = report.references(p50)
    assert refs["sum(T)"][1] == pytest.approx(24.0) and refs["max(T)"][1] == pytest.approx(10.0)
    text = _text(report.section(ctx))
    assert "77.36" in text and "79.00" in text and "+3.00" in text  # the study's and ours
    assert "ask for 3 × 1 = 3 cores; this machine has 2" in text  # said plainly, with the arithmetic
    assert "at most k× faster than serial, here 2×" in text and "÷ 2) = 379 ms" in text  # batch 1,000: 759 ÷ 2
    assert "1.67×" in text  # serial ÷ parallel at batch 1: 25 / 15
    assert "none (wait for all)" in text and "ensemble-cnn" in text
    for fig in report.section(ctx).figures:
        assert fig.draw(results / fig.file).is_file()


def test_the_section_renders_with_no_runs(tmp_path):
    section = report.section(Context(tmp_path, [], []))
    assert "not measured" in _text(section) or "no ensemble" in _text(section)
    for fig in section.figures:
        assert fig.draw(tmp_path / fig.file).is_file()


def test_a_run_of_several_passes_gives_the_median_and_range_of_their_p50(results):
    from bench import distributions

    newest_serial = sorted(p for p in results.iterdir() if p.is_dir())[12 + 3]  # serial, batch 1,000
    tally = distributions.LatencyTally()
    for repeat, ms in enumerate((2000.0, 1900.0, 2300.0)):
        for _ in range(10):
            tally.record(repeat, ms)
    distributions.write(newest_serial, tally)
    runs, _ = load_runs(results)
    ctx = Context(results, runs, [])
    s = report.bench_spreads(ctx)["serial"][1000]
    assert [s["median"], s["min"], s["max"]] == pytest.approx([2000.0, 1900.0, 2300.0], rel=1e-3)  # HDR buckets
    assert s["n"] == 3 and s["requests_per_pass"] is None
    shown = r"2,00\d \(1,90\d–2,30\d\)"  # median (min–max), at the histogram's resolution
    assert re.search(shown, _text(report.section(ctx)))
    assert "median of 3 passes" in report.answer(ctx).text
    assert re.search(shown, report.readme(ctx)["ensemble-table"])


def test_cold_starts_are_reported_with_their_sample_counts(results):
    def samples(ms: list[float], starts: dict | None = None) -> list[dict]:
        return [{"latency_ms": v, "status": 200, "correct": 1, "error": None, "start_ms": starts or {}}
                for v in ms]

    for n, (mode, cold_ms) in enumerate((("serial", [9000.0, 9500.0, 8800.0]), ("parallel", [6000.0, 6100.0,
                                                                                            5900.0])), 201):
        starts = {m: 2800.0 for m in MEMBERS}
        _write(results, "ensemble-coldstart", n, arch=f"ensemble-{mode}", label=mode, idle_s=2.0, batch=1,
               cold={"latency_ms": {"median": cold_ms[0], "min": min(cold_ms), "max": max(cold_ms), "n": 3},
                     "ok": 3, "correct": 3,
                     "start_ms": {m: {"median": 2800.0, "min": 2700.0, "max": 2900.0, "n": 3} for m in MEMBERS},
                     "start_sum_ms": {"median": 8400.0, "min": 8300.0, "max": 8500.0, "n": 3},
                     "start_max_ms": {"median": 2900.0, "min": 2800.0, "max": 3000.0, "n": 3}},
               warm={"latency_ms": {"median": 15.0, "min": 14.0, "max": 17.0, "n": 10}, "ok": 10, "correct": 10},
               samples={"cold": samples(cold_ms, starts), "warm": samples([15.0] * 10)})
    runs, _ = load_runs(results)
    ctx = Context(results, runs, [])
    section = report.section(ctx)
    text = _text(section)
    assert "9,000 (8,800–9,500) | 3 | 15.0 (14.0–17.0) | 10" in text
    assert "prints no cold-start figures" in text
    answer = report.answer(ctx).text
    assert "median of 3 cold requests" in answer and "median of 10 warm ones" in answer
    block = report.readme(ctx)["ensemble-coldstart"]
    assert "SB_ENSEMBLE_IDLE_S=2" in block and "8,400 ms (median of 3 cold requests" in block
    for fig in section.figures:
        assert fig.draw(results / fig.file).is_file()
