"""bench.report on a small fake results tree.

Everything under the tree is a test fixture made up here (FAKE-* run ids),
not a measurement. The tree's builders are shared with the other
test_report_*.py modules.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from bench import report
from bench.report import runs, tables
from bench.studies.docker_serving import published
from bench.studies.docker_serving import report as study_report

pytestmark = pytest.mark.unit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The plots' file names are part of the output: README and old links point at them.
PLOTS = ("table3_time_per_image.png", "resources_cpu_ram.png", "latency_distribution.png", "latency_vs_load.png",
         "hops.png")
SERVICES_OF = {"embedded": None, "flask": "flask", "fastapi": "fastapi"}
# Made-up medians per arch (ms): end-to-end p50 and the model's share.
FAKE_P50 = {"embedded": 3.1, "flask": 5.2, "fastapi": 4.4}


def _provenance(created: str) -> dict:
    return {
        "created_utc": created,
        "git_commit": "0123456789abcdef0123456789abcdef01234567-dirty",
        "versions": {"python": "3.11.2", "tensorflow": "2.19.0", "Flask": "3.1.0", "fastapi": "0.115.0"},
        "machine": {"cpu_model": "FAKE CPU", "logical_cpus": 2, "memory_gib": 8.0, "load_average_1m": 0.3},
    }


def _write(folder: Path, doc: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(doc, indent=2))


def make_bench(root: Path, run_id: str, arch: str, created: str, *, n: int = 100, concurrency: int = 1,
               rate: float | None = None, interrupted: bool = False, seed: int = 0, requests: int = 400) -> None:
    rng = np.random.default_rng(seed)
    p50 = FAKE_P50[arch] * (1 + 0.35 * (concurrency - 1)) * (1 + (rate or 0) / 400)
    latencies = p50 * rng.lognormal(0.0, 0.25, requests)
    backend = SERVICES_OF[arch]
    hops = {"client_network_nginx": 0.25, "gunicorn": 0.15, "django": 0.6, "forward_network": 0.4,
            "backend_framework": 0.5, "decode": 0.1, "model": 1.4}
    if backend is None:
        hops.update(forward_network=None, backend_framework=None)
    services = {"nginx": (3.0, 6.0), "frontend": (35.0, 310.0), "client": (20.0, 45.0)}
    if backend:
        services[backend] = (30.0, 290.0)
    table3 = {str(k): {"mean_s": k * p50 / 1000 * 1.05, "stdev_s": k * p50 / 1000 * 0.04}
              for k in published.TABLE3_SIZES if k <= n}
    _write(root / run_id, {
        "kind": "bench", "run_id": run_id, "arch": arch, "runtime": "native", "interrupted": interrupted,
        "settings": {"n": n, "batch": 1, "codec": "json", "concurrency": concurrency, "rate": rate,
                     "arrivals": "constant", "repeats": 2, "warmup": 5, "seed": 1},
        "stack": {"knobs": {"SB_FRONTEND_WORKERS": "2", "SB_BACKEND_THREADS": "4"}},
        "provenance": _provenance(created),
        "requests": {"count": requests, "ok": requests - 3, "errors_by_status": {"404": 2, "503": 1}},
        "accuracy": 0.78,
        "latency_ms": {k: round(float(v), 3) for k, v in zip(
            ("p50", "p90", "p99", "max", "mean"),
            [*np.percentile(latencies, [50, 90, 99]), latencies.max(), latencies.mean()])},
        "throughput_images_per_s": round(1000 / p50 * concurrency, 1),
        "wall_s": 12.5,
        "table3": table3,
        "hops_ms": hops,
        "resources": {name: {"cpu_percent_mean": cpu, "cpu_seconds_per_image": cpu / 100 * p50 / 1000,
                             "rss_mb_mean": rss, "rss_mb_max": rss * 1.1, "pss_mb_mean": rss * 0.8}
                      for name, (cpu, rss) in services.items()},
        "harness_overhead_ms": 0.05,
        "reference": {"p50_ms": 1.2, "ratio_p50": round(p50 / 1.2, 2)},
    })
    with (root / run_id / "requests.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["repeat", "index", "scheduled_s", "sent_s", "latency_ms", "status", "images"])
        for i, ms in enumerate(latencies):
            w.writerow([0, i, i * 0.01, i * 0.01, f"{ms:.4f}", 404 if i < 2 else 200, 1])
    with (root / run_id / "resources.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "service", "cpu_percent", "cpu_seconds", "rss_mb", "pss_mb", "n_procs"])
        for t in range(3):
            for name, (cpu, rss) in services.items():
                w.writerow([t, name, cpu, cpu / 100 * t, rss, rss * 0.8, 1])


def make_results(root: Path, sweep: bool = False) -> Path:
    """A fake results tree: three archs, one interrupted run, broken folders, a load run, a reference."""
    root.mkdir(parents=True, exist_ok=True)
    reference = {"kind": "reference", "run_id": "FAKE-20250101T000000Z-reference", "interrupted": False,
                 "model": {"name": "cifar10_cnn", "version": 1},
                 "latency_ms": {"count": 100, "p50": 1.2, "p90": 1.4, "p99": 2.1, "mean": 1.25, "max": 3.0},
                 "throughput": [{"batch": 1, "images_per_s": 800.0}, {"batch": 32, "images_per_s": 5200.0}],
                 **_provenance("2025-01-01T00:00:00+00:00")}
    _write(root / reference["run_id"], reference)
    (root / "reference.json").write_text(json.dumps(reference))
    make_bench(root, "FAKE-20250101T010000Z-embedded", "embedded", "2025-01-01T01:00:00+00:00", seed=1)
    make_bench(root, "FAKE-20250101T020000Z-flask", "flask", "2025-01-01T02:00:00+00:00", seed=2)
    make_bench(root, "FAKE-20250101T030000Z-fastapi", "fastapi", "2025-01-01T03:00:00+00:00", seed=3)
    # Newer than the complete flask run, but interrupted: listed, never plotted.
    make_bench(root, "FAKE-20250101T040000Z-flask", "flask", "2025-01-01T04:00:00+00:00", seed=4,
               interrupted=True)
    _write(root / "FAKE-20250101T050000Z-load", {
        "kind": "load", "run_id": "FAKE-20250101T050000Z-load", "arch": "fastapi", "runtime": "native",
        "interrupted": False,
        "settings": {"users": 4, "spawn_rate": 4, "duration": "30s", "workers": 0, "codec": "json", "batch": 1},
        "locust": {"requests": 1200, "failures": 1, "requests_per_s": 40.0, "images_per_s": 40.0,
                   "latency_ms": {"p50": 9.0, "p90": 14.0, "p99": 25.0, "mean": 10.0, "max": 40.0}},
        **_provenance("2025-01-01T05:00:00+00:00")})
    (root / "FAKE-broken").mkdir()
    (root / "FAKE-broken" / "summary.json").write_text("{not json")
    (root / "FAKE-empty").mkdir()
    if sweep:
        for k, c in enumerate((2, 4, 8)):
            for arch in ("embedded", "fastapi"):
                make_bench(root, f"FAKE-20250102T0{k}0000Z-{arch}-c{c}", arch, f"2025-01-02T0{k}:00:00+00:00",
                           concurrency=c, seed=10 + k)
        for k, r in enumerate((50.0, 100.0, 200.0)):
            make_bench(root, f"FAKE-20250103T0{k}0000Z-fastapi-r{r:g}", "fastapi", f"2025-01-03T0{k}:00:00+00:00",
                       rate=r, seed=20 + k)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fake tree after one `python -m bench.report`, with what it printed in stdout.txt."""
    root = make_results(tmp_path_factory.mktemp("results"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert report.main(["--results", str(root)]) == 0
    (root.parent / "stdout.txt").write_text(out.getvalue())
    return root


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_summary_csv_has_one_row_per_readable_run(built):
    rows = read_csv(built / "summary.csv")
    with (built / "summary.csv").open() as f:
        assert next(csv.reader(f)) == tables.COLUMNS
    ids = {r["run_id"] for r in rows}
    assert ids == {"FAKE-20250101T000000Z-reference", "FAKE-20250101T010000Z-embedded",
                   "FAKE-20250101T020000Z-flask", "FAKE-20250101T030000Z-fastapi",
                   "FAKE-20250101T040000Z-flask", "FAKE-20250101T050000Z-load"}
    by_id = {r["run_id"]: r for r in rows}
    assert by_id["FAKE-20250101T040000Z-flask"]["interrupted"] == "True"
    fastapi = by_id["FAKE-20250101T030000Z-fastapi"]
    assert fastapi["interrupted"] == "False"
    assert fastapi["errors"] == "3" and fastapi["errors_by_status"] == "404:2;503:1"
    assert fastapi["backend_service"] == "fastapi" and float(fastapi["cpu_percent_backend"]) == 30.0
    assert float(fastapi["hop_model_ms"]) == 1.4 and fastapi["table3_n"] == "100"
    assert by_id["FAKE-20250101T010000Z-embedded"]["hop_forward_network_ms"] == ""
    load = by_id["FAKE-20250101T050000Z-load"]
    assert load["users"] == "4" and load["errors"] == "1" and float(load["latency_p99_ms"]) == 25.0
    assert float(load["requests_per_s"]) == 40.0
    assert float(by_id["FAKE-20250101T000000Z-reference"]["latency_p50_ms"]) == 1.2


def test_every_plot_is_a_nonempty_png(built):
    for name in PLOTS:
        data = (built / "plots" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name


def test_html_shows_plots_study_numbers_and_gaps(built):
    page = (built / "report.html").read_text()
    for name in PLOTS:
        assert f'src="plots/{name}"' in page
    assert "20,702.672" in page and "289.219" in page  # their 10,000-image times, Flask and Embedded
    assert "38.92×" in page  # their Flask / FastAPI at 10,000 images
    assert "450.5" in page and "23.7" in page  # their Table 4
    assert page.count(tables.NOT_MEASURED) >= 2  # TF Serving REST and gRPC have no run here
    assert "INTERRUPTED" in page
    assert 'href="summary.csv"' in page


def test_comparison_uses_newest_complete_default_run(built):
    found, notes = runs.load_runs(built)
    chosen = [r.run_id for r in runs.comparison_runs(found)]
    assert chosen == ["FAKE-20250101T010000Z-embedded", "FAKE-20250101T020000Z-flask",
                      "FAKE-20250101T030000Z-fastapi"]
    assert any("FAKE-broken" in n for n in notes) and any("FAKE-empty" in n for n in notes)


def test_ratio_rows_pair_the_same_runtime_and_codec(built):
    found, _ = runs.load_runs(built)
    rows = {(r["slow"], r["fast"]): r for r in study_report.ratio_rows(runs.comparison_runs(found))}
    flask_fastapi = rows[("flask", "fastapi")]
    assert flask_fastapi["study"] == pytest.approx(20702.672 / 531.959)
    assert flask_fastapi["ours"][0]["ratio"] == pytest.approx(FAKE_P50["flask"] / FAKE_P50["fastapi"])
    assert rows[("fastapi", "tfserving-rest")]["ours"] == []
    # gRPC runs the same services as the study's TF Serving (REST only there): its ratios, without theirs
    assert rows[("fastapi", "tfserving-grpc")]["study"] is None
    assert rows[("embedded", "tfserving-grpc")]["study"] is None


def test_broken_runs_are_noted_not_fatal(built):
    out = (built.parent / "stdout.txt").read_text()
    assert "skipped FAKE-broken: unreadable summary.json" in out
    assert "skipped FAKE-empty: no summary.json" in out


def test_empty_results_still_make_every_file(tmp_path):
    assert report.main(["--results", str(tmp_path)]) == 0
    assert read_csv(tmp_path / "summary.csv") == []
    for name in PLOTS:
        assert (tmp_path / "plots" / name).stat().st_size > 0
    assert tables.NOT_MEASURED in (tmp_path / "report.html").read_text()


def test_missing_results_folder_is_an_error(tmp_path):
    assert report.main(["--results", str(tmp_path / "nope")]) == 2


def test_study_numbers_match_their_conclusions():
    t3 = {arch: published.table3_seconds(arch) for arch in published.measured()}
    for n in published.TABLE3_SIZES:
        assert 36 <= t3["flask"][n] / t3["fastapi"][n] <= 39  # "FastAPI 36-39x faster than Flask"
        assert min(t3, key=lambda a: t3[a][n]) == "tfserving-rest"  # "TF Serving fastest"
    assert published.seconds_per_image("fastapi") == pytest.approx(0.0531959)
    assert published.cpu_percent_of_one_core("embedded") == pytest.approx(173.6)
    assert set(published.TABLE4) == set(published.TABLE3_SECONDS) == set(published.LABELS)


def test_slow_call_path_runs_never_stand_for_an_architecture(tmp_path):
    make_bench(tmp_path, "FAKE-1-fastapi", "fastapi", "2026-01-01T00:00:01+00:00", n=1000)
    make_bench(tmp_path, "FAKE-2-fastapi-slow", "fastapi", "2026-01-01T00:00:02+00:00", n=1000)
    doc = json.loads((tmp_path / "FAKE-2-fastapi-slow" / "summary.json").read_text())
    doc["stack"]["knobs"]["SB_CALL_PATH"] = "keras-predict"
    (tmp_path / "FAKE-2-fastapi-slow" / "summary.json").write_text(json.dumps(doc))
    make_bench(tmp_path, "FAKE-3-fastapi-small", "fastapi", "2026-01-01T00:00:03+00:00", n=100)
    found, _ = runs.load_runs(tmp_path)
    chosen = runs.comparison_runs(found)
    # The slow path is excluded, and the run with the most images wins over a newer, smaller one.
    assert [r.run_id for r in chosen] == ["FAKE-1-fastapi"]
    with contextlib.redirect_stdout(io.StringIO()):
        report.main(["--results", str(tmp_path)])
    page = (tmp_path / "report.html").read_text()
    assert "FAKE-2-fastapi-slow" in page.split('<h2 id="call-path">')[1].split("<h2")[0]
