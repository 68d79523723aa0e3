"""bench.distributions: latency.hdr written at the session's close, read back, kept small, backfilled."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench import client, distributions, records
from bench.session import RunSession

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]


def _result(i: int, ms: float, status: int = 200, error: str = "") -> client.Result:
    req = client.Request(i, b"x", "application/octet-stream", np.array([3]))
    return client.Result(req, scheduled=1.0, sent=1.0, end=1.0 + ms / 1000.0, status=status,
                         predicted=np.array([3]), correct=1, error=error)


def _ok_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "requests.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row["status"] == "200" and not row["error"]]


def _session(tmp_path, **kw) -> RunSession:
    return RunSession(label="bench-embedded", root=tmp_path, header={"kind": "bench", "arch": "embedded"},
                      summary=lambda interrupted: {}, **kw)


def _tally(lat_ms, repeats: int = 1) -> distributions.LatencyTally:
    tally = distributions.LatencyTally()
    for i, ms in enumerate(lat_ms):
        tally.record(i % repeats, float(ms))
    return tally


def test_round_trip_keeps_count_repeats_and_quantiles(tmp_path):
    lat = np.random.default_rng(1).lognormal(1.5, 0.8, 5000)
    info = distributions.write(tmp_path, _tally(lat, repeats=2))
    assert info["file"] == distributions.FILE and info["count"] == 5000 and info["repeats"] == [0, 1]
    d = distributions.read(tmp_path)
    assert d.count == 5000 and d.repeats == [0, 1]
    qs = [0.0, 0.01, 0.5, 0.9, 0.99, 1.0]
    # 3 significant digits: each value within 0.1 % of a true one (and rounded to the microsecond)
    assert np.allclose(d.quantiles(qs), np.quantile(lat, qs, method="inverted_cdf"), rtol=1e-3, atol=1e-3)
    assert np.allclose(d.quantiles([0.5], repeat=1), np.quantile(lat[1::2], 0.5, method="inverted_cdf"),
                       rtol=1e-3)
    table = d.cdf()
    assert table.shape[1] == 2 and table[-1, 1] == 1.0
    assert np.all(np.diff(table[:, 0]) > 0) and np.all(np.diff(table[:, 1]) > 0)
    values = distributions.latencies(tmp_path)
    assert values.size == 5000 and np.all(np.diff(values) >= 0)
    assert np.allclose(values, np.sort(lat), rtol=1e-3, atol=1e-3)
    assert distributions.latencies(tmp_path, repeat=0).size == 2500
    with pytest.raises(KeyError):
        d.cdf(repeat=7)


def test_a_100000_row_run_stays_under_20_kB(tmp_path):
    rng = np.random.default_rng(2)
    for lat, repeats in [(rng.lognormal(1.5, 1.0, 100_000), 1),
                         (10 ** rng.uniform(-2, 5, 100_000), 5),  # 10 us to 100 s, five repeats
                         (10 ** rng.uniform(-3, 6.5, 100_000), 1)]:  # as wide as the histogram goes
        info = distributions.write(tmp_path, _tally(lat, repeats))
        size = (tmp_path / distributions.FILE).stat().st_size
        assert size == info["bytes"] < distributions.MAX_BYTES
        d = distributions.read(tmp_path)
        assert d.count == 100_000
        assert np.allclose(d.quantiles([0.5, 0.99]), np.quantile(lat, [0.5, 0.99]), rtol=10 ** -(info["significant_digits"] - 1))


def test_a_file_over_the_bound_is_merged_then_coarser(tmp_path, monkeypatch):
    monkeypatch.setattr(distributions, "MAX_BYTES", 4000)
    lat = 10 ** np.random.default_rng(3).uniform(-2, 4, 20_000)
    info = distributions.write(tmp_path, _tally(lat, repeats=3))
    assert info["repeats"] is None and info["significant_digits"] < distributions.DIGITS and info["bytes"] < 4000
    d = distributions.read(tmp_path)
    assert d.count == 20_000 and d.repeats is None
    assert np.allclose(d.quantiles([0.5, 0.99]), np.quantile(lat, [0.5, 0.99]), rtol=0.1)


def test_many_repeats_share_one_histogram(tmp_path):
    tally = _tally(np.full(200, 5.0), repeats=distributions.MAX_REPEATS + 4)
    assert list(tally.by_tag) == [distributions.MERGED] and tally.count == 200
    info = distributions.write(tmp_path, tally)
    assert info["repeats"] is None and distributions.read(tmp_path).count == 200


def test_the_count_equals_the_successful_rows_written(tmp_path):
    with _session(tmp_path, requests_csv=True) as s:
        rec = s.recorder(origin=0.0)
        for repeat in range(2):
            rec.repeat = repeat
            for i in range(30):
                status, error = (502, "") if i % 7 == 0 else (200, "bad answer" if i % 11 == 0 else "")
                rec(_result(i, 1.0 + i, status, error))
    rows = _ok_rows(s.run_dir)
    info = s.record.get("latency_distribution")
    d = distributions.read(s.run_dir)
    assert info["file"] == distributions.FILE and info["count"] == d.count == len(rows) == 2 * 23
    assert info["repeats"] == d.repeats == [0, 1]
    assert json.loads((s.run_dir / records.FILE).read_text())["latency_distribution"] == info
    assert sorted(distributions.latencies(s.run_dir, repeat=1)) == pytest.approx(
        sorted(float(r["latency_ms"]) for r in rows if r["repeat"] == "1"), rel=1e-3)


def test_an_interrupted_run_holds_exactly_the_rows_written(tmp_path):
    with _session(tmp_path, requests_csv=True) as s:
        rec = s.recorder(origin=0.0)
        for i in range(12):
            rec(_result(i, 2.0 + i, 200 if i % 4 else 500))
        raise KeyboardInterrupt
    rec(_result(99, 3.0))  # in flight at the interrupt: neither written nor counted
    assert s.interrupted and s.record.interrupted and rec.late == 1
    assert s.record.get("latency_distribution", "count") == distributions.read(s.run_dir).count \
        == len(_ok_rows(s.run_dir)) == 9


def test_a_session_without_a_recorder_writes_no_distribution(tmp_path):
    with _session(tmp_path) as s:
        pass
    assert not (s.run_dir / distributions.FILE).exists() and s.record.get("latency_distribution") is None


def test_backfill_writes_only_from_real_rows_and_only_where_missing(tmp_path, capsys):
    with _session(tmp_path, requests_csv=True) as s:
        rec = s.recorder(origin=0.0)
        for i in range(50):
            rec(_result(i, 1.0 + i / 10, 200 if i % 5 else 502))
    made = distributions.read(s.run_dir)
    (s.run_dir / distributions.FILE).unlink()
    kept = tmp_path / "20260101T000000Z-bench-kept"
    shutil.copytree(s.run_dir, kept)
    (kept / distributions.FILE).write_text("untouched")
    failed = tmp_path / "20260101T000001Z-bench-failed"
    failed.mkdir()
    (failed / "requests.csv").write_text("repeat,index,latency_ms,status,error\n0,0,5.0,502,\n")
    (tmp_path / "20260101T000002Z-reference").mkdir()  # no requests.csv: nothing to do
    assert distributions.main(["backfill", str(tmp_path)]) == 0
    assert "1 run(s) got latency.hdr" in capsys.readouterr().out
    again = distributions.read(s.run_dir)
    assert again.count == made.count == 40 and np.array_equal(again.values(), made.values())
    assert (kept / distributions.FILE).read_text() == "untouched" and not (failed / distributions.FILE).exists()
    assert distributions.backfill(tmp_path, say=lambda _: None) == []


def test_a_damaged_file_is_a_value_error(tmp_path):
    (tmp_path / distributions.FILE).write_text("Tag=repeat-0,0.000,0.000,1.0,HISTFAAAnot-base64\n")
    with pytest.raises(ValueError):
        distributions.read(tmp_path)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_latency_hdr_is_committed_not_ignored():
    path = "results/20260101T000000Z-bench-embedded/" + distributions.FILE
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT)
    if done.returncode == 128:
        pytest.skip("not a git work tree")
    assert done.returncode == 1  # 1: not ignored
