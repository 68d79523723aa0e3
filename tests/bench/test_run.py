"""The run session's Recorder (a result is counted exactly when its row is written) and bench.run's passes."""
from __future__ import annotations

import pytest

import csv
import threading

import numpy as np

from bench import client, loadgen, results, run, shapes
from bench.options import BenchOptions
from bench.session import Recorder

pytestmark = pytest.mark.unit


class _NoBar:
    def update(self, n):
        pass


def _result(i: int) -> client.Result:
    req = client.Request(i, b"x", "application/octet-stream", np.array([3]))
    return client.Result(req, scheduled=1.0, sent=1.0, end=1.001, status=200, predicted=np.array([3]), correct=1)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_answers_after_close_are_neither_written_nor_counted(tmp_path):
    rec = Recorder(results.CsvLog(tmp_path / "r.csv", results.REQUEST_COLUMNS), origin=0.0, bar=_NoBar())
    for i in range(5):
        rec(_result(i))
    kept = rec.close()
    rec(_result(99))  # an answer that was in flight at the interrupt
    assert len(kept) == 5 == len(_rows(tmp_path / "r.csv"))
    assert len(rec.results) == 5


def test_counted_equals_written_when_closing_under_load(tmp_path):
    """Many client threads still recording while the run is stopped: CSV and count agree."""
    for attempt in range(5):
        path = tmp_path / f"r{attempt}.csv"
        rec = Recorder(results.CsvLog(path, results.REQUEST_COLUMNS), origin=0.0, bar=_NoBar())
        go = threading.Event()

        def hammer(base: int) -> None:
            go.wait()
            for i in range(400):
                rec(_result(base + i))

        threads = [threading.Thread(target=hammer, args=(k * 1000,)) for k in range(8)]
        for t in threads:
            t.start()
        go.set()
        kept = rec.close()
        for t in threads:
            t.join()
        assert len(kept) == len(_rows(path))
        assert {r.request.index for _, r in kept} == {int(row["index"]) for row in _rows(path)}


# ------------------------------------------------------------------ the passes' shape
def test_the_passes_are_a_closed_loop_an_open_loop_or_loadgens_scenario():
    closed = run.pass_shape(BenchOptions(arch="embedded", concurrency=4, repeats=3, n=100, batch=2), 50)
    assert [(lv.kind, lv.concurrency, lv.count) for lv in closed.levels] == [(shapes.CLOSED, 4, 50)] * 3
    o = BenchOptions(arch="embedded", rate=30.0, arrivals="poisson", repeats=2, n=100)
    opened = run.pass_shape(o, 100)
    assert [(lv.kind, lv.rate, lv.arrivals, lv.connections) for lv in opened.levels] == [
        (shapes.OPEN, 30.0, "poisson", o.pool)] * 2
    o = BenchOptions(arch="embedded", loadgen="server", loadgen_qps=75.0, loadgen_min_duration=3.0, n=100)
    (level,) = run.pass_shape(o, 100).levels
    # What LoadGen is told, as bench.run told it before it had shapes.
    assert loadgen.level_settings(level) == loadgen.LoadgenSettings(
        scenario="server", target_qps=75.0, min_queries=100, min_duration_s=3.0, max_duration_s=600.0,
        target_latency_ms=50.0, connections=o.pool)
    o = BenchOptions(arch="embedded", loadgen="singlestream", n=100)
    (level,) = run.pass_shape(o, 100).levels
    assert loadgen.level_settings(level).recorded() == loadgen.LoadgenSettings(
        scenario="singlestream", min_queries=100, min_duration_s=10.0, connections=o.pool).recorded()
