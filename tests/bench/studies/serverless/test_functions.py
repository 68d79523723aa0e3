"""Local functions (cgroup workers) and the orchestrator against a real store: chained outputs, reruns,
and every fault the issue names, reported with record, stage and why, retried where safe, never lost."""
import numpy as np
import pytest

from bench.studies.serverless import cost, invokers, objectstore, orchestrator as orch, stages
from models import splits
from servebench import cgroups

from .conftest import needs_cgroups

pytestmark = [pytest.mark.integration, needs_cgroups()]
MEM = 1792  # one vCPU: short cold starts
N = 20  # images per record


@pytest.fixture(scope="module")
def setup(store, cnn, test_images):
    orch.deploy(store, "cifar10_cnn", stages.split(cnn, splits.SPLITS["cifar10_cnn"]))
    recs = orch.upload_records(store, "records/cnn", test_images.images[:2 * N], test_images.labels[:2 * N], N)
    with invokers.LocalInvoker(cost.load(), max_idle=8) as inv:
        yield store, recs, inv


def specs(mem=MEM, timeout=300.0, model="cifar10_cnn"):
    return tuple(invokers.FunctionSpec(f"{model}-{s}", mem, timeout) for s in splits.STAGES)


def run(setup, name, recs=None, **kw):
    store, all_recs, inv = setup
    o = orch.Orchestrator(inv, kw.pop("store", store), parallelism=2, retry_backoff_s=0.1, log=lambda *a: None,
                          **{k: kw.pop(k) for k in ("retries", "chunk") if k in kw})
    return o.run(orch.Pipeline(kw.pop("model", "cifar10_cnn"), kw.pop("functions", specs()), name),
                 all_recs if recs is None else recs)


def test_records_through_the_functions_equal_the_whole_model_and_a_rerun_skips_them(setup, cnn, test_images):
    store, recs, _ = setup
    out = run(setup, "ok")
    assert sorted(out.done) == sorted(r.name for r in recs) and not out.failed and out.images_done == 2 * N
    rows = out.invocations
    assert len(rows) == 8 and all(r["ok"] and r["peak_memory_mb"] > 0 and r["billed_ms"] > 0 for r in rows)
    assert any(r["cold"] for r in rows) and all(r["bytes_read"] > 0 and r["bytes_written"] > 0 for r in rows)
    whole = stages.run(cnn, test_images.images[:2 * N].astype(np.float32))
    for r in recs:
        res = orch.result(store, "ok", r, "FC")
        assert np.array_equal(res["probabilities"], whole[res["indices"]])
    again = run(setup, "ok")
    assert sorted(again.skipped) == sorted(out.done) and not again.done and not again.invocations and again.images_done == 0
    warm = run(setup, "ok-warm")
    assert not all(r["cold"] for r in warm.invocations)  # idle workers were reused


def test_functions_computing_in_chunks_give_the_whole_models_predictions_bit_for_bit(setup, cnn, test_images):
    store, recs, _ = setup
    out = run(setup, "chunked", chunk=7)
    assert not out.failed and out.images_done == 2 * N
    whole = stages.run(cnn, test_images.images[:2 * N].astype(np.float32))
    for r in recs:
        res = orch.result(store, "chunked", r, "FC")
        assert np.array_equal(res["probabilities"], whole[res["indices"]])
        assert np.array_equal(res["indices"], np.arange(len(res["indices"])) + res["indices"][0])


def test_a_corrupt_and_a_missing_record_fail_alone_without_retries(setup):
    store, recs, _ = setup
    store.put("records/cnn/corrupt.tfrecord", b"\x00" * 64)
    bad = [orch.Record("corrupt", "records/cnn/corrupt.tfrecord", N), orch.Record("missing", "records/cnn/nope", N)]
    out = run(setup, "faults", [recs[0], *bad], retries=2)
    assert out.done == [recs[0].name]
    why = {f.record: f for f in out.failed}
    assert why["corrupt"].stage == "Conv_1" and why["corrupt"].kind == "bad_input" and why["corrupt"].attempts == 1
    assert why["missing"].stage == "Conv_1" and why["missing"].kind == "missing_input"
    assert "records/cnn/nope" in why["missing"].error and out.retries == 0


def test_missing_weights_are_reported_by_stage(setup):
    store, recs, _ = setup
    store.delete(orch.weights_key("cifar10_cnn", "Conv_3"))
    try:
        # A memory no idle worker has: cold workers read the weights (a warm one keeps what it read, as on Lambda).
        out = run(setup, "noweights", recs[:1], functions=specs(mem=1920))
    finally:
        orch.deploy(store, "cifar10_cnn", [("Conv_3", stages.unpack(stages.pack(
            stages.split(__import__("keras").models.load_model("models/cifar10_cnn.keras"),
                         splits.SPLITS["cifar10_cnn"])[2][1])))])
    (f,) = out.failed
    assert (f.record, f.stage, f.kind) == (recs[0].name, "Conv_3", "missing_weights") and not out.done
    # The rerun resumes the record after its two finished stages.
    again = run(setup, "noweights", recs[:1])
    assert again.done == [recs[0].name] and [r["stage"] for r in again.invocations] == ["Conv_3", "FC"]


def test_a_dead_store_is_retried_then_reported(setup):
    store, recs, _ = setup
    dead = objectstore.Store(objectstore.StoreConfig(endpoint_url="http://127.0.0.1:8049", connect_timeout_s=0.5,
                                                     bucket=store.config.bucket))
    out = run(setup, "down", recs[:1], store=dead, retries=1)
    (f,) = out.failed
    assert (f.stage, f.kind, f.attempts) == ("Conv_1", "store_unavailable", 2) and out.retries == 1


def test_the_memory_limit_kills_an_invocation_that_exceeds_it(setup):
    """128 MB cannot hold TensorFlow: the kernel kills the worker, reported as out of memory, not retried.
    The memory limit alone, without Lambda's CPU share of 128 MB (0.07 of a core: 40 s to reach the limit)."""
    store, recs, _ = setup
    with invokers.LocalInvoker(cost.load(), limits=lambda mb: cgroups.Limits(memory_mb=mb)) as inv:
        out = run((store, recs, inv), "oom", recs[:1], functions=specs(mem=128), retries=2)
    (f,) = out.failed
    assert (f.stage, f.kind, f.attempts) == ("Conv_1", "out_of_memory", 1), f.error
    (row,) = out.invocations
    assert row["peak_memory_mb"] is None or row["peak_memory_mb"] <= 128 + 1
    assert "128 MB" in f.error


def test_a_function_past_its_timeout_is_killed_and_retried(setup):
    _, recs, _ = setup
    out = run(setup, "slow", recs[:1], functions=specs(mem=1856, timeout=0.3), retries=1)  # a memory no idle worker has: cold
    (f,) = out.failed
    assert (f.stage, f.kind, f.attempts) == ("Conv_1", "timeout", 2) and out.retries == 1
    assert len(out.invocations) == 2 and not out.done
