"""Repeated measurements as the ensemble study records and shows them: median, min, max and n."""
from __future__ import annotations

import numpy as np

from bench.formats import significant


def spread(values) -> dict | None:
    """{median, min, max, n} of ``values`` (None when there are none)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    return {"median": round(float(np.median(xs)), 3), "min": round(min(xs), 3), "max": round(max(xs), 3),
            "n": len(xs)}


def text(s: dict | None, unit: str = "", what: str = "repeats") -> str:
    """'1,120 ms (median of 3 repeats, 1,100–1,150)', or '1,120 ms (one run)'; '–' for nothing."""
    if not s:
        return "–"
    value = significant(s["median"], unit and f" {unit}")
    if s["n"] < 2:
        return f"{value} (one run)"
    return f"{value} (median of {s['n']} {what}, {significant(s['min'])}–{significant(s['max'])})"


def short(s: dict | None) -> str:
    """'1,120 (1,100–1,150)' for a table whose header says the unit and n; '–' for nothing."""
    if not s:
        return "–"
    if s["n"] < 2:
        return significant(s["median"])
    return f"{significant(s['median'])} ({significant(s['min'])}–{significant(s['max'])})"
