"""report.html: the page's context, rendered from templates/report.html by Django's template engine.

The page reads from the top: each study's answer and key figure, a contents
list, the studies' sections, the cross-architecture parts, and last, folded,
the provenance (the runs, their settings as differences from the defaults,
notes, machines and versions).

The engine runs standalone (no Django settings): autoescaping on, so every
text taken from a run (ids, settings, notes) is escaped; numbers reach the
templates already formatted, so nothing is localised.
"""
from __future__ import annotations

import datetime as dt
import re
from functools import cache
from pathlib import Path

from django.template import Context as TemplateContext
from django.template import Engine

from bench.report import client_cost, tables
from bench.report.runs import absent_labels, labels, load_sweep_runs
from bench.report.sections import Context, Figure, Section
from servebench import registry

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The page's own parts after the studies' sections, as the contents list names them (anchor, title).
PAGE_PARTS = [("call-path", "How the server calls the model"), ("plots", "Plots across the architectures"),
              ("reference", "In-process reference"), ("provenance", "Provenance: runs, settings, machines")]


@cache
def engine() -> Engine:
    return Engine(dirs=[str(TEMPLATES)], autoescape=True)


ACCURACY = re.compile(r"accura", re.I)  # an answer quoting an accuracy carries the dataset note


def answers(sections: list[Section]) -> list[dict]:
    """Each study's answer card: the study's registry title (its question), the answer, the key figure, and
    the dataset note where the answer quotes an accuracy."""
    from bench.report.docs import dataset_note  # here: `python -m bench.report.docs` imports this package first

    out = []
    for s in sections:
        text, figure, answered = s.lead()
        try:
            title = registry.study(s.study).title
        except ValueError:  # a section made outside the registry: its own title
            title = s.title
        out.append({"title": title, "anchor": s.anchor, "text": text, "figure": figure, "answered": answered,
                    "note": dataset_note() if answered and ACCURACY.search(text) else ""})
    return out


def context(ctx: Context, rows: list[dict], sections: list[Section], figures: list[Figure]) -> dict:
    names = labels(ctx.selected)
    load_used = load_sweep_runs(ctx.runs)
    distribution_used = [r.run_id for run in ctx.drawn for r in ctx.latency_runs.get(run.run_id, [run])]
    return {
        "answers": answers(sections),
        "contents": [(s.anchor, s.title) for s in sections] + PAGE_PARTS,
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run_count": len(ctx.runs),
        "not_here": absent_labels(ctx.selected, ctx.runs),
        "chosen": [(names[r.run_id], r.run_id) for r in ctx.selected],
        "settings_table": tables.settings_table(ctx.selected),
        "load_used": load_used,
        "distribution_used": distribution_used,
        "notes": ctx.notes,
        "interrupted": [r.run_id for r in ctx.runs if r.interrupted],
        "call_path_table": tables.call_path_table(ctx.runs, ctx.selected),
        "sections": sections,
        "figures": figures,
        "reference": tables.reference_tables(ctx.reference),
        "runs_table": tables.runs_table(rows, {r.run_id for r in ctx.selected} | set(load_used)
                                        | set(distribution_used)),
        "machines": tables.machine_tables(ctx.runs),
        "client_cost": {"text": client_cost.text(ctx.runs), "flagged": bool(client_cost.summary(ctx.runs)["flagged"])},
    }


def render(values: dict) -> str:
    template = engine().get_template("report.html")
    return template.render(TemplateContext(values, autoescape=True, use_l10n=False))


def write(path: Path, ctx: Context, rows: list[dict], sections: list[Section], figures: list[Figure]) -> Path:
    path.write_text(render(context(ctx, rows, sections, figures)))
    return path
