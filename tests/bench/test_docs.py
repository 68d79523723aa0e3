"""The README and the report say what the committed results give: every generated block, and the page.

A failure here means results/ changed (or the code that computes from it) without `make docs` and
`make report`; run both and commit what they write.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from bench.report import docs, page, plots, tables
from bench.report.sections import Context, study_sections
from servebench import registry

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"
# The one thing a fresh render may change: the page's own timestamp.
GENERATED_AT = re.compile(r"Generated \S+ from")


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.read(RESULTS)


@pytest.fixture(scope="module")
def fragments(ctx) -> dict[str, str]:
    return docs.fragments(ctx)


def test_every_readme_block_equals_what_the_results_give(fragments):
    text = docs.README.read_text()
    assert docs.BLOCK.search(text), "no generated block in the README"
    assert docs.differences(text, fragments) == [], "stale README blocks: run make docs"
    assert docs.render(text, fragments) == text


def test_every_readme_block_has_a_fragment_and_each_name_appears_once(fragments):
    names = [m["name"] for m in docs.BLOCK.finditer(docs.README.read_text())]
    assert len(names) == len(set(names))
    assert set(names) <= set(fragments)


def test_render_replaces_a_block_and_refuses_an_unknown_one():
    text = "a\n<!-- generated: x -->\nold\n<!-- end generated -->\nb\n"
    assert docs.render(text, {"x": "new"}) == "a\n<!-- generated: x -->\nnew\n<!-- end generated -->\nb\n"
    assert docs.differences(text, {"x": "new"}) == ["x"]
    with pytest.raises(KeyError):
        docs.render(text, {})


def test_check_fails_on_a_stale_readme(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- generated: compose-profiles -->\nstale\n<!-- end generated -->\n")
    assert docs.main(["--readme", str(readme), "--check"]) == 1
    assert docs.main(["--readme", str(readme)]) == 0
    assert docs.main(["--readme", str(readme), "--check"]) == 0
    assert "stale" not in readme.read_text()


def test_the_committed_report_equals_a_fresh_render(ctx):
    sections = study_sections(ctx)
    rows = [tables.summary_row(r) for r in ctx.runs]
    fresh = page.render(page.context(ctx, rows, sections, plots.figures(ctx)))
    committed = (RESULTS / "report.html").read_text()
    assert GENERATED_AT.sub("Generated -", committed) == GENERATED_AT.sub("Generated -", fresh), \
        "results/report.html differs from a fresh render: run make report"


# --------------------------------------------------------------------------- what the audit found

def test_the_compose_profiles_listed_are_the_compose_files(fragments):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    profiles = {p for s in compose["services"].values() for p in s.get("profiles", [])}
    listed = set(re.findall(r"`([\w-]+)`", fragments["compose-profiles"].split(":", 1)[1]))
    assert profiles <= listed
    assert f"has {len(profiles)} profiles" in fragments["compose-profiles"]


def test_the_model_curve_numbers_come_from_one_run(fragments):
    ids = re.findall(r"\d{8}T\d{6}Z-model-curve", fragments["saturation-model"])
    assert len(ids) == 1


def test_every_headline_states_its_sample_size(fragments):
    for name in ("saturation-table", "saturation-goals", "streaming-table", "streaming-goal", "ensemble-table",
                 "serverless-run", "offloading-table", "found-table", "soak"):
        assert re.search(r"one (sweep )?run|repeats", fragments[name]), name
    assert "median of 3 repeats" in fragments["found-findings"]


def test_the_serverless_blocks_say_what_contradicts_the_paper(ctx, fragments):
    from bench.studies.serverless.report import latest, warm_pipeline

    run = latest(ctx)
    text = fragments["serverless-results"]
    assert "FC is not the lightest stage here" in text
    size, warm, one = warm_pipeline(run)
    assert warm > one and f"for {size:,} images" in text
    assert "the tables at 500 only" in fragments["serverless-run"]


def test_accuracy_figures_carry_the_dataset_note(fragments):
    note = docs.dataset_note()
    assert "JPEG" in note
    assert note in fragments["ensemble-accuracy"]
    html = (RESULTS / "report.html").read_text()
    assert html.count("rebuilt from JPEG files") >= 4  # saturation, serverless, ensemble (twice), streaming


def test_no_committed_metrics_file_names_a_machine_path():
    doc = json.loads((REPO / "models" / "ensemble.metrics.json").read_text())
    assert "path" not in doc["data"] and doc["data"]["sha256sums"]


def test_each_study_with_a_report_has_a_readme_hook():
    with_hook = len(docs.readme_hooks())
    studies = [s for s in registry.studies() if docs._optional_module(f"{s.module}.report")]
    assert with_hook == len(studies)
