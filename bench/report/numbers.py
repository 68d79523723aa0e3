"""Numbers read from run records, and the one way the report prints them."""
from __future__ import annotations

import math


def number(value) -> float | None:
    """A float, or None for anything missing, non-numeric or NaN."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def fmt(x: float | None, unit: str = "") -> str:
    """About three significant digits, thousands separated; '–' for nothing."""
    if x is None:
        return "–"
    if abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    elif abs(x) >= 1:
        text = f"{x:.2f}"
    else:
        text = f"{x:.3f}"
    return text + unit
