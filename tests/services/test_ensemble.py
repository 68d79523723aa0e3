"""The ensemble's combining logic and its coordinator, with stand-in members (no model, no server).

Serial and parallel agree; a failing or slow member is left out and the answer
says so; none answering is a 502 (failures) or 504 (timeouts, deadline); the
coordinator's answers go through servebench.endpoint like every server's.
"""
from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from servebench import codecs, endpoint
from servebench.codecs import Prediction
from servebench.settings import Settings
from services.ensemble import combine
from services.ensemble.app import Coordinator, mode_of
from services.ensemble.combine import Ensemble, MemberTimedOut, NoMemberAnswered, average
from services.ensemble.remote import MemberFailed, RemoteMember

pytestmark = pytest.mark.unit

IMAGES = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


def fixed(seed: int, delay_s: float = 0.0):
    """A member whose softmax output depends only on the images and its seed."""
    def member(images):
        if delay_s:
            time.sleep(delay_s)
        rng = np.random.default_rng(seed + int(images.sum()) % 1000)
        logits = rng.normal(size=(len(images), 10)).astype(np.float32)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return Prediction(probs.argmax(axis=1), probs)
    return member


def failing(images):
    raise MemberFailed("backend ensemble member x unreachable")


def timing_out(images):
    raise MemberTimedOut("backend ensemble member x timed out")


def test_average_is_the_mean_of_the_members_probabilities():
    preds = [fixed(s)(IMAGES) for s in (1, 2, 3)]
    got = average(preds)
    want = (preds[0].probabilities + preds[1].probabilities + preds[2].probabilities) / 3
    np.testing.assert_allclose(got.probabilities, want, rtol=1e-6)
    np.testing.assert_array_equal(got.classes, want.argmax(axis=1))


def test_serial_and_parallel_agree():
    members = {"a": fixed(1), "b": fixed(2), "c": fixed(3)}
    serial, parallel = Ensemble(members, "serial"), Ensemble(members, "parallel")
    try:
        s, p = serial(IMAGES), parallel(IMAGES)
    finally:
        parallel.close()
    np.testing.assert_array_equal(s.prediction.probabilities, p.prediction.probabilities)
    assert s.used == p.used == ["a", "b", "c"]


def test_parallel_takes_the_slowest_serial_the_sum():
    members = {"a": fixed(1, 0.2), "b": fixed(2, 0.2), "c": fixed(3, 0.2)}
    parallel = Ensemble(members, "parallel")
    try:
        p = parallel(IMAGES)
    finally:
        parallel.close()
    s = Ensemble(members, "serial")(IMAGES)
    assert s.total_ms >= 600 - 5  # one after another: never less than the sum of the sleeps
    assert all(o.ms >= 200 - 5 for o in p.outcomes.values())


@pytest.mark.parametrize("mode", combine.MODES)
def test_a_failing_member_is_left_out(mode):
    ens = Ensemble({"a": fixed(1), "down": failing, "c": fixed(3)}, mode)
    try:
        r = ens(IMAGES)
    finally:
        ens.close()
    assert r.used == ["a", "c"]
    assert r.outcomes["down"].status == combine.FAILED and "unreachable" in r.outcomes["down"].error
    np.testing.assert_allclose(r.prediction.probabilities,
                               average([fixed(1)(IMAGES), fixed(3)(IMAGES)]).probabilities)


def test_deadline_answers_with_the_members_that_answered():
    ens = Ensemble({"a": fixed(1), "slow": fixed(2, 3.0), "c": fixed(3)}, "parallel", deadline_ms=1000)
    try:
        start = time.perf_counter()
        r = ens(IMAGES)
        elapsed = time.perf_counter() - start
    finally:
        ens.close()
    assert elapsed < 2.9  # answered at the deadline, not when the slow member finished
    assert r.used == ["a", "c"] and r.outcomes["slow"].status == combine.LATE
    assert r.doc()["deadline_ms"] == 1000 and r.doc()["members"]["slow"]["status"] == "late"


def test_serial_deadline_calls_no_member_after_it():
    ens = Ensemble({"slow": fixed(1, 0.3), "b": fixed(2)}, "serial", deadline_ms=100)
    r = ens(IMAGES)
    assert r.used == ["slow"] and r.outcomes["b"].status == combine.SKIPPED


@pytest.mark.parametrize("members,status", [
    ({"a": failing, "b": failing}, 502),
    ({"a": timing_out, "b": timing_out}, 504),
    ({"a": failing, "b": timing_out}, 502),
])
def test_no_member_answering_fails_the_request(members, status):
    with pytest.raises(NoMemberAnswered) as err:
        Ensemble(members, "serial")(IMAGES)
    assert err.value.status == status


