"""report.html is rendered from the package's template by Django's engine, with everything from runs escaped."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from bench import report
from bench.report import page
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
