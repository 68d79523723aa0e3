"""`make bench MODEL=...` for a model the suite has never seen: a tiny tabular classifier this test builds
(random weights: timing only), served by the embedded stack over KServe v2 on synthetic inputs."""
from __future__ import annotations

import csv
import json

import pytest

from bench import run
from bench.options import BenchOptions
from servebench.settings import Settings
from tests.stacks import stack_settings

pytestmark = pytest.mark.integration

N = 24


@pytest.fixture(scope="module")
def unseen_model(tmp_path_factory):
    """A .keras file: one float32 input of rank 2 (not an image), a 4-class softmax, random weights."""
    import keras

    inputs = keras.Input(shape=(7,), dtype="float32", name="measurements")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = keras.layers.Dense(4, activation="softmax", name="probabilities")(hidden)
    path = tmp_path_factory.mktemp("unseen") / "unseen_tabular.keras"
    keras.Model(inputs, outputs, name="unseen_tabular").save(path)
    return path


@pytest.fixture(scope="module")
def stack_of_it(start_stack, unseen_model):
    return start_stack("embedded", SB_MODEL=str(unseen_model))


def bench(st, out, unseen_model, **options) -> dict:
    settings = Settings.from_env({"SB_MODEL": str(unseen_model)})
    opts = BenchOptions(arch="embedded", run_dir=st.run_dir, out=out, n=N, warmup=3, overhead_requests=50,
                        progress=False, **options)
    (record,) = run.bench(opts, settings, log=lambda *_: None)
    return json.loads((out / record.run_id / "summary.json").read_text())


@pytest.mark.parametrize("batch, codec", [(1, "json"), (4, "raw")])
def test_a_model_never_seen_goes_from_its_path_to_a_result(stack_of_it, unseen_model, tmp_path, batch, codec,
                                                           capsys):
    doc = bench(stack_of_it, tmp_path, unseen_model, batch=batch, codec=codec)
    req = doc["requests"]
    assert req["count"] == N // batch and req["ok"] == req["count"] and req["errors_by_status"] == {}
    assert req["invalid_answers"] == 0 and req["images"] == N
    assert doc["protocol"] == {"name": "v2", "why": "default for a model that is not an image model"}
    assert doc["settings"]["protocol"] == "v2"
    card = doc["model_card"]
    assert card["format"] == "keras" and card["inputs"] == "measurements float32 [-1, 7]"
    assert card["image"] is False and card["classifier"] is True
    assert doc["synthetic_inputs"] is True and doc["data"]["synthetic_inputs"] is True
    assert doc["accuracy"] is None  # no labels: not checked, never 0
    assert doc["latency_ms"]["p50"] > 0 and doc["throughput_images_per_s"] > 0
    out = capsys.readouterr().out
    assert "accuracy not checked" in out and "[synthetic inputs]" in out
    with (tmp_path / doc["run_id"] / "requests.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N // batch and all(r["status"] == "200" and r["correct"] == "" for r in rows)


def test_v1_for_it_fails_before_anything_is_sent(stack_of_it, unseen_model, tmp_path):
    with pytest.raises(run.workload.WorkloadError, match="KServe v2"):
        bench(stack_of_it, tmp_path, unseen_model, protocol="v1")
    assert not any(tmp_path.iterdir())  # no run folder: nothing was measured


def test_a_stack_for_a_path_that_is_not_a_model_never_starts(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    options = BenchOptions(arch="embedded", run_dir=tmp_path / "run", out=tmp_path / "results", n=4, progress=False)
    with pytest.raises(run.workload.CardError, match="notes.txt"):
        run.bench(options, stack_settings(SB_MODEL=str(bad)), log=lambda *_: None)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
