"""Open Inference Protocol (KServe v2) codecs, checked against bytes the official Triton client made.

fixtures/kserve/ holds request bodies that tritonclient.http generated, our
responses that it parsed back, and the model-config JSON its proto prints
(fixtures/kserve/generate.py; these tests need no tritonclient). Where
tritonclient is importable the round trips also run against it directly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servebench import kserve
from servebench.codecs import CodecError, Prediction
from servebench.kserve import HEADER_LENGTH, InferRequest, KServeError

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kserve"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
MAX_BATCH = 256
RNG = np.random.default_rng(0)
SEVERAL = RNG.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
EDGES = np.zeros((2, 32, 32, 3), np.uint8)
EDGES[1] = 255


def golden_images() -> np.ndarray:
    """The batch generate.py encoded (same formula)."""
    return (np.arange(2 * 32 * 32 * 3, dtype=np.int64) * 37 % 251).astype(np.uint8).reshape(2, 32, 32, 3)


def golden_prediction() -> Prediction:
    probs = np.full((2, 10), 0.05, dtype=np.float32)
    probs[0, 3], probs[1, 7] = 0.55, 0.5499999
    probs[1, 0] = 1e-7
    return Prediction(classes=np.array([3, 7], dtype=np.int64), probabilities=probs)


def decode(body: bytes, header_length=None, max_batch: int = MAX_BATCH) -> InferRequest:
    return kserve.decode_infer_request(body, None, header_length, max_batch)


def rejected(body: bytes, header_length=None, max_batch: int = MAX_BATCH) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode(body, header_length, max_batch)
    err = info.value
    assert 400 <= err.status < 500 and err.message.strip() and len(err.message) < 1000
    return err


def v2_json(data=None, *, shape=None, datatype="UINT8", n=1, extra_input=None, **doc) -> bytes:
    """A JSON inference request around one input; every part can be replaced."""
    if data is None:
        data = np.zeros((n, 32, 32, 3), np.uint8).ravel().tolist()
    tensor = {"name": "images", "shape": [n, 32, 32, 3] if shape is None else shape, "datatype": datatype, "data": data}
    tensor.update(extra_input or {})
    return json.dumps({"inputs": [tensor], **doc}).encode()


def v2_binary(raw: bytes, *, shape, size=None, **doc) -> tuple[bytes, str]:
    tensor = {"name": "images", "shape": shape, "datatype": "UINT8",
              "parameters": {"binary_data_size": len(raw) if size is None else size}}
    header = json.dumps({"inputs": [tensor], **doc}).encode()
    return header + raw, str(len(header))


# ---------------------------------------------------------------- golden files from tritonclient
@pytest.mark.parametrize("case", sorted(MANIFEST["requests"]))
def test_decodes_what_tritonclient_sends(case):
    expected = MANIFEST["requests"][case]
    body = (FIXTURES / f"request_{case}.bin").read_bytes()
    length = expected["header_length"]
    req = decode(body, None if length is None else str(length))
    np.testing.assert_array_equal(req.images, golden_images())
    assert req.images.dtype == np.uint8
    assert req.id == expected["id"]
    assert list(req.outputs) == expected["outputs"]
    assert sorted(req.binary) == expected["binary"]


ENCODE_ARGS = {  # our client's arguments for the same requests tritonclient made
    "binary_default": dict(outputs=()),
    "binary_binary": dict(request_id="abc"),
    "json_json": dict(binary=False, binary_outputs=False, request_id="r1"),
    "json_default": dict(binary=False, outputs=()),
    "json_probabilities_only": dict(binary=False, binary_outputs=False, outputs=("probabilities",)),
}


@pytest.mark.parametrize("case", sorted(ENCODE_ARGS))
def test_our_client_sends_what_tritonclient_sends_byte_for_byte(case):
    body, headers = kserve.encode_infer_request(golden_images(), **ENCODE_ARGS[case])
    assert body == (FIXTURES / f"request_{case}.bin").read_bytes()
    length = MANIFEST["requests"][case]["header_length"]
    assert headers.get(HEADER_LENGTH) == (None if length is None else str(length))
    assert headers["Content-Type"] == ("application/json" if length is None else "application/octet-stream")


@pytest.mark.parametrize("case", sorted(MANIFEST["responses"]))
def test_responses_tritonclient_read_are_still_what_we_send(case):
    """generate.py checked that tritonclient parses these bytes to the prediction; we must still send them."""
    expected = MANIFEST["responses"][case]
    length = MANIFEST["requests"][case]["header_length"]
    req = decode((FIXTURES / f"request_{case}.bin").read_bytes(), None if length is None else str(length))
    body, headers = kserve.encode_infer_response(golden_prediction(), req, 1)
    assert body == (FIXTURES / f"response_{case}.bin").read_bytes()
    assert headers["Content-Type"] == expected["content_type"]
    header_length = expected["header_length"]
    assert headers.get(HEADER_LENGTH) == (None if header_length is None else str(header_length))
    # And our client reads them back.
    pred = kserve.decode_infer_response(body, headers)
    np.testing.assert_array_equal(pred.classes, golden_prediction().classes)  # argmax when classes were not asked for
    np.testing.assert_array_equal(pred.probabilities, golden_prediction().probabilities)


@pytest.mark.parametrize("case", sorted(MANIFEST["model_configs"]))
def test_model_config_is_what_tritons_proto_prints(case):
    args = MANIFEST["model_configs"][case]
    delay = args["max_queue_delay_us"]
    ours = kserve.model_config(args["max_batch_size"], dynamic_batching=delay is not None, max_queue_delay_us=delay or 0)
    assert ours == json.loads((FIXTURES / f"model_config_{case}.json").read_text())


def test_model_config_reads_as_perf_analyzer_reads_it():
    """The fields perf_analyzer's ModelParser takes from /config and from the metadata, consistent."""
    config, meta = kserve.model_config(8, True, 100), kserve.model_metadata(1)
    assert config["max_batch_size"] == 8 and "dynamic_batching" in config and "sequence_batching" not in config
    assert "dynamic_batching" not in kserve.model_config(8)
    assert "model_transaction_policy" not in config  # if present it must carry "decoupled"
    assert [i["name"] for i in config["input"]] == [i["name"] for i in meta["inputs"]]
    assert [o["name"] for o in config["output"]] == [o["name"] for o in meta["outputs"]]
    for tensor in config["input"] + config["output"]:
        assert tensor["is_shape_tensor"] is False
    image = meta["inputs"][0]
    assert image == {"name": "images", "datatype": "UINT8", "shape": [-1, 32, 32, 3]}
    assert config["input"][0]["dims"] == image["shape"][1:]
    json.dumps(config)  # plain JSON


