"""The saturation study's report section from synthetic records: goals computed from the numbers, tables,
figures, the cross-checks, and a page with no sweep at all."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from bench import records, report, sweep
from bench.report.runs import load_runs
from bench.report.sections import Context
from bench.studies.saturation import report as section_mod
from tests.bench.test_report import PNG_MAGIC

pytestmark = pytest.mark.unit

PROVENANCE = {"created_utc": "2026-11-23T10:00:00+00:00", "git_commit": "abc",
              "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "nginx": "1.22.1"},
              "machine": {"cpu_model": "Test CPU", "logical_cpus": 2}}
BACKENDS = {"embedded": None, "fastapi": "fastapi", "flask": "flask", "triton": "triton"}


def level(c: int, thr: float, p50: float, *, stable: bool = True, batch: float = 1.0, server: float = 4.0,
          model: float = 2.0, backend: str | None = None) -> dict:
    cpu = {"nginx": 0.3, "frontend": server - 0.3 if backend is None else 1.0, "client": 0.5}
    if backend:
        cpu[backend] = server - 1.3
    lv = {"mode": "closed", "concurrency": c, "stable": stable, "windows": [], "chosen": [],
          "throughput_images_per_s": thr, "p50_ms": p50, "p99_ms": p50 * 3, "mean_ms": p50 * 1.2,
          "batch_size": {"mean": batch, "median": batch, "max": int(batch), "seen": 1.0},
          "cpu_ms_per_image": cpu, "server_cpu_ms_per_image": server, "client_cpu_ms_per_image": 0.5,
          "model_cpu_ms_per_image": model}
    lv.update(sweep.derived(lv, 1200.0))
    return lv


def make_sweep(root: Path, arch: str, modes: dict[str, list[dict]], created: str = "20261123T100000Z",
               codec: str = "raw", interrupted: bool = False) -> str:
    run_id = f"{created}-sweep-{arch}"
    for lvs in modes.values():  # and an open-loop level beside the closed ones
        lvs.append({**lvs[-1], "mode": "open", "concurrency": None, "rate": lvs[-1]["throughput_images_per_s"] * 0.5,
                    "throughput_images_per_s": lvs[-1]["throughput_images_per_s"] * 0.5})
    doc = {"kind": "sweep", "run_id": run_id, "study": "saturation", "arch": arch, "runtime": "native",
           "interrupted": interrupted, "provenance": {**PROVENANCE, "created_utc": created},
           "settings": {"codec": codec, "batch": 1, "window_s": 2.0, "stable_windows": 3, "tolerance": 0.1,
                        "batch_max_size": 16, "batch_timeout_ms": 2.0, "mode": "sweep"},
           "stacks": {m: {"knobs": {"SB_BATCH_MAX_SIZE": "16" if m == "on" else "1"}} for m in modes},
           "client": "servebench", "limit": {"images_per_s": 1200.0, "cpu_bound_images_per_s": 2400.0},
           "modes": {m: {"levels": lvs, "saturation": sweep.saturation(lvs)} for m, lvs in modes.items()}}
    (root / run_id).mkdir(parents=True)
    records.write(root / run_id, doc)
    return run_id


def make_curve(root: Path) -> str:
    run_id = "20261123T090000Z-model-curve"
    (root / run_id).mkdir(parents=True)
    points = [{"batch": b, "images_per_s": 800 + 20 * b, "cpu_ms_per_image": 2.0 / b ** 0.3} for b in (1, 4, 16)]
    records.write(root / run_id, {"kind": "model-curve", "run_id": run_id, "provenance": PROVENANCE,
                                  "settings": {"threads": [1, 2]},
                                  "curves": [{"intra_op_threads": 1, "inter_op_threads": 1, "points": points}],
                                  "limit": {"images_per_s": 1120.0, "cpu_bound_images_per_s": 2500.0}})
    return run_id


def make_crosscheck(root: Path) -> str:
    run_id = "20261123T110000Z-crosscheck-fastapi"
    (root / run_id).mkdir(parents=True)
    tools = [{"tool": "perf_analyzer", "scenario": "concurrency", "concurrency": 4, "target_qps": None,
              "requests": 900, "throughput": 310.0, "p50_ms": 12.1, "p90_ms": 15.0, "p99_ms": 20.0, "valid": None,
              "stable": True, "client_cpu_ms_per_request": 0.05, "note": ""},
             {"tool": "loadgen", "scenario": "Server", "concurrency": None, "target_qps": 100, "requests": 1000,
              "throughput": 99.0, "p50_ms": 6.0, "p90_ms": 8.0, "p99_ms": 11.0, "valid": True, "stable": None,
              "client_cpu_ms_per_request": 0.3, "note": "VALID"}]
    agreement = [{"concurrency": 4, "tool": "perf_analyzer", "ours_p50_ms": 11.5, "tool_p50_ms": 12.1,
                  "diff_pct": 5.2, "within_10pct": True, "explanation": ""},
                 {"concurrency": 16, "tool": "perf_analyzer", "ours_p50_ms": 40.0, "tool_p50_ms": 50.0,
                  "diff_pct": 25.0, "within_10pct": False, "explanation": "ours queues <in> the client"}]
    records.write(root / run_id, {"kind": "crosscheck", "run_id": run_id, "arch": "fastapi",
                                  "provenance": PROVENANCE, "tools": tools, "agreement": agreement})
    return run_id


def results(root: Path, fastapi_on_c4: float = 330.0) -> Path:
    """Embedded: 1.4x with batching, 55% efficient; FastAPI 1.1x, 30%; Triton below embedded everywhere."""
    make_sweep(root, "embedded", {
        "off": [level(1, 250, 3.0), level(4, 400, 9.0)],
        "on": [level(1, 250, 3.3), level(4, 560, 7.0, batch=3.5, server=2.0, model=1.1)]})
    make_sweep(root, "fastapi", {
        "off": [level(1, 200, 4.0, backend="fastapi"), level(4, 300, 12.0, backend="fastapi")],
        "on": [level(1, 190, 4.8, backend="fastapi"),
               level(4, fastapi_on_c4, 11.0, batch=2.0, server=4.0, model=1.2, backend="fastapi")]})
    make_sweep(root, "triton", {
        "off": [level(1, 150, 5.0, backend="triton"), level(4, 380, 9.0, backend="triton")],
        "on": [level(1, 200, 5.2, backend="triton"), level(4, 500, 8.0, batch=3.0, backend="triton")]})
    # An older and an interrupted sweep never stand for an architecture.
    make_sweep(root, "embedded", {"off": [level(1, 999, 1.0)], "on": [level(1, 999, 1.0)]},
               created="20261122T100000Z")
    make_sweep(root, "fastapi", {"off": [level(1, 999, 1.0)]}, created="20261124T100000Z", interrupted=True)
    make_curve(root)
    make_crosscheck(root)
    return root


def context(root: Path) -> Context:
    runs, notes = load_runs(root)
    return Context(root, runs, notes)


def goals(root: Path) -> dict[str, dict]:
    return {g["goal"]: g for g in section_mod.goal_rows(section_mod.sweep_runs(context(root).runs))}


def test_the_newest_complete_sweep_stands_for_each_architecture(tmp_path):
    ctx = context(results(tmp_path))
    chosen = section_mod.sweep_runs(ctx.runs)
    assert list(chosen) == ["embedded", "fastapi", "triton"]  # registry order
    assert all(r.run_id.startswith("20261123T100000Z") for r in chosen.values())
    assert section_mod.curve_run(ctx.runs).run_id == "20261123T090000Z-model-curve"
    assert section_mod.is_python("fastapi") and not section_mod.is_python("triton")


def test_goals_are_computed_from_the_numbers(tmp_path):
    g = goals(results(tmp_path))
    best = g["batching on ÷ off at saturation, best architecture"]
    assert best["ok"] is True and best["measured"] == "1.400× (Embedded)"
    python = g["batching on ÷ off at saturation, every Python architecture"]
    assert python["ok"] is False and python["measured"] == "lowest 1.100× (FastAPI)"
    eff = g["server efficiency with batching at saturation (raw), best architecture"]
    assert eff["ok"] is True and eff["measured"] == "55% (Embedded)"
    eff_py = g["server efficiency with batching at saturation (raw), every Python architecture"]
    assert eff_py["ok"] is False and eff_py["measured"] == "lowest 30% (FastAPI)"
    p50 = g["p50 at concurrency 1, batching on − off (every architecture)"]
    assert p50["ok"] is False and p50["measured"] == "largest +0.80 ms (FastAPI)"
    triton = g["best Python stack ÷ Triton throughput, at every concurrency"]
    assert triton["ok"] is True and triton["measured"] == "lowest 1.05× (concurrency 4, batching off, Embedded)"


def test_a_verdict_follows_its_number(tmp_path):
    g = goals(results(tmp_path, fastapi_on_c4=400.0))  # FastAPI now 1.33x with batching
    assert g["batching on ÷ off at saturation, every Python architecture"]["ok"] is True
    triton = [r for r in section_mod.triton_rows(section_mod.sweep_runs(context(tmp_path).runs))]
    assert {(r["mode"], r["concurrency"]): round(r["ratio"], 3) for r in triton} == {
        ("off", 1): round(250 / 150, 3), ("off", 4): round(400 / 380, 3),
        ("on", 1): round(250 / 200, 3), ("on", 4): round(560 / 500, 3)}


def test_efficiency_needs_raw_bodies(tmp_path):
    make_sweep(tmp_path, "embedded", {"off": [level(4, 400, 9.0)], "on": [level(4, 560, 7.0, model=1.1, server=2.0)]},
               codec="json")
    g = goals(tmp_path)
    assert g["server efficiency with batching at saturation (raw), best architecture"]["ok"] is None
    assert g["best Python stack ÷ Triton throughput, at every concurrency"]["ok"] is None  # no Triton sweep


def test_the_page_has_the_section_its_tables_and_figures(tmp_path):
    root = results(tmp_path / "results")
    with contextlib.redirect_stdout(io.StringIO()):
        written = report.build(root)
    html = (root / "report.html").read_text()
    section = html.split('id="study-saturation"')[1].split("<h2")[0]
    for name, file in section_mod.PLOTS.items():
        assert written[f"saturation_{name}"].read_bytes().startswith(PNG_MAGIC)
        assert f'src="plots/{file}"' in section
    text = re.sub(r"<[^>]+>", " ", section)
    assert "1.400×" in text and "not met" in text and " met " in text
    assert "Test CPU, 2 logical CPUs" in text and "tensorflow 2.21.0" in text  # captions name their sources
    assert "20261123T100000Z-sweep-embedded" in text and "20261123T090000Z-model-curve" in text
    assert "test accuracy" in text  # the model is trained: its accuracy, not a "timing only" label
    assert "ours queues &lt;in&gt; the client" in section  # cross-check explanations, escaped
    assert "perf_analyzer" in text and "VALID" in text
    assert "1,120" in text  # the limit from the newest model curve


def test_no_sweep_yet_still_makes_a_section_with_placeholders(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    with contextlib.redirect_stdout(io.StringIO()):
        written = report.build(root)
    section = (root / "report.html").read_text().split('id="study-saturation"')[1].split("<h2")[0]
    assert "No sweep yet" in section and "not measured" in section
    assert written["saturation_cpu"].read_bytes().startswith(PNG_MAGIC)
