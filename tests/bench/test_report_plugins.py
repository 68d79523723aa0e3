"""Studies and architectures reach the report through the registry, without an edit to the report.

A dummy study (a module made here, registered for the test) gets its own
section; a dummy architecture registered for the test shows up in the tables
and plots with its registry title and colour; an architecture found in old
results but no longer registered keeps its name and a grey colour.
"""
from __future__ import annotations

import csv
import json
import sys
import types

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import pytest
from matplotlib.container import ErrorbarContainer

from bench import report
from bench.report import archs, plots, tables
from bench.formats import number, significant
from bench.report.sections import FALLBACK_TEXT, Answer, Context, Figure, Heading, Section, Text, study_sections
from servebench import registry
from tests.bench.test_report import PNG_MAGIC, make_bench, make_results
from tests.bench.test_report_page import build_quietly, edit_summary

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------- a dummy study

def _draw_dummy(path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [3, 1, 2])
    return plots.save(fig, path)


def _dummy_section(ctx):
    t = tables.Table(["run", "p50 (ms)"])
    for run in ctx.selected:
        t.add(run.run_id, number(run.get("latency_ms", "p50")))
    return Section("Dummy study <section>", [
        Heading("Dummy heading"),
        Text("Dummy text & <b>not bold</b>"),
        t,
        Figure("dummy", "dummy_plot.png", "Dummy caption", _draw_dummy),
    ])


@pytest.fixture
def dummy_study(monkeypatch):
    """A study registered as 'dummy-study' whose module dummy_study_pkg.report has a section."""
    package = types.ModuleType("dummy_study_pkg")
    package.__path__ = []
    module = types.ModuleType("dummy_study_pkg.report")
    module.section = _dummy_section
    monkeypatch.setitem(sys.modules, "dummy_study_pkg", package)
    monkeypatch.setitem(sys.modules, "dummy_study_pkg.report", module)
    study = registry.register_study(
        registry.Study(name="dummy-study", title="A dummy study", module="dummy_study_pkg"))
    yield study
    registry.unregister_study(study.name)


def test_a_registered_study_gets_its_own_section(tmp_path, dummy_study):
    root = make_results(tmp_path / "results")
    written = build_quietly(root)
    html = (root / "report.html").read_text()
    assert '<h2 id="study-dummy-study">Dummy study &lt;section&gt;</h2>' in html
    assert "<h3>Dummy heading</h3>" in html and "Dummy text &amp; &lt;b&gt;not bold&lt;/b&gt;" in html
    section = html.split('id="study-dummy-study"')[1].split("<h2")[0]
    p50 = json.loads((root / "FAKE-20250101T030000Z-fastapi" / "summary.json").read_text())["latency_ms"]["p50"]
    assert f"<td>FAKE-20250101T030000Z-fastapi</td><td>{significant(p50)}</td>" in section
    assert '<img src="plots/dummy_plot.png" alt="Dummy caption">' in section
    assert written["dummy"].read_bytes().startswith(PNG_MAGIC)
    # after the study that was there before, in registry order
    assert html.index('id="study-docker-serving"') < html.index('id="study-dummy-study"')


def test_study_flag_leaves_the_other_studies_plots_alone(tmp_path, dummy_study):
    root = make_results(tmp_path / "results")
    full = build_quietly(root)
    for png in (root / "plots").iterdir():
        png.unlink()
    written = build_quietly(root, study="dummy-study")
    sections = [sys.modules[f"{s.module}.report"].section(Context.read(root))
                for s in registry.studies() if s.name != "dummy-study"]
    others = {f.name for sec in sections if sec is not None for f in sec.figures}  # None: no runs of it
    assert others and set(written) == set(full) - others
    assert sorted(p.name for p in (root / "plots").iterdir()) == sorted(
        p.name for k, p in written.items() if p.parent.name == "plots")
    assert "Dummy study &lt;section&gt;" in (root / "report.html").read_text()
    with pytest.raises(SystemExit):  # argparse: not one of the registered studies
        report.main(["--results", str(root), "--study", "no-such-study"])


def test_a_study_without_a_report_module_has_no_section(tmp_path, monkeypatch):
    package = types.ModuleType("quiet_study_pkg")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "quiet_study_pkg", package)
    study = registry.register_study(registry.Study(name="quiet", title="Quiet", module="quiet_study_pkg"))
    try:
        sections = study_sections(Context.read(make_results(tmp_path / "results")))
    finally:
        registry.unregister_study(study.name)
    assert [s.study for s in sections] == [s.name for s in registry.studies() if s.name != "quiet"]


# --------------------------------------------------------------------------- architectures

@pytest.fixture
def dummy_arch():
    """A test double: an architecture of the study, registered for one test."""
    arch = registry.register(registry.Architecture(
        name="dummy-arch", title="Dummy Arch Title", color="tab:olive", services=("nginx", "frontend"),
        profile="dummy", backend="services.frontend.backends:EmbeddedBackend", study="docker-serving"))
    yield arch
    registry.unregister(arch.name)


@pytest.fixture
def figures(monkeypatch):
    """Every figure the report saves, by file name, kept open for inspection."""
    saved = {}

    def keep(fig, path):
        saved[path.name] = fig
        fig.savefig(path, dpi=20)
        return path

    monkeypatch.setattr(plots, "save", keep)
    yield saved
    for fig in saved.values():
        plt.close(fig)


