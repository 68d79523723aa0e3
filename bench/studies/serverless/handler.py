"""The function body: read the input and (once per worker) the stage's weights from the store, run, write.

One code path for every place a function runs: a local worker process
(:mod:`bench.studies.serverless.worker`), a container, and AWS Lambda
(:func:`lambda_handler`, where the store comes from the function's
environment and role). A first stage reads a TFRecord record; the others read
the previous stage's ``.npy`` output; the last writes the predictions
(``.npz``: probabilities, classes, labels, indices).

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


def handle(event: dict, store_config: StoreConfig | None = None) -> dict:
    """Run one invocation; the result says what was read, written and how long each step took."""
    try:
        stage = event["stage"]
        input_key, output_key, weights_key = event["input_key"], event["output_key"], event["weights_key"]
        first, last = bool(event.get("first")), bool(event.get("last"))
    except (KeyError, TypeError) as exc:
        return _fail("bad_event", f"event lacks {exc}")
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
            body = store.get(input_key)
        except MissingObject as exc:
            return _fail("missing_input", f"{stage}: input {input_key} not in the store ({exc})")
        meta = {}
        if first:
            images, labels, indices = records.decode(body)
            x = images.astype(np.float32)
            meta = {"labels": labels, "indices": indices}
        else:
            with np.load(io.BytesIO(body), allow_pickle=False) as z:
                x = z["x"]
                meta = {"labels": z["labels"], "indices": z["indices"]}
        del body
        timing["read_s"] = time.perf_counter() - t

        t = time.perf_counter()
        y = stages.run(model, x)
        del x
        timing["compute_s"] = time.perf_counter() - t

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
