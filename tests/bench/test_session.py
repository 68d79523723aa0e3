"""bench.session: the run session every command opens (header, recorder, sampler, shielded close, table)."""
from __future__ import annotations

import csv
import json
import os
import signal
import threading

import numpy as np
import pytest

from bench import client, records, resources, results
from bench.session import Recorder, RunSession

pytestmark = pytest.mark.unit


def _result(i: int, status: int = 200) -> client.Result:
    req = client.Request(i, b"x", "application/octet-stream", np.array([3]))
    return client.Result(req, scheduled=1.0, sent=1.0, end=1.001, status=status, predicted=np.array([3]), correct=1)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _session(tmp_path, **kw) -> RunSession:
    kw.setdefault("header", {"kind": "bench", "arch": "embedded", "settings": {"n": 3}})
    kw.setdefault("summary", lambda interrupted: {"requests": {"count": s.rec.count if s.rec else 0}})
    s = RunSession(label="bench-embedded", root=tmp_path, **kw)
    return s


def test_the_header_says_running_until_the_end(tmp_path):
    seen = {}
    with _session(tmp_path, requests_csv=True, resources_csv=True) as s:
        seen.update(json.loads((s.run_dir / records.FILE).read_text()))
        assert (s.run_dir / "requests.csv").exists() and (s.run_dir / "resources.csv").exists()
    assert seen["running"] is True and seen["interrupted"] is True and seen["run_id"] == s.run_dir.name
    assert set(seen["provenance"]) >= {"created_utc", "git_commit"}
    doc = json.loads((s.run_dir / records.FILE).read_text())
    assert "running" not in doc and doc["interrupted"] is False and doc["kind"] == "bench"
    assert doc["settings"] == {"n": 3} and doc["requests"] == {"count": 0}
    assert s.record == records.read(s.run_dir) and (tmp_path / "latest").resolve() == s.run_dir


def test_count_equals_rows_and_the_table_is_printed(tmp_path):
    printed = []
    with _session(tmp_path, table=lambda doc, run_dir: printed.append((doc, run_dir))) as s:
        rec = s.recorder(origin=0.0)
        for i in range(7):
            rec(_result(i, 200 if i % 3 else 502))
    rec(_result(99))  # in flight at the close: neither written nor counted
    assert rec.count == s.rows_written == len(_rows(s.run_dir / "requests.csv")) == 7 and rec.late == 1
    assert len(rec.results) == 7 and s.record.get("requests", "count") == 7
    (doc, run_dir), = printed
    assert run_dir == s.run_dir and doc == s.record.doc()


def test_count_equals_rows_when_closed_under_load(tmp_path):
    s = _session(tmp_path).begin()
    rec = s.recorder(origin=0.0)
    go = threading.Event()

    def hammer(base: int) -> None:
        go.wait()
        for i in range(300):
            rec(_result(base + i))

    threads = [threading.Thread(target=hammer, args=(k * 1000,)) for k in range(6)]
    for t in threads:
        t.start()
    go.set()
    s.__exit__(None, None, None)
    for t in threads:
        t.join()
    assert rec.count == len(rec.results) == len(_rows(s.run_dir / "requests.csv")) == s.record.get("requests", "count")


def test_a_tally_sees_every_written_answer_and_closes(tmp_path):
    class Tally:
        def __init__(self):
            self.seen, self.closed = [], False

        def __call__(self, repeat, r):
            self.seen.append((repeat, r.request.index))

        def close(self):
            self.closed = True

    log = results.CsvLog(tmp_path / "r.csv", results.REQUEST_COLUMNS)
    rec = Recorder(log, 0.0, keep=False, tally=Tally(), repeat_of=lambda r: r.request.index // 2)
    for i in range(5):
        rec(_result(i))
    rec.close()
    assert rec.tally.seen == [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4)] and rec.tally.closed and rec.results == []
    assert [int(r["repeat"]) for r in _rows(tmp_path / "r.csv")] == [0, 0, 1, 1, 2]


