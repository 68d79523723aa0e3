"""The engines study's plan (pure), how it is run (test doubles: no server, no engine), and a tiny real curve."""
from __future__ import annotations

import importlib
import json
import time

import numpy as np
import pytest

from bench import options as opts
from bench import study as studies
from bench.records import RunRecord
from bench.studies.engines import curve
from bench.studies.engines.knobs import variants
from servebench import registry
from servebench.settings import Settings

pytestmark = pytest.mark.unit

STUDY = "engines"
plan_mod = importlib.import_module("bench.studies.engines.experiments")
ALL = [("tensorflow", "f32"), ("xla", "f32"), ("onnxruntime", "f32"), ("openvino", "f32"), ("openvino", "bf16"),
       ("litert", "f32")]


def study(**kw) -> opts.StudyOptions:
    return opts.StudyOptions(study=STUDY, **kw)


def test_the_registry_finds_the_study_and_its_knobs():
    plugin = studies.load(STUDY)
    assert isinstance(plugin, studies.StudyPlugin)
    assert plugin.__name__ == registry.study(STUDY).module + ".experiments"
    k = Settings().section(STUDY)
    assert (k.repeats, k.threads, k.batch_sizes) == (3, (1, 2), (1, 2, 4, 8, 16, 32, 64))
    assert list(variants(k.list)) == ALL


def test_the_engine_list_is_checked():
    assert variants(("openvino:bf16", "tensorflow")) == (("openvino", "bf16"), ("tensorflow", "f32"))
    with pytest.raises(ValueError, match="unknown engine 'tvm'"):
        Settings(engines_list="tensorflow,tvm")
    with pytest.raises(ValueError, match="xla runs f32"):
        Settings(engines_list="xla:bf16")


def test_the_plan_is_the_curves_round_the_engines_then_the_checks_then_the_stacks(tmp_path):
    plan = studies.load(STUDY).experiments(study(out=tmp_path), Settings())
    curves = [e for e in plan if isinstance(e.options, curve.CurveOptions)]
    checks = [e for e in plan if isinstance(e.options, plan_mod.EvaluateOptions)]
    bench = [e for e in plan if isinstance(e.options, opts.BenchOptions)]
    assert plan == curves + checks + bench
    assert [(e.options.engine, e.options.precision) for e in curves] == ALL * 3  # repeats go round the engines
    assert [e.options.repeat for e in curves[::6]] == [1, 2, 3]
    assert all(e.options.threads == (1, 2) and e.options.batch_sizes == (1, 2, 4, 8, 16, 32, 64) for e in curves)
    assert [(e.options.engine, e.options.precision) for e in checks] == ALL and checks[0].options.n is None
    assert len(bench) == 6 * 2 * 2 * 3 * 2  # engines x arches x batching x repeats x (c=1, saturated)
    assert {e.arch for e in bench} == {"embedded", "fastapi"}
    first = bench[:12]  # tensorflow on embedded: off, then on, alternating c=1 and the saturated level
    assert [e.options.concurrency for e in first[:4]] == [1, 16, 1, 16]
    assert [(e.options.n, e.options.codec) for e in first[:2]] == [(500, "raw"), (2000, "raw")]
    assert first[0].settings["batch_max_size"] == 1 and first[6].settings["batch_max_size"] == 16
    assert all(e.settings["engine"] == "tensorflow" and "openvino_precision" not in e.settings for e in first)
    bf16 = [e for e in bench if e.settings.get("openvino_precision") == "bf16"]
    assert len(bf16) == 24 and all(e.settings["engine"] == "openvino" for e in bf16)
    assert all(e.options.study == STUDY and e.options.out == tmp_path for e in plan)


def test_quick_and_the_knobs_scale_it_down(tmp_path):
    settings = Settings(engines_list="tensorflow,openvino:f32", engines_repeats=1, engines_parts="curve,stacks")
    plan = studies.load(STUDY).experiments(study(out=tmp_path, quick=True, arches=("embedded",), n=50), settings)
    curves = [e.options for e in plan if isinstance(e.options, curve.CurveOptions)]
    bench = [e.options for e in plan if isinstance(e.options, opts.BenchOptions)]
    assert len(curves) == 2 and curves[0].batch_sizes == (1, 8, 64) and curves[0].seconds == 0.3
    assert not [e for e in plan if isinstance(e.options, plan_mod.EvaluateOptions)]
    assert len(bench) == 2 * 2 * 2 and {o.n for o in bench} == {50} and {o.arch for o in bench} == {"embedded"}


