"""The offloading study over a real shaped link (root: network namespaces, tc, cgroups): the link's rate,
a tiny end-to-end run, and the clean-up after every run, a failed one included."""
from __future__ import annotations

import hashlib
import importlib
import os
import statistics
import subprocess
from pathlib import Path

import psutil
import pytest

from bench import options as opts
from bench.records import read
from servebench import cgroups, netns

pytestmark = pytest.mark.integration

plan_mod = importlib.import_module("bench.studies.offloading.experiments")


@pytest.fixture(autouse=True)
def needs_root():
    why = netns.unavailable() or cgroups.unavailable()
    if why:
        pytest.skip(f"needs network namespaces, tc and cgroups: {why}")


def left_over() -> dict:
    """What one of our runs could leave behind: its namespaces, veths (with their qdiscs), cgroup, processes."""
    tag = f"off{os.getpid()}"  # the study's link name in this process
    devs = [f"sb{hashlib.sha1(tag.encode()).hexdigest()[:5]}{end}" for end in "sc"]  # as netns.ShapedLink names them
    return {
        "namespaces": [ns for ns in netns.namespaces() if tag in ns],
        # A veth (and the tbf qdisc on it) outlives its namespace only if moved back to the root namespace.
        "veths": [d for d in devs if subprocess.run(["ip", "link", "show", "dev", d], capture_output=True).returncode == 0],
        "cgroups": [p.name for p in (Path(cgroups.ROOT) / "cpu" / cgroups.PARENT).glob(f"offload-client-{os.getpid()}")],
        "processes": [" ".join(c.cmdline()) for c in psutil.Process().children(recursive=True)
                      if any("bench.studies.offloading.edge_" in a for a in c.cmdline())],
    }


def test_the_shaped_link_gets_its_rate_within_ten_percent():
    rate = 40.0
    with netns.ShapedLink(f"off{os.getpid()}", rate, server_ns=True) as link:
        measured = statistics.median(link.measure_mbit(1.5) for _ in range(3))
        assert abs(measured - rate) / rate <= 0.10, f"{measured:.1f} Mbit/s measured on a {rate} Mbit/s link"
        assert "not in this kernel" in link.recorded()["netem"] or "available" in link.recorded()["netem"]
    assert left_over()["namespaces"] == []


def tiny(monkeypatch, tmp_path) -> opts.StudyOptions:
    for k, v in {"SB_OFFLOAD_MODELS": "cifar10_cnn", "SB_OFFLOAD_REPEATS": "1", "SB_OFFLOAD_QUERIES_AFTER": "2",
                 "SB_OFFLOAD_LINK_MBIT": "80", "SB_OFFLOAD_RATE_MEASURE_MB": "1", "SB_OFFLOAD_CLIENT_CPUS": "0.5"}.items():
        monkeypatch.setenv(k, v)
    return opts.StudyOptions(study="offloading", out=tmp_path / "results", run_dir=tmp_path / "run")


@pytest.mark.slow
def test_a_tiny_study_run_measures_both_modes_and_leaves_nothing(monkeypatch, tmp_path):
    options = tiny(monkeypatch, tmp_path)
    records = plan_mod.run(options, None, log=print)
    assert len(records) == 1 and not records[0].interrupted
    rec = read(options.out / records[0].run_id)
    assert rec.kind == "offloading" and rec.get("model") == "cifar10_cnn" and rec.study == "offloading"
    ups = rec.get("uploads")
    assert [u["mode"] for u in ups] == ["baseline", "proposed"]
    assert ups[0]["sent_bytes"] == ups[1]["sent_bytes"]  # the same bytes either way
    assert all(u["upload_s"] > 0 and u["expected_s"] > 0 and u["rate_mbit_measured"] > 0 for u in ups)
    assert "not in this kernel" in rec.get("link", "netem") and rec.get("client_limits", "cpus") == 0.5
    queries = (options.out / records[0].run_id / "queries.csv").read_text().splitlines()
    assert len(queries) > 1 + 2 * 2  # header, then at least the queries after each upload
    assert left_over() == {"namespaces": [], "veths": [], "cgroups": [], "processes": []}
    assert not list((options.run_dir / "offloading").glob("*.pieces"))


def test_a_failed_run_leaves_nothing_either(monkeypatch, tmp_path):
    options = tiny(monkeypatch, tmp_path)
    seen = {}

    def failing(info, link, k, options, log):
        seen["namespaces"] = left_over()["namespaces"]
        raise RuntimeError("injected failure mid-study")

    monkeypatch.setattr(plan_mod, "measure_model", failing)
    with pytest.raises(RuntimeError, match="injected"):
        plan_mod.run(options, None, log=print)
    assert len(seen["namespaces"]) == 2  # the link was up, client and server namespaces
    assert left_over() == {"namespaces": [], "veths": [], "cgroups": [], "processes": []}
