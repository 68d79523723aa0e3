"""The README and the report say what the committed results give: every generated block, and the page.

A failure here means results/ changed (or the code that computes from it) without `make docs` and
`make report`; run both and commit what they write.
"""
from __future__ import annotations

import html
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


def test_the_model_curve_numbers_come_from_one_set_of_repeats(ctx, fragments):
    from bench.studies.saturation import headline

    ids = set(re.findall(r"\d{8}T\d{6}Z-model-curve", fragments["saturation-model"]))
    repeats = {r.run_id for r in headline.curve_runs(ctx.runs)}
    assert ids and ids <= repeats and (len(ids) == 1 or ids == repeats)


# --------------------------------------------------------------------------- every claim states its sample size

# A measured figure: a number with a unit of time, rate, size, ratio or share.
MEASURED = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?\s?(?:ms|s|images/s|frames/s|requests/s|MB|MiB|GB|Mbit/s|Mbps|%|×|x)"
                      r"(?![\w/])")
# What says how many runs a figure rests on.
SAMPLE_SIZE = re.compile(r"\bone (?:[\w-]+ ){0,3}?runs?\b"
                         r"|\b(?:medians? of |over )?(\d+)(?:[-–/](\d+))? (?:repeats|passes|runs)\b|\bn\s?=\s?\d+", re.I)
# Repeats named without their count ("median of the repeats", "mean over repeats").
UNCOUNTED = re.compile(r"\b(?:medians?|means?|stdev|spread) (?:of|over) (?:the )?(?:repeats|passes)\b", re.I)
ACCURACY_SAMPLE = re.compile(r"\baccuracy\b.*?[\d,]+ (?:test )?images|[\d,]+ (?:test )?images.*?\baccuracy\b",
                             re.I | re.S)


def sample_size_problems(where: str, text: str) -> list[str]:
    """Why ``text`` (a README block or an answer card) does not state the sample size of its figures."""
    figures = MEASURED.findall(text)
    problems = []
    uncounted = UNCOUNTED.search(text)
    if uncounted:
        problems.append(f"{where}: says {uncounted[0]!r} without how many")
    sizes = list(SAMPLE_SIZE.finditer(text))
    for m in sizes:
        counts = [int(c) for c in m.groups() if c]
        if counts and min(counts) < 2:
            problems.append(f"{where}: {m[0]!r}: repeats need at least 2 runs; one run says 'one run'")
    accuracy_only = figures and all(f.endswith("%") for f in figures) and ACCURACY_SAMPLE.search(text)
    if figures and not sizes and not accuracy_only:
        problems.append(f"{where}: quotes {', '.join(figures[:3])} and states no sample size "
                        f"('one run' or 'median of N repeats (min-max)')")
    return problems


def answer_cards(page_html: str) -> dict[str, str]:
    """Each answer card's anchor -> its text, as the page renders it."""
    return {m[1]: html.unescape(re.sub(r"<[^>]+>", "", m[2])) for m in re.finditer(
        r'<section class="answer"><h3><a href="#([^"]+)">.*?<p[^>]*>(.*?)</p>', page_html, re.S)}


def test_every_generated_block_and_answer_card_states_its_sample_size():
    readme = docs.README.read_text()
    cards = answer_cards((RESULTS / "report.html").read_text())
    assert cards and docs.BLOCK.search(readme)
    problems = [p for m in docs.BLOCK.finditer(readme) for p in sample_size_problems(f"README {m['name']}", m["body"])]
    problems += [p for anchor, text in cards.items() for p in sample_size_problems(f"answer {anchor}", text)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("text, ok", [
    ("p50 3.2 ms (one run)", True),
    ("p50 3.2 ms (median of 3 repeats, 3.1–3.4)", True),
    ("| arch | images/s (one sweep run each) |\n| a | 682 |", True),
    ("682 images/s at 16 in flight", False),
    ("5.81 s in total (medians of the repeats)", False),
    ("p50 3.2 ms (median of 1 repeats, 3.2–3.2)", False),
    ("0.92 of it (median of 3 passes)", True),
    ("0.92 of it (median of the passes)", False),
    ("mean over repeats 4.1 ms, one run", False),
    ("test accuracy (10,000 images): 75.95%", True),
    ("`docker-compose.yml` has 8 profiles", True),
])
def test_the_sample_size_check(text, ok):
    assert (sample_size_problems("x", text) == []) is ok


def test_the_saturation_headline_states_the_repeats_it_has(ctx, fragments):
    from bench.studies.saturation import headline

    table = headline.cells(ctx.runs)
    if not table:
        pytest.skip("no headline run committed")
    counts = {c.n for c in table.values()}
    for name in ("saturation-table", "saturation-goals"):
        said = {int(n) for lo_hi in re.findall(r"medians? of (\d+)(?:-(\d+))? repeats", fragments[name])
                for n in lo_hi if n}
        assert said and said <= counts, name
    assert min(counts) >= 3, "the headline comparison rests on at least 3 repeats"


def test_the_serverless_blocks_say_what_contradicts_the_paper(ctx, fragments):
    from bench.studies.serverless.report import latest, warm_pipeline

    run = latest(ctx)
    text = fragments["serverless-results"]
    assert "FC is not the lightest stage here" in text
    size, warm, one = warm_pipeline(run)
    assert warm > one and f"for {size:,} images" in text
    assert re.search(r"Tables 1 and 2 at [\d, ]*1000[\d, ]* images, [3-9] repeats each", fragments["serverless-run"])


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
