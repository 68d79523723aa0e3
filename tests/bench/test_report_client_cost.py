"""The report's check of the load generator's share of the machine (bench/report/client_cost.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench import records
from bench.report import client_cost
from bench.report.runs import Run

pytestmark = pytest.mark.unit


def run(doc: dict) -> Run:
    base = {"schema_version": records.SCHEMA_VERSION, "run_id": doc.pop("run_id"), "study": None, "arch": "fastapi",
            "runtime": "native", "interrupted": False, "settings": {}, "stack": {},
            "provenance": {"machine": {"logical_cpus": 2}}}
    return Run(records.RunRecord.model_validate({**base, **doc}), Path("."))


def test_a_bench_run_over_the_limit_is_flagged_and_one_under_is_not():
    heavy = run({"run_id": "r1", "kind": "bench", "wall_s": 10.0, "resources": {"client": {"cpu_seconds": 4.0}}})
    light = run({"run_id": "r2", "kind": "bench", "wall_s": 10.0, "resources": {"client": {"cpu_seconds": 2.0}}})
    assert [s.share for s in client_cost.shares(heavy)] == [0.2]
    text = client_cost.text([heavy, light])
    assert "FLAGGED" in text and "r1 (whole run): 20%" in text and "r2" not in text.split("FLAGGED")[1]
    assert "None exceeds 15%" in client_cost.text([light])


def test_sweep_levels_are_checked_one_by_one():
    sweep = run({"run_id": "s1", "kind": "sweep", "modes": {"off": {"levels": [
        {"concurrency": 1, "cores_busy": {"client": 0.1}}, {"concurrency": 16, "cores_busy": {"client": 0.4}}]}}})
    flagged = client_cost.summary([sweep])["flagged"]
    assert [(f.where, f.share) for f in flagged] == [("batching off, c=16", 0.2)]


def test_runs_without_the_figures_are_not_guessed():
    assert client_cost.shares(run({"run_id": "x", "kind": "streaming"})) == []
    assert "not recorded" in client_cost.text([run({"run_id": "x", "kind": "streaming"})])
