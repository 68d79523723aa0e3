"""KServe v2 with each model's own tensors: every bundled model's card, and one built here with several inputs.

Round trips (JSON and binary tensors, requests and responses), each spec's bad
inputs refused with a 4xx naming the tensor, metadata and config from the
card, and the hypothesis fuzzers of test_kserve.py run per card: any body
gives inputs that match the card or a CodecError (4xx, a short message).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servebench import kserve
from servebench.codecs import CodecError
from servebench.kserve import HEADER_LENGTH, KServeError
from tests.servebench import spec_cards
from tests.servebench.spec_cards import CARD_NAMES

pytestmark = pytest.mark.unit
MAX_BATCH = 8


@pytest.fixture(params=CARD_NAMES)
def card(request):
    return spec_cards.card(request.param)


def decode(card, body: bytes, header_length=None, max_batch: int = MAX_BATCH):
    return kserve.decode_infer_request(body, None, header_length, max_batch, card)


def rejected(card, body: bytes, header_length=None, max_batch: int = MAX_BATCH) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode(card, body, header_length, max_batch)
    err = info.value
    assert 400 <= err.status < 500 and err.message.strip() and len(err.message) < 1000
    return err


def json_request(card, arrays: dict, **changes) -> bytes:
    """A JSON request for ``arrays``; ``changes`` maps an input name to the entry fields to replace."""
    tensors = []
    for spec in card.inputs:
        arr = arrays[spec.name]
        entry = {"name": spec.name, "shape": list(arr.shape), "datatype": spec.datatype, "data": arr.ravel().tolist()}
        entry.update(changes.get(spec.name, {}))
        tensors.append(entry)
    return json.dumps({"inputs": tensors}).encode()


def assert_inputs_equal(card, got: dict, want: dict) -> None:
    assert list(got) == [spec.name for spec in card.inputs]
    for spec in card.inputs:
        assert got[spec.name].dtype == spec.np_dtype, spec.name
        np.testing.assert_array_equal(got[spec.name], want[spec.name])


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("n", [1, 3])
def test_request_round_trip(card, binary, n):
    arrays = spec_cards.inputs(card, n, seed=n)
    body, headers = kserve.encode_infer_request(arrays, card, binary=binary, request_id="r")
    req = decode(card, body, headers.get(HEADER_LENGTH))
    assert_inputs_equal(card, req.inputs, arrays)
    assert req.id == "r" and req.outputs == tuple(spec.name for spec in card.outputs)


def test_nested_json_data_reads_like_flat(card):
    arrays = spec_cards.inputs(card, 2)
    body = json_request(card, arrays, **{s.name: {"data": arrays[s.name].tolist()} for s in card.inputs})
    assert_inputs_equal(card, decode(card, body).inputs, arrays)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_response_round_trip(card, binary):
    outputs = spec_cards.outputs(card, 3)
    names = [spec.name for spec in card.outputs]
    body, headers = kserve.encode_infer_request(spec_cards.inputs(card, 3), card, binary=binary, outputs=names[::-1],
                                                binary_outputs=binary)
    req = decode(card, body, headers.get(HEADER_LENGTH))
    answer, answer_headers = kserve.encode_infer_response(outputs, req, 4, card)
    doc = json.loads(answer[:int(answer_headers.get(HEADER_LENGTH, len(answer)))])
    assert doc["model_name"] == card.name and [o["name"] for o in doc["outputs"]] == names[::-1]
    got = kserve.decode_infer_response(answer, answer_headers, card)
    for spec in card.outputs:
        np.testing.assert_array_equal(got[spec.name], outputs[spec.name].astype(spec.np_dtype))
    if card.is_classifier:
        np.testing.assert_array_equal(got.prediction().classes, outputs[card.probabilities.name].argmax(axis=1))


def test_response_against_the_card_is_checked(card):
    outputs = spec_cards.outputs(card, 2)
    spec = max(card.outputs, key=lambda s: len(s.shape))  # not a batched scalar, which may come as [n, 1]
    outputs[spec.name] = np.zeros((2, *([7] * len(spec.item_shape)), 1), spec.np_dtype)  # one rank too many
    req = decode(card, kserve.encode_infer_request(spec_cards.inputs(card, 2), card, binary=False)[0])
    body, headers = kserve.encode_infer_response(outputs, req, 1, card)
    with pytest.raises(KServeError, match=f"v2 output {spec.name!r} has shape"):
        kserve.decode_infer_response(body, headers, card)


# ---------------------------------------------------------------- each spec's bad inputs
def test_every_spec_refuses_what_it_cannot_take(card):
    arrays = spec_cards.inputs(card, 2)
    for spec in card.inputs:
        shape = list(arrays[spec.name].shape)
        flat = arrays[spec.name].ravel().tolist()
        cases = [
            ({"datatype": "BYTES"}, "wrong datatype 'BYTES'"),
            ({"shape": shape[1:]}, "wrong shape"),
            ({"shape": shape + [1]}, "wrong shape"),
            ({"shape": [0, *shape[1:]], "data": []}, "empty batch"),
            ({"data": flat[:-1]}, f"holds {len(flat) - 1} values"),
            ({"data": flat[:-1] + ["7"]}, "not strings"),
            ({"data": flat[:-1] + [None]}, "not null"),
        ]
        if any(d is not None for d in spec.item_shape):
            fixed = next(i for i, d in enumerate(spec.shape) if d is not None)
            cases.append(({"shape": [s + 1 if i == fixed else s for i, s in enumerate(shape)]}, "wrong shape"))
        kind = spec.np_dtype.kind
        if kind in "iu":
            low, high = spec.value_range()
            cases += [({"data": flat[:-1] + [1.5]}, "not floats"), ({"data": flat[:-1] + [True]}, "not booleans"),
                      ({"data": flat[:-1] + [int(high) + 1]}, "out of range"),
                      ({"data": flat[:-1] + [int(low) - 1]}, "out of range")]
        elif kind == "f":
            cases += [({"data": flat[:-1] + [True]}, "not booleans"), ({"data": flat[:-1] + [2**2000]},
                                                                           "out of range")]
        else:
            cases += [({"data": flat[:-1] + [1]}, "true or false")]
        for change, phrase in cases:
            err = rejected(card, json_request(card, arrays, **{spec.name: change}))
            assert phrase in err.message and spec.name in err.message, (spec.name, change, err.message)


def test_missing_unknown_and_unequal_inputs_are_named(card):
    arrays = spec_cards.inputs(card, 2)
    doc = json.loads(json_request(card, arrays))
    if len(card.inputs) > 1:
        partial = json.dumps({"inputs": doc["inputs"][1:]}).encode()
        assert card.inputs[0].name in rejected(card, partial).message
        short = {**arrays, card.inputs[0].name: arrays[card.inputs[0].name][:1]}
        assert "batch" in rejected(card, json_request(card, short)).message
    unknown = json.dumps({"inputs": doc["inputs"] + [{**doc["inputs"][0], "name": "extra"}]}).encode()
    assert "unknown input 'extra'" in rejected(card, unknown).message
    assert "unknown output 'nope'" in rejected(card, json.dumps({**doc, "outputs": [{"name": "nope"}]}).encode()).message


def test_batch_too_large_is_413_before_anything_is_allocated(card):
    import tracemalloc

    spec = card.inputs[0]
    arrays = spec_cards.inputs(card, 1)
    body, headers = kserve.encode_infer_request(arrays, card, binary=True)
    doc = json.loads(body[:int(headers[HEADER_LENGTH])])
    doc["inputs"][0]["shape"][0] = 2**40
    header = json.dumps(doc).encode()
    tracemalloc.start()
    try:
        err = rejected(card, header + body[int(headers[HEADER_LENGTH]):], str(len(header)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.status == 413 and peak < 1 << 20 and "batch too large" in err.message, (spec.name, err.message)


def test_binary_floats_must_be_finite_and_bools_zero_or_one():
    card = spec_cards.card("mixed")
    arrays = spec_cards.inputs(card, 2)
    arrays["features"][1, 3] = np.nan
    body, headers = kserve.encode_infer_request(arrays, card, binary=True)
    assert "features" in rejected(card, body, headers[HEADER_LENGTH]).message
    arrays = spec_cards.inputs(card, 2)
    body, headers = kserve.encode_infer_request(arrays, card, binary=True)
    length = int(headers[HEADER_LENGTH])
    mask_at = length + arrays["features"].nbytes + arrays["codes"].nbytes
    bad = body[:mask_at] + b"\x02" + body[mask_at + 1:]
    assert "mask" in rejected(card, bad, headers[HEADER_LENGTH]).message


# ---------------------------------------------------------------- metadata and config
def test_metadata_and_config_are_the_cards(card):
    meta = kserve.model_metadata(3, card)
    assert meta["name"] == card.name and meta["versions"] == ["3"]
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [(s.name, s.datatype) for s in card.inputs]
    assert [t["shape"] for t in meta["outputs"]] == [[-1 if d is None else d for d in s.shape] for s in card.outputs]
    config = kserve.model_config(8, True, 100, card)
    assert config["name"] == card.name and config["max_batch_size"] == 8
    assert [i["name"] for i in config["input"]] == [i["name"] for i in meta["inputs"]]
    for entry, spec in zip(config["input"] + config["output"], card.inputs + card.outputs):
        assert entry["data_type"] == "TYPE_" + spec.datatype
        assert entry["dims"] == ([-1 if d is None else d for d in spec.item_shape] or [1])


# ---------------------------------------------------------------- fuzz, per card
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False), st.text(max_size=6))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=20)
header_lengths = st.one_of(st.none(), st.integers(-5, 400).map(str), st.text(max_size=6), st.binary(max_size=4))


def check(card, body: bytes, header_length, max_batch: int = 4) -> None:
    try:
        req = decode(card, body, header_length, max_batch)
    except CodecError as exc:
        assert 400 <= exc.status < 500 and exc.message.strip() and len(exc.message) < 1000
        return
    n = None
    for spec in card.inputs:
        arr = req.inputs[spec.name]
        assert arr.dtype == spec.np_dtype and arr.ndim == len(spec.shape)
        assert all(w is None or d == w for d, w in zip(arr.shape[1:], spec.item_shape))
        assert 1 <= arr.shape[0] <= max_batch and n in (None, arr.shape[0])
        n = arr.shape[0]
    assert set(req.binary) <= set(req.outputs) <= {spec.name for spec in card.outputs}


@FUZZ
@given(body=st.binary(max_size=512), header_length=header_lengths)
def test_fuzz_any_bytes(card, body, header_length):
    check(card, body, header_length)


@FUZZ
@given(data=st.data(), shape=st.one_of(json_values, st.lists(st.one_of(st.integers(), st.sampled_from([0, 1, 3, 16, 30, 2**64])),
                                                             max_size=5)),
       datatype=json_values, params=json_values, values=json_values)
def test_fuzz_hostile_documents(card, data, shape, datatype, params, values):
    """One input replaced by a hostile entry, the others valid."""
    arrays = spec_cards.inputs(card, 2)
    victim = data.draw(st.sampled_from([spec.name for spec in card.inputs]))
    datatype = data.draw(st.sampled_from([card.input(victim).datatype, datatype]))
    change = {"shape": shape, "datatype": datatype, "parameters": params, "data": values}
    check(card, json_request(card, arrays, **{victim: change}), None)


@FUZZ
@given(n=st.integers(1, 3), binary=st.booleans(), cut=st.integers(0, 10**6), junk=st.binary(max_size=6),
       delta=st.integers(-3, 3))
def test_fuzz_mutated_valid_requests(card, n, binary, cut, junk, delta):
    arrays = spec_cards.inputs(card, n, seed=cut)
    body, headers = kserve.encode_infer_request(arrays, card, binary=binary)
    length = headers.get(HEADER_LENGTH)
    assert_inputs_equal(card, decode(card, body, length, 4).inputs, arrays)
    at = cut % len(body)
    check(card, body[:at], length)
    check(card, body[:at] + junk + body[at:], length)
    if length is not None:
        check(card, body, str(int(length) + delta))
