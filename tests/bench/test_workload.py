"""bench.workload with test-double cards (no server, no model file): protocol, requests, answers, labels."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from bench import client, records, results, run, workload
from bench.report import tables
from servebench import codecs
from servebench.modelcard import ModelCard, TensorSpec

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def checked_here(monkeypatch):
    """Cards are read in this process (the doubles are patched here) and never kept from one test to the next."""
    monkeypatch.setattr(workload, "ISOLATED", False)
    monkeypatch.setattr(workload, "_CHECKED", {})


def card_double(outputs=None, name="tabular_double", data="synthetic") -> ModelCard:
    """A card that is not an image model: one int32 and one float32 input, a 3-class classifier."""
    return ModelCard(
        name=name, version=3, format="keras", source="/nowhere/tabular_double.keras",
        inputs=(TensorSpec("counts", "int32", (None, 4), low=0, high=9), TensorSpec("features", "float32", (None, 2))),
        outputs=outputs or (TensorSpec("probabilities", "float32", (None, 3)),), data=data)


def image_card_double() -> ModelCard:
    return ModelCard(name="tiny_images", version=1, format="savedmodel", source="/nowhere/1",
                     inputs=(TensorSpec("images", "uint8", (None, 32, 32, 3)),),
                     outputs=(TensorSpec("probabilities", "float32", (None, 10)), TensorSpec("classes", "int64", (None,))),
                     data="cifar10")


@dataclass
class InputsDouble:
    """Stands in for servebench.model_data.ModelInputs (arrays, labels, synthetic, source)."""
    arrays: dict
    labels: np.ndarray | None
    synthetic: bool
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))


def inputs_double(n=5, labels=True, synthetic=False) -> InputsDouble:
    rng = np.random.default_rng(0)
    arrays = {"counts": rng.integers(0, 10, (n, 4)).astype(np.int32),
              "features": rng.standard_normal((n, 2)).astype(np.float32)}
    return InputsDouble(arrays, np.arange(n) % 3 if labels else None, synthetic,
                        "synthetic (seed 0)" if synthetic else "/data/rows.npz")


def v2_answer(outputs: dict[str, np.ndarray]) -> bytes:
    types = {np.dtype("float32"): "FP32", np.dtype("int64"): "INT64"}
    return json.dumps({"model_name": "tabular_double", "outputs": [
        {"name": k, "datatype": types[v.dtype], "shape": list(v.shape), "data": v.ravel().tolist()}
        for k, v in outputs.items()]}).encode()


def settled(req: client.Request, body: bytes) -> client.Result:
    """A 200 answer read the way the lean client reads it: later, on first ask."""
    head = f"http/1.1 200 ok\r\ncontent-type: application/json\r\ncontent-length: {len(body)}".encode()
    return client.Result(req, 0.0, 0.0, 0.001, 200, answer=client.Answer(200, head, body, False))


# ------------------------------------------------------------------ the protocol
def test_a_model_that_is_not_an_image_model_defaults_to_kserve_v2():
    protocol, why = workload.choose_protocol(card_double(), None)
    assert protocol == "v2" and "not an image model" in why
    assert workload.choose_protocol(image_card_double(), None) == ("v1", "default for an image model")
    assert workload.choose_protocol(card_double(), "tfserving") == ("tfserving", "asked")


def test_v1_for_a_model_that_is_not_an_image_model_fails_naming_v2():
    with pytest.raises(workload.WorkloadError) as err:
        workload.choose_protocol(card_double(), "v1")
    assert "not an image model" in str(err.value) and "--protocol v2" in str(err.value)
    assert "/v2/models/tabular_double/infer" in str(err.value)


@pytest.mark.parametrize("protocol, codec", [("v2", "b64"), ("v2", "npy"), ("tfserving", "raw")])
def test_a_codec_the_protocol_does_not_carry_is_refused(protocol, codec):
    with pytest.raises(workload.WorkloadError, match=codec):
        workload.choose_protocol(card_double(), protocol, codec)


# ------------------------------------------------------------------ requests and answers
def test_v2_requests_carry_the_models_own_tensors_in_batches():
    w = workload.Workload(card_double(), inputs_double(5), "v2", "default")
    reqs = workload.requests(w, batch=2, codec="json")
    assert [r.images for r in reqs] == [2, 2, 1]
    assert all(r.path == "/v2/models/tabular_double/infer" and r.protocol == "v2" for r in reqs)
    doc = json.loads(reqs[0].body)
    tensors = {t["name"]: t for t in doc["inputs"]}
    assert tensors["counts"]["datatype"] == "INT32" and tensors["counts"]["shape"] == [2, 4]
    assert tensors["features"]["datatype"] == "FP32" and tensors["features"]["shape"] == [2, 2]
    assert list(reqs[2].labels) == [4 % 3]


def test_an_answer_is_checked_against_labels_later_for_a_labelled_classifier():
    w = workload.Workload(card_double(), inputs_double(2), "v2", "default")
    (req,) = workload.requests(w, batch=2)
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]], np.float32)  # classes 0, 2; labels 0, 1
    r = settled(req, v2_answer({"probabilities": probs}))
    assert r._correct == 0 and r._answer is not None  # deferred: nothing read yet
    assert r.ok and r.correct == 1 and list(r.predicted) == [0, 2]
    assert results.accuracy([r]) == 0.5


def test_without_labels_or_classes_accuracy_is_not_checked():
    unlabelled = workload.Workload(card_double(), inputs_double(2, labels=False), "v2", "default")
    (req,) = workload.requests(unlabelled, batch=2)
    r = settled(req, v2_answer({"probabilities": np.full((2, 3), 1 / 3, np.float32)}))
    assert r.ok and r.correct is None and results.accuracy([r]) is None
    regression = card_double(outputs=(TensorSpec("value", "float32", (None,)),))
    assert not regression.is_classifier
    w = workload.Workload(regression, inputs_double(2), "v2", "default")
    assert not w.checked
    (req,) = workload.requests(w, batch=2)
    assert req.labels is None  # labels are dropped for a model that does not classify
    r = settled(req, v2_answer({"value": np.array([0.5, 1.5], np.float32)}))
    assert r.ok and r.correct is None and r.predicted is None
    assert results.request_row(0, r, 0.0)[7:10] == ["", "", ""]  # correct, predicted, true


def test_an_answer_with_the_wrong_rows_or_outputs_is_invalid():
    w = workload.Workload(card_double(), inputs_double(2), "v2", "default")
    (req,) = workload.requests(w, batch=2)
    r = settled(req, v2_answer({"probabilities": np.zeros((3, 3), np.float32)}))
    assert not r.ok and "3 predictions for 2 images" in r.error
    r = settled(req, v2_answer({"other": np.zeros((2, 3), np.float32)}))
    assert not r.ok and "other" in r.error  # an output the card does not have
    r = settled(req, v2_answer({}))
    assert not r.ok and "lacks output(s) probabilities" in r.error


def test_a_reader_that_fails_makes_the_answer_invalid_not_the_client_thread_die():
    def broken(body, headers):
        raise RuntimeError("not this protocol's answer")

    req = client.Request(0, b"{}", "application/json", None, protocol="tfserving", rows=1, reader=broken)
    r = settled(req, b'{"predictions": [0]}')
    assert not r.ok and "not this protocol's answer" in r.error and r.correct == 0


def test_an_image_model_keeps_v1_and_its_codecs():
    images = np.zeros((3, 32, 32, 3), np.uint8)
    w = workload.Workload(image_card_double(), InputsDouble({"images": images}, np.array([1, 2, 3]), False,
                                                            "CIFAR-10 test set"), "v1", "default for an image model")
    reqs = workload.requests(w, batch=2, codec="raw")
    assert [r.images for r in reqs] == [2, 1] and reqs[0].path is None and reqs[0].protocol == "v1"
    assert len(reqs[0].body) == 2 * 32 * 32 * 3
    answer = codecs.encode_predictions(codecs.Prediction(np.array([3]), np.full((1, 10), 0.1, np.float32)))
    r = settled(reqs[1], answer)
    assert r.ok and r.correct == 1


# ------------------------------------------------------------------ records and labels
def test_the_record_says_model_data_and_synthetic_inputs():
    w = workload.Workload(card_double(), inputs_double(4, labels=False, synthetic=True), "v2",
                          "default for a model that is not an image model")
    doc = w.record()
    assert doc["synthetic_inputs"] is True and doc["data"]["synthetic_inputs"] is True
    assert doc["data"]["source"] == "synthetic (seed 0)" and doc["data"]["rows"] == 4
    assert doc["data"]["accuracy_checked"] is False
    card = doc["model_card"]
    assert (card["name"], card["version"], card["format"]) == ("tabular_double", 3, "keras")
    assert card["inputs"] == "counts int32 [-1, 4], features float32 [-1, 2]"
    assert card["outputs"] == "probabilities float32 [-1, 3]"
    assert doc["protocol"]["name"] == "v2" and "not an image model" in doc["protocol"]["why"]
    assert "synthetic inputs" in w.describe() and "accuracy not checked" in w.describe()
    assert records.synthetic_label(doc) == "synthetic inputs"
    assert records.synthetic_label({"synthetic_inputs": False}) == "" and records.synthetic_label({}) == ""


def bench_doc(**extra) -> dict:
    lat = {"p50": 1.0, "p90": 1.5, "p99": 2.0, "max": 3.0, "mean": 1.2}
    return {"arch": "embedded", "runtime": "native", "interrupted": False,
            "settings": {"batch": 1, "codec": "json", "rate": None, "concurrency": 1, "repeats": 1},
            "requests": {"images": 4, "count": 4, "errors_by_status": {}}, "accuracy": None,
            "throughput_images_per_s": 900.0, "wall_s": 0.01, "latency_ms": lat, "reference": None,
            "hops_ms": {"model": 0.5}, "table3": {}, "resources": {}, "sampler_cpu_seconds": 0.0,
            "harness_overhead": {"median_ms": 0.1}, **extra}


def test_the_cli_table_labels_synthetic_inputs_and_unchecked_accuracy(capsys, tmp_path):
    w = workload.Workload(card_double(), inputs_double(4, labels=False, synthetic=True), "v2",
                          "default for a model that is not an image model")
    run.print_table(bench_doc(**w.record()), tmp_path)
    out = capsys.readouterr().out
    assert "v2 (default for a model that is not an image model)" in out
    assert "model tabular_double v3 (keras: counts int32 [-1, 4], features float32 [-1, 2])" in out
    assert "accuracy not checked" in out and "accuracy 0." not in out
    numbers = [line for line in out.splitlines() if "throughput" in line or "latency ms" in line]
    assert numbers and all("[synthetic inputs]" in line for line in numbers)
    run.print_table(bench_doc(accuracy=0.75), tmp_path)  # a CIFAR-10 run as before: no label
    out = capsys.readouterr().out
    assert "accuracy 0.7500" in out and "synthetic" not in out


def test_the_report_labels_a_run_on_synthetic_inputs():
    rows = [{"run_id": "r1", "arch": "embedded", "model": "tabular_double", "synthetic_inputs": True},
            {"run_id": "r2", "arch": "embedded", "model": "cifar10_cnn", "synthetic_inputs": False}]
    t = tables.runs_table(rows, set())
    col = t.headers.index("model")
    assert t.rows[0][col].text == "tabular_double" and t.rows[0][col].badge == "synthetic inputs"
    assert t.rows[1][col].badge == ""
    assert {"model", "data_source", "synthetic_inputs"} <= set(tables.COLUMNS)


# ------------------------------------------------------------------ before anything starts
def test_v1_on_a_model_that_is_not_an_image_model_fails_before_any_stack_starts(monkeypatch, tmp_path):
    monkeypatch.setattr(workload.model_data, "check_model", lambda settings: card_double())
    monkeypatch.setattr(run.target, "stack_for", lambda *a, **k: pytest.fail("a stack was started"))
    monkeypatch.setattr(run.overhead, "measure", lambda *a, **k: pytest.fail("the harness was measured"))
    options = run.opts.BenchOptions(arch="embedded", protocol="v1", n=4, progress=False, out=tmp_path)
    with pytest.raises(workload.WorkloadError, match="KServe v2"):
        run.bench(options, run.Settings(), log=lambda *_: None)
    rc = run.main(["--arch", "embedded", "--protocol", "v1", "--n", "4", "--no-progress", "--out", str(tmp_path)])
    assert rc == 2  # a usage error, said in one line


def test_a_bad_model_stops_a_stack_from_starting(monkeypatch):
    from servebench.modelcard import CardError

    def bad(settings):
        raise CardError("/models/broken.onnx: not a model (no graph)")

    class RuntimeDouble:
        def up(self, *args, **kwargs):
            pytest.fail("a stack was started")

    monkeypatch.setattr(workload.model_data, "check_model", bad)
    monkeypatch.setattr(run.target, "running", lambda *a: None)
    monkeypatch.setattr(run.target.runtimes, "get", lambda name: RuntimeDouble())
    with pytest.raises(CardError, match="broken.onnx"):
        with run.target.stack_for("embedded", "native", None, run.Settings(), log=lambda *_: None):
            pass
    _, rc = run.target.command(lambda: bad(None))
    assert rc == 2
