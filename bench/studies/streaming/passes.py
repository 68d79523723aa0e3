"""A streaming record's rows gathered into cells: one cell per stream setting, one row per pass in it.

The study repeats its headline streams (``SB_STREAMING_REPEATS``); every pass is
a row with its ``repeat`` index. A cell's numbers are the median of its passes
with their min-max and n, or "one run" where a stream ran once (every row of a
record written before repeats existed).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.formats import significant
from bench.report.docs import ONE_RUN
from bench.report.runs import Run

# What makes two rows passes of one stream.
CELL_KEYS = ("group", "transport", "model", "encoding", "rate", "cpus", "link_mbit", "rtt_ms", "batch_max_size")


def rows_of(run: Run, **match) -> list[dict]:
    return [r for r in run.get("rows", default=[]) if all(r.get(k) == v for k, v in match.items())]


@dataclass
class Cell:
    rows: list[dict]

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def first(self) -> dict:
        return self.rows[0]

    def values(self, key: str) -> list[float]:
        return [v for r in self.rows if (v := value(r, key)) is not None]

    def median(self, key: str) -> float | None:
        vs = self.values(key)
        return statistics.median(vs) if vs else None

    def shown(self, key: str, show=significant, n: bool = True) -> str:
        """'median (min-max, n=N)', or 'X (one run)'; 'not measured' without values."""
        vs = self.values(key)
        if not vs:
            return "not measured"
        if len(vs) == 1:
            return f"{show(vs[0])} ({ONE_RUN})"
        return (f"{show(statistics.median(vs))} ({show(min(vs))}–{show(max(vs))}"
                + (f", n={len(vs)})" if n else ")"))


def value(row: dict, key: str):
    """A row's number by key; ``a.b`` reads a nested one (``server_ms.model``, ``latency_ms.p90``)."""
    v = row
    for part in key.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v


def cells(run: Run, **match) -> list[Cell]:
    """The run's rows that match, one cell per stream setting, in the order the streams first ran."""
    out: dict[tuple, Cell] = {}
    for r in rows_of(run, **match):
        out.setdefault(tuple(r.get(k) for k in CELL_KEYS), Cell([])).rows.append(r)
    return list(out.values())


def cell(run: Run, **match) -> Cell | None:
    """The first cell of rows that match (its passes together), or None."""
    found = cells(run, **match)
    return found[0] if found else None


def sample_note(c: Cell | None) -> str:
    """'median of N passes' or 'one run', for a sentence that quotes a cell."""
    if c is None:
        return ONE_RUN
    return ONE_RUN if c.n == 1 else f"median of {c.n} passes"
