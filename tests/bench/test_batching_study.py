"""The batching study: its plan (pure), its goals computed from fixture records (test data only, written here),
and one quick run end to end on embedded (integration, slow)."""
from __future__ import annotations

import importlib
import json
import os

import pytest

from bench import options as opts
from bench import study as studies
from bench.report.sections import Context
from servebench import registry
from servebench.settings import Settings

STUDY = "batching"
plan_mod = importlib.import_module("bench.studies.batching.experiments")
measured = importlib.import_module("bench.studies.batching.measured")
report = importlib.import_module("bench.studies.batching.report")
answer = importlib.import_module("bench.studies.batching.answer")


def study(**kw) -> opts.StudyOptions:
    return opts.StudyOptions(study=STUDY, **kw)


# ------------------------------------------------------------------ the plan
@pytest.mark.unit
def test_the_registry_finds_the_study_package():
    plugin = studies.load(STUDY)
    assert isinstance(plugin, studies.StudyPlugin)
    assert plugin.__name__ == registry.study(STUDY).module + ".experiments"


@pytest.mark.unit
def test_the_plan_is_the_curve_the_references_then_two_stacks_per_architecture(tmp_path):
    plan = studies.load(STUDY).experiments(study(out=tmp_path), Settings())
    curve, refs = plan[0], plan[1:4]
    assert curve.options == opts.ModelCurveOptions(out=tmp_path, study=STUDY, progress=False)  # make model-curve's
    assert all(e.options == opts.ReferenceOptions(out=tmp_path, study=STUDY, progress=False) for e in refs)
    bench = plan[4:]
    assert all(isinstance(e.options, opts.BenchOptions) for e in bench)
    assert [e.arch for e in bench][::48] == ["embedded", "flask", "fastapi"]
    per_repeat = [(e.options.codec, e.options.concurrency) for e in bench[:8]]
    assert per_repeat == [("raw", c) for c in (1, 2, 4, 8, 16, 32, 64)] + [("json", 1)]
    defaults, one_knob = bench[:24], bench[24:48]
    assert all(e.settings == {"call_path": "signature"} for e in defaults)
    assert all(e.settings == {"call_path": "signature", "batch_max_size": 32} for e in one_knob)
    assert {(e.options.n, e.options.batch, e.options.warmup) for e in bench} == {(600, 1, plan_mod.WARMUP)}
    assert all(e.options.study == STUDY and e.options.out == tmp_path for e in plan)


@pytest.mark.unit
def test_the_knobs_shape_the_plan_and_refuse_bad_values(tmp_path):
    settings = Settings().model_copy(update={"batching_repeats": 2, "batching_n": 100, "batching_batch": 16,
                                             "batching_concurrency": (4, 32), "batching_arches": ("flask",)})
    plan = studies.load(STUDY).experiments(study(out=tmp_path, n=50), settings)
    bench = [e for e in plan if isinstance(e.options, opts.BenchOptions)]
    assert len([e for e in plan if isinstance(e.options, opts.ReferenceOptions)]) == 2
    assert len(bench) == 2 * 2 * 3 and {e.arch for e in bench} == {"flask"}
    assert {e.options.n for e in bench} == {50}  # --n caps the knob
    assert {e.settings.get("batch_max_size") for e in bench} == {None, 16}
    assert Settings(batching_concurrency="64 1,8").batching_concurrency == (1, 8, 64)
    with pytest.raises(ValueError):
        Settings(batching_concurrency="0,4")
    with pytest.raises(ValueError):
        Settings(batching_batch=1)
    with pytest.raises(ValueError, match="SB_BATCHING_ARCHES"):
        plan_mod.experiments(study(out=tmp_path), Settings().model_copy(update={"batching_arches": ("nope",)}))
    with pytest.raises(ValueError, match="SB_MAX_BATCH"):
        plan_mod.experiments(study(out=tmp_path), Settings().model_copy(update={"batching_batch": 512}))


@pytest.mark.unit
def test_quick_shrinks_what_was_not_set_and_arch_narrows(tmp_path):
    plan = plan_mod.experiments(study(out=tmp_path, quick=True, arches=("embedded",)), Settings())
    bench = [e for e in plan if isinstance(e.options, opts.BenchOptions)]
    assert {e.options.concurrency for e in bench} == set(plan_mod.QUICK["concurrency"])
    assert len(bench) == 2 * plan_mod.QUICK["repeats"] * (len(plan_mod.QUICK["concurrency"]) + 1)
    assert plan[0].options.batch_sizes == plan_mod.QUICK_CURVE["batch_sizes"]
    assert plan_mod.knobs(study(quick=True), Settings(batching_repeats=1)).repeats == 1  # set: kept
    assert plan_mod.experiments(study(out=tmp_path, reference=False, arches=("embedded",)),
                                Settings())[0].options.concurrency == 1


