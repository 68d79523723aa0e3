"""Tensors on the wire, read and checked against the model card's specs.

Shared by the KServe v2 and TF Serving REST codecs: a declared shape checked
before anything is allocated, JSON values (nested lists) and binary tensor
data turned into an array of the spec's dtype, and a whole request's inputs
checked together (:func:`validate`, through :func:`servebench.modelcard.validate_inputs`).
Every problem is a :class:`~servebench.codecs.CodecError` (4xx) naming the tensor.

JSON carries integers, floats and booleans: an integer input takes only
integers within its range (``TensorSpec.value_range``), a float input integers
or floats that are finite in its dtype, a bool input only ``true``/``false``.
numpy reads ``[1, true]`` as ``[1, 1]``, so callers say when the JSON text may
hold a boolean among the values (``may_hold_bools``) and the values are walked.
"""
from __future__ import annotations

import numpy as np

from servebench import modelcard
from servebench.codecs import CodecError, Prediction, _show
from servebench.modelcard import ModelCard, TensorSpec


def dims_text(shape) -> str:
    """``[-1, 32, 32, 3]``: a spec's shape as the protocols print it."""
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"


def noun(card: ModelCard) -> str:
    """What a batch holds, for messages: images for an image model."""
    return "images" if card.is_image else "rows"


def le_dtype(spec: TensorSpec) -> np.dtype:
    """The spec's dtype, little-endian: the byte order of binary tensor data."""
    return spec.np_dtype.newbyteorder("<") if spec.np_dtype.itemsize > 1 else spec.np_dtype


# ---------------------------------------------------------------- shapes
def declared_shape(shape, spec: TensorSpec, max_batch: int, what: str, rows: str = "rows") -> tuple[int, ...]:
    """A request's declared shape (batch first), checked against the spec before any bytes are read."""
    if not (isinstance(shape, (list, tuple)) and all(type(d) is int for d in shape)):
        raise CodecError(f'"shape" of {what} must be a list of integers {dims_text(spec.shape)}')
    if len(shape) != len(spec.shape):
        raise CodecError(f"wrong shape {_show(list(shape), 120)} for {what}: expected {dims_text(spec.shape)}"
                         f" (rank {len(spec.shape)}, the batch dimension first)")
    if any(d < 0 for d in shape) or any(want is not None and d != want for d, want in zip(shape[1:], spec.shape[1:])):
        raise CodecError(f"wrong shape {_show(list(shape), 120)} for {what}: expected {dims_text(spec.shape)}")
    n = shape[0]
    if n == 0:
        raise CodecError(f"empty batch: send at least one of {what}'s {rows}")
    if n > max_batch:
        raise CodecError(f"batch too large: {_show(n)} {rows}, the limit is {max_batch}", status=413)
    if 0 in shape[1:]:
        raise CodecError(f"wrong shape {_show(list(shape), 120)} for {what}: a dimension is 0 (an empty tensor)")
    return tuple(shape)


def element_count(shape) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def check_array(arr: np.ndarray, spec: TensorSpec, max_batch: int, what: str, rows: str = "rows") -> np.ndarray:
    """An array's shape against the spec (a client may leave out the batch axis of one row)."""
    if arr.ndim == len(spec.shape) - 1:
        arr = arr[np.newaxis]
    declared_shape(list(arr.shape), spec, max_batch, what, rows)
    return arr


# ---------------------------------------------------------------- JSON values
_KIND_NAMES = {bool: "booleans", float: "floats", str: "strings", dict: "objects", type(None): "null", list: "lists"}
_NONE = object()


def takes(spec: TensorSpec) -> str:
    """What a spec's values are, for messages."""
    kind = spec.np_dtype.kind
    if kind == "b":
        return "true or false"
    if kind == "f":
        return f"numbers (finite {spec.dtype})"
    low, high = spec.value_range()
    return f"integers {low:g}..{high:g}" if isinstance(low, float) else f"integers {low}..{high}"


def _leaf_ok(spec: TensorSpec):
    kind = spec.np_dtype.kind
    if kind == "b":
        return lambda v: type(v) is bool
    if kind == "f":
        return lambda v: type(v) in (int, float)
    low, high = spec.value_range()
    return lambda v: type(v) is int and low <= v <= high


def _first_bad_leaf(values, ok):
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif not ok(item):
            return item
    return _NONE


def _bad_value(item, spec: TensorSpec, what: str) -> CodecError:
    if type(item) is int and spec.np_dtype.kind in "iu":
        return CodecError(f"value out of range: {what} takes {takes(spec)}, got {_show(item)}")
    kind = _KIND_NAMES.get(type(item), type(item).__name__)
    return CodecError(f"wrong dtype: {what} takes {takes(spec)}, not {kind}")


