"""How the harness and the report write numbers and durations as text, and read them back."""
from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([hms])")


def fmt(value, digits: int = 1, unit: str = "") -> str:
    """A number in a console table: fixed digits and a unit, or '-' when there is none."""
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def significant(x: float | None, unit: str = "") -> str:
    """A number in the report: about three significant digits, thousands separated; '–' for nothing."""
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


def number(value) -> float | None:
    """A float, or None for anything missing, non-numeric or NaN (values read from run records)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def parse_duration(text) -> float:
    """Seconds in '30s', '10m', '1h', '1h30m', '1.5m' or plain seconds ('90'); positive."""
    s = str(text).strip().lower()
    if not s:
        raise ValueError("empty duration")
    try:
        seconds = float(s)
    except ValueError:
        parts = _DURATION_PART.findall(s)
        if not parts or "".join(n + u for n, u in parts) != s or len({u for _, u in parts}) != len(parts):
            raise ValueError(f"bad duration {text!r}: use 30s, 10m, 1h, 1h30m or seconds") from None
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"bad duration {text!r}: must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"