# ---------------------------------------------------------------- tritonclient itself, where installed
def test_round_trips_through_tritonclient_when_installed():
    httpclient = pytest.importorskip("tritonclient.http")
    for binary in (True, False):
        tensor = httpclient.InferInput("images", list(SEVERAL.shape), "UINT8")
        tensor.set_data_from_numpy(SEVERAL, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput("classes", binary_data=binary),
                   httpclient.InferRequestedOutput("probabilities", binary_data=not binary)]
        body, json_size = httpclient.InferenceServerClient.generate_request_body(
            [tensor], outputs=outputs, request_id="x")
        req = decode(body, None if json_size is None else str(json_size))
        np.testing.assert_array_equal(req.images, SEVERAL)
        pred = golden_prediction()
        pred = Prediction(classes=np.arange(5) % 10, probabilities=np.repeat(pred.probabilities[:1], 5, axis=0))
        response, headers = kserve.encode_infer_response(pred, req, "3")
        length = headers.get(HEADER_LENGTH)
        result = httpclient.InferenceServerClient.parse_response_body(
            response, header_length=None if length is None else int(length))
        np.testing.assert_array_equal(result.as_numpy("classes"), pred.classes)
        np.testing.assert_array_equal(result.as_numpy("probabilities"), pred.probabilities)
        assert result.get_response()["id"] == "x" and result.get_response()["model_version"] == "3"


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("images", [SEVERAL[:1], SEVERAL, EDGES], ids=["one", "several", "edges"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_round_trip(images, binary):
    body, headers = kserve.encode_infer_request(images, binary=binary, request_id="7")
    req = kserve.decode_infer_request(body, headers["Content-Type"], headers.get(HEADER_LENGTH), MAX_BATCH)
    assert req.images.dtype == np.uint8
    np.testing.assert_array_equal(req.images, images)
    assert req.id == "7" and req.outputs == kserve.OUTPUT_NAMES
    assert req.binary == frozenset(kserve.OUTPUT_NAMES)  # binary_outputs=True is the default either way


def test_single_image_without_batch_axis_encodes_as_batch_of_one():
    body, headers = kserve.encode_infer_request(SEVERAL[0])
    assert decode(body, headers[HEADER_LENGTH]).images.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="expected images uint8"):
        kserve.encode_infer_request(SEVERAL.astype(np.float32))


def test_nested_json_data_is_accepted_like_flat():
    req = decode(v2_json(SEVERAL.tolist(), n=5))
    np.testing.assert_array_equal(req.images, SEVERAL)


def test_batch_at_the_limit_is_accepted():
    body, headers = kserve.encode_infer_request(SEVERAL)
    assert decode(body, headers[HEADER_LENGTH], max_batch=5).images.shape == (5, 32, 32, 3)


def test_header_length_as_raw_bytes_and_with_spaces():
    body, headers = kserve.encode_infer_request(SEVERAL)
    np.testing.assert_array_equal(decode(body, headers[HEADER_LENGTH].encode()).images, SEVERAL)
    np.testing.assert_array_equal(decode(body, f" {headers[HEADER_LENGTH]} ").images, SEVERAL)


@pytest.mark.parametrize("content_type", [None, "application/json", "application/octet-stream",
                                          "application/x-www-form-urlencoded", b"\xff"])
def test_content_type_is_not_consulted(content_type):
    body, headers = kserve.encode_infer_request(SEVERAL)
    req = kserve.decode_infer_request(body, content_type, headers[HEADER_LENGTH], MAX_BATCH)
    np.testing.assert_array_equal(req.images, SEVERAL)


def test_header_length_covering_the_whole_body_is_plain_json():
    body = v2_json()
    assert decode(body, str(len(body))).images.shape == (1, 32, 32, 3)


@pytest.mark.parametrize(
    "doc, outputs, binary",
    [
        ({}, ("probabilities", "classes"), set()),
        ({"outputs": []}, ("probabilities", "classes"), set()),
        ({"parameters": {"binary_data_output": True}}, ("probabilities", "classes"), {"probabilities", "classes"}),
        ({"parameters": {"binary_data_output": False}}, ("probabilities", "classes"), set()),
        ({"outputs": [{"name": "classes"}]}, ("classes",), set()),
        ({"outputs": [{"name": "classes"}], "parameters": {"binary_data_output": True}}, ("classes",), {"classes"}),
        ({"outputs": [{"name": "classes", "parameters": {"binary_data": False}}, {"name": "probabilities"}],
          "parameters": {"binary_data_output": True}}, ("classes", "probabilities"), {"probabilities"}),
        ({"outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}, ("probabilities",), {"probabilities"}),
        ({"parameters": {"priority": 1, "timeout": 10, "sequence_id": 0, "custom": "x"}}, ("probabilities", "classes"), set()),
    ],
    ids=["none", "empty-list", "all-binary", "all-json", "one", "one-binary-by-default", "override",
         "per-output", "other-parameters-ignored"],
)
def test_requested_outputs(doc, outputs, binary):
    req = decode(v2_json(**doc))
    assert req.outputs == outputs and req.binary == frozenset(binary)


def test_id_is_echoed_and_version_is_a_string():
    req = decode(v2_json(id="abc-1"))
    body, headers = kserve.encode_infer_response(golden_prediction(), req, 2)
    doc = json.loads(body)
    assert doc["id"] == "abc-1" and doc["model_name"] == "cifar10_cnn" and doc["model_version"] == "2"
    assert headers == {"Content-Type": "application/json"}
    assert "id" not in json.loads(kserve.encode_infer_response(golden_prediction(), decode(v2_json()), 1)[0])


def test_response_outputs_follow_the_request_and_the_spec():
    req = decode(v2_json(outputs=[{"name": "classes"}, {"name": "probabilities", "parameters": {"binary_data": True}}]))
    body, headers = kserve.encode_infer_response(golden_prediction(), req, 1)
    length = int(headers[HEADER_LENGTH])
    doc = json.loads(body[:length])
    classes, probs = doc["outputs"]
    assert classes == {"name": "classes", "datatype": "INT64", "shape": [2], "data": [3, 7]}
    assert probs == {"name": "probabilities", "datatype": "FP32", "shape": [2, 10], "parameters": {"binary_data_size": 80}}
    raw = np.frombuffer(body[length:], dtype="<f4").reshape(2, 10)  # little-endian, row-major
    np.testing.assert_array_equal(raw, golden_prediction().probabilities)


def test_server_and_model_metadata():
    meta = kserve.server_metadata()
    assert meta["name"] == "servebench" and isinstance(meta["version"], str)
    assert set(meta["extensions"]) == {"binary_tensor_data", "model_configuration"}
    model = kserve.model_metadata(1)
    assert model["name"] == "cifar10_cnn" and model["versions"] == ["1"] and model["platform"] == "tensorflow_savedmodel"
    assert model["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                                {"name": "classes", "datatype": "INT64", "shape": [-1]}]
    assert json.loads(kserve.error_body("bad")) == {"error": "bad"}


# ---------------------------------------------------------------- every bad request is a 4xx that names the problem
def _with_pixel(value, nested=False) -> bytes:
    images = np.zeros((1, 32, 32, 3), np.int64).tolist()
    images[0][5][7][1] = value
    if nested:
        return v2_json(images)
    flat = np.zeros(3072, np.int64).tolist()
    flat[100] = value
    return v2_json(flat)


def _deep(depth: int) -> bytes:
    return b'{"inputs": ' + b"[" * depth + b"0" + b"]" * depth + b"}"


ONE_RAW = SEVERAL[:1].tobytes()
HOSTILE = [
    # malformed JSON, as the v1 codec refuses it
    ("truncated", b'{"inputs": [', None, "malformed JSON"),
    ("empty", b"", None, "malformed JSON"),
    ("not-utf8", b"\xff\xfe\x00garbage", None, "malformed JSON"),
    # UTF-16 hid a boolean pixel from the scan for b"true" (json.loads takes UTF-16 bytes)
    ("utf-16-with-true-pixel", _with_pixel(True).decode().encode("utf-16"), None, "malformed JSON"),
    ("utf-8-bom", b"\xef\xbb\xbf" + v2_json(), None, "malformed JSON"),
    ("nan", b'{"inputs": [{"name": "images", "shape": [1, 32, 32, 3], "datatype": "UINT8", "data": [NaN]}]}', None,
     "NaN or Infinity"),
    ("infinity-shape", b'{"inputs": [{"name": "images", "shape": [Infinity, 32, 32, 3]}]}', None, "NaN or Infinity"),
    ("duplicate-key", b'{"inputs": [], "inputs": []}', None, "duplicate key 'inputs'"),
    ("deep", _deep(100_000), None, "nested too deeply"),
    ("array", b"[1, 2]", None, "JSON object"),
    # the request's structure
    ("no-inputs", b"{}", None, '"inputs" must be'),
    ("empty-inputs", b'{"inputs": []}', None, '"inputs" must be'),
    ("inputs-object", b'{"inputs": {"images": 1}}', None, '"inputs" must be'),
    ("input-not-object", b'{"inputs": [1]}', None, "must be a JSON object"),
    ("input-no-name", b'{"inputs": [{"shape": [1]}]}', None, '"name"'),
    ("input-name-not-string", b'{"inputs": [{"name": 5}]}', None, '"name"'),
    ("unknown-input", json.dumps({"inputs": [{"name": "x"}]}).encode(), None, "unknown input 'x'"),
    ("duplicate-input", json.dumps({"inputs": [json.loads(v2_json())["inputs"][0]] * 2}).encode(), None,
     "duplicate input 'images'"),
    ("id-not-string", v2_json(id=5), None, '"id" must be a string'),
    ("parameters-not-object", v2_json(parameters=[1]), None, "must be a JSON object"),
    ("binary-output-not-bool", v2_json(parameters={"binary_data_output": 1}), None, '"binary_data_output"'),
    ("shared-memory", v2_json(extra_input={"parameters": {"shared_memory_region": "r"}}), None, "shared_memory_region"),
    # outputs
    ("outputs-not-list", v2_json(outputs={"name": "classes"}), None, '"outputs" must be a list'),
    ("unknown-output", v2_json(outputs=[{"name": "logits"}]), None, "unknown output 'logits'"),
    ("duplicate-output", v2_json(outputs=[{"name": "classes"}] * 2), None, "duplicate output 'classes'"),
    ("output-binary-not-bool", v2_json(outputs=[{"name": "classes", "parameters": {"binary_data": "yes"}}]), None,
     '"binary_data"'),
    ("classification", v2_json(outputs=[{"name": "classes", "parameters": {"classification": 3}}]), None,
     "classification"),
    # datatype
    ("datatype-fp32", v2_json(datatype="FP32"), None, "wrong datatype 'FP32'"),
    ("datatype-lowercase", v2_json(datatype="uint8"), None, "wrong datatype 'uint8'"),
    ("datatype-missing", json.dumps({"inputs": [{"name": "images", "shape": [1, 32, 32, 3], "data": []}]}).encode(),
     None, "wrong datatype None"),
    # shape
    ("shape-missing", json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "data": []}]}).encode(), None,
     '"shape"'),
    ("shape-bool", v2_json(shape=[True, 32, 32, 3]), None, '"shape"'),
    ("shape-float", v2_json(shape=[1.0, 32, 32, 3]), None, '"shape"'),
    ("shape-string", v2_json(shape="1,32,32,3"), None, '"shape"'),
    ("shape-3d", v2_json(shape=[32, 32, 3]), None, "wrong shape"),
    ("shape-5d", v2_json(shape=[1, 32, 32, 3, 1]), None, "wrong shape"),
    ("shape-4-channels", v2_json(shape=[1, 32, 32, 4]), None, "wrong shape"),
    ("shape-negative", v2_json(shape=[-1, 32, 32, 3]), None, "wrong shape"),
    ("shape-zero-then-huge", v2_json(shape=[0, 2**70, 32, 3], data=[]), None, "wrong shape"),
    ("shape-huge-inner", v2_json(shape=[1, 2**64, 32, 3]), None, "wrong shape"),
    ("empty-batch", v2_json(shape=[0, 32, 32, 3], data=[]), None, "empty batch"),
    # data
    ("data-missing", json.dumps({"inputs": [{"name": "images", "shape": [1, 32, 32, 3], "datatype": "UINT8"}]}).encode(),
     None, 'needs "data"'),
    ("data-not-list", v2_json(data="AAAA"), None, '"data"'),
    ("data-short", v2_json(data=[0] * 3071), None, "holds 3071 values"),
    ("data-long", v2_json(data=[0] * 3073), None, "holds 3073 values"),
    ("data-empty", v2_json(data=[]), None, "holds 0 values"),
    ("data-nested-wrong-count", v2_json(np.zeros((2, 32, 32, 3), int).tolist()), None, "holds 2 images"),
    ("data-nested-wrong-shape", v2_json(np.zeros((1, 32, 32, 4), int).tolist()), None, "wrong shape"),
    ("data-nested-ragged", v2_json([np.zeros((32, 32, 3), int).tolist()[:-1]]), None, "wrong shape"),
    ("data-half-nested", v2_json(np.zeros((1, 3072), int).tolist()), None, "wrong shape"),
    ("data-mixed-nesting", v2_json([[0]] + [0] * 3071), None, "holds 3072 images"),
    ("data-mixed-nesting-right-count", v2_json([np.zeros((32, 32, 3), int).tolist(), 0], n=2), None, "wrong shape"),
    ("pixel-float", _with_pixel(1.0), None, "not floats"),
    ("pixel-float-nested", _with_pixel(0.5, nested=True), None, "not floats"),
    ("pixel-true", _with_pixel(True), None, "not booleans"),
    ("pixel-false-nested", _with_pixel(False, nested=True), None, "not booleans"),
    ("pixel-string", _with_pixel("7"), None, "not strings"),
    ("pixel-null", _with_pixel(None), None, "not null"),
    ("pixel-object", _with_pixel({"a": 1}), None, "not objects"),
    ("pixel-list", _with_pixel([1]), None, "wrong shape"),
    ("pixel-256", _with_pixel(256), None, "out of range"),
    ("pixel-negative", _with_pixel(-1), None, "out of range"),
    ("pixel-huge", _with_pixel(2**70), None, "out of range"),
    ("pixel-uint64-mix", v2_json([-1] + [2**63] * 3071), None, "out of range"),
    # the binary extension
    ("binary-size-short", *v2_binary(ONE_RAW[:-1], shape=[1, 32, 32, 3]), "needs 3072 bytes"),
    ("binary-size-lies", *v2_binary(ONE_RAW, shape=[1, 32, 32, 3], size=3000), "needs 3072 bytes"),
    ("binary-size-negative", *v2_binary(ONE_RAW, shape=[1, 32, 32, 3], size=-3072), "must be a byte count"),
    ("binary-size-bool", *v2_binary(ONE_RAW, shape=[1, 32, 32, 3], size=True), "must be a byte count"),
    ("binary-size-float", *v2_binary(ONE_RAW, shape=[1, 32, 32, 3], size=3072.0), "must be a byte count"),
    ("binary-size-huge", *v2_binary(ONE_RAW, shape=[1, 32, 32, 3], size=2**70), "needs 3072 bytes"),
    ("binary-shape-huge", *v2_binary(ONE_RAW, shape=[2**70, 32, 32, 3]), "batch too large"),
    ("binary-trailing-bytes", v2_binary(ONE_RAW, shape=[1, 32, 32, 3])[0] + b"\x00",
     v2_binary(ONE_RAW, shape=[1, 32, 32, 3])[1], "3073 bytes but the inputs declare 3072"),
    ("binary-without-header-length", v2_binary(ONE_RAW, shape=[1, 32, 32, 3])[0], None, "malformed JSON"),
    ("binary-header-length-covers-all", v2_binary(ONE_RAW, shape=[1, 32, 32, 3])[0],
     str(len(v2_binary(ONE_RAW, shape=[1, 32, 32, 3])[0])), "malformed JSON"),
    ("binary-and-data", v2_json(extra_input={"parameters": {"binary_data_size": 3072}}) + ONE_RAW,
     str(len(v2_json(extra_input={"parameters": {"binary_data_size": 3072}}))), 'both "data" and "binary_data_size"'),
    ("bytes-but-no-binary-input", v2_json() + b"\x00" * 8, str(len(v2_json())), 'no input declares "binary_data_size"'),
    ("no-binary-data-for-size", *v2_binary(b"", shape=[1, 32, 32, 3], size=3072), "0 bytes but the inputs declare 3072"),
    # the header value
    ("header-length-text", v2_json(), "ten", "must be a byte count"),
    ("header-length-negative", v2_json(), "-1", "must be a byte count"),
    ("header-length-float", v2_json(), "10.5", "must be a byte count"),
    ("header-length-unicode-digits", v2_json(), "\u0661\u0662", "must be a byte count"),
    ("header-length-huge", v2_json(), "9" * 5000, "must be a byte count"),
    ("header-length-beyond-body", v2_json(), "99999999", "but the body has only"),
    ("header-length-zero", v2_json(), "0", "malformed JSON"),
    ("header-length-not-latin1", v2_json(), b"\xff\xfe", "must be a byte count"),
]


