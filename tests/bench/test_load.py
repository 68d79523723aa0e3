"""`make load`: a short headless locust run against a real native stack writes its files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench import load, records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded(start_stack, cifar_dir):
    return start_stack("embedded")


def aggregated(run_dir: Path) -> dict:
    with (run_dir / "locust_stats.csv").open(newline="") as f:
        return next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")


@pytest.mark.parametrize("workers", [0, 1])
def test_headless_locust_run_writes_its_csvs(embedded, tmp_path, workers):
    rc = load.main(["--arch", "embedded", "--run-dir", str(embedded.run_dir), "--out", str(tmp_path),
                    "--users", "2", "--spawn-rate", "2", "--duration", "4s", "--workers", str(workers),
                    "--images", "100"])
    assert rc == 0
    run_dir = (tmp_path / "latest").resolve()
    for name in ("locust_stats.csv", "locust_failures.csv", "locust_stats_history.csv", "locust.html",
                 "resources.csv", "summary.json"):
        assert (run_dir / name).is_file(), name
    row = aggregated(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["kind"] == "load" and summary["interrupted"] is False
    assert records.read(run_dir).schema_version == records.SCHEMA_VERSION
    assert summary["settings"]["workers"] == workers
    # locust's CSV holds the final totals, the same the summary reports
    assert int(row["Request Count"]) == summary["locust"]["requests"] > 0
    assert int(row["Failure Count"]) == summary["locust"]["failures"] == 0
    assert summary["images_checked"] == summary["locust"]["requests"]
    assert 0.5 < summary["accuracy"] <= 1.0  # the model scores about 0.77 on CIFAR-10
    assert set(summary["resources"]) == set(embedded.doc["services"]) | {"client"}
    assert summary["resources"]["client"]["n_procs_max"] >= 1 + workers


@pytest.mark.slow
def test_workers_in_a_second_namespace_reach_nginx_over_the_link(tmp_path, cifar_dir, monkeypatch):
    """LOAD_HOSTS=netns: a worker in a namespace of its own (a second machine), the master on the host; nginx
    listens on the link's address for the run only, and the record says where the workers ran."""
    from servebench import netns, stack
    from tests.stacks import PORT_KNOBS, free_ports

    why = netns.unavailable()
    if why:
        pytest.skip(why)
    for knob, port in zip(PORT_KNOBS, free_ports(len(PORT_KNOBS))):
        monkeypatch.setenv(knob, str(port))
    run = tmp_path / "run"
    rc = load.main(["--arch", "embedded", "--run-dir", str(run), "--out", str(tmp_path / "out"), "--users", "1",
                    "--spawn-rate", "1", "--duration", "3s", "--workers", "1", "--images", "50",
                    "--load-hosts", "netns"])
    assert rc == 0
    summary = json.loads(((tmp_path / "out" / "latest").resolve() / "summary.json").read_text())
    assert summary["settings"]["load_hosts"] == "netns"
    at = summary["workers_at"]
    assert at["where"] == "netns" and at["namespace"].startswith(netns.PREFIX)
    assert at["worker_addr"].startswith("169.254.") and at["master_and_nginx_addr"].startswith("169.254.")
    assert summary["locust"]["requests"] > 0 and summary["locust"]["failures"] == 0
    assert summary["images_checked"] == summary["locust"]["requests"]
    # Nothing left: the stack it started, the namespace
    assert stack.state(run) is None or not any(stack.state(run).processes().values())
    assert at["namespace"] not in netns.namespaces()


def test_netns_workers_need_workers(tmp_path):
    rc = load.main(["--arch", "embedded", "--run-dir", str(tmp_path), "--out", str(tmp_path), "--workers", "0",
                    "--load-hosts", "netns"])
    assert rc != 0
