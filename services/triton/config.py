"""Triton's model configuration, generated from the model card (no PyTriton, no TensorFlow here).

:func:`model_config` is the configuration Triton loads for the served model, in the JSON
form Triton's own API answers ``GET /v2/models/<name>/config`` with (model_config.proto's
field names): one ``input``/``output`` entry per card tensor, ``max_batch_size`` and
``dynamic_batching`` from the settings. The server (``services/triton/server.py``) binds
PyTriton from this one document, so what the tests check is what Triton gets.

Triton owns the batch dimension (``max_batch_size`` > 0), so ``dims`` are a tensor's shape
without it, ``-1`` where the card says variable. A tensor that is only the batch
(``[batch]``, e.g. ``classes``) becomes ``dims: [1]``: Triton needs one dimension besides
the batch and PyTriton cannot write the ``reshape`` that would drop it;
:func:`to_triton` and :func:`from_triton` add and drop that column.
"""
from __future__ import annotations

import numpy as np

from servebench.modelcard import CardError, ModelCard, TensorSpec

BACKEND = "python"  # PyTriton's proxy model: Triton's Python backend stub


def data_type(spec: TensorSpec) -> str:
    """Triton's ``TYPE_*`` name: KServe's datatype with the prefix (``FP32`` -> ``TYPE_FP32``)."""
    return "TYPE_" + spec.datatype


def dims(spec: TensorSpec) -> list[int]:
    """The shape Triton declares: without the batch dimension, -1 for variable, [1] for batch-only."""
    if not spec.shape or spec.shape[0] is not None:
        raise CardError(f"tensor {spec.name} {list(spec.shape)}: Triton batches on the first dimension, "
                        "which must be the batch (None)")
    item = [-1 if d is None else int(d) for d in spec.item_shape]
    return item or [1]


def batch_only(spec: TensorSpec) -> bool:
    return len(spec.shape) == 1


def _entry(spec: TensorSpec) -> dict:
    return {"name": spec.name, "data_type": data_type(spec), "dims": dims(spec)}


def max_batch_size(settings) -> int:
    """SB_MAX_BATCH, raised to SB_BATCH_MAX_SIZE should that exceed it (Triton wants its preferred size within)."""
    return max(settings.max_batch, settings.batch_max_size)


def model_config(card: ModelCard, settings, name: str | None = None, instances: int | None = None) -> dict:
    """Triton's configuration of ``card`` under ``name`` (default: the stack's model name, which clients address).

    - ``max_batch_size``: SB_MAX_BATCH, the largest batch one request may carry (Triton refuses bigger
      ones with a 400); raised to SB_BATCH_MAX_SIZE should that exceed it.
    - SB_BATCH_MAX_SIZE = 1 (batching off): no ``dynamic_batching``, so Triton's default scheduler runs
      every request as it came, as the other servers do.
    - n > 1: ``dynamic_batching`` with ``preferred_batch_size: [n]`` and ``max_queue_delay_microseconds``
      = SB_BATCH_TIMEOUT_MS x 1000 (how long the oldest request waits for batch-mates).
    - ``instance_group``: SB_TRITON_INSTANCES copies of the model on the CPU.
    """
    doc = {
        "name": name or settings.model_name,
        "backend": BACKEND,
        "max_batch_size": max_batch_size(settings),
        "input": [_entry(s) for s in card.inputs],
        "output": [_entry(s) for s in card.outputs],
        "instance_group": [{"count": instances or settings.triton_instances, "kind": "KIND_CPU"}],
    }
    if settings.batch_max_size > 1:
        doc["dynamic_batching"] = {"preferred_batch_size": [settings.batch_max_size],
                                   "max_queue_delay_microseconds": round(settings.batch_timeout_ms * 1000)}
    return doc


def from_triton(card: ModelCard, request: dict) -> dict[str, np.ndarray]:
    """One request's inputs as the card has them (a batch-only input arrives as [n, 1])."""
    out = {}
    for spec in card.inputs:
        array = request[spec.name]
        out[spec.name] = array.reshape(-1) if batch_only(spec) else array
    return out


def to_triton(card: ModelCard, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The core's outputs as Triton declares them: the card's dtype, a batch-only output as [n, 1]."""
    out = {}
    for spec in card.outputs:
        array = np.asarray(outputs[spec.name]).astype(spec.np_dtype, copy=False)
        if array.dtype.type is not spec.np_dtype.type:
            # An equal dtype of another C type (ONNX Runtime's int64 is long long, numpy's long):
            # PyTriton's strict check wants numpy's own type. Same bytes, so a view.
            array = array.view(spec.np_dtype)
        out[spec.name] = array.reshape(-1, 1) if batch_only(spec) else array
    return out
