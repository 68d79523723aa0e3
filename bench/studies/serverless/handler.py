"""The function body: read the input and (once per worker) the stage's weights from the store, run, write.

One code path for every place a function runs: a local worker process
(:mod:`bench.studies.serverless.worker`), a container, and AWS Lambda
(:func:`lambda_handler`, where the store comes from the function's
environment and role). A first stage reads a TFRecord record; the others read
the previous stage's ``.npy`` output; the last writes the predictions
(``.npz``: probabilities, classes, labels, indices). The event's ``chunk``
(SB_SERVERLESS_CHUNK) makes a function compute that many images at a time
(:func:`_compute`), so its memory is bounded by the chunk, not the record.

Failures are answers, not crashes: ``{"ok": false, "kind": ..., "error": ...}``
with a kind the orchestrator acts on (see :data:`KINDS`). Running out of memory
and timeouts are not answered here: the runtime kills the function, and the
invoker reports them.
"""
from __future__ import annotations

import io
import os
import time

import numpy as np

from bench.studies.serverless import records, stages
from bench.studies.serverless.objectstore import MissingObject, Store, StoreConfig, StoreError, StoreUnavailable

# What can go wrong, and whether trying again can help (the orchestrator's retry rule).
KINDS = {
    "bad_input": False,  # corrupt record or intermediate
    "missing_input": False,  # the record or the previous stage's output is not in the store
    "missing_weights": False,  # the stage's weights are not in the store
    "store_unavailable": True,  # the store did not answer
    "store_error": True,
    "out_of_memory": False,  # killed over its memory: the same memory fails again
    "timeout": True,
    "crashed": True,  # the worker died for another reason
    "bad_event": False,
}

_MODELS: dict[str, object] = {}  # weights key -> stage model: what a warm worker keeps
_STORES: dict[tuple, Store] = {}


def _store(config: StoreConfig) -> Store:
    key = tuple(sorted(config.as_event().items()))
    if key not in _STORES:
        _STORES[key] = Store(config)
    return _STORES[key]


def _fail(kind: str, error: str, **extra) -> dict:
    return {"ok": False, "kind": kind, "error": error, **extra}


def _compute(model, pending: list[bytes], first: bool, chunk: int, timing: dict,
             last: bool = False) -> tuple[np.ndarray, dict]:
    """The stage's output and the record's labels and indices. With ``chunk`` images (> 0) at a time, a first
    stage decodes its record chunk by chunk, and it and the middle stages hold one chunk's activations, so
    their memory is bounded by the chunk (plus input and output), not by the record; the output is bit for bit
    the same (tested). A last stage (dense layers) runs whole: its memory is its weights, and a matmul over
    fewer rows may round differently.
    Decoding counts in read_s, forward passes in compute_s. ``pending`` holds the input's bytes: taken from it,
    so they are freed as soon as they are decoded."""
    body = pending.pop()
    timing.setdefault("compute_s", 0.0)
    if first:
        if not chunk:
            t = time.perf_counter()
            images, labels, indices = records.decode(body)
            del body
            timing["read_s"] += time.perf_counter() - t
            t = time.perf_counter()
            y = stages.run(model, images.astype(np.float32))
            timing["compute_s"] += time.perf_counter() - t
            return y, {"labels": labels, "indices": indices}
        total = records.count(body)
        parts = records.decode_chunks(body, chunk)
        del body  # the decoder keeps its own copy
        labels, indices = [], []

        def floats():
            while True:
                t = time.perf_counter()
                part = next(parts, None)
                timing["read_s"] += time.perf_counter() - t
                if part is None:
                    return
                labels.append(part[1])
                indices.append(part[2])
                yield part[0].astype(np.float32)

        t = time.perf_counter()
        read0 = timing["read_s"]
        y = stages.run_chunks(model, floats(), total)
        timing["compute_s"] += time.perf_counter() - t - (timing["read_s"] - read0)
        return y, {"labels": np.concatenate(labels), "indices": np.concatenate(indices)}
    t = time.perf_counter()
    with np.load(io.BytesIO(body), allow_pickle=False) as z:
        x = z["x"]
        meta = {"labels": z["labels"], "indices": z["indices"]}
    del body
    timing["read_s"] += time.perf_counter() - t
    t = time.perf_counter()
    if chunk and len(x) > chunk and not last:
        y = stages.run_chunks(model, (x[i:i + chunk] for i in range(0, len(x), chunk)), len(x))
    else:
        y = stages.run(model, x)
    timing["compute_s"] += time.perf_counter() - t
    return y, meta