@pytest.mark.unit
def test_each_stack_starts_from_the_defaults_of_what_is_compared():
    caller = Settings(frontend_threads=16, batch_max_size=8, port=9599, frontend_workers=1)
    base = plan_mod.base_settings(caller)
    exp = studies.Experiment("embedded", opts.BenchOptions(arch="embedded"), {"batch_max_size": 32})
    serving = exp.serving_settings(base)  # as bench.study.execute brings the stack up
    assert (serving.batch_max_size, serving.frontend_threads, serving.port, serving.frontend_workers) == \
        (32, Settings.given(batch_max_size=32, frontend_workers=1).frontend_threads, 9599, 1)  # follows, not 16
    assert base.batch_max_size == 1 and base.frontend_threads == Settings.given(frontend_workers=1).frontend_threads


class FakeRuntime:
    """Test double of a runtime: records which stacks were brought up, with what settings."""

    def __init__(self):
        self.calls = []

    def up(self, arch, settings, run_dir=None, log=print):
        self.calls.append(("up", arch, settings.batch_max_size, settings.frontend_threads))

    def down(self, run_dir=None, log=print):
        self.calls.append(("down",))


@pytest.mark.unit
def test_run_measures_its_own_curve_and_brings_each_stack_up_once(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from bench import reference, target
    from bench import run as bench_run
    from servebench import runtime as runtimes

    fake = FakeRuntime()
    benched = []
    monkeypatch.setattr(runtimes, "get", lambda name: fake)
    monkeypatch.setattr(target, "running", lambda *a: None)
    curves = []
    monkeypatch.setattr(reference, "measure_curve", lambda *a, **k: curves.append(1) or
                        SimpleNamespace(interrupted=False))
    monkeypatch.setattr(reference, "measure_isolated", lambda o, s: SimpleNamespace(interrupted=False))
    monkeypatch.setattr(bench_run, "bench", lambda o, s, log: benched.append((o.codec, o.concurrency)) or [
        SimpleNamespace(interrupted=False)])
    settings = Settings().model_copy(update={"batching_repeats": 2, "batching_concurrency": (1, 32),
                                             "batching_arches": ("embedded",)})
    lines = []
    done = plan_mod.run(study(out=tmp_path), settings, log=lines.append)
    assert len(done) == 1 + 2 + 2 * 2 * 3 and curves == [1]  # the curve, two references, the bench runs
    ups = [c for c in fake.calls if c[0] == "up"]
    assert [u[:3] for u in ups] == [("up", "embedded", 1), ("up", "embedded", 32)] and fake.calls[-1] == ("down",)
    assert ups[1][3] == Settings.given(batch_max_size=32).frontend_threads  # the default that follows the knob
    assert benched[:3] == [("raw", 1), ("raw", 32), ("json", 1)]


# ------------------------------------------------------------------ goals from fixture records
def _bench(tmp_path, i, arch, stack, codec, c, rate, p50, cpu_ms, batch=1.0):
    from bench import records

    run_dir = tmp_path / f"20260101T0000{i:02d}Z-bench-{arch}"
    run_dir.mkdir()
    knobs = {"SB_BATCH_MAX_SIZE": "32" if stack == "one-knob" else "1", "SB_FRONTEND_THREADS": "4",
             "SB_BACKEND_THREADS": "4", "SB_INTRA_OP_THREADS": "1", "SB_INTER_OP_THREADS": "1"}
    records.write(run_dir, {
        "kind": "bench", "run_id": run_dir.name, "study": STUDY, "arch": arch, "runtime": "native",
        "settings": {"codec": codec, "concurrency": c, "n": 600, "batch": 1},
        "stack": {"knobs": knobs}, "latency_ms": {"p50": p50, "p99": 2 * p50},
        "throughput_images_per_s": rate, "server_batch": {"mean": batch},
        "resources": {"frontend": {"cpu_seconds_per_image": cpu_ms / 1000}, "client": {"cpu_seconds_per_image": 1e-4}}})


def _fixture(tmp_path):
    from bench import records

    i = 0
    for k in range(3):
        ref = tmp_path / f"20260101T00010{k}Z-reference"
        ref.mkdir()
        records.write(ref, {"kind": "reference", "run_id": ref.name, "study": STUDY,
                            "latency_ms": {"p50": 1.5 + k / 10}})
    curve = tmp_path / "20260101T000200Z-model-curve"
    curve.mkdir()
    records.write(curve, {"kind": "model-curve", "run_id": curve.name, "study": STUDY, "curves": [
        {"intra_op_threads": 1, "inter_op_threads": 1,
         "points": [{"batch": 1, "cpu_ms_per_image": 1.2}, {"batch": 8, "cpu_ms_per_image": 0.8},
                    {"batch": 32, "cpu_ms_per_image": 0.6}]}]})
    for k in range(3):
        for c, off, on in ((1, 300, 290), (32, 700, 950 + 10 * k)):
            i += 1
            _bench(tmp_path, i, "embedded", "defaults", "raw", c, off + k, 2.8 + k / 10, 1.6)
            i += 1
            _bench(tmp_path, i, "embedded", "one-knob", "raw", c, on, 2.9 + k / 10, 0.9, batch=8.0 if c > 1 else 1.0)
        i += 1
        _bench(tmp_path, i, "embedded", "defaults", "json", 1, 250, 2.4 + k / 10, 2.0)
    return Context.read(tmp_path)


@pytest.mark.unit
def test_the_goals_are_judged_on_the_medians_of_the_repeats(tmp_path):
    ctx = _fixture(tmp_path)
    table = measured.cells(ctx.runs)
    assert measured.reference_p50(ctx.runs).median == 1.6
    cell = table[("embedded", "one-knob", "raw", 32)]
    assert cell.n == 3 and cell.throughput.median == 960 and cell.threads == "4/4"
    assert cell.efficiency.median == pytest.approx(0.8 / 0.9)  # the curve at the mean batch, over server CPU
    goals = {g["key"]: g for g in measured.goal_rows(ctx.runs, table)}
    assert len(goals) == 5 and all(g["sample"] == "median of 3 repeats" for g in goals.values())
    ratio = goals["ratio"]
    assert ratio["ok"] is True and ratio["measured"] == "1.37× (1.35–1.39)"  # 960/701; extremes 950/702, 970/700
    every = goals["every"]
    assert every["ok"] is False and every["measured"] == "lowest 0.96× (0.96–0.97) at 1 in flight"  # 290/301
    assert goals["p50"]["measured"].startswith("+0.10 ms") and goals["p50"]["ok"] is True
    assert goals["efficiency"]["ok"] is True and goals["efficiency"]["measured"].startswith("89%")
    json_goal = goals["json"]
    assert json_goal["measured"].startswith("+0.90 ms") and json_goal["ok"] is True


@pytest.mark.unit
def test_the_section_readme_and_answer_state_their_sample_size(tmp_path):
    from tests.bench.test_docs import sample_size_problems

    ctx = _fixture(tmp_path)
    frags = report.readme(ctx)
    assert set(frags) == {"batching-goals", "batching-table"}
    assert "median of 3 repeats" in frags["batching-goals"]
    assert "| Embedded | 0.96x | 1.37x |" in frags["batching-table"]
    card = answer.answer(ctx).text
    assert "Embedded 1.37× at 32 in flight" in card and "Goals met: 4 of 5 measured" in card
    for where, text in [*frags.items(), ("answer", card)]:
        assert sample_size_problems(where, text) == []
    sec = report.section(ctx)
    assert [b.text for b in sec.blocks if b.kind == "heading"][0] == "Goals, judged on the medians of 3 repeats each"
    empty = Context(tmp_path / "none", [], [])
    assert answer.answer(empty) is None and "not measured yet" in report.readme(empty)["batching-goals"]


# ------------------------------------------------------------------ end to end
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.usefixtures("cifar_dir")
def test_a_quick_study_on_embedded_writes_both_stacks_and_the_section(tmp_path, monkeypatch):
    from tests.stacks import PORT_KNOBS, stack_env

    given = {name: os.environ[name] for name in PORT_KNOBS if name in os.environ}  # ports already chosen: kept
    env = stack_env(**given)
    for name in PORT_KNOBS:
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("SB_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("SB_BATCHING_REPEATS", "1")
    monkeypatch.setenv("SB_BATCHING_N", "20")
    out = tmp_path / "results"
    assert studies.main([STUDY, "--quick", "--arch", "embedded", "--out", str(out), "--no-report"]) == 0
    docs = [json.loads(p.read_text()) for p in out.glob("*/summary.json") if p.parent.name != "latest"]
    bench = [d for d in docs if d["kind"] == "bench"]
    assert {d["kind"] for d in docs} == {"bench", "reference", "model-curve"}
    assert {d["stack"]["knobs"]["SB_BATCH_MAX_SIZE"] for d in bench} == {"1", "32"}
    ctx = Context.read(out)
    assert len(measured.goal_rows(ctx.runs)) == 5 and "one run" in report.readme(ctx)["batching-goals"]
