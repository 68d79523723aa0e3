"""Property-based fuzzing of the request codecs.

The contract: for any bytes and any content type, ``codecs.decode`` returns a
uint8 array [n, 32, 32, 3] with 1 <= n <= max_batch, or raises CodecError with
a 4xx status and a message. Anything else (another exception, a 5xx status, an
array of the wrong kind) fails. Derandomized and database-less, so every run
tries the same examples.
"""
from __future__ import annotations

import base64
import io
import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from servebench import codecs
from servebench.codecs import JSON, NPY, OCTET, CodecError

pytestmark = pytest.mark.unit

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    # Hostile bodies are big by design; slowness is bounded by max_examples instead.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
IMAGE = (32, 32, 3)
max_batches = st.sampled_from([1, 2, 3, 8, codecs.DEFAULT_MAX_BATCH])


def check(body, content_type, max_batch=codecs.DEFAULT_MAX_BATCH):
    """The property itself; returns the batch or None for a refusal."""
    try:
        out = codecs.decode(body, content_type, max_batch)
    except CodecError as exc:
        assert 400 <= exc.status < 500, (exc.status, exc.message)
        assert isinstance(exc.message, str) and exc.message.strip()
        assert len(exc.message) < 1000  # hostile values are clipped, not echoed
        assert json.loads(codecs.error_body(exc.message))["error"] == exc.message
        return None
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8
    assert out.ndim == 4 and out.shape[1:] == IMAGE
    assert 1 <= out.shape[0] <= max_batch
    return out


# ---------------------------------------------------------------- any bytes, any content type
ODD_CONTENT_TYPES = [
    JSON, OCTET, NPY, "application/npy", "APPLICATION/JSON", " application/json ;charset=utf-8",
    "application/json; charset=latin-1; q=0.5", "application/json;", "application/json,text/plain",
    "application/octet-stream; x=\"a;b\"", "Application/X-NPY\t", "application/json\x00", "text/plain",
    "multipart/form-data; boundary=x", "", ";", None, b"application/json", b"application/\xff",
]
content_types = st.one_of(st.sampled_from(ODD_CONTENT_TYPES), st.text(max_size=40))


@FUZZ
@given(body=st.binary(max_size=4096), content_type=content_types, max_batch=max_batches)
def test_any_bytes_any_content_type(body, content_type, max_batch):
    check(body, content_type, max_batch)


@FUZZ
@given(body=st.binary(max_size=4096), content_type=st.sampled_from([JSON, OCTET, NPY]))
def test_any_bytes_for_each_codec(body, content_type):
    check(body, content_type)


# ---------------------------------------------------------------- hostile JSON
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(-(2**70), 2**70), st.integers(0, 255), st.sampled_from([2**63, 2**64, -(2**63) - 1]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40,
)


