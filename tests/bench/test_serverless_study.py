"""The serverless study's plan and report section (no store, no functions)."""
from pathlib import Path

import pytest

from bench import options as opts
from bench import study
from bench.report.sections import Context, Figure
from bench.studies.serverless import published, report
from servebench import registry

pytestmark = pytest.mark.unit


def test_the_study_is_registered_and_its_plan_is_pure(tmp_path):
    assert registry.study("serverless").module == "bench.studies.serverless"
    plan = study.load("serverless").experiments(opts.StudyOptions(study="serverless", out=tmp_path))
    assert [s.name for s in plan] == ["setup", "check", "fig3", "fig4", "fig5", "tables", "baseline"]
    assert not any(tmp_path.iterdir())


def test_the_object_store_is_a_registry_service_with_its_own_compose_profile():
    svc = registry.service("objectstore")
    assert registry.profiles_of("objectstore") == ("serverless",)
    assert "-ip.bind=127.0.0.1" in svc.command and "-s3" in svc.command


class _Run:
    def __init__(self, doc):
        self.doc, self.run_id, self.kind = doc, "r1", "serverless"

    def get(self, *keys, default=None):
        v = self.doc
        for k in keys:
            if not isinstance(v, dict) or k not in v:
                return default
            v = v[k]
        return v


def _spread(median, lo, hi, n=3):
    return {"n": n, "median": median, "min": lo, "max": hi}


DOC = {
    "settings": {"memory_mb": 3008, "chunk": 100, "repeats": 3, "record_sizes": [100, 250], "table_sizes": [1000],
                 "fig4_sizes": [1000], "parallelism": [1, 2, 4], "fig5_records": 4, "fig5_record_size": 100},
    "cpu_count": 2, "prices": {"name": "study-2019", "date": "2019-06-01"}, "wall_s": 900.0,
    "check": {"images": 1000, "chunk": 100, "classes_equal": True, "max_abs_prob_diff": 0.0, "accuracy": 0.8},
    "fig3": [{"record_size": s, "stage": st, "start": t, "repeat": r, "chunk": 0, "cold": t == "cold",
              "duration_s": 1.0 + r / 10, "init_s": 0.5 if t == "cold" else 0, "ok": True,
              "peak_memory_mb": 900.0 if st == "FC" else 500.0 + (st == "Conv_1") * s}
             for s in (100, 250) for st in published.STAGES for t, r in (("cold", 0), ("warm", 0), ("warm", 1))]
    + [{"record_size": s, "stage": "Conv_1", "start": "cold", "repeat": 0, "chunk": 100, "cold": True,
        "duration_s": 1.0, "init_s": 0.5, "ok": True, "peak_memory_mb": 520.0} for s in (100, 250)],
    "fig4": [{"record_size": 1000, "mode": "four functions", "time_s": _spread(40.0, 38.0, 45.0),
              "wall_s": _spread(60.0, 58.0, 65.0), "peak_memory_mb": _spread(1500.0, 1490.0, 1510.0), "failed": 0},
             {"record_size": 1000, "mode": "one process", "time_s": _spread(20.0, 19.0, 21.0),
              "wall_s": _spread(25.0, 24.0, 26.0), "peak_memory_mb": _spread(1600.0, 1590.0, 1610.0), "failed": 0}],
    "fig5": [{"parallelism": p, "wall_s": 10.0 / p, "cost_usd": 0.01, "done": 4, "failed": 0, "vcpus_asked": 1.7 * p,
              "cores_exhausted": 1.7 * p > 2, "images": 400} for p in (1, 2, 4)],
    "tables": [{"setting": f"{name}-1000", "record_size": 1000, "memory_mb": dict.fromkeys(published.STAGES, mem),
                "n": 3, "failed": 0, "failures": [], "time_s": t, "time_s_min": t - 1, "time_s_max": t + 1,
                "cost_usd": usd, "cost_usd_min": usd, "cost_usd_max": usd, "cost_per_1000_images": usd,
                "peak_memory_mb": {st: _spread(1000.0, 990.0, 1010.0) for st in published.STAGES}}
               for name, mem, t, usd in (("memMax", 3008, 40.0, 0.002), ("memMin", 1024, 80.0, 0.0015))],
    "baseline": [{"record_size": s, "seconds": 0.5, "seconds_min": 0.4, "seconds_max": 0.6, "n": 3} for s in (100, 250)],
}


def test_the_section_draws_its_figures_and_labels_alexnet_timing_only(tmp_path):
    ctx = Context(Path(tmp_path), [_Run(DOC)], [])
    sec = report.section(ctx)
    figures = [b for b in sec.blocks if isinstance(b, Figure)]
    assert {f.name for f in figures} == {"serverless-fig3", "serverless-fig4", "serverless-fig5"}
    for f in figures:
        assert f.draw(tmp_path / f.file).stat().st_size > 0
        assert "timing and memory only" in f.caption
    assert any(getattr(b, "headers", None) and "Conv_1" in b.headers for b in sec.blocks)


def test_every_number_of_the_tables_and_fig4_says_its_repeats(tmp_path):
    ctx = Context(Path(tmp_path), [_Run(DOC)], [])
    frags = report.readme(ctx)
    results = frags["serverless-results"]
    assert "memMax 40.0 s (median of 3 repeats, 39.0–41.0 s)" in results
    assert "memMin (1,024 / 1,024 / 1,024 / 1,024 MB, found by running) 80.0 s (median of 3 repeats" in results
    assert "one process 20.0 s (median of 3 repeats, 19.0–21.0 s)" in results and "(2.00x the time)" in results
    assert "Conv_1's cold peak in chunks of 100 images against a record at once: 520 against 600 MB at 100" in results
    assert "FC is not the lightest stage here" in results
    size, warm, one = report.warm_pipeline(_Run(DOC))
    assert (size, one) == (100, 0.5) and warm > one and "slower than one process" in results
    run = frags["serverless-run"]
    assert "SB_SERVERLESS_TABLE_SIZES=1000" in run and "SB_SERVERLESS_FIG4_SIZES=1000" in run
    assert "3 repeats each" in run and "15.0 minutes" in run
    assert "medians of 3 repeats, min–max" in report.answer(ctx).text


def test_the_make_line_names_only_the_knobs_that_differ_from_the_defaults():
    assert report.make_command({"record_sizes": [100, 250], "repeats": 3, "chunk": 100}) == \
        "make study STUDY=serverless"
    assert report.make_command({"table_sizes": [1000, 500], "repeats": 5}) == \
        'make study STUDY=serverless SB_SERVERLESS_TABLE_SIZES="1000 500" SB_SERVERLESS_REPEATS=5'


def test_the_section_without_runs_says_how_to_make_one(tmp_path):
    sec = report.section(Context(Path(tmp_path), [], []))
    assert "make study STUDY=serverless" in sec.blocks[-1].text