def test_ctrl_c_writes_an_interrupted_summary_and_is_not_raised_again(tmp_path):
    closed = []
    with _session(tmp_path) as s:
        rec = s.recorder(origin=0.0)
        s.on_close(lambda: closed.append(s.stop.is_set()))
        rec(_result(0))
        raise KeyboardInterrupt
    assert s.interrupted and s.record.interrupted and closed == [True]
    doc = json.loads((s.run_dir / records.FILE).read_text())
    assert doc["interrupted"] is True and "running" not in doc and doc["requests"]["count"] == 1


def test_an_error_leaves_the_running_record_unless_asked(tmp_path):
    with pytest.raises(RuntimeError):
        with _session(tmp_path) as s:
            raise RuntimeError("a stack that would not start")
    doc = json.loads((s.run_dir / records.FILE).read_text())
    assert doc["running"] is True and doc["interrupted"] is True and s.record is None
    with pytest.raises(RuntimeError):
        with _session(tmp_path, record_errors=True) as s:
            raise RuntimeError("a stack that would not start")
    doc = json.loads((s.run_dir / records.FILE).read_text())
    assert "running" not in doc and doc["interrupted"] is True


def test_the_close_is_shielded_from_a_second_signal(tmp_path):
    """A signal during the close does not cut it short: the record is written, then the signal is raised."""
    def closer():
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again, while closing

    with pytest.raises(KeyboardInterrupt):
        with _session(tmp_path) as s:
            s.recorder(origin=0.0)(_result(0))
            s.on_close(closer)
            raise KeyboardInterrupt
    doc = json.loads((s.run_dir / records.FILE).read_text())
    assert doc["interrupted"] is True and "running" not in doc and doc["requests"]["count"] == 1


def test_the_sampler_runs_until_the_close(tmp_path):
    with _session(tmp_path, latest=False,
                  summary=lambda interrupted: {"resources": s.sampler.summary(1)}) as s:
        sampler = s.sample(lambda: {"client": resources.client_process()}, hz=50.0)
        threading.Event().wait(0.1)
    assert not sampler._thread.is_alive() and s.sampler is sampler
    rows = _rows(s.run_dir / "resources.csv")
    assert rows and {r["service"] for r in rows} == {"client"}
    assert s.record.get("resources", "client", "n_procs_max") == 1
    assert not (tmp_path / "latest").exists()


def test_a_given_run_dir_is_used(tmp_path):
    with RunSession(tmp_path / "run-1", header={"kind": "load"}) as s:
        pass
    assert records.read(tmp_path / "run-1").run_id == "run-1" and s.record.kind == "load"


def test_a_service_in_parts_gets_each_part_s_cpu_and_memory_beside_its_total(tmp_path):
    import subprocess
    import sys

    import psutil

    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 0.6: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.6)"])
    procs = [psutil.Process(busy.pid), psutil.Process(idle.pid)]
    try:
        with _session(tmp_path, latest=False, summary=lambda interrupted: {"resources": s.sampler.summary(10)}) as s:
            s.sample(lambda: {"svc": procs}, hz=50.0, parts={"svc": lambda p: "busy" if p.pid == busy.pid else "idle"})
            threading.Event().wait(0.4)
    finally:
        busy.wait()
        idle.wait()
    svc = s.record.get("resources", "svc")
    parts = svc["parts"]
    assert set(parts) == {"busy", "idle"} and parts["busy"]["n_procs_max"] == 1
    assert parts["busy"]["cpu_seconds"] > 0.1 > parts["idle"]["cpu_seconds"]
    assert parts["busy"]["cpu_seconds"] + parts["idle"]["cpu_seconds"] == pytest.approx(svc["cpu_seconds"], abs=0.01)
    assert parts["busy"]["rss_mb_mean"] > 0 and "parts" not in parts["busy"]
    # resources.csv keeps one row per service per sample: the parts are in the summary only
    assert {r["service"] for r in _rows(s.run_dir / "resources.csv")} == {"svc"}