@pytest.mark.parametrize("body, header_length, phrase", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_requests_are_a_4xx_naming_the_problem(body, header_length, phrase):
    err = rejected(body, header_length)
    assert err.status == (413 if "batch too large" in phrase else 400), err.message
    assert phrase in err.message, err.message


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_batch_too_large_is_413(binary):
    body, headers = kserve.encode_infer_request(SEVERAL, binary=binary)
    err = rejected(body, headers.get(HEADER_LENGTH), max_batch=4)
    assert err.status == 413
    assert "batch too large: 5 images, the limit is 4" in err.message


def test_declared_huge_batch_is_413_before_anything_is_allocated():
    import tracemalloc

    body, length = v2_binary(ONE_RAW, shape=[2**40, 32, 32, 3])
    tracemalloc.start()
    try:
        err = rejected(body, length)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.status == 413 and peak < 1 << 20


def test_booleans_in_parameters_do_not_reject_integer_pixels():
    body = v2_json(SEVERAL.ravel().tolist(), n=5, id="true false", parameters={"binary_data_output": False, "x": True},
                   outputs=[{"name": "classes", "parameters": {"binary_data": True}}])
    np.testing.assert_array_equal(decode(body).images, SEVERAL)


def test_decode_is_total_whatever_goes_wrong_inside(monkeypatch):
    def boom(*_):
        raise ZeroDivisionError("a bug no body should turn into a 500")

    monkeypatch.setattr(kserve, "_input_tensor", boom)
    err = rejected(v2_json())
    assert err.status == 400 and err.message == "malformed inference request: ZeroDivisionError"


# ---------------------------------------------------------------- client side: reading responses
def triton_style_response(binary: bool) -> tuple[bytes, dict]:
    """What Triton answers for this model: classes is a batched scalar, dims [1], so [n, 1]; nested data is allowed."""
    pred = golden_prediction()
    outputs = [{"name": "classes", "datatype": "INT64", "shape": [2, 1], "data": [[3], [7]]}]
    prob = {"name": "probabilities", "datatype": "FP32", "shape": [2, 10]}
    if binary:
        prob["parameters"] = {"binary_data_size": 80}
    else:
        prob["data"] = pred.probabilities.tolist()
    header = json.dumps({"model_name": "cifar10_cnn", "model_version": "1", "outputs": outputs + [prob]}).encode()
    if not binary:
        return header, {"content-type": "application/json"}
    return header + pred.probabilities.astype("<f4").tobytes(), {"inference-header-content-length": str(len(header))}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_reads_tritons_own_responses(binary):
    pred = kserve.decode_infer_response(*triton_style_response(binary))
    assert pred.classes.tolist() == [3, 7] and pred.classes.dtype == np.int64
    np.testing.assert_array_equal(pred.probabilities, golden_prediction().probabilities)


def _response(outputs, tail: bytes = b"", length: bool | None = None, **doc) -> tuple[bytes, dict]:
    header = json.dumps({"outputs": outputs, **doc}).encode()
    headers = {HEADER_LENGTH: str(len(header))} if (tail or length) else {}
    return header + tail, headers


PROBS = {"name": "probabilities", "datatype": "FP32", "shape": [1, 10], "data": [0.1] * 10}
BAD_RESPONSES = [
    ("error-body", (b'{"error": "model not ready"}', {}), "model not ready"),
    ("not-json", (b"<html>", {}), "not JSON"),
    ("not-object", (b"[]", {}), "not a JSON object"),
    ("no-outputs", (b"{}", {}), '"outputs"'),
    ("no-probabilities", _response([{"name": "classes", "datatype": "INT64", "shape": [1], "data": [1]}]), "lacks"),
    ("bad-datatype", _response([{**PROBS, "datatype": "BYTES"}]), "datatype"),
    ("bad-shape", _response([{**PROBS, "shape": [1, -10]}]), "bad shape"),
    ("wrong-width", _response([{**PROBS, "shape": [1, 5], "data": [0.2] * 5}]), "expected [batch, 10]"),
    ("count-mismatch", _response([{**PROBS, "data": [0.1] * 9}]), "holds 9 values"),
    ("no-data", _response([{k: v for k, v in PROBS.items() if k != "data"}]), "neither data"),
    ("binary-short", _response([{**{k: v for k, v in PROBS.items() if k != "data"}, "parameters": {"binary_data_size": 40}}],
                               bytes(36)), "declares 40 bytes"),
    ("binary-trailing", _response([PROBS], bytes(4)), "4 bytes of binary data"),
    ("header-length-bad", (b"{}", {HEADER_LENGTH: "x"}), "bad Inference-Header-Content-Length"),
    ("header-length-long", (b"{}", {HEADER_LENGTH: "99"}), "bad Inference-Header-Content-Length"),
    ("class-out-of-range", _response([PROBS, {"name": "classes", "datatype": "INT64", "shape": [1], "data": [10]}]),
     "outside 0..9"),
    ("classes-float", _response([PROBS, {"name": "classes", "datatype": "FP32", "shape": [1], "data": [1.0]}]),
     "expected integers"),
    ("classes-count", _response([PROBS, {"name": "classes", "datatype": "INT64", "shape": [2], "data": [1, 2]}]),
     "for 1 probability rows"),
    ("output-no-name", _response([{"datatype": "FP32"}]), "without a name"),
]


@pytest.mark.parametrize("response, phrase", [c[1:] for c in BAD_RESPONSES], ids=[c[0] for c in BAD_RESPONSES])
def test_unreadable_responses_raise_kserve_error(response, phrase):
    """Unreadable at once, or (a classifier's checks) when read as a prediction."""
    with pytest.raises(KServeError) as info:
        kserve.decode_infer_response(*response).prediction()
    assert info.value.status == 502
    assert phrase in info.value.message, info.value.message


# ---------------------------------------------------------------- fuzz: decode_infer_request is total
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False), st.text(max_size=6))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=20)
header_lengths = st.one_of(st.none(), st.integers(-5, 400).map(str), st.text(max_size=6), st.binary(max_size=4))


