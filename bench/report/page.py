"""report.html: the page's context, rendered from templates/report.html by Django's template engine.

The engine runs standalone (no Django settings): autoescaping on, so every
text taken from a run (ids, settings, notes) is escaped; numbers reach the
templates already formatted, so nothing is localised.
"""
from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

from django.template import Context as TemplateContext
from django.template import Engine

from bench.report import tables
from bench.report.runs import labels, load_sweep_runs, missing_archs
from bench.report.sections import Context, Figure, Section

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def engine() -> Engine:
    return Engine(dirs=[str(TEMPLATES)], autoescape=True)


def context(ctx: Context, rows: list[dict], sections: list[Section], figures: list[Figure]) -> dict:
    names = labels(ctx.selected)
    load_used = load_sweep_runs(ctx.runs)
    return {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run_count": len(ctx.runs),
        "not_measured": tables.NOT_MEASURED,
        "not_here": missing_archs(ctx.selected),
        "chosen": [(names[r.run_id], r.run_id) for r in ctx.selected],
        "settings_table": tables.settings_table(ctx.selected),
        "load_used": load_used,
        "notes": ctx.notes,
        "interrupted": [r.run_id for r in ctx.runs if r.interrupted],
        "call_path_table": tables.call_path_table(ctx.runs, ctx.selected),
        "sections": sections,
        "figures": figures,
        "reference": tables.reference_tables(ctx.reference),
        "runs_table": tables.runs_table(rows, {r.run_id for r in ctx.selected} | set(load_used)),
        "machines": tables.machine_tables(ctx.runs),
    }


def render(values: dict) -> str:
    template = engine().get_template("report.html")
    return template.render(TemplateContext(values, autoescape=True, use_l10n=False))


def write(path: Path, ctx: Context, rows: list[dict], sections: list[Section], figures: list[Figure]) -> Path:
    path.write_text(render(context(ctx, rows, sections, figures)))
    return path