def json_values(values, spec: TensorSpec, what: str, may_hold_bools: bool, ragged: str) -> np.ndarray:
    """The array in nested JSON lists, of the spec's dtype (its shape is the caller's to check).

    numpy infers the dtype first, so that a wrong kind of value can be named; the
    lists are walked only when something is wrong or may be a hidden boolean.
    """
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, or a value numpy cannot hold
        raise CodecError(ragged) from None
    kind, want = arr.dtype.kind, spec.np_dtype.kind
    fits = kind == "b" if want == "b" else kind in "iu" if want in "iu" else kind in "iuf"
    if not fits or (may_hold_bools and want != "b"):
        bad = _first_bad_leaf(values, _leaf_ok(spec))
        if bad is not _NONE:
            raise _bad_value(bad, spec, what)
        if not fits:  # every value is acceptable alone: an int64/uint64 mix, or ints beyond float range
            if want in "iu" or kind not in "O":
                raise CodecError(f"wrong dtype {arr.dtype} in {what}: it takes {takes(spec)}")
    if want in "iu":
        if arr.size and kind in "iu":
            low, high = spec.value_range()
            lo, hi = arr.min(), arr.max()
            if lo < low or hi > high:
                raise CodecError(f"value out of range: {what} takes {takes(spec)}, got {lo}..{hi}")
        return arr.astype(spec.np_dtype)
    if want == "f":
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                out = arr.astype(spec.np_dtype)
        except (OverflowError, TypeError, ValueError):
            raise CodecError(f"value out of range: {what} takes {takes(spec)}") from None
        if out.size and not np.isfinite(out).all():
            raise CodecError(f"value out of range: {what} takes {takes(spec)}")
        return out
    return arr.astype(spec.np_dtype)


# ---------------------------------------------------------------- binary data
def binary_values(raw, spec: TensorSpec, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The tensor in ``raw`` (little-endian, row-major), whose length the caller has checked."""
    if spec.np_dtype.kind == "b":
        arr = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
        if arr.size and arr.max() > 1:
            raise CodecError(f"wrong dtype: {what} is BOOL, one byte 0 or 1 per value")
        return arr.view(np.bool_)
    arr = np.frombuffer(raw, dtype=le_dtype(spec)).reshape(shape)
    if arr.dtype != spec.np_dtype:
        arr = arr.astype(spec.np_dtype)
    check_values(arr, spec, what)
    return arr


def check_values(arr: np.ndarray, spec: TensorSpec, what: str) -> None:
    """Integers within the spec's range, floats finite."""
    kind = spec.np_dtype.kind
    if not arr.size:
        return
    if kind in "iu":
        low, high = spec.value_range()
        info = np.iinfo(spec.np_dtype)
        if low > info.min or high < info.max:  # the dtype's own range holds by construction
            lo, hi = arr.min(), arr.max()
            if lo < low or hi > high:
                raise CodecError(f"value out of range: {what} takes {takes(spec)}, got {lo}..{hi}")
    elif kind == "f" and not np.isfinite(arr).all():
        raise CodecError(f"value out of range: {what} takes {takes(spec)}, got NaN or infinity")


# ---------------------------------------------------------------- a whole request
def same_batch(card: ModelCard, inputs: dict, rows: str = "rows") -> int:
    sizes = {name: len(arr) for name, arr in inputs.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in sizes.items())
        raise CodecError(f"batch sizes differ between the inputs ({listed}): every input carries the same {rows}")
    return next(iter(sizes.values()))


def validate(card: ModelCard, inputs: dict, max_batch: int) -> dict:
    """The decoded inputs checked together by the card (:func:`servebench.modelcard.validate_inputs`)."""
    missing = [spec.name for spec in card.inputs if spec.name not in inputs]
    if missing:
        raise CodecError(f"missing input {missing[0]!r}: the model takes {modelcard.describe(card.inputs)}")
    same_batch(card, inputs, noun(card))
    try:
        return modelcard.validate_inputs(card, inputs, max_batch)
    except modelcard.InputError as exc:
        raise CodecError(str(exc), status=exc.status) from None


def output_dict(outputs, card: ModelCard) -> dict:
    """A target's outputs by name; a :class:`Prediction` (a target that answers only a classifier's) too."""
    if isinstance(outputs, Prediction):
        found = {card.probabilities.name if card.probabilities else "probabilities": outputs.probabilities}
        if any(spec.name == "classes" for spec in card.outputs):
            found["classes"] = outputs.classes
        return found
    return outputs
