"""bench.perf_analyzer without a server: its command line, its input data, and its output as it really reads.

The fixtures are perf_analyzer 2.51.0's own CSV (``-f``) and verbose console
output, captured against the embedded stack: a stable closed-loop run, an
unstable one and the fixed-count run that followed it, and an open-loop run
stabilised on p50.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest

from bench import perf_analyzer as pa

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "perf_analyzer"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# ------------------------------------------------------------------ the command line
def test_closed_loop_command_names_every_setting(tmp_path):
    m = pa.Measurement(concurrency=4, measurement_interval_ms=3000, max_trials=7)
    cmd = pa.command("127.0.0.1:8080", m, input_data=tmp_path / "in.json", csv_path=tmp_path / "out.csv")
    assert cmd[0] == str(pa.VENV / "bin" / "perf_analyzer")
    args = " ".join(cmd[1:])
    for part in ("-m cifar10_cnn", "-u 127.0.0.1:8080", "-i http", "-b 1", f"--input-data {tmp_path / 'in.json'}",
                 f"-f {tmp_path / 'out.csv'}", "--concurrency-range 4:4", "--measurement-interval 3000",
                 "--stability-percentage 10", "--max-trials 7"):
        assert part in args, part
    assert "--request-rate-range" not in args and "--request-count" not in args and "--percentile" not in args


def test_open_loop_and_fixed_count_commands(tmp_path):
    rate = pa.command("h:1", pa.Measurement(rate=150.5, distribution="poisson", percentile=50, max_threads=16),
                      input_data=None, csv_path=tmp_path / "o.csv")
    text = " ".join(rate)
    assert "--request-rate-range 150.5:150.5" in text and "--request-distribution poisson" in text
    assert "--percentile 50" in text and "--max-threads 16" in text and "--input-data random" in text
    assert "--concurrency-range" not in text
    count = " ".join(pa.command("h:1", pa.Measurement(concurrency=1, request_count=500), input_data=None,
                                csv_path=tmp_path / "o.csv"))
    assert "--request-count 500" in count and "--measurement-interval" not in count


@pytest.mark.parametrize("kw", [{}, {"concurrency": 1, "rate": 10.0}, {"rate": 5.0, "distribution": "uniform"}])
def test_a_measurement_is_one_load(kw):
    with pytest.raises(ValueError):
        pa.Measurement(**kw)


# ------------------------------------------------------------------ input data
def test_input_data_holds_the_real_images_one_entry_each(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    doc = json.loads(pa.write_input_data(tmp_path / "in.json", images).read_text())
    assert len(doc["data"]) == 3
    for image, entry in zip(images, doc["data"]):
        tensor = entry["images"]
        assert tensor["shape"] == [32, 32, 3]
        assert base64.b64decode(tensor["content"]["b64"]) == image.tobytes()


def test_input_shape_follows_the_model_config():
    assert pa.request_shape({"max_batch_size": 256}) == [32, 32, 3]  # the batch dimension is -b's
    assert pa.request_shape({"max_batch_size": 0}, batch=1) == [1, 32, 32, 3]  # no batching: the whole tensor
    with pytest.raises(ValueError):
        pa.write_input_data(Path(os.devnull), np.zeros((1, 32, 32, 3), np.uint8), shape=[5, 5])


# ------------------------------------------------------------------ where it is
def test_missing_venv_says_how_to_make_it(tmp_path):
    assert pa.missing(tmp_path / ".venv-perf") == pa.MISSING
    assert "make setup-perf" in pa.MISSING
    with pytest.raises(pa.PerfAnalyzerError, match="make setup-perf"):
        pa.run("http://127.0.0.1:9", concurrency=1, venv=tmp_path / ".venv-perf")


def test_libcudart_of_the_wheel_goes_first_on_the_library_path(tmp_path):
    venv = tmp_path / ".venv-perf"
    lib = venv / "lib" / "python3.11" / "site-packages" / "nvidia" / "cuda_runtime" / "lib"
    lib.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "perf_analyzer").write_text("")
    assert pa.missing(venv) is not None  # the binary alone is not enough: it links libcudart
    (lib / "libcudart.so.12").write_text("")
    assert pa.missing(venv) is None and pa.cuda_runtime_lib(venv) == lib
    env = pa.environment(venv, base={"LD_LIBRARY_PATH": "/opt/x"})
    assert env["LD_LIBRARY_PATH"] == f"{lib}{os.pathsep}/opt/x"
    assert pa.environment(venv, base={})["LD_LIBRARY_PATH"] == str(lib)


# ------------------------------------------------------------------ its output
def test_csv_rows_and_figures_in_ms():
    rows = pa.parse_csv(fixture("concurrency-stable.csv"))
    assert len(rows) == 1
    row = rows[0]
    assert row["Concurrency"] == 1.0 and row["Inferences/Second"] == pytest.approx(242.674)
    out = pa.figures(row, pa.parse_console(fixture("concurrency-stable.log")))
    assert out["throughput"] == 242.67
    assert (out["p50_ms"], out["p90_ms"], out["p95_ms"], out["p99_ms"]) == (3.411, 6.455, 7.674, 12.023)
    assert out["avg_ms"] == 4.105  # not in the CSV without --verbose-csv: from the console
    assert out["client_send_us"] == 79.0 and out["requests"] == 874


def test_console_of_a_stable_run():
    c = pa.parse_console(fixture("concurrency-stable.log"))
    assert not c["unstable"] and c["request_count"] == 874 and c["client_overhead_pct"] == 0.57
    assert [p["throughput"] for p in c["passes"]] == [250.802, 234.867, 242.357]
    assert {p["latency"] for p in c["passes"]} == {"avg"}


def test_console_of_an_unstable_run_then_its_fixed_count():
    c = pa.parse_console(fixture("concurrency-unstable.log"))
    assert c["unstable"] and c["request_count"] is None and len(c["passes"]) == 5
    count = pa.parse_console(fixture("concurrency-count.log"))
    assert not count["unstable"] and count["request_count"] == 500 and len(count["passes"]) == 1
    assert pa.figures(pa.parse_csv(fixture("concurrency-count.csv"))[0], count)["p50_ms"] is not None


def test_open_loop_output_stabilised_on_p50():
    unstable = pa.parse_console(fixture("rate-p50-unstable.log"))
    assert unstable["unstable"] and len(unstable["passes"]) == 5
    assert {p["latency"] for p in unstable["passes"]} == {"p50"}
    row = pa.parse_csv(fixture("rate-p50-count.csv"))[0]
    assert row["Request Rate"] == 100.0
    out = pa.figures(row, pa.parse_console(fixture("rate-p50-count.log")))
    assert out["throughput"] == 83.29 and out["p50_ms"] == 9.78 and out["p99_ms"] == 46.907


def test_client_cpu_per_request_from_the_windows_it_ran():
    console = pa.parse_console(fixture("concurrency-stable.log"))
    outcome = pa.Outcome(command=[], returncode=0, stdout="", csv_rows=[], cpu_s=0.5, wall_s=4.0, console=console)
    m = pa.Measurement(concurrency=1, measurement_interval_ms=1000)
    sent = sum(p["throughput"] for p in console["passes"])  # 1 s windows
    assert pa._cpu_ms_per_request(outcome, m) == pytest.approx(500.0 / sent, abs=1e-3)
    counted = pa.Measurement(concurrency=1, request_count=500)
    assert pa._cpu_ms_per_request(outcome, counted) == pytest.approx(1.0)
    outcome.cpu_s = None
    assert pa._cpu_ms_per_request(outcome, m) is None
