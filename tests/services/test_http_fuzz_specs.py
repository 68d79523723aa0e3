"""Hostile requests built from a model's specs, through the whole stack, for every bundled model that is not the default.

Per HTTP architecture of the registry (one that cannot run here skips, as do
the ensembles, which serve their own member models) and per model (the tabular
breast_cancer_mlp, float32 [-1, 30]; the ensemble's MobileNetV2, an image
model), a stack serves the model by its path alone (SB_MODEL). A few hundred
seeded bodies go to KServe v2 (JSON and binary), TF Serving REST and
/v1/predict: valid requests of the model's own tensors with bytes cut or
spliced in, one input's entry replaced by a hostile JSON value, or with a
wrong shape, dtype or range. None may get a 5xx; every 4xx is JSON with an
"error" string; and after each batch a valid request still gets a 200 with
the same outputs as at the start (no worker left broken).
"""
from __future__ import annotations

import http.client
import json
import random

import numpy as np
import pytest

from servebench import kserve, stack, tfserving
from servebench.modelcard import read_card, synthetic_inputs
from servebench.settings import REPO_ROOT
from tests import conformance
from tests.stacks import port_of, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SEED = 20261202
HOSTILE = 200
BATCH = 50
TIMEOUT_S = 30
MODELS = ("breast_cancer_mlp", "cifar10_mobilenetv2")


def not_for_any_model(arch) -> str | None:
    return "serves the ensemble's own member models, not SB_MODEL" if conformance.members_of(arch.name) else None


@pytest.fixture(scope="module", params=MODELS)
def model_path(request):
    return REPO_ROOT / "models" / request.param


@pytest.fixture(scope="module")
def card(model_path):
    return read_card(model_path)


@pytest.fixture(scope="module", params=conformance.params(conformance.http_architectures(), why_not=not_for_any_model))
def model_stack(request, model_path, tmp_path_factory):
    run = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    settings = stack_settings(model_base=str(model_path), **conformance.HTTP_STACK_KNOBS)
    st = stack.up(request.param, settings, run, log=lambda *_: None, timeout_s=conformance.START_TIMEOUT_S)
    yield st
    stack.down(run, log=lambda *_: None)


def post(port: int, path: str, body: bytes, headers: dict, with_headers: bool = False) -> tuple:
    """(status, body), or (status, body, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        data = resp.read()
        return (resp.status, data, dict(resp.getheaders())) if with_headers else (resp.status, data)
    finally:
        conn.close()


def hostile_value(rng: random.Random, depth: int = 0):
    if depth > 3 or rng.random() < 0.4:
        return rng.choice([None, True, False, rng.randint(-(2**70), 2**70), rng.random() * 10**rng.randint(0, 300),
                           "7", {}, [], 2**64, -1, 256, 0.5])
    return [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def generate(card, seed: int, count: int) -> list[tuple[str, bytes, dict]]:
    """(path, body, headers): the same list on every run."""
    rng = random.Random(seed)
    v2, tf = f"/v2/models/{card.name}/infer", f"/v1/models/{card.name}:predict"
    cases = []
    while len(cases) < count:
        arrays = synthetic_inputs(card, rng.randint(1, 3), seed=rng.randrange(2**31))
        kind = rng.randrange(5)
        if kind in (0, 1):  # a valid v2 body (binary or JSON), cut or with junk spliced in
            body, headers = kserve.encode_infer_request(arrays, card, binary=kind == 0)
            at = rng.randrange(len(body))
            body = body[:at] + rng.randbytes(rng.randint(0, 4)) + (body[at:] if rng.random() < 0.5 else b"")
            cases.append((v2, body, headers))
        elif kind == 2:  # one input's entry hostile
            doc = json.loads(kserve.encode_infer_request(arrays, card, binary=False)[0])
            entry = rng.choice(doc["inputs"])
            entry[rng.choice(["shape", "datatype", "data", "parameters"])] = hostile_value(rng)
            cases.append((v2, json.dumps(doc).encode(), {}))
        elif kind == 3:  # TF Serving: a value replaced, or the batch hostile
            doc = json.loads(tfserving.encode_predict_request(arrays, card))
            key = "instances" if "instances" in doc else "inputs"
            if rng.random() < 0.5:
                doc[key] = hostile_value(rng)
            else:
                flat = np.asarray(arrays[card.inputs[0].name], dtype=object).ravel()
                flat[rng.randrange(flat.size)] = hostile_value(rng)
                doc = {"inputs": {**{k: v.tolist() for k, v in arrays.items()},
                                  card.inputs[0].name: flat.reshape(arrays[card.inputs[0].name].shape).tolist()}}
            cases.append((tf, json.dumps(doc).encode(), {}))
        else:  # /v1/predict: an image model's codec, or (any other model) the 4xx that names v2
            cases.append(("/v1/predict", json.dumps({"instances": hostile_value(rng)}).encode(), {}))
    return cases


def problem(status: int, data: bytes) -> str | None:
    if status >= 500:
        return f"{status}: {data[:200]!r}"
    if status >= 400:
        try:
            if not json.loads(data)["error"]:
                return f"{status} with an empty error"
        except (ValueError, KeyError, TypeError):
            return f"{status} without a JSON error: {data[:200]!r}"
    return None


def test_hostile_requests_of_any_model_never_give_a_5xx(model_stack, card):
    port = port_of(model_stack, "nginx")
    good, headers = kserve.encode_infer_request(synthetic_inputs(card, 2, seed=1), card)
    answer = post(port, f"/v2/models/{card.name}/infer", good, headers, with_headers=True)
    assert answer[0] == 200, answer[1][:300]
    answer = answer[1:]
    cases = generate(card, SEED, HOSTILE)
    problems = []
    for start in range(0, len(cases), BATCH):
        for path, body, extra in cases[start:start + BATCH]:
            found = problem(*post(port, path, body, extra))
            if found:
                problems.append((path, body[:120], found))
        status, *again = post(port, f"/v2/models/{card.name}/infer", good, headers, with_headers=True)
        assert status == 200, f"a valid request after hostile ones: {again[0][:300]!r}"
        first, now = (kserve.decode_infer_response(*reply, card) for reply in (answer, again))
        for name in first:
            np.testing.assert_allclose(now[name], first[name], rtol=1e-5, atol=1e-6)
    assert not problems, problems[:5]
    if not card.is_image:
        status, data = post(port, "/v1/predict", b"{}", {})
        assert status == 400 and f"/v2/models/{card.name}/infer" in json.loads(data)["error"]
    assert model_stack.alive()
