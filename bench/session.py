"""One run session: what every command does around its load, done once.

A command opens a :class:`RunSession` on its run folder and drives its load
inside it; the session owns the rest, in this order:

1. begin: the run folder (created unless given), the run record's header
   (:mod:`bench.records`) written with ``"running": true`` and
   ``"interrupted": true``, so that a run killed outright still says it did not
   finish; ``requests.csv`` and ``resources.csv`` when asked for;
2. during: THE :class:`Recorder` (one flushed row per answer, counted exactly
   when written) and the resource sampler (:mod:`bench.resources`), each
   started when the command is ready for it; ``session.stop`` is the event
   the load loops watch;
3. end, shielded (:func:`servebench.interrupts.shielded`: the close always
   finishes, a second Ctrl-C or SIGTERM only hurries it): the stop event set,
   the recorder closed (an answer still in flight is then neither written nor
   counted), the sampler stopped, the command's own closers run, the final
   record written (header + the command's measurements, ``"interrupted":
   true`` after Ctrl-C or SIGTERM), ``after`` run on it and the table printed.
   The recorder's successful answers go into ``latency.hdr`` (:mod:`bench.distributions`,
   committed where requests.csv is not); the record's ``latency_distribution`` names it
   and the count it holds.

    with RunSession(header={"kind": "bench", ...}, summary=measurements, table=print_table,
                    label="bench-embedded", root=out, requests_csv=True, resources_csv=True) as s:
        rec = s.recorder(origin, bar=bar)                   # requests.csv rows, counted
        s.sample(sources, hz=5.0, origin=origin)            # resources.csv
        s.on_close(client.close)
        client.closed_loop(requests, 4, rec, s.stop)
    record = s.record                                       # the RunRecord written

``header`` is a dict or a function returning one (called at the begin and at
the end, so it may change as the run learns things); the session adds
``run_id`` (the folder's name), ``provenance`` (read at each write),
``interrupted`` and, at the begin only, ``running``. ``summary(interrupted)``
returns the kind's measurements, merged after the header.

Ctrl-C or SIGTERM (KeyboardInterrupt) inside the block ends the load; the
session writes what was measured and does not raise it again (``s.interrupted``
says so; a command may also set it, e.g. when Ctrl-C is how a session ends).
Any other exception closes what is open and propagates; the record is then
left as the begin wrote it (running, interrupted), or, with
``record_errors=True``, replaced by the summary marked interrupted.
"""
from __future__ import annotations

import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from bench import client, distributions, provenance, records, resources, results
from bench.records import RunRecord
from servebench import interrupts
from servebench.settings import HarnessSettings

REQUESTS_FILE = "requests.csv"
REQUESTS_FLUSH_S = 1.0  # written rows reach requests.csv at least this often, and all of them at the close
RECORDER_BATCH = 20000  # answers held before their rows are written (SB_ROWS_BATCH for a run session)
RESOURCES_FILE = "resources.csv"


