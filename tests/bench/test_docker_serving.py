"""The docker-serving study's Table 3 protocol: its knobs, its plan per runtime, and the numbers the report and
the README take from its runs (median, min-max, n; docker against native). No server, no docker."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from bench import options as opts
from bench import study
from bench.report import docs
from bench.report.runs import load_runs
from bench.report.sections import Context
from bench.studies.docker_serving import findings, protocol, published
from bench.studies.docker_serving import report as study_report
from servebench import compose
from servebench.settings import Settings

pytestmark = pytest.mark.unit

STUDY = "docker-serving"
plan_mod = importlib.import_module("bench.studies.docker_serving.experiments")
# Made-up time per image of each pass (ms), per (arch, runtime).
PASSES = {("embedded", "native"): (5.0, 5.2, 5.1), ("embedded", "docker"): (5.6, 5.4, 5.5),
          ("flask", "native"): (6.0, 6.3, 6.1), ("flask", "docker"): (6.6, 6.5, 6.9),
          ("fastapi", "native"): (7.4, 7.2, 7.6), ("fastapi", "docker"): (8.1, 7.9, 8.0)}


def settings(**env: str) -> Settings:
    return Settings.from_env({f"SB_DOCKER_SERVING_{k.upper()}": v for k, v in env.items()})


# ------------------------------------------------------------------ knobs and plan
def test_knobs_default_to_native_and_docker_three_passes_all_workloads():
    k = plan_mod.knobs(Settings.from_env({}))
    assert (k.runtimes, k.repeats, k.workloads) == (("native", "docker"), 3, "all")


def test_a_bad_runtime_is_refused_by_name():
    with pytest.raises(ValueError, match="SB_DOCKER_SERVING_RUNTIMES: k8s: choose from native, docker"):
        settings(runtimes="k8s")


def test_protocol_workloads_keep_the_reference_n_images_and_the_protocol_per_runtime():
    plan = plan_mod.experiments(opts.StudyOptions(study=STUDY, arches=("embedded", "flask")),
                                settings(workloads="protocol", repeats="4"))
    for arch in ("embedded", "flask"):
        mine = [e for e in plan if e.arch == arch]
        assert [e.kind for e in mine] == ["reference", "bench", "bench", "bench"]
        assert [(e.options.runtime, e.options.n, e.options.repeats) for e in mine[1:]] == [
            ("native", 10000, 1), ("native", plan_mod.PROTOCOL_N, 4), ("docker", plan_mod.PROTOCOL_N, 4)]
        assert all(e.settings == plan_mod.SIGNATURE for e in mine)


def test_one_runtime_runs_no_protocol_elsewhere():
    plan = plan_mod.experiments(opts.StudyOptions(study=STUDY, arches=("flask",)), settings(runtimes="native"))
    assert {e.options.runtime for e in plan if e.kind == "bench"} == {"native"}
    plan = plan_mod.experiments(opts.StudyOptions(study=STUDY, arches=("flask",), reference=False),
                                settings(runtimes="docker", workloads="protocol"))
    # the study's runtime (native) keeps its N images; the protocol runs on docker only
    assert [(e.options.runtime, e.options.repeats) for e in plan] == [("native", 1), ("docker", 3)]


@pytest.mark.parametrize("present", [False, True])
def test_an_official_image_that_is_not_here_skips_that_stretch_only(monkeypatch, present):
    """Absent: skipped before anything starts (the study pulls nothing); present but refused: skipped too."""
    ran, said = [], []

    def execute(plan, options, settings, log):
        if options.runtime == "docker" and plan[0].arch == "tfserving-rest":
            raise compose.ImageMissing("TF Serving needs the official image tensorflow/serving")
        ran.append((options.runtime, [e.arch for e in plan]))
        return []

    monkeypatch.setattr(study, "execute", execute)
    monkeypatch.setattr(compose, "absent_official_images",
                        lambda arch: ["tensorflow/serving:2.19.0"] if arch == "tfserving-rest" and not present else [])
    options = opts.StudyOptions(study=STUDY, arches=("fastapi", "tfserving-rest"), quick=True)
    plan_mod.run(options, settings(workloads="protocol"), log=said.append)
    assert ran == [("native", ["fastapi"] * 3), ("docker", ["fastapi"]), ("native", ["tfserving-rest"] * 3)]
    assert said == (["skipping tfserving-rest on docker: TF Serving needs the official image tensorflow/serving"]
                    if present else ["skipping tfserving-rest on docker: its official image tensorflow/serving:2.19.0 "
                                     "is not present here (`docker pull` it first; the study pulls nothing)"])


# ------------------------------------------------------------------ the numbers from its runs
def write_protocol_run(root: Path, arch: str, runtime: str, created: str, passes: tuple[float, ...],
                       images: int = 1000) -> str:
    run_id = f"FAKE-{created}-{arch}-{runtime}"
    folder = root / run_id
    folder.mkdir(parents=True)
    doc = {"kind": "bench", "run_id": run_id, "arch": arch, "runtime": runtime, "interrupted": False,
           "settings": {"n": images, "batch": 1, "codec": "json", "concurrency": 1, "rate": None,
                        "repeats": len(passes)},
           "provenance": {"created_utc": created},
           "latency_ms": {"p50": passes[0] * 0.9, "p99": passes[0] * 2},
           "passes": [{"repeat": k, "wall_s": ms * images / 1000, "requests": images, "images_ok": images,
                       "complete": True} for k, ms in enumerate(passes)],
           "table3": {str(images): {"mean_s": sum(passes) / len(passes) * images / 1000, "stdev_s": 0.0,
                                    "repeats": len(passes)}}}
    (folder / "summary.json").write_text(json.dumps(doc))
    return run_id


@pytest.fixture
def results(tmp_path) -> Path:
    for k, ((arch, runtime), passes) in enumerate(PASSES.items()):
        write_protocol_run(tmp_path, arch, runtime, f"2026-01-01T0{k}:00:00+00:00", passes)
    # older, slower, and a single pass: neither counts
    write_protocol_run(tmp_path, "flask", "native", "2025-01-01T00:00:00+00:00", (60.0, 61.0, 62.0))
    write_protocol_run(tmp_path, "embedded", "native", "2026-02-01T00:00:00+00:00", (9.0,))
    return tmp_path


def test_the_newest_protocol_run_per_arch_and_runtime_with_its_passes(results):
    runs, _ = load_runs(results)
    found = protocol.protocol_runs(runs)
    assert list(found) == list(PASSES)  # registry order, native before docker
    for key, passes in PASSES.items():
        assert found[key].per_image_ms == pytest.approx(passes) and found[key].n == 3
    assert found[("flask", "native")].shown() == "6.10 ms (6.00–6.30, n = 3)"


def test_a_ratio_is_of_the_medians_its_range_of_the_extreme_passes(results):
    found = protocol.protocol_runs(load_runs(results)[0])
    r = protocol.Ratio.of(found[("fastapi", "native")], found[("embedded", "native")])
    assert (r.median, r.low, r.high, r.n) == pytest.approx((7.4 / 5.1, 7.2 / 5.2, 7.6 / 5.0, 3))
    assert r.shown() == "1.45x (1.38–1.52, n = 3)"
    [row] = [x for x in protocol.ratios(found) if (x["slow"], x["fast"], x["runtime"]) == ("fastapi", "embedded",
                                                                                            "docker")]
    assert row["study"] == pytest.approx(published.TABLE3_SECONDS["Fast API"][1000]
                                         / published.TABLE3_SECONDS["Embedded function"][1000])


def test_the_readme_and_the_answer_state_n_and_spread(results):
    ctx = Context.read(results)
    blocks = findings.readme(ctx)
    table = blocks["found-table"]
    assert "| 5.10 ms (5.00–5.20, n = 3) |" in table and "| 5.50 ms (5.40–5.60, n = 3) |" in table
    assert "cannot run here" in table and "not measured here" not in table.split("\n")[2]
    assert "1.08x (1.04–1.12, n = 3)" in table  # embedded docker ÷ native
    text = blocks["found-findings"]
    assert "FastAPI/embedded 1.45x (1.38–1.52, n = 3) native" in text
    assert "Docker compose against native" in text and "Embedded 1.08x (1.04–1.12, n = 3)" in text
    answer = study_report.answer(ctx)
    assert answer.figure == study_report.PLOTS["native_docker"]
    assert "docker: Embedded 5.50 ms (5.40–5.60, n = 3)" in answer.text
    assert all(docs.cell(v) for v in blocks.values())


def test_the_section_draws_native_against_docker(results, tmp_path):
    ctx = Context.read(results)
    section = study_report.section(ctx)
    [figure] = [b for b in section.blocks if getattr(b, "name", None) == "native_docker"]
    png = figure.draw(tmp_path / "plot.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_the_committed_headline_rests_on_three_passes_per_runtime():
    """The committed results: every architecture that runs here has its protocol natively and under docker,
    each on at least 3 passes."""
    found = protocol.protocol_runs(load_runs(Path(__file__).resolve().parents[2] / "results")[0])
    if not any(runtime == "docker" for _, runtime in found):
        pytest.skip("no docker protocol run committed")
    runnable = [a for a in protocol.study_archs() if protocol.absent(a) != protocol.CANNOT_RUN]
    assert {(a, r) for a in runnable for r in protocol.RUNTIMES} <= set(found)
    assert min(p.n for p in found.values()) >= 3
