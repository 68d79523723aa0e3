"""Request codecs: every format round-trips, every bad body is refused with a status and a reason."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from servebench import codecs
from servebench.codecs import JSON, NPY, OCTET, CodecError, Prediction

RNG = np.random.default_rng(0)
ONE = RNG.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
SEVERAL = RNG.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
EDGES = np.zeros((2, 32, 32, 3), np.uint8)
EDGES[1] = 255  # both ends of the range survive every codec


def rejected(body, content_type, max_batch=codecs.DEFAULT_MAX_BATCH) -> CodecError:
    with pytest.raises(CodecError) as info:
        codecs.decode(body, content_type, max_batch)
    return info.value


def image_lists(n=1):
    return np.zeros((n, 32, 32, 3), np.uint8).tolist()


def json_body(doc) -> bytes:
    return json.dumps(doc).encode()


def npy_body(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def b64_body(raw: bytes, shape, **extra) -> bytes:
    return json_body({"b64": base64.b64encode(raw).decode(), "shape": shape, **extra})


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("codec", codecs.CODECS)
@pytest.mark.parametrize("images", [ONE, SEVERAL, EDGES], ids=["one", "several", "edges"])
def test_round_trip(codec, images):
    body, content_type = codecs.encode(images, codec)
    assert content_type == codecs.CONTENT_TYPES[codec]
    decoded = codecs.decode(body, content_type)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_single_image_without_batch_axis_encodes_as_batch_of_one(codec):
    body, content_type = codecs.encode(ONE[0], codec)
    np.testing.assert_array_equal(codecs.decode(body, content_type), ONE)


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_batch_at_the_limit_is_accepted(codec):
    body, content_type = codecs.encode(SEVERAL, codec)
    assert codecs.decode(body, content_type, max_batch=5).shape == (5, 32, 32, 3)


def test_encode_unknown_codec():
    with pytest.raises(ValueError, match="unknown codec"):
        codecs.encode(ONE, "xml")


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", " application/json ;charset=UTF-8"],
)
def test_content_type_parameters_and_case_are_accepted(content_type):
    body, _ = codecs.encode(ONE, "json")
    np.testing.assert_array_equal(codecs.decode(body, content_type), ONE)


def test_npy_alias_content_type():
    np.testing.assert_array_equal(codecs.decode(npy_body(ONE), "application/npy"), ONE)


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "body, content_type, phrase",
    [
        (json_body({"instances": np.zeros((1, 32, 32, 4), int).tolist()}), JSON, "wrong shape"),
        (json_body({"instances": np.zeros((1, 28, 28, 3), int).tolist()}), JSON, "wrong shape"),
        (json_body({"instances": np.zeros((32, 32, 3), int).tolist()}), JSON, "wrong shape"),  # not a list of images
        (json_body({"instances": [image_lists()[0], [[0, 0, 0]]]}), JSON, "wrong shape"),  # ragged
        (json_body({"instances": {"a": 1}}), JSON, "must be a list"),
        (b64_body(bytes(32 * 32 * 4), [1, 32, 32, 4]), JSON, "wrong shape"),
        (b64_body(bytes(3072), [3072]), JSON, '"shape" must be'),
        (b64_body(bytes(3072), [1, 32, 32, 3, 1]), JSON, '"shape" must be'),
        (b64_body(bytes(3072), [1, 32, 32, -3]), JSON, "wrong shape"),
        (b64_body(bytes(3072), [1, 32, 32, True]), JSON, '"shape" must be'),
        (b64_body(bytes(3072), [2, 32, 32, 3]), JSON, "needs 6144"),  # payload shorter than the shape
        (b64_body(b"", [2**32, 2**32, 32, 3]), JSON, "needs"),  # product overflows int64
        (json_body({"b64": base64.b64encode(bytes(3072)).decode()}), JSON, '"shape" must be'),
        (npy_body(np.zeros((1, 32, 32, 4), np.uint8)), NPY, "wrong shape"),
        (npy_body(np.zeros((3072,), np.uint8)), NPY, "wrong shape"),
        (bytes(3072 + 1), OCTET, "not a multiple of 3072"),
        (bytes(3071), OCTET, "not a multiple of 3072"),
    ],
    ids=[
        "json-4-channels", "json-28x28", "json-no-batch-axis", "json-ragged", "json-not-a-list",
        "b64-4-channels", "b64-flat-shape", "b64-5d-shape", "b64-negative-dim", "b64-bool-dim",
        "b64-short-payload", "b64-overflowing-shape", "b64-no-shape",
        "npy-4-channels", "npy-flat",
        "raw-one-byte-over", "raw-one-byte-short",
    ],
)
def test_wrong_shape(body, content_type, phrase):
    err = rejected(body, content_type)
    assert err.status == 400
    assert phrase in err.message


def _with_pixel(value):
    images = image_lists()
    images[0][5][7][1] = value
    return json_body({"instances": images})


@pytest.mark.parametrize(
    "body, content_type, phrase",
    [
        (json_body({"instances": np.full((1, 32, 32, 3), 0.5).tolist()}), JSON, "not floats"),
        (_with_pixel(1.0), JSON, "not floats"),  # one float among integers
        (json_body({"instances": np.ones((1, 32, 32, 3), bool).tolist()}), JSON, "not booleans"),
        (_with_pixel(True), JSON, "not booleans"),  # numpy alone would read it as 1
        (_with_pixel(False), JSON, "not booleans"),
        (_with_pixel("7"), JSON, "wrong dtype"),
        (_with_pixel(None), JSON, "wrong dtype"),
        (b64_body(bytes(3072 * 4), [1, 32, 32, 3], dtype="float32"), JSON, "wrong dtype 'float32'"),
        (npy_body(ONE.astype(np.float32)), NPY, "wrong dtype float32"),
        (npy_body(ONE.astype(np.int64)), NPY, "wrong dtype int64"),
    ],
    ids=[
        "json-floats", "json-one-float", "json-booleans", "json-one-true", "json-one-false",
        "json-string", "json-null", "b64-dtype-field", "npy-float32", "npy-int64",
    ],
)
def test_wrong_dtype(body, content_type, phrase):
    err = rejected(body, content_type)
    assert err.status == 400
    assert phrase in err.message


def test_booleans_in_other_fields_do_not_reject_integer_images():
    body = json_body({"instances": ONE.tolist(), "flag": True})
    np.testing.assert_array_equal(codecs.decode(body, JSON), ONE)


@pytest.mark.parametrize("value", [256, -1, 10**6])
def test_value_out_of_range(value):
    err = rejected(_with_pixel(value), JSON)
    assert err.status == 400
    assert "out of range" in err.message


@pytest.mark.parametrize(
    "body, content_type",
    [
        (json_body({"instances": []}), JSON),
        (b64_body(b"", [0, 32, 32, 3]), JSON),
        (b"", OCTET),
        (npy_body(np.zeros((0, 32, 32, 3), np.uint8)), NPY),
    ],
    ids=["json", "b64", "raw", "npy"],
)
def test_empty_batch(body, content_type):
    err = rejected(body, content_type)
    assert err.status == 400
    assert "empty batch" in err.message


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_batch_too_large_is_413(codec):
    body, content_type = codecs.encode(SEVERAL, codec)
    err = rejected(body, content_type, max_batch=4)
    assert err.status == 413
    assert "batch too large: 5 images, the limit is 4" in err.message


@pytest.mark.parametrize(
    "body, phrase",
    [
        (b'{"instances": [', "malformed JSON"),
        (b"\xff\xfe\x00garbage", "malformed JSON"),
        (b"", "malformed JSON"),
        (b"[1, 2, 3]", "must be an object"),
        (b'{"inputs": []}', 'needs "instances"'),
    ],
    ids=["truncated", "not-utf8", "empty", "array", "no-known-key"],
)
def test_malformed_json(body, phrase):
    err = rejected(body, JSON)
    assert err.status == 400
    assert phrase in err.message


@pytest.mark.parametrize("payload", ["not base64!", "AAA", "AA==AA=="], ids=["bad-chars", "bad-padding", "inner-padding"])
def test_malformed_base64(payload):
    err = rejected(json_body({"b64": payload, "shape": [1, 32, 32, 3]}), JSON)
    assert err.status == 400
    assert "malformed base64" in err.message


def test_b64_not_a_string():
    err = rejected(json_body({"b64": 12, "shape": [1, 32, 32, 3]}), JSON)
    assert '"b64" must be a base64 string' in err.message


@pytest.mark.parametrize(
    "body",
    [b"", b"not an npy file", npy_body(ONE)[:60], npy_body(ONE)[:-10]],
    ids=["empty", "garbage", "header-only", "truncated-data"],
)
def test_malformed_npy(body):
    err = rejected(body, NPY)
    assert err.status == 400
    assert "malformed .npy" in err.message


def test_npy_pickled_objects_are_refused():
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    err = rejected(buf.getvalue(), NPY)
    assert "malformed .npy" in err.message


def test_npz_archive_is_refused():
    buf = io.BytesIO()
    np.savez(buf, images=ONE)
    err = rejected(buf.getvalue(), NPY)
    assert "expected one array" in err.message


@pytest.mark.parametrize("content_type", ["text/plain", "image/png", "multipart/form-data; boundary=x", "", None])
def test_unsupported_content_type_is_415(content_type):
    body, _ = codecs.encode(ONE, "json")
    err = rejected(body, content_type)
    assert err.status == 415
    assert "unsupported content type" in err.message


# ---------------------------------------------------------------- responses
def test_predictions_round_trip():
    probs = RNG.random((3, 10)).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    pred = Prediction(classes=probs.argmax(axis=1), probabilities=probs)
    body = codecs.encode_predictions(pred, {"name": "cifar10_cnn", "version": 1})

    doc = json.loads(body)
    assert doc["model"] == {"name": "cifar10_cnn", "version": 1}
    assert [p["class_name"] for p in doc["predictions"]] == [codecs.CLASS_NAMES[c] for c in pred.classes]

    back = codecs.decode_predictions(body)
    np.testing.assert_array_equal(back.classes, pred.classes)
    assert back.probabilities.dtype == np.float32
    np.testing.assert_allclose(back.probabilities, probs, atol=1e-6)  # rounded to 6 decimals on the wire


def test_predictions_without_model_and_from_text():
    pred = Prediction(classes=np.array([9]), probabilities=np.eye(10, dtype=np.float32)[[9]])
    body = codecs.encode_predictions(pred)
    assert "model" not in json.loads(body)
    assert codecs.decode_predictions(body.decode()).classes.tolist() == [9]


def test_error_body():
    assert json.loads(codecs.error_body("bad", backend="flask")) == {"error": "bad", "backend": "flask"}
