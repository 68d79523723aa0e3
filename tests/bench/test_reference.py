"""bench.reference end to end with tiny counts: what it writes is what the harness reads."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import records, reference
from bench.options import ReferenceOptions, parse

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

    record = records.read(run_dir)  # a versioned run record, as every writer writes
    assert record.schema_version == records.SCHEMA_VERSION and record.kind == "reference"
    assert record.run_id == run_dir.name and record.study is None
    assert record.doc() == json.loads(json.dumps(summary))
    assert records.read(out / "reference.json").run_id == run_dir.name

    assert summary["kind"] == "reference"
    assert summary["interrupted"] is False
    settings = summary["settings"]
    assert (settings["calls"], settings["warmup"], settings["batch_sizes"]) == (6, 2, [1, 4])
    assert {"intra_op_threads", "inter_op_threads", "call_path"} <= set(settings)
    assert summary["model"]["name"] == "cifar10_cnn"
    assert summary["data"]["path"] == str(cifar_dir)
    assert {"created_utc", "git_commit", "versions", "machine"} <= set(summary["provenance"])

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
        parse(ReferenceOptions, ["--codecs", "json,xml"])
    assert "--codecs: unknown codec(s) xml" in capsys.readouterr().err


@pytest.mark.dataset
def test_isolated_measurement_keeps_tensorflow_out_of_the_caller(tmp_path, cifar_dir):
    """A study measures the reference in a child process: the harness's memory stays a client's."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from bench import reference
        from bench.options import ReferenceOptions
        from servebench.settings import Settings
        options = ReferenceOptions(calls=3, warmup=1, batch_sizes=(1,), batch_images=2, codec_calls=0,
                                   data_dir=Path({str(cifar_dir)!r}), out=Path({str(tmp_path)!r}),
                                   progress=False, study="docker-serving")
        record = reference.measure_isolated(options, Settings())
        print("RESULT", record.kind, record.study, record.get("latency_ms", "count"), "tensorflow" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    assert line.split()[1:] == ["reference", "docker-serving", "3", "False"]
    assert records.read(tmp_path / "reference.json").study == "docker-serving"
