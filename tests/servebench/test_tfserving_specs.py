"""TF Serving's REST predict with each model's own tensors: every bundled model's card, and one built here.

Row format and columnar, named and (one input) bare; answers in both forms;
each spec's bad inputs refused with a 4xx naming the tensor; the metadata from
the card; and a hypothesis fuzzer per card (any document gives inputs that
match the card or a CodecError).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servebench import tfserving
from servebench.codecs import CodecError
from tests.servebench import spec_cards
from tests.servebench.spec_cards import CARD_NAMES

pytestmark = pytest.mark.unit
MAX_BATCH = 64  # above any row length here, so a row sent without its batch axis is a wrong shape


@pytest.fixture(params=CARD_NAMES)
def card(request):
    return spec_cards.card(request.param)


def decode(card, doc, max_batch: int = MAX_BATCH):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return tfserving.decode_rest_request(body, max_batch, card)


def rejected(card, doc, max_batch: int = MAX_BATCH) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode(card, doc, max_batch)
    err = info.value
    assert 400 <= err.status < 500 and err.message.strip() and len(err.message) < 1000
    return err


def forms(card, arrays: dict) -> dict:
    """Every request form TF Serving documents that the card allows, and whether it is columnar."""
    n = len(next(iter(arrays.values())))
    lists = {name: arr.tolist() for name, arr in arrays.items()}
    found = {
        "rows-named": ({"instances": [{name: values[i] for name, values in lists.items()} for i in range(n)]}, False),
        "columnar-named": ({"inputs": lists}, True),
    }
    if len(card.inputs) == 1:
        (values,) = lists.values()
        found["rows"] = ({"instances": values, "signature_name": "serving_default"}, False)
        found["columnar"] = ({"inputs": values}, True)
    return found


def test_every_form_round_trips(card):
    arrays = spec_cards.inputs(card, 3)
    for form, (doc, columnar) in forms(card, arrays).items():
        got, was_columnar = decode(card, doc)
        assert was_columnar is columnar, form
        for spec in card.inputs:
            assert got[spec.name].dtype == spec.np_dtype, (form, spec.name)
            np.testing.assert_array_equal(got[spec.name], arrays[spec.name])


def test_our_client_body_reads_back(card):
    arrays = spec_cards.inputs(card, 2)
    got, _ = decode(card, tfserving.encode_predict_request(arrays, card))
    for spec in card.inputs:
        np.testing.assert_array_equal(got[spec.name], arrays[spec.name])


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columnar"])
def test_answers_read_back_with_the_client(card, columnar):
    outputs = spec_cards.outputs(card, 3)
    body = tfserving.encode_rest_response(outputs, columnar, card)
    doc = json.loads(body)
    assert set(doc) == {"outputs" if columnar else "predictions"}
    got = tfserving.decode_predict_response(body, card)
    for spec in card.outputs:
        np.testing.assert_array_equal(got[spec.name], outputs[spec.name].astype(spec.np_dtype))


def test_every_spec_refuses_what_it_cannot_take(card):
    arrays = spec_cards.inputs(card, 2)
    for spec in card.inputs:
        good = arrays[spec.name].tolist()
        flat_row = np.asarray(good[0]).ravel().tolist()
        cases = [([], "empty batch"), (good[0], "wrong shape"), ([good[0], good[1][:-1]], "wrong shape"),
                 ([[good[0]]] * 2, "wrong shape")]
        if spec.item_shape and spec.item_shape[-1] is not None:
            cases.append(([np.asarray(good[0])[..., :-1].tolist()] * 2, "wrong shape"))
        bad_row = np.asarray(good[0], dtype=object).ravel()
        kind = spec.np_dtype.kind
        leaves = [("7", "not strings"), (None, "not null")]
        if kind in "iu":
            low, high = spec.value_range()
            leaves += [(0.5, "not floats"), (True, "not booleans"), (int(high) + 1, "out of range"),
                       (int(low) - 1, "out of range")]
        elif kind == "f":
            leaves += [(False, "not booleans"), (2**2000, "out of range")]
        else:
            leaves += [(1, "true or false")]
        for leaf, phrase in leaves:
            row = bad_row.copy()
            row[-1] = leaf
            cases.append(([good[0], row.reshape(np.asarray(good[0]).shape).tolist()] if flat_row else good, phrase))
        for values, phrase in cases:
            err = rejected(card, {"inputs": {**{k: v.tolist() for k, v in arrays.items()}, spec.name: values}})
            assert phrase in err.message and spec.name in err.message, (spec.name, phrase, err.message)


def test_requests_that_do_not_fit_the_signature_are_named(card):
    arrays = spec_cards.inputs(card, 2)
    lists = {name: arr.tolist() for name, arr in arrays.items()}
    assert "unknown input 'extra'" in rejected(card, {"inputs": {**lists, "extra": [1, 2]}}).message
    first = card.inputs[0].name
    assert f"missing input {first!r}" in rejected(card, {"inputs": {k: v for k, v in lists.items() if k != first}}).message
    assert f"missing input {first!r}" in rejected(card, {"instances": [{}]}).message
    err = rejected(card, {"inputs": {name: values * 5 for name, values in lists.items()}}, max_batch=8)
    assert err.status == 413 and "batch too large: 10" in err.message
    if len(card.inputs) > 1:
        assert "several inputs" in rejected(card, {"instances": lists[first]}).message
        assert "batch" in rejected(card, {"inputs": {**lists, first: lists[first][:1]}}).message


def test_metadata_is_the_cards_signature(card):
    meta = tfserving.model_metadata(2, card)
    assert meta["model_spec"] == {"name": card.name, "signature_name": "", "version": "2"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(sig["inputs"]) == {s.name for s in card.inputs} and set(sig["outputs"]) == {s.name for s in card.outputs}
    for spec in card.inputs:
        dims = [int(d["size"]) for d in sig["inputs"][spec.name]["tensor_shape"]["dim"]]
        assert dims == [-1 if d is None else d for d in spec.shape]


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
                                st.floats(allow_nan=False), st.text(max_size=5)),
                      lambda c: st.lists(c, max_size=4), max_leaves=30)


@FUZZ
@given(data=st.data(), hostile=values, form=st.sampled_from(["rows-named", "columnar-named", "rows", "columnar"]))
def test_fuzz_is_total(card, data, hostile, form):
    arrays = spec_cards.inputs(card, 2)
    known = forms(card, arrays)
    doc, _ = known.get(form, known["columnar-named"])
    victim = data.draw(st.sampled_from([spec.name for spec in card.inputs]))
    if "inputs" in doc and isinstance(doc["inputs"], dict):
        doc = {"inputs": {**doc["inputs"], victim: hostile}}
    elif "inputs" in doc:
        doc = {"inputs": hostile}
    elif isinstance(doc["instances"][0], dict):
        doc = {"instances": [{**doc["instances"][0], victim: hostile}, doc["instances"][1]]}
    else:
        doc = {"instances": [hostile, doc["instances"][1]]}
    try:
        got, _ = decode(card, doc, 4)
    except CodecError as exc:
        assert 400 <= exc.status < 500 and exc.message.strip() and len(exc.message) < 1000
        return
    n = {len(arr) for arr in got.values()}
    assert len(n) == 1 and 1 <= n.pop() <= 4
    for spec in card.inputs:
        arr = got[spec.name]
        assert arr.dtype == spec.np_dtype and arr.ndim == len(spec.shape)
        assert all(w is None or d == w for d, w in zip(arr.shape[1:], spec.item_shape))
