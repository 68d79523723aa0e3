"""report.html is rendered from the package's template by Django's engine, with everything from runs escaped."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from bench import report
from bench.formats import significant
from bench.report import page, tables
from servebench.settings import knob_defaults
from tests.bench.test_report import make_bench, make_results

pytestmark = pytest.mark.unit


def build_quietly(results: Path, **kwargs) -> dict[str, Path]:
    with contextlib.redirect_stdout(io.StringIO()):
        return report.build(results, **kwargs)


def edit_summary(folder: Path, **fields) -> None:
    doc = json.loads((folder / "summary.json").read_text())
    doc.update(fields)
    (folder / "summary.json").write_text(json.dumps(doc))


def test_page_is_rendered_from_the_template(tmp_path, monkeypatch):
    templates = tmp_path / "templates"
    shutil.copytree(page.TEMPLATES, templates)
    main = templates / "report.html"
    main.write_text(main.read_text().replace("<h1>servebench report</h1>", "<h1>servebench report</h1>TEMPLATE-MARK"))
    partial = templates / "partials" / "table.html"
    partial.write_text(partial.read_text().replace("<table", "<table data-mark=\"PARTIAL-MARK\"", 1))
    monkeypatch.setattr(page, "TEMPLATES", templates)
    page.engine.cache_clear()
    try:
        build_quietly(make_results(tmp_path / "results"))
    finally:
        page.engine.cache_clear()  # the next build reads the package's templates again
    html = (tmp_path / "results" / "report.html").read_text()
    assert "TEMPLATE-MARK" in html
    assert html.count('data-mark="PARTIAL-MARK"') >= 5  # every table, the study's included


def test_text_from_runs_is_escaped(tmp_path):
    root = make_results(tmp_path / "results")
    evil = root / "FAKE-20250101T060000Z-evil"
    make_bench(root, evil.name, "fastapi", "2025-01-01T06:00:00+00:00", seed=5)
    doc = json.loads((evil / "summary.json").read_text())
    doc["stack"]["knobs"]["SB_X"] = "<img src=x onerror=alert(2)>"
    doc["settings"]["codec"] = "<i>codec</i>"
    edit_summary(evil, run_id="<script>alert(1)</script>", arch="<b>arch</b>", stack=doc["stack"],
                 settings=doc["settings"])
    (root / "FAKE-<u>broken").mkdir()
    (root / "FAKE-<u>broken" / "summary.json").write_text("{")
    build_quietly(root)
    html = (root / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;arch&lt;/b&gt;" in html  # an unregistered arch keeps its name, escaped
    for raw in ("<b>", "<i>", "<img src=x", "<u>"):
        assert raw not in html, raw
    assert "&lt;u&gt;broken" in html  # a note naming the folder


def test_an_unreadable_or_newer_record_is_skipped_with_a_note(tmp_path):
    root = make_results(tmp_path / "results")
    make_bench(root, "FAKE-20250101T070000Z-future", "flask", "2025-01-01T07:00:00+00:00")
    edit_summary(root / "FAKE-20250101T070000Z-future", schema_version=99)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report.build(root)
    assert "skipped FAKE-20250101T070000Z-future: schema_version 99" in out.getvalue()
    assert "FAKE-20250101T070000Z-future" not in (root / "summary.csv").read_text()


def test_the_page_leads_with_the_answers_and_folds_the_provenance(tmp_path):
    root = make_results(tmp_path / "results")
    edit = json.loads((root / "FAKE-20250101T030000Z-fastapi" / "summary.json").read_text())
    edit["stack"]["knobs"]["SB_BACKEND_TIMEOUT_S"] = "120"  # the one knob off its default
    edit_summary(root / "FAKE-20250101T030000Z-fastapi", stack=edit["stack"])
    build_quietly(root)
    html = (root / "report.html").read_text()
    h2 = re.findall(r'<h2(?: id="([^"]*)")?>', html)
    assert h2[:2] == ["answers", ""] and h2[-1] == "provenance"  # answers, contents, ..., provenance last
    assert html.index('id="answers"') < html.index('<nav id="contents">') < html.index('id="study-docker-serving"')
    # the docker-serving answer: its numbers computed from the runs (time per image at the largest N)
    answers = html.split('id="answers"')[1].split('<nav id="contents">')[0]
    fastapi = json.loads((root / "FAKE-20250101T030000Z-fastapi" / "summary.json").read_text())["table3"]["100"]
    assert f"FastAPI {significant(fastapi['mean_s'] / 100 * 1000, ' ms')}" in answers
    assert 'href="#study-docker-serving"' in answers and 'src="plots/table3_time_per_image.png"' in answers
    # every link of the contents list has its target on the page
    contents = html.split('<nav id="contents">')[1].split("</nav>")[0]
    targets = re.findall(r'href="#([^"]+)"', contents)
    assert "provenance" in targets and all(f'id="{t}"' in html for t in targets)
    # run ids and knobs only in the folded provenance, knobs as their difference from the defaults
    provenance = html.split('<h2 id="provenance">')[1]
    before = html.split('<h2 id="provenance">')[0]
    assert "FAKE-20250101T030000Z-fastapi" not in before.split('id="study-docker-serving"')[0]
    assert '<details id="comparison-runs">' in provenance and '<details id="all-runs">' in provenance
    assert "<summary>SB_BACKEND_TIMEOUT_S=120</summary>" in provenance
    assert f"<summary>{tables.AT_DEFAULTS}</summary>" in provenance  # the other runs: every knob at its default


def test_knobs_are_shown_as_their_difference_from_the_defaults():
    defaults = knob_defaults()
    cell = tables.knob_cell({"SB_PORT": defaults["SB_PORT"], "SB_TFSERVING_BATCHING": False,
                             "SB_BACKEND_WORKERS": 7, "SB_NOT_A_KNOB": "x", "nested": {"a": 1}})
    assert defaults["SB_TFSERVING_BATCHING"] == "false" and defaults["SB_BACKEND_WORKERS"] != "7"
    assert cell.text == "SB_BACKEND_WORKERS=7, SB_NOT_A_KNOB=x"  # a knob not known today counts as a difference
    assert "SB_PORT=" in cell.details and "nested" not in cell.details
    assert tables.knob_cell(None).text == tables.AT_DEFAULTS


def test_settings_shared_by_every_run_are_said_once():
    t = tables.without_common(tables.table(["label", "run", "N", "seed"], [["a", "r1", 10, 0], ["b", "r2", 20, 0]]),
                              keep=2)
    assert t.headers == ["label", "run", "N"] and t.caption == "Same in every run: seed: 0."