class Recorder:
    """Collects answers as they come, and writes them as CSV rows in batches, counted under one lock.

    An answer is counted exactly when its row is written. Rows are written when
    ``batch`` answers wait, at :meth:`flush`, and at :meth:`close` (also at an
    interrupt): checking an answer and formatting its row cost a Python client
    about as much CPU as the request itself, so a pass of up to ``batch``
    answers pays it after its clock has stopped. Once :meth:`close` has run,
    answers still arriving (in flight at an interrupt) are neither written nor
    counted (``late`` says how many), so the summary and the CSV always agree.
    ``repeat`` is the pass a row belongs to (set by the command between passes),
    or ``repeat_of(result)`` computes it per answer. ``keep``: the
    ``(repeat, result)`` pairs are kept in :attr:`results` (a long soak keeps
    aggregates instead, in its ``tally``: called under the lock with
    ``(repeat, result)`` for every answer written; its ``close()``, if any, is
    called as the recorder closes). ``latencies`` tallies the latency of every
    answer written that succeeded, per repeat (the session writes it to ``latency.hdr``).
    """

    def __init__(self, log: results.CsvLog, origin: float, bar=None, *, keep: bool = True,
                 repeat_of: Callable[[Any], int] | None = None, tally=None,
                 row: Callable[[int, Any, float], list] = results.request_row, bar_counts: str = "images",
                 batch: int = RECORDER_BATCH):
        self.log = log
        self.origin = origin
        self.bar = bar
        self.keep = keep
        self.repeat_of = repeat_of
        self.tally = tally
        self.row = row
        self.bar_counts = bar_counts  # "images" or "requests": what one answer advances the bar by
        self.batch = max(1, batch)
        self.repeat = 0
        self.results: list[tuple[int, Any]] = []
        self.latencies = distributions.LatencyTally()
        self.count = 0
        self.late = 0
        self.closed = False
        self._waiting: list[tuple[int, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, r) -> None:
        repeat = self.repeat if self.repeat_of is None else self.repeat_of(r)
        with self._lock:
            if self.closed:
                self.late += 1
                return
            self._waiting.append((repeat, r))
            if len(self._waiting) >= self.batch:
                self._write()
        if self.bar is not None:
            self.bar.update(r.request.images if self.bar_counts == "images" else 1)

    def _write(self) -> None:
        """Check, write and count the waiting answers (the lock held)."""
        waiting, self._waiting = self._waiting, []
        for repeat, r in waiting:
            self.log.row(self.row(repeat, r, self.origin))
            self.count += 1
            if r.ok:
                self.latencies.record(repeat, r.latency_ms)
            if self.keep:
                self.results.append((repeat, r))
            if self.tally is not None:
                self.tally(repeat, r)

    def flush(self) -> None:
        """Write the answers that wait (between passes, or before reading :attr:`results`)."""
        with self._lock:
            if not self.closed:
                self._write()

    def close(self) -> list[tuple[int, Any]]:
        """Write what waits, stop recording, close the CSV, and return exactly the results it holds."""
        with self._lock:
            if not self.closed:
                self._write()
                if self.tally is not None and hasattr(self.tally, "close"):
                    self.tally.close()
            self.closed = True
            self.log.close()
            return list(self.results)


def warm_up(c: client.Client, requests: list, n: int, concurrency: int, warn: Callable[[str], None] | None = None
            ) -> Counter:
    """``n`` uncounted requests (:func:`bench.client.warm_up`); ``warn`` is told when not all answered 200."""
    statuses = client.warm_up(c, requests, n, concurrency)
    if warn is not None and statuses and set(statuses) != {200}:
        warn(f"  warm-up answers by status: {dict(statuses)}")
    return statuses


class RunSession:
    """One run's folder, record, recorder, sampler and shielded close (see the module docstring)."""

    def __init__(self, run_dir: Path | None = None, *, header: dict | Callable[[], dict],
                 summary: Callable[[bool], dict] | None = None,
                 table: Callable[[dict, Path], None] | None = None,
                 after: Callable[[RunRecord], None] | None = None,
                 label: str | None = None, root: Path | str | None = None, latest: bool = True,
                 requests_csv: bool = False, resources_csv: bool = False,
                 request_columns: list[str] = results.REQUEST_COLUMNS,
                 resource_columns: list[str] = resources.COLUMNS, record_errors: bool = False):
        if run_dir is None and label is None:
            raise ValueError("a run session needs its run_dir or a label to create one under root")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._label, self._root, self._latest = label, root, latest
        self._header = header
        self._summary = summary
        self._table = table
        self._after = after
        self._want_requests, self._want_resources = requests_csv, resources_csv
        self.request_columns, self.resource_columns = request_columns, resource_columns
        self.record_errors = record_errors
        self.stop = threading.Event()  # the load loops stop sending when it is set
        self.interrupted = False
        self.record: RunRecord | None = None
        self.requests_log: results.CsvLog | None = None
        self.resources_log: results.CsvLog | None = None
        self.rec: Recorder | None = None
        self.samplers: list[resources.Sampler] = []
        self._closers: list[Callable[[], Any]] = []
        self.rows_written: int | None = None  # requests.csv's rows, once closed
        self.distribution: dict | None = None  # latency.hdr's file and count, once closed

    # ---------------------------------------------------------- begin
    def header(self, interrupted: bool) -> dict:
        head = self._header() if callable(self._header) else dict(self._header)
        return {**head, "run_id": self.run_dir.name, "interrupted": interrupted,
                "provenance": provenance.record()}

    def begin(self) -> RunSession:
        if self.run_dir is None:
            self.run_dir = results.new_run_dir(self._label, self._root or results.DEFAULT_ROOT,
                                               latest=self._latest)
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # Replaced at the end: a run killed outright still says it did not finish.
        records.write(self.run_dir, {**self.header(interrupted=True), "running": True})
        if self._want_requests:
            self.requests_log = results.CsvLog(self.run_dir / REQUESTS_FILE, self.request_columns, flush_s=REQUESTS_FLUSH_S)
        if self._want_resources:
            self.resources_log = results.CsvLog(self.run_dir / RESOURCES_FILE, self.resource_columns)
        return self

    def __enter__(self) -> RunSession:
        return self.begin()

    # ---------------------------------------------------------- during
    def recorder(self, origin: float, bar=None, **kw) -> Recorder:
        """THE recorder of this run, writing ``requests.csv`` (opened now if not at the begin)."""
        if self.rec is not None:
            raise RuntimeError("a run session has one recorder")
        if self.requests_log is None:
            self.requests_log = results.CsvLog(self.run_dir / REQUESTS_FILE, self.request_columns, flush_s=REQUESTS_FLUSH_S)
        kw.setdefault("batch", HarnessSettings().rows_batch)
        self.rec = Recorder(self.requests_log, origin, bar, **kw)
        if bar is not None:
            self.on_close(bar.close)
        return self.rec

    def sample(self, sources: resources.Sources, hz: float = resources.DEFAULT_HZ, origin: float | None = None,
               log=None, parts: dict[str, resources.PartOf] | None = None) -> resources.Sampler:
        """Start sampling ``sources`` into ``resources.csv`` (or ``log``) until the close (or its ``stop()``);
        ``parts``: the services reported in parts too (:func:`servebench.runtime.part_classifiers`)."""
        if log is None:
            if self.resources_log is None:
                self.resources_log = results.CsvLog(self.run_dir / RESOURCES_FILE, self.resource_columns)
            log = self.resources_log
        sampler = resources.Sampler(sources, log, hz=hz, origin=origin, parts=parts)
        self.samplers.append(sampler)
        return sampler.__enter__()

    @property
    def sampler(self) -> resources.Sampler | None:
        """The latest sampler started (None when nothing was sampled)."""
        return self.samplers[-1] if self.samplers else None

    def on_close(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the shielded close, after the recorder and samplers stopped (in the order given)."""
        self._closers.append(fn)

    # ---------------------------------------------------------- end
    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupted = True
            exc_type = None
        failed = exc_type is not None
        # Whatever arrives now (Ctrl-C again, SIGTERM), what was measured is written whole.
        with interrupts.shielded():
            self.close()
            if not failed or self.record_errors:
                self.finish(interrupted=self.interrupted or failed)
        return not failed  # a KeyboardInterrupt ends here; anything else goes on

    def close(self) -> None:
        """Stop the load, the recorder (before its CSV), the samplers, then the command's closers."""
        self.stop.set()
        if self.rec is not None:
            self.rec.close()
        for sampler in self.samplers:
            sampler.stop()
        for log in (self.requests_log, self.resources_log):
            if log is not None:
                log.close()
        self.rows_written = self.requests_log.rows if self.requests_log is not None else None
        if self.rec is not None:
            self.distribution = self._write_distribution()
        closers, self._closers = self._closers, []
        for fn in closers:
            fn()

    def _write_distribution(self) -> dict | None:
        try:
            return distributions.write(self.run_dir, self.rec.latencies)
        except Exception as exc:  # never worth losing the run's record over; requests.csv can backfill it
            print(f"  no {distributions.FILE}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None

    def finish(self, interrupted: bool) -> RunRecord:
        """Write the final record (header + measurements), run ``after`` on it, print the table."""
        doc = self.header(interrupted)
        if self._summary is not None:
            doc.update(self._summary(interrupted))
            doc["interrupted"] = interrupted
        if self.distribution is not None:
            doc["latency_distribution"] = self.distribution
        self.record = RunRecord.model_validate(doc)
        records.write(self.run_dir, self.record)
        if self._after is not None:
            self._after(self.record)
        if self._table is not None:
            self._table(self.record.doc(), self.run_dir)
        return self.record
