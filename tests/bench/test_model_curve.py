"""The in-process model curve (``python -m bench.reference curve``) at a tiny scale, and how a sweep finds it."""
from __future__ import annotations

import csv
import json

import pytest

from bench import records, reference
from servebench.settings import Settings

pytestmark = [pytest.mark.unit, pytest.mark.slow, pytest.mark.dataset]


@pytest.fixture(scope="module")
def curve(tmp_path_factory, cifar_dir):
    out = tmp_path_factory.mktemp("results")
    rc = reference.main(["curve", "--batch-sizes", "1,4", "--seconds", "0.2", "--threads", "1", "--out", str(out),
                         "--data-dir", str(cifar_dir), "--no-progress"])
    assert rc == 0
    (folder,) = out.glob(f"*-{reference.CURVE_KIND}")
    return out, folder


def test_the_curve_record_has_images_per_s_and_cpu_per_image(curve):
    out, folder = curve
    record = records.read(folder)
    assert record.kind == "model-curve" and not record.interrupted and record.run_id == folder.name
    assert record.get("settings", "batch_sizes") == [1, 4] and record.get("settings", "threads") == [1]
    ((c,),) = [record.get("curves")]
    assert (c["intra_op_threads"], c["inter_op_threads"]) == (1, Settings().inter_op_threads)
    assert [p["batch"] for p in c["points"]] == [1, 4]
    for p in c["points"]:
        assert p["images"] == p["calls"] * p["batch"] and p["seconds"] >= 0.2
        assert p["images_per_s"] > 0 and 0 < p["cpu_ms_per_image"] < 100
        assert 0 < p["cores_busy"] <= 2.5  # one intra-op thread (plus TensorFlow's own bookkeeping)
    best = max(c["points"], key=lambda p: p["images_per_s"])
    assert record.get("limit", "images_per_s") == best["images_per_s"]
    assert record.get("limit", "cpu_bound_images_per_s") > 0
    assert record.get("model", "name") == "cifar10_cnn"
    with (folder / "curve.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["batch"]) for r in rows] == [1, 4] and all(r["intra_op_threads"] == "1" for r in rows)
    # No reference.json: the curve is not the bench runs' baseline.
    assert not (out / reference.BASELINE).exists()


def test_latest_curve_matches_threads_call_path_and_batch_sizes(curve):
    out, folder = curve
    s = Settings()
    assert reference.latest_curve(out, s).run_id == folder.name
    assert reference.latest_curve(out, s, batch_sizes=(1, 4)) is not None
    assert reference.latest_curve(out, s, batch_sizes=(8,)) is None
    assert reference.latest_curve(out, s.model_copy(update={"intra_op_threads": 2})) is None
    assert reference.latest_curve(out, s.model_copy(update={"call_path": "keras-predict"})) is None
    # An interrupted curve never stands.
    doc = json.loads((folder / "summary.json").read_text())
    later = out / "29990101T000000Z-model-curve"
    later.mkdir()
    (later / "summary.json").write_text(json.dumps({**doc, "run_id": later.name, "interrupted": True}))
    assert reference.latest_curve(out, s).run_id == folder.name


def test_a_curve_of_another_machine_never_stands(curve, monkeypatch):
    out, folder = curve
    s = Settings()
    assert reference.latest_curve(out, s).run_id == folder.name
    from bench import provenance

    here = provenance.machine()
    monkeypatch.setattr(provenance, "machine", lambda: {**here, "cpu_model": "another CPU"})
    assert reference.latest_curve(out, s) is None
