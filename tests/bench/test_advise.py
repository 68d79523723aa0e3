"""The advisor (bench.advise): candidates read from results folders, operating points, ranking, the Pareto front,
constraint and bad-input messages (on small fake results folders built here: test data only), and `make advise`
end to end against a real FastAPI stack at a tiny scale."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from bench import target
from bench.advise import __main__ as advise_main
from bench.advise import candidates, pareto, ranking
from bench.advise.candidates import Level

REPO = Path(__file__).resolve().parents[2]
MODEL = "cifar10_cnn"
LEVEL_COLUMNS = ["batching", "mode", "concurrency", "rate", "stable", "throughput_images_per_s", "p50_ms", "p99_ms",
                 "server_cpu_ms_per_image", "interrupted"]


# ------------------------------------------------------------------ fake results (test data)
def fake_sweep(root: Path, arch: str, modes: dict[str, list[dict]], stamp: str = "20300101T000000Z",
               rss_mb: float = 500.0, threads: int = 16) -> Path:
    """A sweep folder as bench.sweep writes it, reduced to what the advisor reads: levels per batching mode."""
    folder = root / f"{stamp}-sweep-{arch}"
    folder.mkdir(parents=True)
    stacks = {}
    for mode in modes:
        knobs = {"SB_FRONTEND_THREADS": str(threads), "SB_BACKEND_THREADS": str(threads),
                 "SB_BATCH_MAX_SIZE": "16" if mode == "on" else "1", "SB_BATCH_TIMEOUT_MS": "0", "SB_PORT": "8080"}
        stacks[mode] = {"knobs": knobs, "info": {"backend": {"model": {"name": MODEL}}}}
    doc = {"schema_version": 2, "kind": "sweep", "run_id": folder.name, "study": "saturation", "arch": arch,
           "runtime": "native", "interrupted": False, "settings": {"codec": "raw", "batch": 1}, "stack": None,
           "provenance": {}, "stacks": stacks}
    (folder / "summary.json").write_text(json.dumps(doc))
    with (folder / "levels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, LEVEL_COLUMNS)
        w.writeheader()
        for mode, levels in modes.items():
            for lv in levels:
                w.writerow({"batching": mode, "stable": True, "interrupted": False, **lv})
    with (folder / "resources.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["batching", "t", "service", "cpu_percent", "cpu_seconds", "rss_mb", "pss_mb", "n_procs"])
        for mode in modes:
            for service, rss in (("nginx", 10.0), ("frontend", rss_mb), ("client", 999.0)):
                w.writerow([mode, 1.0, service, "", 0, rss, rss, 1])
    return folder


def closed(c, thr, p99, cpu):
    return {"mode": "closed", "concurrency": c, "throughput_images_per_s": thr, "p50_ms": p99 / 2, "p99_ms": p99,
            "server_cpu_ms_per_image": cpu}


def opened(rate, thr, p99, cpu):
    return {"mode": "open", "rate": rate, "throughput_images_per_s": thr, "p50_ms": p99 / 2, "p99_ms": p99,
            "server_cpu_ms_per_image": cpu}


def cpu_curve(t: float) -> float:
    """Busy cores = 0.2 idle + 1.5 ms per image: CPU per image falls with load."""
    return 200.0 / t + 1.5


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    fake_sweep(root, "fastapi", {
        "off": [closed(1, 300, 6, 3.3), closed(8, 580, 25, 3.2), opened(150, 150, 12, 4.0), opened(300, 298, 20, 3.7),
                opened(450, 440, 70, 3.6)],
        "on": [closed(1, 300, 6, 3.3), closed(16, 700, 40, 2.6), opened(200, 200, 18, cpu_curve(200)),
               opened(400, 400, 30, cpu_curve(400)), opened(600, 598, 60, cpu_curve(600))],
    }, rss_mb=800.0)
    fake_sweep(root, "embedded", {
        "off": [closed(1, 400, 3.5, 1.6), opened(200, 200, 11, 2.0), opened(400, 399, 12, 1.6),
                opened(800, 600, 3000, 1.6)],
    }, stamp="20300101T000100Z", rss_mb=1500.0)
    return root


def levels_of(folder: Path, mode: str) -> list[Level]:
    m = candidates.load(folder.parent)
    return next(c for c in m.configurations if c.run_ids == [folder.name] and c.batching == mode).levels


# ------------------------------------------------------------------ candidates and ranking
@pytest.mark.unit
def test_every_batching_mode_of_every_sweep_is_a_configuration(results):
    m = candidates.load(results, model=MODEL, batch=1)
    got = sorted((c.arch, c.batching, len(c.levels)) for c in m.configurations)
    assert got == [("embedded", "off", 4), ("fastapi", "off", 5), ("fastapi", "on", 5)]
    fastapi_on = next(c for c in m.configurations if c.arch == "fastapi" and c.batching == "on")
    assert fastapi_on.memory_mb == 810.0  # nginx + front end; the load generator is not the stack's
    assert fastapi_on.knob("batch_max_size") == "16" and fastapi_on.knob("port") is None  # ports are no knob
    assert candidates.load(results, archs=("embedded",)).configurations[0].arch == "embedded"
    assert candidates.load(results, model="another_model").configurations == []


@pytest.mark.unit
def test_cpu_per_image_is_fitted_from_the_levels_around_the_rate():
    lv = [Level("open", t, 1.0, 5.0, cpu_curve(t), "r", offered=t) for t in (200.0, 600.0)]
    cpu, used = ranking.cpu_at(lv, 400.0)
    assert cpu == pytest.approx(cpu_curve(400.0)) and [u.throughput for u in used] == [200.0, 600.0]
    # Only levels above the rate: the fit extrapolates down to it.
    lv = [Level("closed", t, 1.0, 5.0, cpu_curve(t), "r", concurrency=1) for t in (500.0, 900.0)]
    assert ranking.cpu_at(lv, 250.0)[0] == pytest.approx(cpu_curve(250.0))
    # CPU per image rising with load (contention) is no sound fit: the nearest level's figure.
    lv = [Level("open", 200.0, 1.0, 5.0, 2.0, "r", offered=200.0), Level("open", 600.0, 1.0, 5.0, 3.0, "r",
                                                                        offered=600.0)]
    assert ranking.cpu_at(lv, 450.0) == (3.0, [lv[1]])


@pytest.mark.unit
def test_the_operating_point_rests_on_the_nearest_level_at_or_above_the_rate(results):
    m = candidates.load(results)
    c = ranking.Constraints(slo_p99_ms=50, rate=350)
    points = {(p.config.arch, p.config.batching): p for p in (ranking.operating_point(x, c) for x in m.configurations)}
    on = points[("fastapi", "on")]
    assert on.level.offered == 400 and on.meets  # the open loop offered 400, not the closed loop at 700
    # fastapi off: the open loop offered 450 (p99 70 > 50) is the witness, not its closed loop at 580 images/s
    # (p99 25): a closed loop never queues as Poisson arrivals do.
    off = points[("fastapi", "off")]
    assert off.level.mode == "open" and off.level.offered == 450 and not off.meets
    # An open loop that did not keep up is no witness: embedded at 800 offered answered 600.
    emb = points[("embedded", "off")]
    assert emb.level.offered == 400 and emb.meets
    ranked = ranking.rank(list(points.values()))
    assert [p.config.arch for p in ranked][0] == "embedded"  # the least CPU per image
    assert [p.cpu_ms_per_image for p in ranked] == sorted(p.cpu_ms_per_image for p in ranked)


@pytest.mark.unit
def test_ties_on_cpu_are_broken_by_memory(tmp_path):
    root = tmp_path / "r"
    fake_sweep(root, "fastapi", {"off": [closed(4, 500, 10, 2.0)]}, rss_mb=900.0)
    fake_sweep(root, "flask", {"off": [closed(4, 500, 10, 2.0)]}, stamp="20300101T000200Z", rss_mb=300.0)
    points = [ranking.operating_point(x, ranking.Constraints(50, 300)) for x in candidates.load(root).configurations]
    assert [p.config.arch for p in ranking.rank(points)] == ["flask", "fastapi"]


@pytest.mark.unit
def test_a_closed_loop_stands_for_a_rate_only_with_headroom(tmp_path):
    root = tmp_path / "r"
    fake_sweep(root, "fastapi", {"off": [closed(1, 500, 10, 2.0)]})
    (cfg,) = candidates.load(root).configurations
    assert ranking.operating_point(cfg, ranking.Constraints(50, 500 * ranking.CLOSED_LOOP_HEADROOM)).meets
    late = ranking.operating_point(cfg, ranking.Constraints(50, 450))  # 90% of what it sustained: no witness
    assert not late.meets and "rate" in late.failures


@pytest.mark.unit
def test_cpu_and_memory_limits_fail_with_how_far(results):
    m = candidates.load(results)
    c = ranking.Constraints(slo_p99_ms=50, rate=400, max_cpu=0.5, max_mem_mb=600)
    points = [ranking.operating_point(x, c) for x in m.configurations]
    assert not ranking.rank(points)
    fastapi_on = next(p for p in points if p.config.arch == "fastapi" and p.config.batching == "on")
    assert set(fastapi_on.failures) == {"cpu_cores", "memory_mb"}
    text = ranking.describe_failures(fastapi_on, c)
    assert "over MAX_CPU 0.5" in text and "810 MB is 210 MB" in text


# ------------------------------------------------------------------ the front
@pytest.mark.unit
def test_the_pareto_front_keeps_the_levels_nothing_beats(results, tmp_path):
    m = candidates.load(results)
    levels = [(cfg, lv) for cfg in m.configurations for lv in cfg.levels]
    front = pareto.front(levels)
    pts = [(lv.throughput, lv.p99_ms) for _, lv in front]
    assert pts == sorted(pts)  # more throughput costs latency along the front
    for t, p in pts:  # no served level has both more throughput and a lower p99 than a front level
        assert not any(lv.throughput > t and lv.p99_ms < p for _, lv in levels if lv.served)
    assert (600, 3000) not in pts  # an open loop that did not keep up is not on it
    c = ranking.Constraints(50, 350)
    ranked = ranking.rank([ranking.operating_point(x, c) for x in m.configurations])
    out = pareto.draw(m.configurations, c, ranked, tmp_path / "p.png", {"images_per_s": 900, "run_id": "x"})
    assert out.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ the command: answers and bad input
def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = advise_main.main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


@pytest.mark.unit
def test_an_answer_is_printed_and_kept(results, capsys):
    rc, out, _ = run(capsys, "--slo-p99-ms", "50", "--rate", "350", "--no-verify", "--out", str(results))
    assert rc == 0
    assert "#1 embedded" in out and "#2 fastapi" in out and "make up ARCH=embedded" in out
    up = next(line for line in out.splitlines() if "make up" in line)
    assert "SB_FRONTEND_THREADS=16" in up and "SB_BATCH_MAX_SIZE=1" in up and "SB_BACKEND_THREADS" not in up
    folder = next(results.glob("advice-*"))
    doc = json.loads((folder / "advice.json").read_text())
    assert doc["inputs"]["slo_p99_ms"] == 50 and doc["ranking"][0]["arch"] == "embedded"
    assert doc["ranking"][0]["level"]["run_id"] == "20300101T000100Z-sweep-embedded"
    assert doc["provenance"]["versions"] and doc["verification"] is None
    assert (folder / "pareto.png").is_file() and "#1 embedded" in (folder / "advice.md").read_text()


@pytest.mark.unit
def test_an_slo_nothing_meets_says_what_fails_and_which_sweep_to_run(results, capsys):
    rc, out, _ = run(capsys, "--slo-p99-ms", "2", "--rate", "350", "--no-verify", "--out", str(results))
    assert rc == 1
    assert "no measured configuration meets it" in out and "over the SLO 2 ms" in out
    assert "make sweep ARCH=" in out and ranking.SATURATION_SWEEPS in out
    doc = json.loads((next(results.glob("advice-*")) / "advice.json").read_text())
    assert doc["ranking"] == [] and doc["closest"][0]["failures"]["p99_ms"]["over"] > 0


@pytest.mark.unit
@pytest.mark.parametrize("args, said", [
    (["--slo-p99-ms", "abc", "--rate", "400"], "SLO_P99_MS (--slo-p99-ms)='abc': Input should be a valid number"),
    (["--slo-p99-ms", "-5", "--rate", "400"], "greater than 0"),
    (["--slo-p99-ms", "50", "--rate", "nan"], "RATE (--rate)='nan'"),
    (["--slo-p99-ms", "", "--rate", "400"], "SLO_P99_MS (--slo-p99-ms) required: e.g. make advise"),
    (["--slo-p99-ms", "50", "--rate", "400", "--archs", "nope"], "nothing measured for nope"),
])
def test_bad_input_is_one_clear_line(results, capsys, args, said):
    rc, out, err = run(capsys, *args, "--out", str(results), "--no-verify")
    assert rc == 2 and said in err and not list(results.glob("advice-*"))


@pytest.mark.unit
def test_a_rate_above_every_capacity_and_missing_sweeps(results, tmp_path, capsys):
    rc, _, err = run(capsys, "--slo-p99-ms", "50", "--rate", "5000", "--out", str(results))
    assert rc == 1 and "above every measured capacity" in err and "700 images/s" in err and "make sweep" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run(capsys, "--slo-p99-ms", "50", "--rate", "400", "--out", str(empty))
    assert rc == 2 and "no saturation sweeps or bench runs" in err and ranking.SATURATION_SWEEPS in err


# ------------------------------------------------------------------ end to end, verified on a real stack
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.usefixtures("cifar_dir")
def test_make_advise_verifies_its_pick_on_a_real_fastapi_stack(tmp_path):
    from tests.stacks import stack_env

    root = tmp_path / "results"
    fake_sweep(root, "fastapi", {"on": [closed(1, 100, 50, 5.0), opened(10, 10, 200, 6.0),
                                        opened(40, 40, 300, 5.0)]}, threads=4)
    env = stack_env(SB_RUN_DIR=str(tmp_path / "run"))
    proc = subprocess.run(["make", "--no-print-directory", "advise", "SLO_P99_MS=5000", "RATE=20", "ARCHS=fastapi",
                           "VERIFY_S=1.5", f"RESULTS={root}"], cwd=REPO, env=env, text=True, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "make up ARCH=fastapi" in proc.stdout and "verification, run" in proc.stdout
    folder = next(root.glob("advice-*"))
    v = json.loads((folder / "advice.json").read_text())["verification"]
    assert v["measured"]["p99_ms"] > 0 and v["measured"]["cpu_ms_per_image"] > 0 and v["p99_met"] is True
    assert v["cpu_error_pct"] is not None
    sweep_doc = json.loads((folder / v["run_id"] / "summary.json").read_text())
    assert sweep_doc["stacks"]["on"]["knobs"]["SB_BATCH_MAX_SIZE"] == "16"  # started as it was measured
    assert sweep_doc["stacks"]["on"]["knobs"]["SB_FRONTEND_THREADS"] == "4"
    assert target.running("native", tmp_path / "run") is None  # the stack it started is stopped


@pytest.mark.unit
def test_runs_of_another_machine_give_way_to_this_machines(tmp_path):
    root = tmp_path / "results"
    here = fake_sweep(root, "fastapi", {"off": [closed(1, 300, 6, 3.3)]}, stamp="20300101T000000Z")
    there = fake_sweep(root, "embedded", {"off": [closed(1, 400, 3.5, 1.6)]}, stamp="20300101T000001Z")
    for folder, cpu in ((here, "this CPU"), (there, "another CPU")):
        doc = json.loads((folder / "summary.json").read_text())
        doc["provenance"] = {"machine": {"cpu_model": cpu, "logical_cpus": 2}}
        (folder / "summary.json").write_text(json.dumps(doc))
    m = candidates.load(root, (), MODEL, 1, ("this CPU", 2))
    assert [c.arch for c in m.configurations] == ["fastapi"]
    assert any("another machine" in n for n in m.notes)
    # No run of this machine: every run stands, and the answer says its predictions may not hold here.
    m = candidates.load(root, (), MODEL, 1, ("a third CPU", 2))
    assert sorted(c.arch for c in m.configurations) == ["embedded", "fastapi"]
    assert any("may not hold" in n for n in m.notes)
