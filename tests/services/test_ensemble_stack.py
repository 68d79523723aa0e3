"""The ensemble end to end: nginx -> gunicorn -> Django -> coordinator -> three member functions.

One ensemble-parallel stack on free ports (its members in cgroups where this
machine allows them). Its answers are compared with the three models run in
this process; a serial coordinator over the same members must agree; a member
that stops answering (SIGSTOP: a hung function) or is down is left out, and
the request fails (504, 502) only when no member answers. Three TensorFlow
processes start here: slow on a busy 2-core machine, hence the long timeouts.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from servebench import cgroups, codecs, stack
from servebench.settings import Settings
from services.ensemble.app import Coordinator
from services.ensemble.combine import average
from services.ensemble.inprocess import load_cores
from services.ensemble.members import MEMBERS
from tests.services.test_architectures import BAD_INPUTS, _assert_error, post
from tests.stacks import stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MEMBER_TIMEOUT_S = 5
START_TIMEOUT_S = 600  # three TensorFlow processes on a busy 2-core machine
SERVICES = {name: f"ensemble-{name}" for name in MEMBERS}


@pytest.fixture(scope="module")
def ens(tmp_path_factory):
    why = cgroups.unavailable()
    knobs = {"SB_ENSEMBLE_MEMBER_TIMEOUT_S": str(MEMBER_TIMEOUT_S), "SB_BACKEND_TIMEOUT_S": "60"}
    if why:
        knobs["SB_ENSEMBLE_MEMBER_MEMORY_MB"] = "0"  # no quota can be applied here; the quota test skips
    run = tmp_path_factory.mktemp("run-ensemble")
    st = stack.up("ensemble-parallel", stack_settings(**knobs), run, log=lambda *_: None, timeout_s=START_TIMEOUT_S)
    yield st
    for name in SERVICES.values():  # a member left stopped by a failed test must still be killable
        _signal(st, name, signal.SIGCONT)
    stack.down(run, log=lambda *_: None)


@pytest.fixture(scope="module")
def cores():
    return load_cores()


@pytest.fixture(scope="module")
def images(test_split):
    return test_split.images[:8]


def _pid(st, name: str) -> int:
    return st.doc["services"][name]["pid"]


def _signal(st, name: str, sig) -> None:
    try:
        os.kill(_pid(st, name), sig)
    except ProcessLookupError:
        pass


def _predict(st, images, timeout=120):
    body, ctype = codecs.encode(images, "raw")
    return post(st, body, ctype, timeout=timeout)


def member_settings(st, **extra) -> Settings:
    """The stack's settings, for a coordinator in this process calling the stack's members."""
    return Settings.from_env({**st.doc["knobs"], **extra})


def test_probabilities_are_the_average_of_the_members_in_process(ens, cores, images):
    status, headers, data = _predict(ens, images)
    assert status == 200, data
    want = average([core.predict(images) for core in cores.values()])
    got = codecs.decode_predictions(data)
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    np.testing.assert_array_equal(got.classes, want.classes)


def test_the_answer_names_each_member_and_its_time(ens, images):
    status, headers, data = _predict(ens, images[:1])
    assert status == 200, data
    doc = json.loads(data)["ensemble"]
    assert doc["mode"] == "parallel" and doc["used"] == list(MEMBERS)
    assert all(m["status"] == "answered" and m["ms"] > 0 for m in doc["members"].values())
    names = [part.split(";")[0].strip() for part in headers["Server-Timing"].split(",")]
    assert [n for n in names if n.startswith("member-")] == [f"member-{m}" for m in MEMBERS]
    assert {"model", "backend", "django", "forward"} <= set(names)


def test_serial_and_parallel_agree(ens, images):
    serial = Coordinator(member_settings(ens, SB_ENSEMBLE_MODE="serial"))
    try:
        want = serial.infer(images)
    finally:
        serial.close()
    assert want.details["ensemble"]["mode"] == "serial"
    status, _, data = _predict(ens, images)
    assert status == 200, data
    np.testing.assert_allclose(codecs.decode_predictions(data).probabilities, want.prediction.probabilities,
                               atol=1e-6)


@pytest.mark.parametrize("name,body,ctype,status,phrase", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_the_same_4xx_as_every_architecture(ens, name, body, ctype, status, phrase):
    got, _, data = post(ens, body, ctype)
    _assert_error(got, data, status, phrase)


def test_the_quota_is_applied_to_each_member(ens):
    why = cgroups.unavailable()
    if why:
        pytest.skip(f"no cgroups here, so no quota to check: {why}")
    settings = member_settings(ens)
    want = cgroups.Limits.lambda_like(settings.ensemble_member_memory_mb)
    for name in SERVICES.values():
        rec = ens.doc["services"][name]
        assert rec["limits"]["memory_mb"] == want.memory_mb
        group = cgroups.CGroup(stack.cgroup_name(Path(ens.run_dir), name))  # the stack's group, limits untouched
        assert _pid(ens, name) in group.pids()
        limit = int((group.paths["memory"] / "memory.limit_in_bytes").read_text())
        quota = int((group.paths["cpu"] / "cpu.cfs_quota_us").read_text())
        period = int((group.paths["cpu"] / "cpu.cfs_period_us").read_text())
        assert limit == want.memory_mb * 1024 * 1024
        assert quota / period == pytest.approx(want.cpus, abs=0.01)
        assert group.cpu_seconds() > 0 and group.peak_memory_bytes() > 0  # its work is accounted there


def test_a_hung_member_times_out_and_the_others_answer(ens, images):
    _signal(ens, SERVICES["mobilenetv2"], signal.SIGSTOP)
    try:
        status, headers, data = _predict(ens, images[:2])
    finally:
        _signal(ens, SERVICES["mobilenetv2"], signal.SIGCONT)
    assert status == 200, data
    doc = json.loads(data)["ensemble"]
    assert doc["used"] == ["cnn", "resnet20"]
    assert doc["members"]["mobilenetv2"]["status"] == "timed out"
    assert 'member-mobilenetv2;dur=' in headers["Server-Timing"]


def test_deadline_mode_answers_with_those_in_time(ens, cores, images):
    deadline = Coordinator(member_settings(ens, SB_ENSEMBLE_DEADLINE_MS="3000"))
    _signal(ens, SERVICES["resnet20"], signal.SIGSTOP)
    try:
        start = time.perf_counter()
        got = deadline.infer(images)
        elapsed = time.perf_counter() - start
    finally:
        _signal(ens, SERVICES["resnet20"], signal.SIGCONT)
        deadline.close()
    doc = got.details["ensemble"]
    assert doc["used"] == ["cnn", "mobilenetv2"] and doc["members"]["resnet20"]["status"] == "late"
    assert elapsed < MEMBER_TIMEOUT_S  # it did not wait for the member's timeout
    want = average([cores["cnn"].predict(images), cores["mobilenetv2"].predict(images)])
    np.testing.assert_allclose(got.prediction.probabilities, want.probabilities, atol=1e-5)


def test_no_member_answering_is_a_504(ens, images):
    for name in SERVICES.values():
        _signal(ens, name, signal.SIGSTOP)
    try:
        status, _, data = _predict(ens, images[:1])
    finally:
        for name in SERVICES.values():
            _signal(ens, name, signal.SIGCONT)
    assert status == 504, data
    assert "no ensemble member answered" in json.loads(data)["error"]


def test_members_down_are_left_out_then_none_is_a_502(ens, images):
    # Last in this module: the members stay down.
    stack.stop_service(ens, SERVICES["cnn"])
    status, _, data = _predict(ens, images[:1])
    assert status == 200, data
    doc = json.loads(data)["ensemble"]
    assert doc["used"] == ["resnet20", "mobilenetv2"] and doc["members"]["cnn"]["status"] == "failed"
    stack.stop_service(ens, SERVICES["resnet20"])
    stack.stop_service(ens, SERVICES["mobilenetv2"])
    status, _, data = _predict(ens, images[:1])
    assert status == 502, data
    assert "no ensemble member answered" in json.loads(data)["error"]
