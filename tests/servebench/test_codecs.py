"""Request codecs: every format round-trips, every bad body is refused with a status and a reason."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from servebench import codecs
from servebench.codecs import JSON, NPY, OCTET, CodecError, Prediction

pytestmark = pytest.mark.unit

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
        (b64_body(b"", [2**32, 2**32, 32, 3]), JSON, "wrong shape"),  # product overflows int64
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


# ---------------------------------------------------------------- regressions found by fuzzing
# Each of these escaped as another exception (a 500 from the servers), allocated what a header
# declared, or was refused with a misleading message before the codecs were made total.
def deep(opener: bytes, closer: bytes, depth: int, inner: bytes = b"0") -> bytes:
    return opener * depth + inner + closer * depth


def npy_header(shape, descr="|u1", fortran_order=False) -> bytes:
    text = repr({"descr": descr, "fortran_order": fortran_order, "shape": shape}).encode()
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances":' + deep(b"[", b"]", 100_000) + b"}",
        deep(b"[", b"]", 5_000),
        deep(b'{"a":', b"}", 100_000, b"1"),
        b'{"b64": "", "shape": ' + deep(b"[", b"]", 50_000) + b"}",
    ],
    ids=["instances", "top-level-array", "objects", "b64-shape"],
)
def test_deeply_nested_json_is_a_400_not_a_recursion_error(body):
    err = rejected(body, JSON)
    assert err.status == 400
    assert "nested too deeply" in err.message


@pytest.mark.parametrize(
    "shape",
    [[0, 2**70, 32, 3], [0, 2**62, 32, 3], [2**70, 0, 32, 3], [1, 0, 2**70, 3], [0, 2**70, 3], [0, 32, 2**64 + 1]],
    ids=["zero-then-huge", "zero-then-int64-overflow", "huge-then-zero", "zero-inside", "3d-zero-huge", "3d-over-uint64"],
)
def test_b64_shape_with_a_zero_and_a_huge_dimension(shape):
    # The product is 0, so an empty payload passes a length check; numpy's reshape then raised ValueError.
    err = rejected(b64_body(b"", shape), JSON)
    assert err.status == 400
    assert "wrong shape" in err.message
    assert len(err.message) < 200


def test_b64_declared_batch_over_the_limit_is_refused_before_decoding():
    err = rejected(b64_body(b"", [2**70, 32, 32, 3]), JSON)
    assert err.status == 413
    assert "batch too large" in err.message


@pytest.mark.parametrize("shape", [(2**20, 32, 32, 3), (2**40, 32, 32, 3), (2**70, 32, 32, 3)], ids=["3GiB", "3PiB", "beyond-int64"])
def test_npy_giant_declared_shape_is_refused_from_the_header(shape):
    import tracemalloc

    tracemalloc.start()
    try:
        err = rejected(npy_header(shape) + bytes(3072), NPY)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.status == 413
    assert "batch too large" in err.message
    assert peak < 1 << 20  # nothing of the declared size was allocated (numpy allocations are traced)


@pytest.mark.parametrize(
    "shape, phrase",
    [((0, 2**70, 32, 3), "wrong shape"), ((-1, 32, 32, 3), "wrong shape"), ((), "wrong shape"), ((1, 32, 32, 3), "needs 3072")],
    ids=["zero-then-huge", "negative", "0-d", "no-data"],
)
def test_npy_header_shapes_are_checked_before_the_data(shape, phrase):
    err = rejected(npy_header(shape), NPY)
    assert err.status == 400
    assert phrase in err.message


def test_npy_trailing_bytes_after_the_array_are_refused():
    err = rejected(npy_body(ONE) + b"\x00", NPY)
    assert "malformed .npy" in err.message


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_every_format_version_and_fortran_order(version):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asfortranarray(SEVERAL), version=version)
    assert b"'fortran_order': True" in buf.getvalue()[:128]
    np.testing.assert_array_equal(codecs.decode(buf.getvalue(), NPY), SEVERAL)


@pytest.mark.parametrize(
    "body",
    [b'{"instances": [[[[NaN]]]]}', json_body({"instances": np.full((1, 32, 32, 3), np.inf).tolist()}),
     b'{"b64": "", "shape": [NaN, 32, 32, 3]}', b'{"instances": -Infinity}'],
    ids=["nan-pixel", "infinity-image", "nan-shape", "minus-infinity"],
)
def test_nan_and_infinity_literals_are_malformed_json(body):
    err = rejected(body, JSON)
    assert err.status == 400
    assert "malformed JSON" in err.message and "NaN or Infinity" in err.message


def test_duplicate_keys_are_malformed_json():
    # Python keeps the last value, another parser the first: refuse rather than guess.
    images = json.dumps(ONE.tolist())
    err = rejected(f'{{"instances": {images}, "instances": "x"}}'.encode(), JSON)
    assert "duplicate key 'instances'" in err.message


@pytest.mark.parametrize(
    "instances, phrase",
    [
        ([[]], "wrong shape [1, 0]"),  # numpy reads empty lists as float64: this said "not floats"
        (np.zeros((1, 32, 32, 0), int).tolist(), "wrong shape [1, 32, 32, 0]"),
        (np.full((1, 32, 32, 3), 2**70, object).tolist(), "out of range"),  # object dtype: said "wrong dtype"
        (np.full((1, 32, 32, 3), -(2**70), object).tolist(), "out of range"),
        # -1 and 2**63 make numpy pick float64: this said "not floats"
        (np.concatenate([np.full((1, 32, 32, 3), -1, object), np.full((1, 32, 32, 3), 2**63, object)]).tolist(), "out of range"),
    ],
    ids=["empty-inner-list", "zero-channels", "huge-int", "huge-negative-int", "int64-uint64-mix"],
)
def test_json_pixels_are_named_correctly(instances, phrase):
    err = rejected(json_body({"instances": instances}), JSON)
    assert err.status == 400
    assert phrase in err.message


@pytest.mark.parametrize("leaf, kind", [(None, "null"), ("7", "strings"), ({"a": 1}, "objects"), (0.5, "floats")])
def test_json_non_integer_pixel_kinds(leaf, kind):
    err = rejected(_with_pixel(leaf), JSON)
    assert f"not {kind}" in err.message


def test_content_type_as_raw_header_bytes():
    np.testing.assert_array_equal(codecs.decode(npy_body(ONE), NPY.encode()), ONE)
    assert rejected(b"{}", b"text/\xff").status == 415  # was a TypeError


@pytest.mark.parametrize(
    "target, content_type, name",
    [("_from_instances", JSON, "JSON"), ("_from_b64", JSON, "b64"), ("decode_raw", OCTET, "raw"), ("decode_npy", NPY, ".npy")],
)
def test_decode_is_total_whatever_a_decoder_raises(monkeypatch, target, content_type, name):
    def boom(*_):
        raise ZeroDivisionError("a bug no body should turn into a 500")

    monkeypatch.setattr(codecs, target, boom)
    body = {"JSON": json_body({"instances": ONE.tolist()}), "b64": b64_body(ONE.tobytes(), [1, 32, 32, 3])}.get(name, b"x")
    err = rejected(body, content_type)
    assert err.status == 400
    assert err.message == f"malformed {name} body: ZeroDivisionError"


def test_decode_checks_what_a_decoder_returns(monkeypatch):
    monkeypatch.setattr(codecs, "decode_raw", lambda body, max_batch, image: np.zeros((1, 32, 32, 3), np.float32))
    assert "wrong dtype float32" in rejected(b"x", OCTET).message
    monkeypatch.setattr(codecs, "decode_raw", lambda body, max_batch, image: np.zeros((9, 32, 32, 3), np.uint8))
    assert rejected(b"x", OCTET, max_batch=8).status == 413


# ---------------------------------------------------------------- the endpoint never raises
class _FakeCore:
    name, version = "fake", 1

    def __init__(self, fail=False):
        self.fail = fail

    def timed_predict(self, images):
        if self.fail:
            raise RuntimeError("model down")
        probs = np.full((len(images), 10), 0.1, np.float32)
        return Prediction(classes=np.zeros(len(images), np.int64), probabilities=probs), 1.0


@pytest.mark.parametrize(
    "body, content_type",
    [(b'{"instances":' + deep(b"[", b"]", 100_000) + b"}", JSON), (b64_body(b"", [0, 2**70, 32, 3]), JSON),
     (npy_header((2**70, 32, 32, 3)), NPY), (b"x", b"\xff")],
    ids=["deep-json", "b64-zero-huge", "npy-giant", "bytes-content-type"],
)
def test_endpoint_answers_hostile_bodies_with_a_4xx(body, content_type):
    reply = _predict(_FakeCore(), body, content_type, codecs.DEFAULT_MAX_BATCH)
    assert 400 <= reply.status < 500
    assert json.loads(reply.body)["error"]


def _predict(core, body, content_type, max_batch):
    from servebench import endpoint

    model = endpoint.LocalModel(core, max_batch)
    return endpoint.handle(model, "POST", "/v1/predict", body, {"Content-Type": content_type})


def test_endpoint_never_raises(monkeypatch):
    ok = _predict(_FakeCore(), ONE.tobytes(), OCTET, 8)
    assert ok.status == 200 and "model;dur=" in ok.timing
    failed = _predict(_FakeCore(fail=True), ONE.tobytes(), OCTET, 8)
    assert failed.status == 500 and json.loads(failed.body) == {"error": "inference failed: RuntimeError"}

    def boom(*_):
        raise KeyError("x")

    monkeypatch.setattr(codecs, "decode", boom)
    reply = _predict(_FakeCore(), ONE.tobytes(), OCTET, 8)
    assert reply.status == 400 and json.loads(reply.body)["error"] == "malformed request body: KeyError"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_json_must_be_utf8(encoding):
    # json.loads reads UTF-16/32 too, where the b"true" scan for boolean pixels finds nothing.
    body = json.dumps({"instances": [[[[True, 0, 0]] * 32] * 32]}).encode(encoding)
    with pytest.raises(CodecError, match="malformed JSON"):
        codecs.decode(body, JSON)


@pytest.mark.parametrize("body, key", [
    (b'{"inputs": [{"name": "a", "name": "b"}]}', "name"),  # inside a list of objects
    (b'{"x": {"y": 1, "y": 2}}', "y"),  # a nested object
    (b'[[1], {"k": 1, "k": 1}]', "k"),  # an object in a list the quote count does not walk
    (b'{"s": "a\\"b", "s": 1}', "s"),  # beside an escaped quote
])
def test_duplicate_keys_anywhere_are_malformed_json(body, key):
    with pytest.raises(codecs.CodecError, match=f"duplicate key '{key}'"):
        codecs.load_json(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80) | st.floats(allow_nan=False,
                                                                                            allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=20)


@given(json_values)
def test_load_json_reads_what_the_json_module_reads(doc):
    # orjson parses first; whatever it would read differently (integers beyond 64 bits) goes to the json module.
    body = json.dumps(doc).encode()
    assert codecs.load_json(body) == json.loads(body)
