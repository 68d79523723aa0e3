"""A run's latency distribution, small enough to commit: an HdrHistogram of its successful answers.

``requests.csv`` (the raw rows, MBs) stays local; ``latency.hdr`` (a few kB) is
committed beside ``summary.json``, so a clone can redraw the report's latency
distribution. THE recorder (:class:`bench.session.Recorder`) fills a
:class:`LatencyTally` with every answer it writes that succeeded (status 200,
no error: the ``requests.ok`` of a bench summary), and the session's shielded
close writes it (:func:`write`): the file holds exactly the rows written.

The file is an HdrHistogram interval log (format 1.2, so HdrHistogram's own
tools read it too): one line per repeat, tagged ``repeat-<k>``; a run with
more repeats than :data:`MAX_REPEATS` (a soak's passes) has one line tagged
``all``. Values are microseconds from 1 us to an hour at 3 significant digits
(0.1 %); a file that would pass :data:`MAX_BYTES` is merged, then written with
fewer digits.

Reading (:func:`read`, :func:`latencies`) gives milliseconds: a CDF as
``(latency_ms, cumulative fraction)`` rows, quantiles, or every answer's
latency at the histogram's resolution (what an ECDF plot of requests.csv takes).

    python -m bench.distributions backfill results/   # latency.hdr from each local requests.csv that lacks one
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

FILE = "latency.hdr"
REQUESTS_FILE = "requests.csv"
LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # an hour: anything slower is clamped to it
DIGITS = 3
MAX_BYTES = 20_000
MAX_REPEATS = 16  # more repeats than this share one histogram (each costs ~190 kB of memory while recording)
MERGED = "all"


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def repeat_tag(repeat: int) -> str:
    return f"repeat-{repeat}"


class LatencyTally:
    """Successful answers' latency per repeat, as they are recorded; not locked (the recorder holds its lock)."""

    def __init__(self):
        self.by_tag: dict[str, HdrHistogram] = {}
        self.count = 0

    def record(self, repeat: int, latency_ms: float, count: int = 1) -> None:
        us = min(max(int(round(latency_ms * 1000.0)), 0), HIGHEST_US)
        tag = MERGED if MERGED in self.by_tag else repeat_tag(repeat)
        hist = self.by_tag.get(tag)
        if hist is None:
            if len(self.by_tag) >= MAX_REPEATS:
                tag, hist = MERGED, merged(self.by_tag.values())
                self.by_tag = {MERGED: hist}
            else:
                hist = self.by_tag[tag] = new_histogram()
        hist.record_value(us, count)
        self.count += count


def merged(histograms, digits: int = DIGITS) -> HdrHistogram:
    """One histogram of all of ``histograms`` (at ``digits``: each bucket moved by its middle value)."""
    out = new_histogram(digits)
    for hist in histograms:
        if hist.significant_figures == digits:
            out.add(hist)
        else:
            for value, count in _buckets(hist):
                out.record_value(int(round(value)), int(count))
    return out


def _buckets(hist: HdrHistogram) -> list[tuple[float, int]]:
    """(middle value of the bucket, count) for each bucket that holds answers, in the histogram's units."""
    counts = np.ctypeslib.as_array(hist.counts)[:hist.counts_len]
    out = []
    for index in np.flatnonzero(counts):
        low = hist.get_value_from_index(int(index))
        high = hist.get_highest_equivalent_value(low)
        out.append(((low + high) / 2.0, int(counts[index])))
    return out


# ------------------------------------------------------------------ writing
def _lines(histograms: dict[str, HdrHistogram]) -> list[str]:
    return [f"Tag={tag},0.000,0.000,{hist.get_max_value() / 1000.0:.3f},{hist.encode().decode('ascii')}\n"
            for tag, hist in histograms.items()]


def _header(digits: int) -> str:
    return ("#[servebench: successful answers' latency from the scheduled time, microseconds, "
            f"{digits} significant digits, one histogram per tag]\n"
            "#[Histogram log format version 1.2]\n"
            "#[BaseTime: 0.000 (seconds since epoch)]\n"
            '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')


def write(run_dir: Path | str, tally: LatencyTally) -> dict:
    """Write ``latency.hdr`` atomically; what a summary records about it (file, count, repeats, digits)."""
    histograms = dict(sorted(tally.by_tag.items(), key=lambda kv: _tag_order(kv[0])))
    digits = DIGITS
    text = _header(digits) + "".join(_lines(histograms))
    if len(text) > MAX_BYTES and len(histograms) > 1:  # many repeats: one histogram for the run
        histograms = {MERGED: merged(histograms.values())}
        text = _header(digits) + "".join(_lines(histograms))
    while len(text) > MAX_BYTES and digits > 1:  # a very wide spread: coarser buckets
        digits -= 1
        histograms = {tag: merged([hist], digits) for tag, hist in histograms.items()}
        text = _header(digits) + "".join(_lines(histograms))
    path = Path(run_dir) / FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    repeats = [int(tag.split("-", 1)[1]) for tag in histograms if tag != MERGED]
    return {"file": FILE, "count": tally.count, "repeats": repeats if MERGED not in histograms else None,
            "significant_digits": digits, "bytes": len(text)}


def _tag_order(tag: str) -> tuple:
    return (1, 0) if tag == MERGED else (0, int(tag.split("-", 1)[1]))