def test_all_late_at_the_deadline_is_a_504():
    ens = Ensemble({"a": fixed(1, 2.0), "b": fixed(2, 2.0)}, "parallel", deadline_ms=200)
    try:
        with pytest.raises(NoMemberAnswered) as err:
            ens(IMAGES)
    finally:
        ens.close()
    assert err.value.status == 504


def test_bad_modes_and_members_are_refused():
    with pytest.raises(ValueError, match="mode"):
        Ensemble({"a": fixed(1)}, "both")
    with pytest.raises(ValueError, match="at least one"):
        Ensemble({}, "serial")
    with pytest.raises(ValueError, match="members"):
        Settings.from_env({"SB_ENSEMBLE_MEMBERS": "cnn,vgg"})


def test_the_mode_follows_the_architecture_unless_set():
    assert mode_of(Settings.from_env({"SB_ARCH": "ensemble-serial"})) == "serial"
    assert mode_of(Settings.from_env({"SB_ARCH": "ensemble-parallel"})) == "parallel"
    assert mode_of(Settings.from_env({"SB_ARCH": "ensemble-parallel", "SB_ENSEMBLE_MODE": "serial"})) == "serial"


# ------------------------------------------------------------------ the coordinator as an endpoint target
def coordinator(members: dict, mode="parallel", deadline_ms=0.0) -> Coordinator:
    return Coordinator(Settings.from_env({"SB_ENSEMBLE_MODE": mode, "SB_ENSEMBLE_DEADLINE_MS": str(deadline_ms)}),
                       members)


def predict(target, images=IMAGES, path="/v1/predict"):
    body, ctype = codecs.encode(images, "raw")
    return endpoint.handle(target, "POST", path, body, {"Content-Type": ctype})


def test_the_answer_names_the_members_used_and_their_times():
    c = coordinator({"cnn": fixed(1), "resnet20": failing, "mobilenetv2": fixed(3)})
    try:
        reply = predict(c)
    finally:
        c.close()
    assert reply.status == 200
    doc = json.loads(reply.body)
    assert doc["ensemble"]["used"] == ["cnn", "mobilenetv2"]
    assert doc["ensemble"]["members"]["resnet20"]["status"] == "failed"
    assert all(m["ms"] is not None for m in doc["ensemble"]["members"].values())
    entries = [e.strip() for e in reply.timing.split(",")]
    per_member = [e for e in entries if e.startswith("member-")]
    assert [e.split(";")[0] for e in per_member] == ["member-cnn", "member-resnet20", "member-mobilenetv2"]
    assert 'desc="failed"' in per_member[1]
    got = codecs.decode_predictions(reply.body)
    np.testing.assert_allclose(got.probabilities, average([fixed(1)(IMAGES), fixed(3)(IMAGES)]).probabilities,
                               atol=1e-6)


@pytest.mark.parametrize("members,status", [({"cnn": failing}, 502), ({"cnn": timing_out}, 504)])
@pytest.mark.parametrize("path", ["/v1/predict", "/v2/models/cifar10_cnn/infer"])
def test_no_member_is_a_502_or_504_in_the_protocols_format(members, status, path):
    c = coordinator(members, mode="serial")
    c.close()
    if path.startswith("/v2"):
        from servebench import kserve

        body, headers = kserve.encode_infer_request(IMAGES, binary=False)
        reply = endpoint.handle(c, "POST", path, body, headers)
    else:
        reply = predict(c, path=path)
    assert reply.status == status
    assert "no ensemble member answered" in json.loads(reply.body)["error"]


def test_bad_input_is_the_endpoints_4xx():
    c = coordinator({"cnn": fixed(1)})
    try:
        reply = endpoint.handle(c, "POST", "/v1/predict", b"\x00" * 1000, {"Content-Type": codecs.OCTET})
    finally:
        c.close()
    assert reply.status == 400 and "multiple of 3072" in json.loads(reply.body)["error"]


# ------------------------------------------------------------------ the remote member's failures
def test_a_member_that_is_not_listening_has_failed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    m = RemoteMember("cnn", Settings.from_env({"SB_ENSEMBLE_CNN_PORT": str(port)}))
    with pytest.raises(MemberFailed, match="unreachable"):
        m(IMAGES)


def test_a_member_that_never_answers_times_out():
    server = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    try:
        m = RemoteMember("cnn", Settings.from_env({"SB_ENSEMBLE_CNN_PORT": str(server.getsockname()[1]),
                                                   "SB_ENSEMBLE_MEMBER_TIMEOUT_S": "0.5"}))
        with pytest.raises(MemberTimedOut):
            m(IMAGES)
    finally:
        server.close()