def lines_by_label(fig) -> dict[str, object]:
    found = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            found.setdefault(line.get_label(), line)
        for container in ax.containers:
            if isinstance(container, ErrorbarContainer):
                found.setdefault(container.get_label(), container.lines[0])
    return found


def color_of(fig, prefix: str):
    matches = [line for label, line in lines_by_label(fig).items() if str(label).startswith(prefix)]
    assert matches, f"no line labelled {prefix}..."
    return mcolors.to_rgba(matches[0].get_color())


def test_a_registered_architecture_reaches_the_tables_and_plots(tmp_path, dummy_arch, figures):
    root = make_results(tmp_path / "results")
    run_id = "FAKE-20250101T080000Z-dummy"
    make_bench(root, run_id, "embedded", "2025-01-01T08:00:00+00:00", seed=8, n=1000)
    edit_summary(root / run_id, arch=dummy_arch.name)
    build_quietly(root)

    with (root / "summary.csv").open(newline="") as f:
        assert {r["run_id"]: r["arch"] for r in csv.DictReader(f)}[run_id] == "dummy-arch"
    html = (root / "report.html").read_text()
    assert f"<li>dummy-arch: {run_id}</li>" in html
    study = html.split('id="study-docker-serving"')[1].split("<h2")[0]
    assert f"<tr><td>Dummy Arch Title</td><td><span class=\"missing\">not measured in the study</span></td>" \
           f"<td>–</td><td>{run_id}</td>" in study
    assert study.index("TF Serving gRPC") < study.index("Dummy Arch Title")  # registry order
    olive = mcolors.to_rgba("tab:olive")
    assert color_of(figures["latency_distribution.png"], "dummy-arch") == olive
    assert color_of(figures["table3_time_per_image.png"], "dummy-arch") == olive
    hops = figures["hops.png"].axes[0]
    assert "dummy-arch" in [t.get_text() for t in hops.get_yticklabels()]


def test_an_unregistered_architecture_from_old_results_is_shown_by_name_in_grey(tmp_path, figures):
    root = make_results(tmp_path / "results")
    run_id = "FAKE-20250101T090000Z-retired"
    make_bench(root, run_id, "flask", "2025-01-01T09:00:00+00:00", seed=9)
    edit_summary(root / run_id, arch="retired-arch")
    build_quietly(root)

    assert archs.title("retired-arch") == "retired-arch" and archs.color("retired-arch") == archs.UNKNOWN_COLOR
    html = (root / "report.html").read_text()
    chosen = html.split('<ul id="comparison-run-list">')[1].split("</ul>")[0]
    assert chosen.endswith(f"<li>retired-arch: {run_id}</li>")  # after every registered one
    assert color_of(figures["latency_distribution.png"], "retired-arch") == mcolors.to_rgba(archs.UNKNOWN_COLOR)
    # not one of the study's architectures: its tables and plots leave it out
    study = html.split('id="study-docker-serving"')[1].split("<h2")[0]
    assert "retired-arch" not in study


# --------------------------------------------------------------------------- answers at the top

def answer_card(html: str, study: str) -> str:
    answers = html.split('id="answers"')[1].split('<nav id="contents">')[0]
    return next(card for card in answers.split('<section class="answer">') if f'href="#study-{study}"' in card)


def test_a_study_answer_leads_the_page_with_its_figure(tmp_path, dummy_study):
    sys.modules["dummy_study_pkg.report"].answer = lambda ctx: Answer(
        f"{len(ctx.selected)} comparison runs <counted>", "dummy_plot.png")
    root = make_results(tmp_path / "results")
    build_quietly(root)
    html = (root / "report.html").read_text()
    card = answer_card(html, "dummy-study")
    assert "<a href=\"#study-dummy-study\">A dummy study</a>" in card  # the registry's title: the question
    assert "3 comparison runs &lt;counted&gt;" in card
    assert '<a href="#fig-dummy"><img src="plots/dummy_plot.png" alt="Dummy caption"></a>' in card
    assert html.index(card) < html.index('<nav id="contents">')


def test_an_answer_module_beside_the_report_is_found(tmp_path, dummy_study, monkeypatch):
    module = types.ModuleType("dummy_study_pkg.answer")
    module.answer = lambda ctx: Answer("from the answer module", "no_such_plot.png")
    monkeypatch.setitem(sys.modules, "dummy_study_pkg.answer", module)
    section = next(s for s in study_sections(Context.read(make_results(tmp_path / "results")))
                   if s.study == "dummy-study")
    text, figure, answered = section.lead()
    # a figure the section does not draw is never shown: the section's first one instead
    assert (text, figure.file, answered) == ("from the answer module", "dummy_plot.png", True)


def test_a_study_without_an_answer_falls_back_to_its_title_and_first_figure(tmp_path, dummy_study):
    root = make_results(tmp_path / "results")
    build_quietly(root)
    card = answer_card((root / "report.html").read_text(), "dummy-study")
    assert FALLBACK_TEXT in card and 'src="plots/dummy_plot.png"' in card
    assert Section("No figures").lead() == (FALLBACK_TEXT, None, False)
