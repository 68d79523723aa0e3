"""The saturation study's headline comparison from synthetic records: which runs are repeats of one set-up,
medians with min-max and n, goals judged on the medians (never the best run), the model curve's repeats,
and the latency distribution pooling the repeats."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import distributions, records
from bench.report import docs, plots
from bench.report.sections import Context
from bench.studies.saturation import answer, headline

pytestmark = pytest.mark.unit

COMMIT = "feedface"
SERVER_MS = {"embedded": 2.0, "flask": 3.0, "fastapi": 3.0, "triton": 6.0}


def provenance(created: str, commit: str = COMMIT) -> dict:
    return {"created_utc": created, "git_commit": commit, "versions": {}, "machine": {"logical_cpus": 2}}


def make_run(root: Path, arch: str, mode: str, c: int, k: int, *, thr: float, p50: float, commit: str = COMMIT,
             day: str = "02", study: str = "saturation") -> str:
    created = f"2026-12-{day}T07:{10 + k:02d}:{c:02d}+00:00"
    run_id = f"202612{day}T07{10 + k:02d}{c:02d}Z-bench-{arch}-{mode}" + ("" if study == "saturation" else "-other")
    server_s = SERVER_MS[arch] / 1000
    doc = {"kind": "bench", "run_id": run_id, "study": study, "arch": arch, "runtime": "native",
           "interrupted": False, "provenance": provenance(created, commit),
           "settings": {"n": 1000 if c == 1 else 3000, "batch": 1, "codec": "raw", "concurrency": c, "rate": None},
           "stack": {"knobs": {"SB_BATCH_MAX_SIZE": "16" if mode == "on" else "1", "SB_INTRA_OP_THREADS": "1",
                               "SB_INTER_OP_THREADS": "1", "SB_CALL_PATH": "signature"}},
           "latency_ms": {"p50": p50, "p99": p50 * 3}, "throughput_images_per_s": thr,
           "server_batch": {"mean": 4.0} if mode == "on" and c > 1 else None,
           "resources": {"nginx": {"cpu_seconds_per_image": server_s / 4}, "frontend": {
               "cpu_seconds_per_image": server_s * 3 / 4}, "client": {"cpu_seconds_per_image": 0.0005}}}
    (root / run_id).mkdir(parents=True)
    records.write(root / run_id, doc)
    tally = distributions.LatencyTally()
    for i in range(50):
        tally.record(0, p50 * (0.8 + i / 100))
    distributions.write(root / run_id, tally)
    return run_id


def make_curve(root: Path, k: int, limit: float, b1: float, commit: str = COMMIT) -> str:
    run_id = f"20261202T0700{k:02d}Z-model-curve"
    points = [{"batch": 1, "images_per_s": b1, "cpu_ms_per_image": 1.0},
              {"batch": 16, "images_per_s": limit, "cpu_ms_per_image": 0.5}]
    doc = {"kind": "model-curve", "run_id": run_id, "study": "saturation", "interrupted": False,
           "provenance": provenance(f"2026-12-02T07:00:{k:02d}+00:00", commit),
           "settings": {"batch_sizes": [1, 16], "seconds": 2.0, "threads": [1]},
           "curves": [{"intra_op_threads": 1, "inter_op_threads": 1, "points": points}],
           "limit": {"images_per_s": limit, "batch": 16, "intra_op_threads": 1, "cpu_bound_images_per_s": 4000.0}}
    (root / run_id).mkdir(parents=True)
    records.write(root / run_id, doc)
    return run_id


@pytest.fixture
def results(tmp_path) -> Path:
    """Embedded and Triton, 3 repeats each set-up; embedded batching on has one outlier run (the best)."""
    for k in range(3):
        make_curve(tmp_path, k, limit=2000.0 + 100 * k, b1=900.0 + 10 * k)
        for mode in ("off", "on"):
            make_run(tmp_path, "embedded", mode, 1, k, thr=300.0, p50=3.0 + 0.1 * k + (0.2 if mode == "on" else 0))
            best = {"off": 500.0, "on": 700.0 if k < 2 else 1400.0}[mode]  # one lucky run
            make_run(tmp_path, "embedded", mode, 16, k, thr=best + 10 * k, p50=30.0)
            make_run(tmp_path, "triton", mode, 1, k, thr=120.0, p50=8.0 + 0.1 * k)
            make_run(tmp_path, "triton", mode, 16, k, thr=200.0 + 10 * k, p50=80.0)
    return tmp_path


def test_repeats_of_one_set_up_are_grouped_and_the_newest_set_counts(results):
    make_run(results, "embedded", "off", 16, 0, thr=99.0, p50=1.0, commit="older", day="01")
    make_run(results, "embedded", "off", 16, 1, thr=99.0, p50=1.0, study="docker-serving")
    table = headline.cells(Context.read(results).runs)
    assert set(table) == {(a, m, c) for a in ("embedded", "triton") for m in ("off", "on") for c in (1, 16)}
    off = table[("embedded", "off", 16)]
    assert off.n == 3 and off.throughput.values == (500.0, 510.0, 520.0)
    assert (off.throughput.median, off.throughput.lo, off.throughput.hi) == (510.0, 500.0, 520.0)
    assert off.server_cpu.median == pytest.approx(2.0) and off.client_cpu.median == pytest.approx(0.5)
    # Efficiency: the curve's CPU per image at the batch that ran over the server's (batch 1 off, 4 on).
    assert off.efficiency.median == pytest.approx(1.0 / 2.0)
    assert table[("embedded", "on", 16)].efficiency.median < off.efficiency.median


def test_goals_are_judged_on_the_medians_never_on_the_best_run(results):
    table = headline.cells(Context.read(results).runs)
    goals = {g["goal"]: g for g in headline.goal_rows(table)}
    best = goals["batching on ÷ off at 16 in flight, best architecture"]
    assert best["measured"].startswith(f"{710 / 510:.2f}×")  # the medians; the lucky 1,420 would give 2.78×
    assert best["ok"] is True and "the medians of 3 repeats each" in best["measured"]
    p50 = goals["p50 at concurrency 1, batching on − off (every architecture)"]
    assert p50["measured"].startswith("largest +0.20 ms") and p50["ok"]


def test_spread_says_one_run_or_the_median_of_n_repeats():
    assert headline.Spread((4.0,)).text(unit=" ms") == "4.00 ms (one run)"
    assert headline.Spread((3.0, 5.0, 4.0)).text(unit=" ms") == "4.00 ms (median of 3 repeats, 3.00–5.00)"
    assert headline.medians_of([headline.Spread((1.0,))]) == "one run each"
    assert headline.medians_of([headline.Spread((1.0, 2.0)), headline.Spread((1.0, 2.0, 3.0))]) == \
        "the medians of 2-3 repeats each"


def test_the_model_curve_repeats_give_medians(results):
    make_curve(results, 9, limit=9999.0, b1=1.0, commit="other")  # newest, but its own commit: a set of one
    fig = headline.curve_figures(Context.read(results).runs)
    assert fig["limit"].n == 1 and fig["limit"].median == 9999.0
    (results / "20261202T070009Z-model-curve" / "summary.json").unlink()
    (results / "20261202T070009Z-model-curve").rmdir()
    fig = headline.curve_figures(Context.read(results).runs)
    assert fig["limit"].values == (2000.0, 2100.0, 2200.0) and fig["b1_images_per_s"].median == 910.0


def test_the_readme_blocks_and_the_answer_quote_medians_with_n(results):
    ctx = Context.read(results)
    frags = answer.readme(ctx)
    assert "every cell the median of 3 repeats (min–max)" in frags["saturation-table"]
    assert "| Embedded | off | 3.10 (3.00–3.20) | 510 (500–520) |" in frags["saturation-table"]
    # The plan's architectures these runs lack are named, not dropped in silence.
    assert frags["saturation-table"].endswith("not in these runs: Flask, FastAPI, Ray Serve.")
    assert "2,100 images/s (median of 3 repeats, 2,000–2,200)" in frags["saturation-model"]
    assert "judged on the medians of 3 repeats each" in frags["saturation-goals"]
    card = answer.answer(ctx).text
    assert "Embedded with batching on, 710 images/s (median of 3 repeats, 700–1,420)" in card
    assert "one run" not in card


def test_the_latency_distribution_pools_the_repeats_with_a_distribution(results):
    ctx = Context.read(results)
    drawn = {r.arch: r for r in ctx.drawn}
    assert set(drawn) == {"embedded", "triton"}  # batching on is a variant, not the architecture
    assert all(len(ctx.latency_runs[r.run_id]) == 3 for r in drawn.values())
    assert all(ctx.latencies[r.run_id].size == 150 for r in drawn.values())
    assert not [g for g in plots.latency_gaps(ctx) if g[0] in drawn]


def test_the_generated_text_passes_the_sample_size_check(results):
    from tests.bench.test_docs import sample_size_problems

    frags = {k: v for k, v in docs.fragments(Context.read(results)).items() if k.startswith("saturation")}
    frags["answer"] = answer.answer(Context.read(results)).text
    assert [p for name, text in frags.items() for p in sample_size_problems(name, text)] == []
    assert json.dumps(frags)  # plain text throughout
