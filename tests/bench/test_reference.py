"""bench.reference end to end with tiny counts: what it writes is what the harness reads."""
from __future__ import annotations

import csv
import json

import pytest

from bench import reference

pytestmark = pytest.mark.unit

TINY = ["--calls", "6", "--warmup", "2", "--batch-sizes", "1,4", "--batch-images", "8",
        "--codec-calls", "3", "--no-progress"]


@pytest.mark.dataset
def test_main_writes_summary_csv_and_reference(tmp_path, cifar_dir, capsys):
    out = tmp_path / "results"
    assert reference.main([*TINY, "--data-dir", str(cifar_dir), "--out", str(out)]) == 0

    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert run_dir.name.endswith("-reference")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert json.loads((out / "reference.json").read_text()) == summary

    assert summary["kind"] == "reference"
    assert summary["interrupted"] is False
    settings = summary["settings"]
    assert (settings["calls"], settings["warmup"], settings["batch_sizes"]) == (6, 2, [1, 4])
    assert {"intra_op_threads", "inter_op_threads"} <= set(settings)
    assert summary["model"]["name"] == "cifar10_cnn"
    assert summary["data"]["path"] == str(cifar_dir)
    assert {"created_utc", "git_commit", "versions", "machine"} <= set(summary)

    latency = summary["latency_ms"]
    assert latency["count"] == 6
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]

    assert [t["batch"] for t in summary["throughput"]] == [1, 4]
    for t in summary["throughput"]:
        assert t["images"] == 8
        assert t["images_per_s"] > 0

    assert set(summary["codec_latency_ms"]) == {"json", "raw"}
    for codec, entry in summary["codec_latency_ms"].items():
        assert entry["count"] == 3
        assert 0 < entry["decode_ms"]["p50"] < entry["p50"]
    assert summary["codec_latency_ms"]["raw"]["body_bytes"] == 3072

    with (run_dir / "latency.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "latency_ms"]
    assert [int(r[0]) for r in rows[1:]] == list(range(6))
    assert all(float(r[1]) > 0 for r in rows[1:])

    assert "one image, predict" in capsys.readouterr().out


@pytest.mark.dataset
def test_interrupted_run_keeps_what_was_measured(tmp_path, cifar_dir, monkeypatch):
    out = tmp_path / "results"

    def stop(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(reference.Reference, "codec_latency", stop)
    assert reference.main([*TINY, "--data-dir", str(cifar_dir), "--out", str(out)]) == 130

    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["latency_ms"]["count"] == 6
    assert len(summary["throughput"]) == 2
    assert summary["codec_latency_ms"] == {}
    assert not (out / "reference.json").exists()  # a partial run never becomes the baseline


def test_unknown_codec_is_refused(capsys):
    with pytest.raises(SystemExit):
        reference.parse_args(["--codecs", "json,xml"])
    assert "unknown codec" in capsys.readouterr().err
