"""`make sweep` against the real embedded stack at a tiny scale: two stacks (batching off and on), two
closed-loop levels and one open-loop level each, short windows; and a sweep stopped by Ctrl-C."""
from __future__ import annotations

import csv

import pytest

from bench import options as opts, provenance, records, reference, sweep, target
from tests.stacks import stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cifar_dir")]

TINY = {"concurrency": (1, 4), "rate_fractions": (0.5,), "window_s": 0.4, "windows_limit": 4, "warmup_s": 0.2,
        "warmup": 10, "n": 100, "progress": False}
LIMIT = 1000.0  # images/s of the synthetic model curve


def write_curve(out, settings) -> str:
    """A model-curve record with the stack's threads, so that the sweep finds it instead of measuring one."""
    run_dir = out / "20000101T000000Z-model-curve"
    run_dir.mkdir(parents=True)
    points = [{"batch": b, "images_per_s": LIMIT * (0.5 + b / 32), "cpu_ms_per_image": 2.0 / b ** 0.25}
              for b in (1, 4, 16)]
    curves = [{"intra_op_threads": settings.intra_op_threads, "inter_op_threads": settings.inter_op_threads,
               "points": points}]
    records.write(run_dir, {"kind": reference.CURVE_KIND, "run_id": run_dir.name,
                            "settings": {"call_path": settings.call_path}, "curves": curves,
                            "limit": reference.curve_limit(curves, cpus=2),
                            "provenance": {"machine": provenance.machine()}})  # a curve stands on its machine only
    return run_dir.name


def read_csv(path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out, run_dir = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("run")
    settings = stack_settings(frontend_workers=1)
    curve_id = write_curve(out, settings)
    options = opts.SweepOptions(arch="embedded", out=out, run_dir=run_dir, **TINY)
    record = sweep.sweep(options, settings, log=lambda *a: None)
    return record, out / record.run_id, curve_id, options


def test_both_stacks_are_swept_and_brought_down(swept):
    record, folder, curve_id, options = swept
    assert record.kind == "sweep" and not record.interrupted and record.study == "saturation"
    assert set(record.get("modes")) == {"off", "on"} and set(record.get("stacks")) == {"off", "on"}
    knobs = {m: record.get("stacks", m, "knobs") for m in ("off", "on")}
    assert knobs["off"]["SB_BATCH_MAX_SIZE"] in ("1", 1) and str(knobs["on"]["SB_BATCH_MAX_SIZE"]) == "16"
    assert target.running(options.runtime, options.run_dir) is None  # the sweep stopped what it started
    assert record.get("model_curve", "run_id") == curve_id and record.get("limit", "images_per_s")


def test_every_level_follows_the_stability_rule(swept):
    record, *_ = swept
    for mode in ("off", "on"):
        levels = record.get("modes", mode, "levels")
        assert [lv["mode"] for lv in levels] == ["closed", "closed", "open"]
        assert [lv.get("concurrency") for lv in levels[:2]] == [1, 4]
        sat = record.get("modes", mode, "saturation")
        assert levels[2]["rate"] == pytest.approx(0.5 * sat["throughput_images_per_s"], rel=0.01)
        for lv in levels:
            ws = lv["windows"]
            assert 3 <= len(ws) <= 4
            chosen, stable = sweep.chosen_windows(ws, 3, 0.10)
            assert (lv["chosen"], lv["stable"]) == (chosen, stable)
            assert stable or len(ws) == 4  # more windows only while they disagree, up to the limit
            assert lv["errors"] == 0 and lv["accuracy"] > 0.5
            assert lv["images"] == sum(ws[i]["images"] for i in chosen)
            assert all(w["end_s"] > w["start_s"] for w in ws)


def test_cpu_per_image_and_the_model_curve_figures(swept):
    record, *_ = swept
    for mode in ("off", "on"):
        for lv in record.get("modes", mode, "levels"):
            per = lv["cpu_ms_per_image"]
            assert set(per) == {"nginx", "frontend", "client"}  # embedded: no backend service
            assert per["frontend"] > 0 and per["client"] > 0
            assert lv["server_cpu_ms_per_image"] == pytest.approx(per["nginx"] + per["frontend"], abs=2e-4)
            assert lv["client_cpu_ms_per_image"] == per["client"]
            assert lv["server_efficiency"] == pytest.approx(
                lv["model_cpu_ms_per_image"] / lv["server_cpu_ms_per_image"], rel=1e-3)
            assert lv["served_fraction"] == pytest.approx(lv["throughput_images_per_s"] / LIMIT, rel=1e-3)
    off = record.get("modes", "off", "levels")
    assert all(lv["batch_size"]["max"] == 1 for lv in off)
    on = record.get("modes", "on", "levels")
    assert all(lv["batch_size"]["seen"] == 1.0 for lv in on)  # every answer said its batch size
    assert on[1]["batch_size"]["max"] <= 4  # never more than in flight


def test_csvs_match_the_record(swept):
    record, folder, *_ = swept
    levels = read_csv(folder / "levels.csv")
    assert [(r["batching"], r["mode"]) for r in levels] == [(m, k) for m in ("off", "on")
                                                            for k in ("closed", "closed", "open")]
    assert sum(r["saturation"] == "True" for r in levels) == 2
    windows = read_csv(folder / "windows.csv")
    assert len(windows) == sum(len(lv["windows"]) for m in ("off", "on") for lv in record.get("modes", m, "levels"))
    resources = read_csv(folder / "resources.csv")
    assert {r["batching"] for r in resources} == {"off", "on"}
    assert {"nginx", "frontend", "client"} <= {r["service"] for r in resources}


def test_ctrl_c_keeps_what_was_measured_and_stops_the_stack(tmp_path, monkeypatch):
    settings = stack_settings(frontend_workers=1)
    options = opts.SweepOptions(arch="embedded", out=tmp_path / "out", run_dir=tmp_path / "run",
                                model_curve="none", batching=("off", "on"), **TINY)
    real = sweep._sleep_until
    calls = {"n": 0}

    def sleep_until(t):
        calls["n"] += 1
        if calls["n"] == 8:  # the second level, after its first window
            raise KeyboardInterrupt
        real(t)

    monkeypatch.setattr(sweep, "_sleep_until", sleep_until)
    record = sweep.sweep(options, settings, log=lambda *a: None)
    assert record.interrupted and list(record.get("modes")) == ["off"]  # batching on never started
    first, second = record.get("modes", "off", "levels")
    assert not first.get("interrupted") and second["interrupted"] and len(second["windows"]) <= 2
    assert record.get("limit") is None and first["server_efficiency"] is None
    assert records.read(tmp_path / "out" / record.run_id).interrupted
    assert len(read_csv(tmp_path / "out" / record.run_id / "levels.csv")) == 2
    assert target.running(options.runtime, options.run_dir) is None