# ------------------------------------------------------------------ reading
@dataclass
class Distribution:
    """A run's latency.hdr: its histograms by tag (``repeat-<k>``, or ``all``), values in microseconds."""

    path: Path
    histograms: dict[str, HdrHistogram]

    @property
    def count(self) -> int:
        return sum(h.get_total_count() for h in self.histograms.values())

    @property
    def repeats(self) -> list[int] | None:
        """The repeats held apart (None when the file has one histogram for the whole run)."""
        if MERGED in self.histograms:
            return None
        return [int(tag.split("-", 1)[1]) for tag in self.histograms]

    def _selected(self, repeat: int | None) -> list[HdrHistogram]:
        if repeat is None:
            return list(self.histograms.values())
        tag = repeat_tag(repeat)
        if tag not in self.histograms:
            raise KeyError(f"{self.path}: no histogram for repeat {repeat} (tags: {', '.join(self.histograms)})")
        return [self.histograms[tag]]

    def buckets(self, repeat: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(latency_ms, count) per bucket holding answers, ascending; the whole run, or one repeat."""
        totals: dict[float, int] = {}
        for hist in self._selected(repeat):
            for value, count in _buckets(hist):
                totals[value] = totals.get(value, 0) + count
        values = np.array(sorted(totals), dtype=float)
        return values / 1000.0, np.array([totals[v] for v in sorted(totals)], dtype=np.int64)

    def cdf(self, repeat: int | None = None) -> np.ndarray:
        """Rows of (latency_ms, fraction of answers at or below it), ascending; shape (k, 2), k >= 0."""
        ms, counts = self.buckets(repeat)
        if not counts.size:
            return np.empty((0, 2))
        return np.column_stack([ms, np.cumsum(counts) / counts.sum()])

    def quantiles(self, qs, repeat: int | None = None) -> np.ndarray:
        """Latency (ms) at each quantile in ``qs`` (0..1): the first bucket whose cumulative share reaches it."""
        table = self.cdf(repeat)
        qs = np.asarray(qs, dtype=float)
        if not table.size:
            return np.full(qs.shape, np.nan)
        at = np.searchsorted(table[:, 1], qs - 1e-12, side="left")
        return table[np.minimum(at, len(table) - 1), 0]

    def values(self, repeat: int | None = None) -> np.ndarray:
        """Every answer's latency (ms) at the histogram's resolution, sorted: ``count`` values."""
        ms, counts = self.buckets(repeat)
        return np.repeat(ms, counts)


def read(path: Path | str) -> Distribution:
    """A run's distribution (``path``: the run folder or its latency.hdr); ValueError if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    histograms: dict[str, HdrHistogram] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line[0] in '#"':
            continue
        tag = MERGED
        if line.startswith("Tag="):
            tag, line = line[4:].split(",", 1)
        fields = line.split(",", 3)
        if len(fields) != 4:
            raise ValueError(f"{path}:{number}: not an interval line")
        try:
            hist = HdrHistogram.decode(fields[3].strip().encode("ascii"))
        except Exception as exc:  # the codec raises its own kinds on a damaged payload
            raise ValueError(f"{path}:{number}: undecodable histogram ({exc})") from None
        if tag in histograms:
            histograms[tag].add(hist)
        else:
            histograms[tag] = hist
    return Distribution(path, histograms)


def latencies(run_dir: Path | str, repeat: int | None = None) -> np.ndarray | None:
    """A run's successful answers' latency (ms) from its latency.hdr, sorted; None when it has none."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    lat = read(path).values(repeat)
    return lat if lat.size else None


# ------------------------------------------------------------------ backfill from requests.csv
def tally_requests_csv(path: Path | str) -> LatencyTally:
    """The tally THE recorder would have kept for these rows: status 200, no error, warm-up rows left out."""
    tally = LatencyTally()
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if str(row.get("warmup", row.get("is_warmup", ""))).lower() in ("1", "true"):
                continue
            if (row.get("status") or "").strip() != "200" or (row.get("error") or "").strip():
                continue
            try:
                ms = float(row["latency_ms"])
                repeat = int(row.get("repeat") or 0)
            except (KeyError, TypeError, ValueError):
                continue
            tally.record(repeat, ms)
    return tally


def backfill(root: Path | str, say=print) -> list[Path]:
    """Write latency.hdr in each run folder under ``root`` that has a requests.csv and no latency.hdr."""
    written = []
    for csv_path in sorted(Path(root).glob(f"*/{REQUESTS_FILE}")):
        run_dir = csv_path.parent
        if (run_dir / FILE).exists() or run_dir.is_symlink():
            continue
        try:
            tally = tally_requests_csv(csv_path)
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            say(f"{run_dir.name}: unreadable {REQUESTS_FILE} ({exc}); skipped")
            continue
        if not tally.count:
            say(f"{run_dir.name}: no successful answer in {REQUESTS_FILE}; skipped")
            continue
        info = write(run_dir, tally)
        say(f"{run_dir.name}: {FILE} with {info['count']} answers ({info['bytes']} bytes)")
        written.append(run_dir)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.distributions", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fill = sub.add_parser("backfill", help="latency.hdr from each local requests.csv that lacks one")
    fill.add_argument("root", type=Path, nargs="?", default=Path("results"))
    args = parser.parse_args(argv)
    written = backfill(args.root)
    print(f"{len(written)} run(s) got {FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
