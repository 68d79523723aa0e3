"""Where a run's results go, and how they are written.

Each run owns ``results/<run-id>/``; ``results/latest`` is a relative symlink
to the newest one. CSV rows are flushed one by one, so a run that is killed
keeps every row it measured; ``summary.json`` (a run record, written by
:func:`bench.records.write`) is replaced atomically, and is also written for an
interrupted run (with ``"interrupted": true``).
"""
from __future__ import annotations

import csv
import math
import os
import threading
import time
from pathlib import Path

import numpy as np

from bench import provenance, timing

# requests.csv: times in s from the run's origin, latency from the scheduled time,
# labels as space-separated classes, Server-Timing components and nginx's upstream time in ms,
# batch_size: the images in the model call that answered the request (server-side batching).
REQUEST_COLUMNS = [
    "repeat", "index", "images", "scheduled_s", "sent_s", "latency_ms", "status", "correct",
    "predicted", "true", *(f"{c}_ms" for c in timing.COMPONENTS), "batch_size", "upstream_header_ms", "error",
]

# The image counts whose elapsed time a bench summary's ``table3`` records (until a pass's first k answers);
# the docker-serving study's Table 3 sizes, which it reads from here.
TABLE3_SIZES = (1, 10, 100, 1000, 10000)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO_ROOT / "results"


def new_run_dir(label: str, root: Path | str = DEFAULT_ROOT, latest: bool = True) -> Path:
    """Create ``<root>/<run-id>`` (unique even within one second) and point ``latest`` at it (unless not)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = provenance.run_id(label)
    for attempt in range(1, 1000):
        path = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise RuntimeError(f"cannot create a run folder under {root}")
    if latest:
        point_latest(path)
    return path


def point_latest(path: Path) -> None:
    """``latest`` -> ``<run-id>``, relative, replaced atomically."""
    link = path.parent / "latest"
    tmp = path.parent / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(path.name)
    os.replace(tmp, link)


class CsvLog:
    """A CSV file written one row at a time; safe to call from several threads.

    ``flush_s``: rows reach the file at least this often (0: every row). A
    recorder of answers batches its flushes (one write a second, not one a
    request: a load generator's CPU per request is the harness's error);
    :meth:`close` writes the rest, also at an interrupt.
    """

    def __init__(self, path: Path, columns: list[str], flush_s: float = 0.0):
        self.path = Path(path)
        self.columns = columns
        self.flush_s = flush_s
        self._file = self.path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._lock = threading.Lock()
        self._flushed = time.monotonic()
        self.rows = 0
        self.row(columns)
        self._file.flush()
        self.rows = 0

    def row(self, values) -> None:
        with self._lock:
            if self._file.closed:  # a straggler after the run was stopped
                return
            self._writer.writerow(values)
            self.rows += 1
            if not self.flush_s:
                self._file.flush()
            elif (now := time.monotonic()) - self._flushed >= self.flush_s:
                self._file.flush()
                self._flushed = now

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request_row(repeat: int, r, origin: float) -> list:
    """One ``requests.csv`` row for a :class:`bench.client.Result`."""
    t = r.server_timing
    return [
        repeat, r.request.index, r.request.images, f"{r.scheduled - origin:.6f}", f"{r.sent - origin:.6f}",
        f"{r.latency_ms:.3f}", r.status, "" if r.correct is None else r.correct,
        "" if r.predicted is None else _labels(r.predicted),
        "" if r.request.labels is None else _labels(r.request.labels), *(_ms(t.get(c)) for c in timing.COMPONENTS), _count(t.get(timing.BATCH)),
        _ms(r.upstream_header_ms), r.error,
    ]


def accuracy(ok, digits: int = 6) -> float | None:
    """Share of checked rows answered with their label, over answers that were checked (``correct`` not
    None); None when none was: no labels, or not a classifier (never 0 or 1 by default)."""
    checked = [r for r in ok if r.correct is not None]
    rows = sum(r.request.images for r in checked)
    return rounded(sum(r.correct for r in checked) / rows, digits) if rows else None


def _labels(values) -> str:
    return " ".join(str(int(v)) for v in values)


def _count(value: float | None) -> str:
    return "" if value is None else str(int(value))


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def rounded(value: float | None, digits: int = 3) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def latency_stats(ms) -> dict:
    """p50/p90/p99/max/mean in ms (None each when there is nothing to summarise)."""
    a = np.asarray(list(ms), dtype=float)
    if a.size == 0:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": rounded(p50), "p90": rounded(p90), "p99": rounded(p99),
            "max": rounded(a.max()), "mean": rounded(a.mean())}


def median(values) -> float | None:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return rounded(np.median(a)) if a.size else None


def mean_stdev(values) -> dict:
    """Mean and sample standard deviation (0 for a single value)."""
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        return {"mean_s": None, "stdev_s": None, "repeats": 0}
    return {"mean_s": rounded(a.mean(), 4), "stdev_s": rounded(a.std(ddof=1) if a.size > 1 else 0.0, 4),
            "repeats": int(a.size)}
