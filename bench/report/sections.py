"""What a study adds to the report: a :class:`Section`, found through the registry.

Every study in ``servebench.registry.studies()`` may have a module
``<study.module>.report`` with one function, and optionally a second::

    def section(ctx: Context) -> Section | None
    def answer(ctx: Context) -> Answer | None   # or in a module <study.module>.answer

``ctx`` holds the runs read from the results folder (see :class:`Context`);
the section is a title and blocks in page order: headings, paragraphs
(:class:`Text`, plain text, escaped), tables (:class:`bench.report.tables.Table`)
and figures (:class:`Figure`, drawn into ``plots/`` only when the report
rewrites that study's plots). The report never imports a study by name.

The page opens with each study's :class:`Answer`: a sentence or two computed
from the same runs (never typed in) and the file of its key figure, one of
the section's. A study without an answer hook, or whose hook returns None,
gets :meth:`Section.lead`'s fallback: its title and its first figure.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.report.runs import (NO_HDR, Run, comparison_runs, distribution_runs, load_reference, repeats_of,
                               request_latencies, scan)
from servebench import registry


@dataclass(frozen=True)
class Heading:
    text: str
    kind = "heading"


@dataclass(frozen=True)
class Text:
    text: str
    kind = "text"


@dataclass(frozen=True)
class Figure:
    name: str  # the key build() returns it under
    file: str  # under plots/
    caption: str
    draw: Callable[[Path], Path]  # writes the PNG at the path given
    kind = "figure"


@dataclass(frozen=True)
class Answer:
    """What a study found, for the top of the page."""

    text: str  # plain text (escaped), every number in it computed from the runs
    figure: str | None = None  # its key figure: a file under plots/, one of the section's figures


FALLBACK_TEXT = "No answer stated yet: the section has the numbers."


@dataclass
class Section:
    title: str  # the section's <h2>
    blocks: list = field(default_factory=list)  # Heading, Text, Table, Figure, in page order
    study: str | None = None  # filled in by study_sections()
    answer: Answer | None = None  # filled in by study_sections() from the study's answer hook

    def lead(self) -> tuple[str, Figure | None, bool]:
        """(text, key figure, whether the study answered) for the top of the page.

        A figure the answer names that the section does not draw falls back to the first one: the page
        never shows an image that was not drawn."""
        figures = self.figures
        if self.answer is None:
            return FALLBACK_TEXT, (figures[0] if figures else None), False
        named = [f for f in figures if f.file == self.answer.figure]
        return self.answer.text, (named or figures or [None])[0], True

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]

    @property
    def anchor(self) -> str:
        return f"study-{self.study}" if self.study else ""


@dataclass
class Context:
    """What every section is built from: the runs of one results folder."""

    results: Path
    runs: list[Run]  # every readable run, oldest first
    notes: list[str]  # what was skipped or left out, shown on the page: each cites a run that exists
    selected: list[Run] = field(default_factory=list)  # the comparison runs (runs.comparison_runs)
    reference: Run | None = None  # the in-process baseline
    drawn: list[Run] = field(default_factory=list)  # the latency distribution's runs (runs.distribution_runs)
    latencies: dict[str, np.ndarray] = field(default_factory=dict)  # drawn run -> its repeats' latencies (ms)
    latency_runs: dict[str, list[Run]] = field(default_factory=dict)  # drawn run -> the repeats pooled in them
    not_runs: list[str] = field(default_factory=list)  # folders holding no run: printed, never on the page

    @classmethod
    def read(cls, results: Path) -> Context:
        runs, notes, not_runs = scan(results)
        ctx = cls(results, runs, notes, comparison_runs(runs), load_reference(results, runs), not_runs=not_runs)
        for run in distribution_runs(runs):
            # Repeats of the same measurement are drawn as one distribution: every answer of every repeat.
            found = [(r, distributions_of(r)) for r in repeats_of(run, runs) if r.has_distribution]
            found = [(r, lat) for r, lat in found if lat is not None]
            if found:
                ctx.drawn.append(run)
                ctx.latency_runs[run.run_id] = [r for r, _ in found]
                ctx.latencies[run.run_id] = np.concatenate([lat for _, lat in found])
        drawn = {(r.arch, r.runtime, r.codec) for r in ctx.drawn}
        for run in ctx.selected:
            if (run.arch, run.runtime, run.codec) not in drawn:
                notes.append(f"{run.run_id}: {NO_HDR}, left out of the latency distribution")
        return ctx

    @property
    def plots(self) -> Path:
        return self.results / "plots"

    def selected_in(self, study: str) -> list[Run]:
        """The comparison runs of the architectures that belong to ``study``."""
        names = {a.name for a in registry.in_study(study)}
        return [r for r in self.selected if r.arch in names]


def distributions_of(run: Run) -> np.ndarray | None:
    """A run's successful answers' latency (ms) from its committed latency.hdr; None when it holds none."""
    lat = request_latencies(run)
    return lat if lat is not None and lat.size else None


def _optional_module(name: str):
    """The module, or None when it does not exist (an import error inside it still raises)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def answer_hook(study: registry.Study, report_module) -> Callable[[Context], Answer | None] | None:
    """``answer`` of the study's report module, else of its module ``<study.module>.answer``."""
    hook = getattr(report_module, "answer", None)
    if hook is None:
        module = _optional_module(f"{study.module}.answer")
        hook = getattr(module, "answer", None)
    return hook


def study_sections(ctx: Context) -> list[Section]:
    """Each registered study's section with its answer, in registry order; a study without a report
    module has none."""
    sections = []
    for study in registry.studies():
        module = _optional_module(f"{study.module}.report")
        if module is None:
            continue
        section = module.section(ctx)
        if section is not None:
            section.study = study.name
            hook = answer_hook(study, module)
            section.answer = hook(ctx) if hook else None
            sections.append(section)
    return sections