def check(body: bytes, header_length, max_batch: int = 4) -> None:
    try:
        req = decode(body, header_length, max_batch)
    except CodecError as exc:
        assert 400 <= exc.status < 500 and exc.message.strip() and len(exc.message) < 1000
        return
    assert req.images.dtype == np.uint8 and req.images.shape[1:] == (32, 32, 3)
    assert 1 <= req.images.shape[0] <= max_batch
    assert set(req.binary) <= set(req.outputs) <= set(kserve.OUTPUT_NAMES)


@FUZZ
@given(body=st.binary(max_size=512), header_length=header_lengths)
def test_fuzz_any_bytes(body, header_length):
    check(body, header_length)


@FUZZ
@given(shape=st.one_of(json_values, st.lists(st.one_of(st.integers(), st.sampled_from([0, 1, 32, 3, 2**64])), max_size=5)),
       datatype=st.one_of(st.just("UINT8"), json_values), params=json_values, outputs=json_values, data=json_values,
       request_params=json_values)
def test_fuzz_hostile_documents(shape, datatype, params, outputs, data, request_params):
    tensor = {"name": "images", "shape": shape, "datatype": datatype, "parameters": params, "data": data}
    check(json.dumps({"inputs": [tensor], "outputs": outputs, "parameters": request_params}).encode(), None)


@FUZZ
@given(n=st.integers(1, 3), binary=st.booleans(), cut=st.integers(0, 10**6), junk=st.binary(max_size=6),
       delta=st.integers(-3, 3))
def test_fuzz_mutated_valid_requests(n, binary, cut, junk, delta):
    body, headers = kserve.encode_infer_request(SEVERAL[:n], binary=binary)
    length = headers.get(HEADER_LENGTH)
    np.testing.assert_array_equal(decode(body, length, 4).images, SEVERAL[:n])
    at = cut % len(body)
    check(body[:at], length)
    check(body[:at] + junk + body[at:], length)
    if length is not None:
        check(body, str(int(length) + delta))
