"""What a study adds to the report: a :class:`Section`, found through the registry.

Every study in ``servebench.registry.studies()`` may have a module
``<study.module>.report`` with one function::

    def section(ctx: Context) -> Section | None

``ctx`` holds the runs read from the results folder (see :class:`Context`);
the section is a title and blocks in page order: headings, paragraphs
(:class:`Text`, plain text, escaped), tables (:class:`bench.report.tables.Table`)
and figures (:class:`Figure`, drawn into ``plots/`` only when the report
rewrites that study's plots). The report never imports a study by name.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.report.runs import Run, comparison_runs, load_reference, load_runs, request_latencies
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


@dataclass
class Section:
    title: str  # the section's <h2>
    blocks: list = field(default_factory=list)  # Heading, Text, Table, Figure, in page order
    study: str | None = None  # filled in by study_sections()

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
    notes: list[str]  # what was skipped or left out, shown on the page
    selected: list[Run] = field(default_factory=list)  # the comparison runs (runs.comparison_runs)
    reference: Run | None = None  # the in-process baseline
    latencies: dict[str, np.ndarray | None] = field(default_factory=dict)  # selected run -> requests.csv

    @classmethod
    def read(cls, results: Path) -> Context:
        runs, notes = load_runs(results)
        ctx = cls(results, runs, notes, comparison_runs(runs), load_reference(results, runs))
        for run in ctx.selected:
            ctx.latencies[run.run_id] = request_latencies(run)
            if ctx.latencies[run.run_id] is None:
                notes.append(f"{run.run_id}: no usable requests.csv, left out of the latency distribution")
        return ctx

    @property
    def plots(self) -> Path:
        return self.results / "plots"

    def selected_in(self, study: str) -> list[Run]:
        """The comparison runs of the architectures that belong to ``study``."""
        names = {a.name for a in registry.in_study(study)}
        return [r for r in self.selected if r.arch in names]


def study_sections(ctx: Context) -> list[Section]:
    """Each registered study's section, in registry order; a study without a report module has none."""
    sections = []
    for study in registry.studies():
        module_name = f"{study.module}.report"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        section = module.section(ctx)
        if section is not None:
            section.study = study.name
            sections.append(section)
    return sections
