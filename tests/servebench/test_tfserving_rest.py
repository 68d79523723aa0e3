"""TF Serving's REST API: the bodies our client sends and parses, the ones our servers accept and answer, and
RestClient against a test double. TF Serving itself cannot run here; these check TF Serving's documented formats.

FakeTFServingREST below is a test double on 127.0.0.1 that answers in TF Serving's
documented formats. It exercises our client's transport and error handling only;
it is never TF Serving and never appears in a benchmark.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servebench import codecs, tfserving
from servebench.tfserving import RestClient, TFServingError, parse_rest_response, rest_predict_body, rest_predict_path
from tests.servebench.tfserving_samples import expected_answer, sample_images
from tests.stacks import free_ports

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------- REST formats
def test_rest_body_round_trip():
    images = sample_images()
    doc = json.loads(rest_predict_body(images))
    assert doc["signature_name"] == "serving_default"
    instances = np.asarray(doc["instances"])
    assert instances.dtype.kind == "i"  # integers, not floats: TF Serving casts them to uint8
    assert instances.shape == (3, 32, 32, 3)
    assert np.array_equal(instances.astype(np.uint8), images)
    # Our own servers accept the very same row-format body.
    assert np.array_equal(codecs.decode_json(rest_predict_body(images)), images)
    assert json.loads(rest_predict_body(images, signature="other"))["signature_name"] == "other"


def test_rest_body_takes_one_image_and_refuses_other_dtypes():
    assert np.asarray(json.loads(rest_predict_body(sample_images(1)[0]))["instances"]).shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="uint8"):
        rest_predict_body(sample_images().astype(np.float32))
    with pytest.raises(ValueError, match=r"\[n, 32, 32, 3\]"):
        rest_predict_body(np.zeros((2, 28, 28, 1), dtype=np.uint8))


def test_rest_predict_path():
    assert rest_predict_path() == "/v1/models/cifar10_cnn:predict"
    assert rest_predict_path(version=3) == "/v1/models/cifar10_cnn/versions/3:predict"
    assert rest_predict_path("other", 12) == "/v1/models/other/versions/12:predict"


def test_parse_rest_row_format_multi_output():
    body = json.dumps({"predictions": [
        {"probabilities": [0.1] * 9 + [0.1], "classes": 3},
        {"probabilities": [0.0] * 9 + [1.0], "classes": 9},
    ]}).encode()
    pred = parse_rest_response(body)
    assert pred.classes.dtype == np.int64 and pred.classes.tolist() == [3, 9]
    assert pred.probabilities.dtype == np.float32 and pred.probabilities.shape == (2, 10)


def test_parse_rest_row_format_single_output_uses_argmax():
    rows = [[0.0] * 10 for _ in range(2)]
    rows[0][7], rows[1][2] = 0.9, 0.8
    pred = parse_rest_response(json.dumps({"predictions": rows}).encode())
    assert pred.classes.tolist() == [7, 2]
    assert pred.probabilities[0, 7] == pytest.approx(0.9)


def test_parse_rest_columnar_format():
    probs = [[0.1] * 10, [0.2] * 10]
    pred = parse_rest_response(json.dumps({"outputs": {"probabilities": probs, "classes": [1, 5]}}).encode())
    assert pred.classes.tolist() == [1, 5]
    assert np.allclose(pred.probabilities, probs)
    single = [[0.0] * 9 + [1.0]]
    assert parse_rest_response(json.dumps({"outputs": single}).encode()).classes.tolist() == [9]


@pytest.mark.parametrize("body, fragment", [
    (b'{"error": "Servable not found for request: Latest(nope)"}', "Servable not found"),
    (b"<html>bad gateway</html>", "malformed JSON"),
    (b"\xff\xfe", "malformed JSON"),
    (b"[1, 2]", "not an object"),
    (b'{"result": []}', "neither"),
    (b'{"predictions": [{"probabilities": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}]}', "'classes'"),
    (b'{"outputs": {"classes": [1]}}', "'probabilities'"),
    (b'{"predictions": [[0.5, 0.5]]}', "shape [1, 2]"),
    (b'{"predictions": []}', "shape [0]"),
    (b'{"predictions": [[0.1], [0.1, 0.2]]}', "unreadable"),
    (b'{"predictions": 3}', "shape []"),
    (b'{"outputs": {"probabilities": [[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]], "classes": [12]}}', "outside 0..9"),
    (b'{"outputs": {"probabilities": [[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]], "classes": [1, 2]}}', "classes of shape [2]"),
])
def test_parse_rest_errors_are_bad_gateway(body, fragment):
    with pytest.raises(TFServingError) as info:
        parse_rest_response(body)
    assert info.value.status == 502
    assert isinstance(info.value, RuntimeError)
    assert fragment in info.value.message


# ---------------------------------------------------------------- REST, server side (our servers speaking TF Serving's API)
def _server_prediction(n: int = 3) -> codecs.Prediction:
    classes, probs = expected_answer(sample_images(n))
    probs[0, 0] = 1e-7  # a value a 6-decimal rounding would lose
    return codecs.Prediction(classes=classes, probabilities=probs)


def _decode_rest(doc, max_batch: int = 256):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return tfserving.decode_rest_request(body, max_batch)


@pytest.mark.parametrize(
    "make, columnar",
    [
        (lambda x: {"instances": x.tolist()}, False),
        (lambda x: {"signature_name": "serving_default", "instances": x.tolist()}, False),
        (lambda x: {"signature_name": "", "instances": x.tolist()}, False),
        (lambda x: {"instances": [{"images": image.tolist()} for image in x]}, False),
        (lambda x: {"inputs": x.tolist()}, True),
        (lambda x: {"inputs": {"images": x.tolist()}, "signature_name": "serving_default"}, True),
        (lambda x: {"instances": x.tolist(), "unrelated": True}, False),
    ],
    ids=["rows", "rows-signature", "rows-empty-signature", "rows-named", "columnar", "columnar-named", "extra-key"],
)
def test_decode_rest_request_forms(make, columnar):
    images = sample_images(3)
    inputs, was_columnar = _decode_rest(make(images))
    decoded = inputs["images"]
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, images)
    assert was_columnar is columnar


def test_decode_rest_request_reads_our_own_client_body():
    images = sample_images(2)
    decoded, columnar = tfserving.decode_rest_request(rest_predict_body(images), 8)
    assert np.array_equal(decoded["images"], images) and columnar is False


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columnar"])
def test_encode_rest_response_reads_back_with_parse_rest_response(columnar):
    pred = _server_prediction()
    body = tfserving.encode_rest_response(pred, columnar)
    doc = json.loads(body)
    if columnar:
        assert set(doc) == {"outputs"} and set(doc["outputs"]) == {"probabilities", "classes"}
        assert doc["outputs"]["classes"] == pred.classes.tolist()
    else:
        assert set(doc) == {"predictions"} and len(doc["predictions"]) == 3
        assert doc["predictions"][1] == {"probabilities": pred.probabilities[1].tolist(), "classes": int(pred.classes[1])}
    back = parse_rest_response(body)
    assert np.array_equal(back.classes, pred.classes)
    assert np.array_equal(back.probabilities, pred.probabilities)  # float32 survives exactly


def _named_pixel(value):
    images = sample_images(1).tolist()
    images[0][3][4][2] = value
    return images


TF_HOSTILE = [
    ("truncated", b'{"instances": [', "malformed JSON"),
    ("empty", b"", "malformed JSON"),
    ("not-utf8", b"\xff\xfe\x00", "malformed JSON"),
    ("utf-16-with-true-pixel", json.dumps({"instances": _named_pixel(True)}).encode("utf-16"), "malformed JSON"),
    ("nan", b'{"instances": [[[[NaN]]]]}', "NaN or Infinity"),
    ("duplicate-key", b'{"instances": [], "instances": []}', "duplicate key 'instances'"),
    ("deep", b'{"instances": ' + b"[" * 100_000 + b"0" + b"]" * 100_000 + b"}", "nested too deeply"),
    ("array", b"[1, 2]", "JSON object"),
    ("neither", {"signature_name": "serving_default"}, 'exactly one of "instances"'),
    ("both", {"instances": [], "inputs": []}, 'exactly one of "instances"'),
    ("unknown-signature", {"signature_name": "predict", "instances": []}, "unknown signature_name 'predict'"),
    ("signature-not-string", {"signature_name": 3, "instances": []}, "unknown signature_name 3"),
    ("instances-not-list", {"instances": {"images": []}}, '"instances" must be a list'),
    ("inputs-not-list", {"inputs": 5}, '"inputs" must be'),
    ("inputs-unknown-name", {"inputs": {"image": []}}, "unknown input 'image'"),
    ("inputs-extra-name", {"inputs": {"images": [], "mask": []}}, "unknown input 'mask'"),
    ("inputs-empty-object", {"inputs": {}}, "missing input 'images'"),
    ("rows-unknown-name", {"instances": [{"image": []}]}, "unknown input 'image'"),
    ("rows-missing-name", {"instances": [{}]}, "missing input 'images'"),
    ("rows-mixed", {"instances": [{"images": []}, []]}, "mixes"),
    ("rows-b64", {"instances": [{"b64": "AAAA"}]}, "unknown input 'b64'"),
    ("empty-batch", {"instances": []}, "empty batch"),
    ("empty-columnar", {"inputs": []}, "empty batch"),
    ("wrong-shape", {"instances": np.zeros((1, 32, 32, 4), int).tolist()}, "wrong shape"),
    ("no-batch-axis", {"inputs": np.zeros((32, 32, 3), int).tolist()}, "wrong shape"),
    ("ragged", {"instances": [np.zeros((32, 32, 3), int).tolist(), [[0, 0, 0]]]}, "wrong shape"),
    ("floats", {"instances": np.full((1, 32, 32, 3), 0.5).tolist()}, "not floats"),
    ("one-float", {"instances": _named_pixel(1.0)}, "not floats"),
    ("one-true", {"instances": _named_pixel(True)}, "not booleans"),
    ("one-true-named", {"instances": [{"images": _named_pixel(False)[0]}]}, "not booleans"),
    ("one-true-columnar", {"inputs": {"images": _named_pixel(True)}}, "not booleans"),
    ("string", {"instances": _named_pixel("7")}, "not strings"),
    ("null", {"inputs": _named_pixel(None)}, "not null"),
    ("out-of-range", {"instances": _named_pixel(256)}, "out of range"),
    ("negative", {"instances": _named_pixel(-1)}, "out of range"),
    ("huge", {"instances": _named_pixel(2**70)}, "out of range"),
]


@pytest.mark.parametrize("doc, phrase", [c[1:] for c in TF_HOSTILE], ids=[c[0] for c in TF_HOSTILE])
def test_decode_rest_request_refuses_with_a_4xx_naming_the_problem(doc, phrase):
    with pytest.raises(codecs.CodecError) as info:
        _decode_rest(doc)
    assert info.value.status == 400, info.value.message
    assert phrase in info.value.message, info.value.message


@pytest.mark.parametrize("doc", [lambda x: {"instances": x.tolist()}, lambda x: {"inputs": {"images": x.tolist()}},
                                 lambda x: {"instances": [{"images": i.tolist()} for i in x]}], ids=["rows", "columnar", "named"])
def test_decode_rest_request_batch_too_large_is_413(doc):
    with pytest.raises(codecs.CodecError) as info:
        _decode_rest(doc(sample_images(5)), max_batch=4)
    assert info.value.status == 413 and "batch too large: 5 images, the limit is 4" in info.value.message


def test_decode_rest_request_is_total_whatever_goes_wrong_inside(monkeypatch):
    def boom(*_):
        raise ZeroDivisionError("a bug no body should turn into a 500")

    monkeypatch.setattr(tfserving, "_tensor", boom)
    with pytest.raises(codecs.CodecError) as info:
        _decode_rest({"instances": sample_images(1).tolist()})
    assert info.value.status == 400 and info.value.message == "malformed predict request: ZeroDivisionError"


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=st.one_of(
    st.binary(max_size=256),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(
                     st.sampled_from(["instances", "inputs", "images", "signature_name", "x"]), c, max_size=3),
                 max_leaves=20).map(lambda doc: json.dumps(doc).encode()),
))
def test_decode_rest_request_fuzz_is_total(body):
    try:
        inputs, columnar = tfserving.decode_rest_request(body, 4)
    except codecs.CodecError as exc:
        assert 400 <= exc.status < 500 and exc.message.strip() and len(exc.message) < 1000
        return
    images = inputs["images"]
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3) and 1 <= len(images) <= 4
    assert isinstance(columnar, bool)


def test_rest_error_body():
    assert json.loads(tfserving.rest_error_body('bad "x"')) == {"error": 'bad "x"'}


# ---------------------------------------------------------------- error mapping
@pytest.mark.parametrize("upstream, status", [
    (400, 400), (404, 404), (429, 429), (500, 502), (501, 502), (503, 502), (504, 504), (502, 502),
])
def test_upstream_error_status(upstream, status):
    err = tfserving.upstream_error("127.0.0.1:8501", upstream, "detail")
    assert err.status == status
    assert err.message == "tfserving at 127.0.0.1:8501: detail"


# ---------------------------------------------------------------- RestClient against a test double
class FakeTFServingREST:
    """TEST DOUBLE, not TF Serving: a loopback http.server answering TF Serving's documented REST formats."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict, bytes]] = []  # method, path, headers, body
        self.client_ports: set[int] = set()
        self.answer: tuple[int, dict] | None = None  # a fixed (status, body) instead of predicting
        self.state = "AVAILABLE"
        self.delay = threading.Event()  # set: answer at once; clear: stall until set (or 5 s)
        self.delay.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving

            def _reply(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up first (timeout test)
                    pass

            def do_GET(self):
                fake.client_ports.add(self.client_address[1])
                if self.path != "/v1/models/cifar10_cnn":
                    return self._reply(404, {"error": f"Could not find any versions of model {self.path}"})
                self._reply(200, {"model_version_status": [
                    {"version": "1", "state": fake.state, "status": {"error_code": "OK", "error_message": ""}}]})

            def do_POST(self):
                fake.client_ports.add(self.client_address[1])
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.requests.append(("POST", self.path, dict(self.headers), body))
                fake.delay.wait(5)
                if fake.answer:
                    return self._reply(*fake.answer)
                if self.path != "/v1/models/cifar10_cnn:predict":
                    return self._reply(404, {"error": "Servable not found for request: Specific(cifar10_cnn, 7)"})
                doc = json.loads(body)
                if doc.get("signature_name", "serving_default") != "serving_default":
                    return self._reply(400, {"error": f"Serving signature name: \"{doc['signature_name']}\" not found in signature def"})
                classes, probs = expected_answer(np.asarray(doc["instances"], dtype=np.uint8))
                self._reply(200, {"predictions": [
                    {"probabilities": p.tolist(), "classes": int(c)} for c, p in zip(classes, probs)]})

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.delay.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_rest():
    with FakeTFServingREST() as fake:
        yield fake


def test_rest_client_predicts_over_one_kept_alive_connection(fake_rest):
    client = RestClient("127.0.0.1", fake_rest.port, pool_size=2)
    images = sample_images(3)
    for _ in range(3):
        pred, ms = client.predict(images)
        classes, probs = expected_answer(images)
        assert np.array_equal(pred.classes, classes) and np.allclose(pred.probabilities, probs)
        assert ms > 0
    method, path, headers, body = fake_rest.requests[0]
    assert path == "/v1/models/cifar10_cnn:predict"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["signature_name"] == "serving_default"
    assert len(fake_rest.client_ports) == 1  # the pool reused its connection
    client.close()


def test_rest_client_health(fake_rest):
    client = RestClient("127.0.0.1", fake_rest.port)
    assert client.health() is True
    fake_rest.state = "LOADING"
    assert client.health() is False
    assert RestClient("127.0.0.1", free_ports(1)[0]).health() is False


@pytest.mark.parametrize("answer, status, fragment", [
    ((400, {"error": "Expected tensor of type uint8 but got float"}), 400, "Expected tensor of type uint8"),
    ((404, {"error": "Servable not found for request: Latest(cifar10_cnn)"}), 404, "Servable not found"),
    ((500, {"error": "Internal: kernel failed"}), 502, "kernel failed"),
    ((503, {"error": "The batch scheduling queue to which this task was submitted is full"}), 502, "queue"),
    ((200, {"unexpected": True}), 502, "neither"),
])
def test_rest_client_maps_tf_serving_errors(fake_rest, answer, status, fragment):
    fake_rest.answer = answer
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", fake_rest.port).predict(sample_images(1))
    assert info.value.status == status
    assert fragment in info.value.message


def test_rest_client_keeps_tf_serving_status_for_wrong_version_and_signature(fake_rest):
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", fake_rest.port, version=7).predict(sample_images(1))
    assert info.value.status == 404 and "answered 404: Servable not found" in info.value.message
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", fake_rest.port, signature="nope").predict(sample_images(1))
    assert info.value.status == 400 and '"nope" not found' in info.value.message


def test_rest_client_connection_refused_is_502():
    port = free_ports(1)[0]
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", port, timeout_s=2).predict(sample_images(1))
    assert info.value.status == 502
    assert f"tfserving at 127.0.0.1:{port}" in info.value.message
    assert "refused" in info.value.message.lower()


def test_rest_client_slow_answer_is_504(fake_rest):
    fake_rest.delay.clear()
    with pytest.raises(TFServingError) as info:
        RestClient("127.0.0.1", fake_rest.port, timeout_s=0.3).predict(sample_images(1))
    assert info.value.status == 504
    assert "no answer within 0.3 s" in info.value.message
