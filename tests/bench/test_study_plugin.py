"""A study is a folder: a dummy one (tests/bench/fixtures/plugins/dummy_study/) with its declaration, its
knob, its experiments and its report section is found by discovery, runs through `python -m bench.study`,
records its knob and gets its answer and section in the report; nothing else is edited for it.

Each check runs in a fresh interpreter that adds the fixtures' plug-in root before anything imports the
settings (the root rebuilds the settings model with the dummy's knob).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from servebench.settings import REPO_ROOT

pytestmark = pytest.mark.unit

ROOT = REPO_ROOT / "tests" / "bench" / "fixtures" / "plugins"
PRELUDE = f"from servebench import registry\nregistry.add_plugin_root({str(ROOT)!r})\n"


def _fresh(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("SB_")},
                               "PYTHONPATH": str(REPO_ROOT), **env})


def test_a_study_folder_is_discovered_with_its_knob():
    res = _fresh("""
        from servebench import registry, topology
        print([s.name for s in registry.studies()][-1])
        topology.main(["knobs"])
    """)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.splitlines()[0] == "sb-dummy-study"
    assert "SB_DUMMY_STUDY_ROUNDS" in res.stdout


def test_a_study_folder_runs_and_reaches_the_report(tmp_path):
    res = _fresh(f"""
        from bench import study
        raise SystemExit(study.main(["sb-dummy-study", "--out", {str(tmp_path)!r}]))
    """, SB_DUMMY_STUDY_ROUNDS="5")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    [summary] = [p for p in tmp_path.glob("*dummy-study*/summary.json")]
    doc = json.loads(summary.read_text())
    assert doc["rounds"] == 5 and doc["settings"]["dummy_study_rounds"] == 5 and not doc["interrupted"]
    page = (tmp_path / "report.html").read_text()
    assert "The dummy study ran 1 time(s)." in page and "rounds [5]" in page