def near_image_batch(n, dims, seed, leaf, where) -> list:
    """Mostly valid pixels in a nested list of the given shape, with one hostile leaf."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (n, *dims)).tolist()
    if leaf is not None and n and all(dims):
        cell = arr
        for size in (n, *dims[:-1]):
            cell = cell[where % size]
        cell[where % dims[-1]] = leaf
    return arr


near_images = st.builds(
    near_image_batch,
    n=st.integers(0, 3),
    dims=st.sampled_from([IMAGE, IMAGE, (32, 32, 4), (31, 32, 3), (32, 32), (32, 32, 3, 1), (0, 32, 3)]),
    seed=st.integers(0, 2**32 - 1),
    leaf=st.one_of(st.none(), scalars, json_values),
    where=st.integers(0, 10**6),
)


def nested(depth: int, inner: str, opener: str) -> bytes:
    closer = {"[": "]", "{\"a\":": "}"}[opener]
    return (opener * depth + inner + closer * depth).encode()


deep_bodies = st.builds(
    lambda depth, opener, wrap: (b'{"instances":' + nested(depth, "0", opener) + b"}") if wrap else nested(depth, "0", opener),
    depth=st.integers(1, 20000),
    opener=st.sampled_from(["[", "{\"a\":"]),
    wrap=st.booleans(),
)


def dump(doc, sort: bool) -> bytes:
    return json.dumps(doc, sort_keys=sort).encode()


json_docs = st.one_of(
    st.builds(lambda v: {"instances": v}, json_values),
    st.builds(lambda v: {"instances": v}, near_images),
    st.builds(lambda v, extra: {"instances": v, **extra}, near_images, st.dictionaries(st.text(max_size=5), json_values, max_size=2)),
    json_values,
)
raw_json_tricks = st.sampled_from([
    b'{"instances": [[[[NaN]]]]}', b'{"instances": Infinity}', b'{"b64": "", "shape": [-Infinity]}',
    b'{"instances": [], "instances": [1]}', b'{"b64": "AAAA", "b64": 1, "shape": [1, 32, 32, 3]}',
    b'{"instances": "\\ud800"}', b'{"\\udfff": 1}', b'\xef\xbb\xbf{"instances": []}', b'"instances"', b"null",
    b"1e999999", b"-" + b"9" * 5000, b'{"instances": [' + b"9" * 4400 + b"]}", '{"instances": []}'.encode("utf-16"),
    '{"instances": []}'.encode("utf-32-be"), b'{"instances": [\xff]}', b"\x00" * 8, b"[" * 50000,
])


@FUZZ
@given(doc=json_docs, sort=st.booleans(), max_batch=max_batches)
def test_hostile_json_documents(doc, sort, max_batch):
    check(dump(doc, sort), JSON, max_batch)


@FUZZ
@given(body=st.one_of(deep_bodies, raw_json_tricks), content_type=st.sampled_from([JSON, "application/json; charset=utf-16"]))
def test_hostile_json_text(body, content_type):
    check(body, content_type)


@FUZZ
@given(n=st.integers(1, 3), seed=st.integers(0, 2**32 - 1), cut=st.integers(0, 10**6), junk=st.binary(max_size=8))
def test_mutated_valid_json(n, seed, cut, junk):
    images = np.random.default_rng(seed).integers(0, 256, (n, *IMAGE), dtype=np.uint8)
    body, ctype = codecs.encode(images, "json")
    np.testing.assert_array_equal(check(body, ctype), images)
    at = cut % len(body)
    check(body[:at], ctype)
    check(body[:at] + junk + body[at:], ctype)


# ---------------------------------------------------------------- hostile b64
HUGE_DIMS = [0, 1, 2, 3, 31, 32, 33, -1, -32, 256, 257, 2**31, 2**32, 2**62, 2**63, 2**64, 2**70, -(2**70), 10**40]
dims = st.one_of(st.sampled_from(HUGE_DIMS), st.integers())
shapes = st.one_of(
    st.lists(dims, max_size=6),
    st.builds(lambda n, a, b: [n, a, b, 3], dims, st.sampled_from([32, 0, 2**70]), st.sampled_from([32, 0, 2**64])),
    st.builds(lambda n: [n, 32, 32, 3], dims),
    st.lists(st.one_of(scalars, dims), max_size=5),
    json_values,
)
b64_strings = st.one_of(
    st.binary(max_size=3 * 3072).map(lambda raw: base64.b64encode(raw).decode()),
    st.integers(0, 4).map(lambda n: base64.b64encode(bytes(3072 * n)).decode()),
    st.text(max_size=64),
    st.text(alphabet="ABCD+/=\n ", max_size=64),
    json_values,
)
dtypes = st.one_of(st.just("uint8"), st.sampled_from(["float32", "u1", "|u1", "UINT8", "uint8 ", ""]), json_values)


@FUZZ
@given(shape=shapes, payload=b64_strings, dtype=st.one_of(st.none(), dtypes), max_batch=max_batches)
def test_hostile_b64(shape, payload, dtype, max_batch):
    doc = {"b64": payload, "shape": shape}
    if dtype is not None:
        doc["dtype"] = dtype
    check(dump(doc, False), JSON, max_batch)


@FUZZ
@given(n=st.integers(0, 4), shape=st.sampled_from([None, [32, 32, 3], [0, 2**70, 32, 3], [2**64, 0, 32, 3]]), max_batch=max_batches)
def test_b64_payload_and_declared_shape(n, shape, max_batch):
    raw = bytes(3072 * n)
    doc = {"b64": base64.b64encode(raw).decode(), "shape": shape if shape is not None else [n, 32, 32, 3]}
    out = check(dump(doc, False), JSON, max_batch)
    if shape is None and 1 <= n <= max_batch:
        assert out is not None and out.shape[0] == n


# ---------------------------------------------------------------- hostile npy
def npy_file(arr: np.ndarray, version=None, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "stored array in format 3.0"
        try:
            np.lib.format.write_array(buf, arr, version=version, allow_pickle=allow_pickle)
        except UnicodeEncodeError:  # non-latin-1 field names need format 3.0, which numpy picks itself
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, version=None, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header(descr, fortran_order, shape, version=(1, 0)) -> bytes:
    """A header as numpy writes it, but with whatever values the test wants."""
    text = repr({"descr": descr, "fortran_order": fortran_order, "shape": shape}).encode()
    size = 2 if version == (1, 0) else 4
    pad = -(6 + 2 + size + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes(version) + len(text).to_bytes(size, "little") + text


small_shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)
any_dtypes = st.one_of(hnp.scalar_dtypes(), hnp.array_dtypes(max_size=3), hnp.nested_dtypes(max_itemsize=64))
valid_npy_arrays = st.one_of(
    hnp.arrays(dtype=any_dtypes, shape=small_shapes),
    hnp.arrays(dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.float32, np.bool_]),
               shape=st.sampled_from([IMAGE, (1, *IMAGE), (2, *IMAGE), (0, *IMAGE), (1, 32, 32, 4), (3072,)])),
)


@FUZZ
@given(arr=valid_npy_arrays, fortran=st.booleans(), version=st.sampled_from([None, (1, 0), (2, 0), (3, 0)]), max_batch=max_batches)
def test_valid_npy_files_of_any_dtype_and_shape(arr, fortran, version, max_batch):
    if fortran:
        arr = np.asfortranarray(arr)
    out = check(npy_file(arr, version), NPY, max_batch)
    if out is not None:
        np.testing.assert_array_equal(out, arr.reshape(out.shape))


@FUZZ
@given(
    descr=st.one_of(st.sampled_from(["|u1", "<u1", "|b1", "<f4", "|O", "|V3072", "|S3072", "<U8", "zz", "|V" + str(2**40)]),
                    st.just([("a", "|u1", (32, 32, 3))]), json_values),
    fortran=st.one_of(st.booleans(), json_values),
    shape=st.one_of(st.tuples(dims, st.sampled_from([32, 2**70, 0]), st.just(32), st.just(3)),
                    st.lists(dims, max_size=5).map(tuple), shapes),
    data=st.one_of(st.just(b""), st.integers(0, 3).map(lambda n: bytes(3072 * n)), st.binary(max_size=100)),
    version=st.sampled_from([(1, 0), (2, 0), (3, 0), (4, 0), (0, 0)]),
    max_batch=max_batches,
)
def test_hostile_npy_headers(descr, fortran, shape, data, version, max_batch):
    check(npy_header(descr, fortran, shape, version) + data, NPY, max_batch)


@FUZZ
@given(n=st.integers(1, 3), cut=st.integers(0, 10**6), flip=st.integers(0, 255), trailing=st.binary(max_size=16))
def test_truncated_and_corrupted_npy(n, cut, flip, trailing):
    body = npy_file(np.zeros((n, *IMAGE), np.uint8))
    at = cut % len(body)
    check(body[:at], NPY)
    check(body[:at] + bytes([flip]) + body[at + 1:], NPY)
    check(body + trailing, NPY)


def test_npy_object_and_zero_d_arrays():
    check(npy_file(np.array([{"a": 1}], dtype=object), allow_pickle=True), NPY)
    check(npy_file(np.array(7, np.uint8)), NPY)
    check(npy_file(np.zeros(IMAGE, np.uint8).view([("a", "u1")])), NPY)


# ---------------------------------------------------------------- raw
@FUZZ
@given(images=st.integers(0, 300), delta=st.sampled_from([0, 0, -1, 1, 3071, -3071]), fill=st.integers(0, 255), max_batch=max_batches)
def test_raw_of_any_length(images, delta, fill, max_batch):
    length = max(0, images * 3072 + delta)
    out = check(bytes([fill]) * length, OCTET, max_batch)
    if delta == 0 and 1 <= images <= max_batch:
        assert out is not None and out.shape[0] == images and int(out[0, 0, 0, 0]) == fill


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_every_codec_round_trips_under_the_property(codec):
    images = np.arange(2 * 3072, dtype=np.int64).reshape(2, *IMAGE).astype(np.uint8)
    body, ctype = codecs.encode(images, codec)
    np.testing.assert_array_equal(check(body, ctype), images)