class CoreDouble:
    """A test double of InferenceCore: about 1 ms a call."""

    def run(self, inputs):
        time.sleep(0.001)
        return {"probabilities": np.zeros((len(inputs["images"]), 10), np.float32)}


def test_engine_points_time_every_call():
    arrays = {"images": np.zeros((10, 32, 32, 3), np.uint8)}
    points = curve.engine_points(CoreDouble(), arrays, (1, 4, 16), seconds=0.05, warmup_calls=1)
    assert [p["batch"] for p in points] == [1, 4, 16]
    for p in points:
        assert p["calls"] >= 5 and p["images"] == p["calls"] * p["batch"] and p["p50_ms"] >= 1.0
        assert p["images_per_s"] > 0 and p["cpu_ms_per_image"] >= 0
    assert curve.rows_of(arrays, 16, 0)["images"].shape == (16, 32, 32, 3)  # fewer inputs than a batch: repeated
    assert curve.rows_of(arrays, 4, 1)["images"].shape == (4, 32, 32, 3)


def test_run_goes_in_plan_order_and_an_engine_that_fails_skips_only_itself(tmp_path, monkeypatch):
    from bench import target
    from servebench import runtime as runtimes

    calls = []

    def record(kind, **kw):
        return RunRecord(kind=kind, run_id=f"r{len(calls)}", **kw)

    def fake_curve(options, settings, log=print):
        calls.append(("curve", options.engine))
        return record("engines-curve")

    def fake_evaluate(options, settings, log=print):
        calls.append(("evaluate", options.engine))
        return None if options.engine == "xla" else record("evaluate")

    def fake_execute(plan, options, settings, log=print):
        engine = plan[0].settings["engine"]
        calls.append(("stacks", engine, len(plan)))
        if engine == "xla":
            raise runtimes.StackError("xla stack did not come up")
        return [record("bench") for _ in plan]

    monkeypatch.setattr(curve, "measure", fake_curve)
    monkeypatch.setattr(plan_mod, "evaluate", fake_evaluate)
    monkeypatch.setattr(studies, "execute", fake_execute)
    monkeypatch.setattr(target, "running", lambda *a: None)
    settings = Settings(engines_list="tensorflow,xla", engines_repeats=1)
    logged = []
    done = plan_mod.run(study(out=tmp_path, arches=("embedded",)), settings, log=logged.append)
    assert calls == [("curve", "tensorflow"), ("curve", "xla"), ("evaluate", "tensorflow"), ("evaluate", "xla"),
                     ("stacks", "tensorflow", 4), ("stacks", "xla", 4)]
    assert [r.kind for r in done] == ["engines-curve", "engines-curve", "evaluate", "bench", "bench", "bench", "bench"]
    assert any("xla: its stacks did not run" in line for line in logged)


@pytest.mark.dataset
@pytest.mark.slow
def test_a_tiny_real_curve_on_tensorflow(tmp_path, cifar_dir):
    options = curve.CurveOptions(out=tmp_path, data_dir=cifar_dir, study=STUDY, engine="tensorflow",
                                 threads=(1,), batch_sizes=(1, 4), seconds=0.2, warmup_calls=1)
    rec = curve.measure(options, Settings(), log=lambda *_: None)
    assert rec.kind == "engines-curve" and not rec.interrupted and not rec.get("error")
    doc = json.loads((tmp_path / rec.run_id / "summary.json").read_text())
    [c] = doc["curves"]
    assert [p["batch"] for p in c["points"]] == [1, 4] and c["points"][0]["p50_ms"] > 0
    assert doc["model"]["engine"] == "tensorflow" and (tmp_path / rec.run_id / "curve.csv").is_file()