def handle(event: dict, store_config: StoreConfig | None = None) -> dict:
    """Run one invocation; the result says what was read, written and how long each step took."""
    try:
        stage = event["stage"]
        input_key, output_key, weights_key = event["input_key"], event["output_key"], event["weights_key"]
        first, last = bool(event.get("first")), bool(event.get("last"))
        chunk = int(event.get("chunk") or 0)
    except (KeyError, TypeError) as exc:
        return _fail("bad_event", f"event lacks {exc}")
    except ValueError as exc:
        return _fail("bad_event", f"chunk is not a whole number of images: {exc}")
    if chunk < 0:
        return _fail("bad_event", f"chunk must be 0 (the whole record) or more images, not {chunk}")
    config = store_config or StoreConfig.from_event(event.get("store", {}))
    store = _store(config)
    read0, written0 = store.bytes_read, store.bytes_written
    timing = {}
    try:
        t = time.perf_counter()
        model = _MODELS.get(weights_key)
        cold = model is None
        if cold:
            try:
                model = stages.unpack(store.get(weights_key))
            except MissingObject as exc:
                return _fail("missing_weights", f"{stage}: weights {weights_key} not in the store ({exc})")
            _MODELS.clear()  # a worker serves one function: never two stages' weights at once
            _MODELS[weights_key] = model
        timing["load_s"] = time.perf_counter() - t

        t = time.perf_counter()
        try:
            pending = [store.get(input_key)]
        except MissingObject as exc:
            return _fail("missing_input", f"{stage}: input {input_key} not in the store ({exc})")
        timing["read_s"] = time.perf_counter() - t
        y, meta = _compute(model, pending, first, chunk, timing, last)
        t = time.perf_counter()
        buf = io.BytesIO()
        if last:
            np.savez(buf, probabilities=y, classes=y.argmax(axis=1), **meta)
        else:
            np.savez(buf, x=y, **meta)
        store.put(output_key, buf.getvalue())
        timing["write_s"] = time.perf_counter() - t
        n = int(len(y))
    except records.CorruptRecord as exc:
        return _fail("bad_input", f"{stage}: record {input_key}: {exc}")
    except (stages.StageError, ValueError, KeyError) as exc:
        return _fail("bad_input", f"{stage}: {input_key}: {type(exc).__name__}: {str(exc)[:200]}")
    except StoreUnavailable as exc:
        return _fail("store_unavailable", f"{stage}: {exc}")
    except StoreError as exc:
        return _fail("store_error", f"{stage}: {exc}")
    return {"ok": True, "images": n, "weights_loaded": cold, "bytes_read": store.bytes_read - read0,
            "bytes_written": store.bytes_written - written0, **{k: round(v, 6) for k, v in timing.items()}}


def lambda_handler(event, context):
    """AWS Lambda's entry point: the store is S3 itself (or SB_SERVERLESS_STORE_ENDPOINT), through the role;
    the bucket is the event's, else SB_SERVERLESS_STORE_BUCKET (the function's knobs, read through the settings)."""
    from servebench.settings import Settings

    knobs = Settings().section("serverless")
    config = StoreConfig(endpoint_url=knobs.store_endpoint or None,
                         bucket=event.get("store", {}).get("bucket") or knobs.store_bucket,
                         access_key="", secret_key="", region=os.environ.get("AWS_REGION", "us-east-1"))
    return handle(event, config)
