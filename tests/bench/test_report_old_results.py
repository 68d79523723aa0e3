"""The report reads results written before the versioned schema (bench.records migrates them).

The committed results folder is the real case: every summary.json there was
written before schema_version existed, and the committed summary.csv was
made from them by the report as it was then.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest


from bench.report import runs, tables
from bench.report.sections import FALLBACK_TEXT
from servebench import registry
from tests.bench.test_report import make_results
from tests.bench.test_report_page import build_quietly

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[2] / "results"
# Reference runs kept their machine at the top level; the old report looked for it only under
# provenance, so these two columns were empty for them and are filled now.
FILLED_NOW = {"reference": {"cpu_model", "logical_cpus"}}


def read_csv(path: Path) -> dict[str, dict]:
    with path.open(newline="") as f:
        return {row["run_id"]: row for row in csv.DictReader(f)}


def test_an_old_reference_without_run_id_is_read(tmp_path):
    root = make_results(tmp_path)
    folder = root / "FAKE-20250101T000000Z-reference"
    doc = json.loads((folder / "summary.json").read_text())
    del doc["run_id"]  # as bench.reference wrote it before the schema
    assert "provenance" not in doc and "git_commit" in doc
    (folder / "summary.json").write_text(json.dumps(doc))
    (root / "reference.json").write_text(json.dumps(doc))

    found, _ = runs.load_runs(root)
    ref = next(r for r in found if r.kind == "reference")
    assert ref.run_id == folder.name  # named by its folder
    row = tables.summary_row(ref)
    assert row["git_commit"].startswith("0123456789ab") and row["created_utc"] == "2025-01-01T00:00:00+00:00"
    assert row["cpu_model"] == "FAKE CPU"
    # reference.json is a copy of that run: the page names the run it copies
    assert runs.load_reference(root, found).run_id == folder.name
    build_quietly(root)
    assert f"<p>Run {folder.name} created 2025-01-01T00:00:00+00:00" in (root / "report.html").read_text()


@pytest.mark.skipif(not (COMMITTED / "summary.csv").is_file(), reason="no committed results")
def test_committed_results_give_the_committed_summary(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    for summary in COMMITTED.glob("*/summary.json"):
        if summary.parent.is_symlink():
            continue  # results/latest: the run it points at is copied anyway
        # The summary and the CSVs the report reads beside it (a sweep's resources.csv, levels.csv)
        shutil.copytree(summary.parent, root / summary.parent.name,
                        ignore=lambda folder, names: [n for n in names if not n.endswith((".json", ".csv"))])
    shutil.copy(COMMITTED / "reference.json", root / "reference.json")
    build_quietly(root)

    committed, ours = read_csv(COMMITTED / "summary.csv"), read_csv(root / "summary.csv")
    assert set(committed) <= set(ours)
    for run_id, row in committed.items():
        filled = FILLED_NOW.get(row["kind"], set())
        # Columns added since (the model, its data, synthetic inputs) are not in the committed file.
        differ = {k for k in tables.COLUMNS if k in row and row[k] != ours[run_id][k] and not (k in filled and not row[k])}
        assert not differ, (run_id, {k: (row[k], ours[run_id][k]) for k in differ})
    page = (root / "report.html").read_text()
    assert page.count("<h2") == 6 + len(registry.studies())  # the page's sections, one per study included
    assert FALLBACK_TEXT not in page  # every study states its answer from the committed runs
