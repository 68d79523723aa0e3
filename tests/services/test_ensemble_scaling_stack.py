"""Scale to zero end to end: an ensemble-serial stack with SB_ENSEMBLE_IDLE_S set, on free ports.

After the idle time every member's process is gone (stopped by its PID); the
next request starts them through the native runtime (in their cgroups,
recorded in stack.json under new PIDs), answers what the warm stack answered,
and its body and Server-Timing show each start. `down` leaves nothing behind.
Three TensorFlow processes start twice here: slow on a busy 2-core machine.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from servebench import cgroups, codecs, processes, stack
from services.ensemble.members import MEMBERS
from tests.services.test_architectures import post
from tests.stacks import stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
IDLE_S = 1.5
START_TIMEOUT_S = 600
SERVICES = {name: f"ensemble-{name}" for name in MEMBERS}


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    knobs = {"SB_ENSEMBLE_IDLE_S": str(IDLE_S), "SB_ENSEMBLE_MEMBER_TIMEOUT_S": "60", "SB_BACKEND_TIMEOUT_S": "120"}
    if cgroups.unavailable():
        knobs["SB_ENSEMBLE_MEMBER_MEMORY_MB"] = "0"
    run = tmp_path_factory.mktemp("run-ensemble-cold")
    st = stack.up("ensemble-serial", stack_settings(**knobs), run, log=lambda *_: None, timeout_s=START_TIMEOUT_S)
    yield st
    stack.down(run, log=lambda *_: None)
    assert not stack.leftovers(run)


def _predict(st, images):
    body, ctype = codecs.encode(images, "raw")
    return post(st, body, ctype, timeout=300)


def _recorded_pids(st) -> dict[str, int]:
    doc = json.loads((st.run_dir / "stack.json").read_text())
    return {svc: doc["services"][svc]["pid"] for svc in SERVICES.values()}


def test_an_idle_member_goes_away_and_the_next_request_starts_it(cold, test_split):
    images = test_split.images[:4]
    status, headers, warm = _predict(cold, images)
    assert status == 200, warm
    assert "start-" not in headers["Server-Timing"]
    before = _recorded_pids(cold)
    deadline = time.monotonic() + IDLE_S + 30
    while any(processes.pid_alive(p) for p in before.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(processes.pid_alive(p) for p in before.values()), "members still running after the idle time"

    status, headers, data = _predict(cold, images)
    assert status == 200, data
    np.testing.assert_allclose(codecs.decode_predictions(data).probabilities,
                               codecs.decode_predictions(warm).probabilities, atol=1e-6)
    members = json.loads(data)["ensemble"]["members"]
    assert all(m["status"] == "answered" and m["start_ms"] > 0 for m in members.values()), members
    names = [e.split(";")[0].strip() for e in headers["Server-Timing"].split(",")]
    assert {f"start-{m}" for m in MEMBERS} <= set(names)
    after = _recorded_pids(cold)
    assert all(processes.pid_alive(p) and p != before[svc] for svc, p in after.items())
    if not cgroups.unavailable():  # started again under its quota
        assert all(json.loads((cold.run_dir / "stack.json").read_text())["services"][svc].get("limits")
                   for svc in SERVICES.values())
