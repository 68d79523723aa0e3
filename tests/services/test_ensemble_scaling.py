"""Scale to zero (SB_ENSEMBLE_IDLE_S) with stand-in members and a recording lifecycle (no process, no server).

A member idle for the set time is stopped, never while called nor before its
first call; the next request starts it, still answers the same, and says what
the start cost (start_ms, a start-<name> Server-Timing entry); parallel members
start at once; a start that fails leaves that member out; bad values are
refused with the knob named.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from servebench import codecs, endpoint
from servebench.settings import Settings
from services.ensemble.app import Coordinator
from services.ensemble.combine import Started
from services.ensemble.scaling import ScaledMember, ScaleToZero, StackLifecycle
from tests.services.test_ensemble import IMAGES, fixed

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RecordingLifecycle:
    """Stops and starts recorded in order; a start takes ``start_s`` and fails for the names in ``failing``."""

    def __init__(self, start_s: float = 0.0, failing=()):
        self.events: list[tuple[str, str]] = []
        self.start_s, self.failing = start_s, set(failing)
        self.lock = threading.Lock()

    def stop(self, member: str) -> None:
        with self.lock:
            self.events.append(("stop", member))

    def start(self, member: str) -> None:
        time.sleep(self.start_s)
        if member in self.failing:
            raise RuntimeError(f"ensemble-{member} exited with code 1 while starting")
        with self.lock:
            self.events.append(("start", member))


def coordinator(lifecycle, mode="parallel", idle_s=5.0, members=None) -> Coordinator:
    settings = Settings.from_env({"SB_ENSEMBLE_MODE": mode, "SB_ENSEMBLE_IDLE_S": str(idle_s)})
    return Coordinator(settings, members or {"cnn": fixed(1), "resnet20": fixed(2), "mobilenetv2": fixed(3)},
                       lifecycle=lifecycle)


def predict(target):
    body, ctype = codecs.encode(IMAGES, "raw")
    return endpoint.handle(target, "POST", "/v1/predict", body, {"Content-Type": ctype})


def test_an_idle_member_is_stopped_only_after_the_idle_time():
    clock, life = Clock(), RecordingLifecycle()
    scaler = ScaleToZero(["a", "b"], 5.0, life, clock=clock, log=lambda _: None)
    assert scaler.reap() == []  # never called: the idle clock has not started
    member = ScaledMember("a", fixed(1), scaler)
    member(IMAGES)
    clock.now += 4.9
    assert scaler.reap() == []
    clock.now += 0.1
    assert scaler.reap() == ["a"] and life.events == [("stop", "a")]
    assert not scaler.running("a") and scaler.running("b")
    assert scaler.reap() == []  # stopped once


def test_a_member_being_called_is_never_stopped():
    clock, life = Clock(), RecordingLifecycle()
    scaler = ScaleToZero(["a"], 1.0, life, clock=clock, log=lambda _: None)
    ScaledMember("a", fixed(1), scaler)(IMAGES)
    with scaler.calling("a"):
        clock.now += 10
        assert scaler.reap() == []
    assert scaler.reap() == []  # the call that just ended restarted the idle clock
    clock.now += 1.0
    assert scaler.reap() == ["a"]


def test_the_next_call_starts_the_member_and_says_what_it_cost():
    clock, life = Clock(), RecordingLifecycle(start_s=0.05)
    scaler = ScaleToZero(["a"], 1.0, life, clock=clock, log=lambda _: None)
    member = ScaledMember("a", fixed(1), scaler)
    warm = member(IMAGES)
    assert not isinstance(warm, Started)
    clock.now += 2
    scaler.reap()
    cold = member(IMAGES)
    assert isinstance(cold, Started) and cold.start_ms >= 50
    np.testing.assert_array_equal(cold.prediction.probabilities, warm.probabilities)
    assert life.events == [("stop", "a"), ("start", "a")] and scaler.running("a")
    assert not isinstance(member(IMAGES), Started)  # up again: no start paid


@pytest.mark.parametrize("mode", ["serial", "parallel"])
def test_a_request_after_the_idle_time_answers_the_same_and_shows_the_starts(mode):
    life = RecordingLifecycle(start_s=0.3)  # long enough that a busy machine's scheduling cannot blur the two
    c = coordinator(life, mode=mode, idle_s=1.0)  # longer than the serial starts: none is reaped mid-request
    try:
        warm = predict(c)
        deadline = time.monotonic() + 5
        while any(m["running"] for m in c.info()["members"].values()) and time.monotonic() < deadline:
            time.sleep(0.02)  # the reaper thread stops all three
        assert not any(m["running"] for m in c.info()["members"].values())
        assert c.ready()  # scaled to zero is still available: the next call starts it
        t0 = time.perf_counter()
        cold = predict(c)
        took_s = time.perf_counter() - t0
    finally:
        c.close()
    assert warm.status == cold.status == 200
    np.testing.assert_array_equal(codecs.decode_predictions(cold.body).probabilities,
                                  codecs.decode_predictions(warm.body).probabilities)
    members = json.loads(cold.body)["ensemble"]["members"]
    assert all(m["start_ms"] >= 300 and m["ms"] >= m["start_ms"] for m in members.values())
    assert "start_ms" not in json.loads(warm.body)["ensemble"]["members"]["cnn"]
    names = [e.split(";")[0].strip() for e in cold.timing.split(",")]
    assert {"start-cnn", "start-resnet20", "start-mobilenetv2"} <= set(names)
    assert "start-cnn" not in warm.timing
    # Serially the starts add up; in parallel the three start at once.
    assert (took_s >= 0.9) if mode == "serial" else (took_s < 0.8), took_s


def test_a_member_that_fails_to_start_is_left_out_and_tried_again():
    life = RecordingLifecycle(failing={"resnet20"})
    clock = Clock()
    c = coordinator(life, idle_s=1.0)
    c.scaler.clock = clock  # reaped by hand below, not by the thread's clock
    try:
        predict(c)
        clock.now += 5
        c.scaler.reap()
        reply = predict(c)
        doc = json.loads(reply.body)["ensemble"]
        assert reply.status == 200 and doc["used"] == ["cnn", "mobilenetv2"]
        assert "exited with code 1" in doc["members"]["resnet20"]["error"]
        life.failing.clear()
        assert json.loads(predict(c).body)["ensemble"]["used"] == ["cnn", "resnet20", "mobilenetv2"]
    finally:
        c.close()


def test_off_by_default():
    c = Coordinator(Settings.from_env({}), {"cnn": fixed(1)})
    try:
        assert c.scaler is None and c.info()["idle_s"] is None
        assert "start-" not in predict(c).timing
    finally:
        c.close()


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf"])
def test_bad_idle_values_are_refused_with_the_knob_named(value):
    with pytest.raises(ValueError, match="SB_ENSEMBLE_IDLE_S"):
        Settings.from_env({"SB_ENSEMBLE_IDLE_S": value})


def test_unset_or_zero_is_off():
    assert Settings.from_env({}).ensemble_idle_s == 0.0
    assert Settings.from_env({"SB_ENSEMBLE_IDLE_S": "0"}).ensemble_idle_s == 0.0
    assert Settings.from_env({"SB_ENSEMBLE_IDLE_S": "2.5"}).recorded()["ensemble_idle_s"] == 2.5


def test_outside_a_native_stack_the_coordinator_refuses_to_scale(monkeypatch):
    from servebench import topology

    monkeypatch.delenv(topology.STACK_MARKER, raising=False)
    with pytest.raises(ValueError, match="SB_ENSEMBLE_IDLE_S.*RUNTIME=native"):
        StackLifecycle.of_this_stack()


def test_no_member_is_stopped_while_a_request_that_uses_it_runs():
    # Serially the first member would sit idle while the other two start: it must still be up at the end.
    life = RecordingLifecycle(start_s=0.3)
    c = coordinator(life, mode="serial", idle_s=0.2)
    try:
        predict(c)
        deadline = time.monotonic() + 5
        while any(m["running"] for m in c.info()["members"].values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert predict(c).status == 200
        assert all(m["running"] for m in c.info()["members"].values())
    finally:
        c.close()
    assert [e for e, _ in life.events] == ["stop"] * 3 + ["start"] * 3
