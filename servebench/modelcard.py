"""A model card: what a served model takes and gives, read from the model itself.

Every layer above the core asks the card, never a constant, what to decode,
validate, batch, generate and check:

- ``inputs`` / ``outputs``: one :class:`TensorSpec` per tensor (name, dtype,
  shape with the batch dimension first, ``None`` where variable), read from the
  SavedModel signature, the Keras model or the ONNX graph; never typed by hand;
- ``class_names`` and ``data`` (where its inputs come from) from an optional
  sidecar ``card.json`` (a folder model: ``<base>/card.json``; a file model:
  ``<file>.card.json``), the only hand-written part;
- ``low`` / ``high`` on an integer input: its value range (default: the
  dtype's), from the sidecar's ``"ranges": {"tensor": [low, high]}``.

:func:`read_card` (see ``readers`` below) raises :class:`CardError` naming the
file and the problem for a path that is not a model, a tensor without a batch
dimension, or a dtype the protocols cannot carry, before any server starts.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

# numpy dtype name -> the Open Inference Protocol's datatype. What a tensor may be.
DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64",
}
SIDECAR = "card.json"


class CardError(ValueError):
    """A model, sidecar or data file the suite cannot serve; the message names the file and the problem."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # a key of DATATYPES
    shape: tuple[int | None, ...]  # batch dimension first (None); None elsewhere: variable
    low: float | None = None  # value range of an integer input (None: the dtype's)
    high: float | None = None

    @property
    def datatype(self) -> str:
        return DATATYPES[self.dtype]

    @property
    def item_shape(self) -> tuple[int | None, ...]:
        return self.shape[1:]

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def value_range(self) -> tuple[float, float] | None:
        """Inclusive range of an integer input, the sidecar's or else the dtype's; None for floats and bool."""
        dt = self.np_dtype
        if dt.kind not in "iu":
            return None
        info = np.iinfo(dt)
        return (info.min if self.low is None else self.low, info.max if self.high is None else self.high)


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: int
    format: str  # "savedmodel" | "keras" | "onnx"
    source: str  # the version folder or the file the tensors were read from
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    class_names: tuple[str, ...] | None = None
    data: str = "synthetic"  # where inputs come from: "cifar10", "npz:<path>", "sklearn:<name>", "synthetic"
    extra: dict = field(default_factory=dict, compare=False)

    # -------------------------------------------------------------- questions
    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def output(self, name: str) -> TensorSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def is_image(self) -> bool:
        """One uint8 input [batch, H, W, C] with fixed H, W and C in (1, 3): what /v1/predict and frames carry."""
        if len(self.inputs) != 1:
            return False
        spec = self.inputs[0]
        return (spec.dtype == "uint8" and len(spec.shape) == 4 and all(d is not None for d in spec.shape[1:])
                and spec.shape[3] in (1, 3))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if not self.is_image:
            raise CardError(f"{self.name} is not an image model: {describe(self.inputs)}")
        return tuple(self.inputs[0].shape[1:])  # type: ignore[return-value]

    @property
    def probabilities(self) -> TensorSpec | None:
        """The classifier output: ``probabilities`` if present, else the first float output [batch, k]."""
        for spec in self.outputs:
            if spec.name == "probabilities":
                return spec
        for spec in self.outputs:
            if spec.np_dtype.kind == "f" and len(spec.shape) == 2:
                return spec
        return None

    @property
    def is_classifier(self) -> bool:
        return self.probabilities is not None

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc.pop("extra")
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> "ModelCard":
        specs = lambda items: tuple(TensorSpec(**{**s, "shape": tuple(s["shape"])}) for s in items)  # noqa: E731
        return cls(**{**doc, "inputs": specs(doc["inputs"]), "outputs": specs(doc["outputs"]),
                      "class_names": tuple(doc["class_names"]) if doc.get("class_names") else None})

    def with_ranges(self, ranges: dict) -> "ModelCard":
        inputs = tuple(replace(s, low=ranges[s.name][0], high=ranges[s.name][1]) if s.name in ranges else s
                       for s in self.inputs)
        return replace(self, inputs=inputs)


def describe(specs) -> str:
    """``images uint8 [-1, 32, 32, 3]``, for messages."""
    return ", ".join(f"{s.name} {s.dtype} [{', '.join('-1' if d is None else str(d) for d in s.shape)}]"
                     for s in specs)


def sidecar_path(model_path: Path) -> Path:
    model_path = Path(model_path)
    return model_path / SIDECAR if model_path.is_dir() else model_path.with_name(model_path.name + "." + SIDECAR)


def read_sidecar(model_path: Path) -> dict:
    path = sidecar_path(model_path)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CardError(f"{path}: not a readable JSON card: {exc}") from None
    if not isinstance(doc, dict):
        raise CardError(f"{path}: a card is a JSON object, got {type(doc).__name__}")
    return doc


# ------------------------------------------------------------------ readers
SIGNATURE = "serving_default"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a name goes into URLs (/v2/models/<name>)
DATA_SOURCES = ("cifar10", "synthetic", "npz:<path relative to the model>")
# ONNX element types the protocols carry (others, e.g. STRING, BFLOAT16, COMPLEX64, are refused by name).
ONNX_TYPES = {"FLOAT": "float32", "DOUBLE": "float64", "FLOAT16": "float16", "BOOL": "bool",
              **{t: t.lower() for t in ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")}}
MODEL_KINDS = "a SavedModel folder (<base>/<version>/saved_model.pb, or one version folder), a .keras or an .onnx file"


class ModelNotFound(CardError):
    """The path holds no model (the inference core's name for it, kept)."""


def find_version(base: Path, version: int | None = None) -> Path:
    """The version folder to serve: the one asked for, else the highest (as TF Serving does)."""
    base = Path(base)
    if version is not None:
        path = base / str(version)
        if not (path / "saved_model.pb").is_file():
            raise ModelNotFound(f"no SavedModel at {path} (version {version}: no saved_model.pb)")
        return path
    versions = sorted(int(p.name) for p in base.glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file())
    if not versions:
        raise ModelNotFound(f"{base}: not a model: no versioned SavedModel under {base} "
                            f"(<version>/saved_model.pb); MODEL is {MODEL_KINDS}")
    return base / str(versions[-1])


def _layout(path: Path) -> tuple[str, Path]:
    """(format, where the sidecar and the name come from): the SavedModel's base folder, or the file."""
    if path.is_file() and path.name == "saved_model.pb":
        path = path.parent
    if path.is_dir():
        single = (path / "saved_model.pb").is_file()
        return "savedmodel", path.parent if single and path.name.isdigit() else path
    return {".keras": "keras", ".onnx": "onnx"}.get(path.suffix.lower(), ""), path


def model_name_for(path: Path | str) -> str:
    """The name a model is served under, without loading it: the sidecar's ``name``, else the SavedModel's
    base folder or the file's stem. Never raises (a bad sidecar is :func:`read_card`'s to report)."""
    _, home = _layout(Path(path))
    try:
        name = read_sidecar(home).get("name")
    except CardError:
        name = None
    return name if isinstance(name, str) and name else (home.name if home.is_dir() else home.stem)


def read_card(path: Path | str, version: int | None = None) -> ModelCard:
    """The card of the model at ``path`` (see the module's docstring). Loads what it must: a SavedModel's
    signature from ``saved_model.pb`` alone (no variables), a Keras or ONNX file whole; call it once per
    process, never per request. Raises :class:`CardError` naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFound(f"{path}: no such file or folder (MODEL is {MODEL_KINDS})")
    fmt, home = _layout(path)
    if fmt == "savedmodel":
        folder = path.parent if path.is_file() else path
        source = folder if (folder / "saved_model.pb").is_file() else find_version(folder, version)
        if version is not None and source.name.isdigit() and int(source.name) != version:
            raise CardError(f"{source}: is version {source.name}, not the version {version} asked for")
        inputs, outputs = _cached_tensors(source / "saved_model.pb", folder, _savedmodel_tensors, source)
        found_version = int(source.name) if source.name.isdigit() else None
    elif fmt in ("keras", "onnx"):
        source = path
        inputs, outputs = _cached_tensors(path, path.parent, _keras_tensors if fmt == "keras" else _onnx_tensors, path)
        found_version = None
    else:
        raise ModelNotFound(f"{path}: not a model: expected {MODEL_KINDS}")
    _check_tensors(source, "input", inputs)
    _check_tensors(source, "output", outputs)
    sidecar = read_sidecar(home)
    card = ModelCard(name=home.name if home.is_dir() else home.stem,
                     version=1 if found_version is None else found_version, format=fmt, source=str(source),
                     inputs=tuple(inputs), outputs=tuple(outputs))
    return _apply_sidecar(card, sidecar, sidecar_path(home), keep_version=found_version is not None)


def _cached_tensors(file: Path, home: Path, reader, *args) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The reader's tensors, kept beside the model under a hash of the file they come from: reading them
    needs TensorFlow, Keras or ONNX, which front ends and load generators should not load to learn a shape."""
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise CardError(f"{file}: not readable: {exc}") from None
    name = f"{file.name}-{digest}.json"
    places = [home / ".engines" / "cards" / name, Path(tempfile.gettempdir()) / "servebench-engines" / "cards" / name]
    for place in places:
        try:
            doc = json.loads(place.read_text())
            return ([TensorSpec(**{**d, "shape": tuple(d["shape"])}) for d in doc["inputs"]],
                    [TensorSpec(**{**d, "shape": tuple(d["shape"])}) for d in doc["outputs"]])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    inputs, outputs = reader(*args)
    text = json.dumps({"inputs": [asdict(t) for t in inputs], "outputs": [asdict(t) for t in outputs]})
    for place in places:  # the model's folder, or a temporary one where that is read-only
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            tmp = place.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, place)
            break
        except OSError:
            continue
    return inputs, outputs


def _shape(dims, unknown_rank: bool) -> tuple[int | None, ...] | None:
    return None if unknown_rank else tuple(None if d is None or d < 0 else int(d) for d in dims)


def _savedmodel_tensors(folder: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    # The signature's tensors are in saved_model.pb's SignatureDef, what structured_input_signature and
    # structured_outputs are built from; parsing it avoids restoring the variables (seconds, and memory).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from google.protobuf.message import DecodeError
    from tensorflow import dtypes
    from tensorflow.core.protobuf import saved_model_pb2

    pb = folder / "saved_model.pb"
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except (OSError, DecodeError) as exc:
        raise CardError(f"{pb}: not a readable SavedModel: {exc}") from None
    signatures = {k: v for graph in proto.meta_graphs for k, v in graph.signature_def.items()}
    if SIGNATURE not in signatures:
        raise CardError(f"{pb}: no {SIGNATURE!r} signature (it has: {', '.join(sorted(signatures)) or 'none'})")

    def specs(infos) -> list[TensorSpec]:
        found = []
        for key in sorted(infos):  # TensorFlow orders a signature's keywords and outputs by name too
            info = infos[key]
            try:
                dtype = dtypes.as_dtype(info.dtype).name
            except TypeError:
                dtype = f"type {info.dtype}"
            shape = _shape((d.size for d in info.tensor_shape.dim), info.tensor_shape.unknown_rank)
            found.append(TensorSpec(key, dtype, shape))
        return found

    sig = signatures[SIGNATURE]
    return specs(sig.inputs), specs(sig.outputs)


def _keras_tensors(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for a bad file; each is "not readable" here
        raise CardError(f"{path}: not a readable Keras model: {type(exc).__name__}: {exc}") from None
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, TypeError, ValueError) as exc:
        raise CardError(f"{path}: the Keras model has no defined inputs and outputs ({exc}): build it with "
                        "keras.Input") from None
    return ([TensorSpec(n, str(t.dtype), _shape(t.shape, False)) for n, t in zip(_keras_names(inputs), inputs)],
            [TensorSpec(n, str(t.dtype), _shape(t.shape, False)) for n, t in zip(_keras_names(outputs), outputs)])


def _keras_names(tensors) -> list[str]:
    # A tensor's own name ("keras_tensor_119") counts the tensors made in the process, so it differs from one
    # process to the next; the layer that makes it (an InputLayer, the last Dense) has its saved name.
    names = []
    for t in tensors:
        history = getattr(t, "_keras_history", None)
        layer = getattr(getattr(history, "operation", None), "name", None)
        index = getattr(history, "tensor_index", 0)
        names.append(f"{layer}_{index}" if layer and index else layer or t.name)
    return names


def _onnx_tensors(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, onnx's own errors, OSError
        raise CardError(f"{path}: not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    graph = model.graph
    weights = {init.name for init in graph.initializer}

    def spec(value) -> TensorSpec:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise CardError(f"{path}: {value.name!r} is a {kind or 'value of no type'}, not a tensor: the protocols "
                            "carry tensors only (an scikit-learn export: turn its ZipMap off)")
        tensor = value.type.tensor_type
        elem = onnx.TensorProto.DataType.Name(tensor.elem_type) if tensor.elem_type else "UNDEFINED"
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        return TensorSpec(value.name, ONNX_TYPES.get(elem, elem.lower()), _shape(dims, not tensor.HasField("shape")))

    return [spec(v) for v in graph.input if v.name not in weights], [spec(v) for v in graph.output]


def _check_tensors(source: Path, kind: str, specs: list[TensorSpec]) -> None:
    if not specs:
        raise CardError(f"{source}: the model has no {kind} tensor")
    seen = set()
    for s in specs:
        where = f"{source}: {kind} {s.name!r}"
        if not s.name or s.name in seen:
            raise CardError(f"{where}: {'an empty' if not s.name else 'a repeated'} tensor name")
        seen.add(s.name)
        if s.dtype not in DATATYPES:
            raise CardError(f"{where} is {s.dtype}, which the protocols cannot carry "
                            f"(they carry {', '.join(DATATYPES)})")
        if s.shape is None:
            raise CardError(f"{where} has no known rank: export it with a shape, the batch dimension first")
        if not s.shape or s.shape[0] is not None:
            first = "it is a scalar" if not s.shape else f"its first dimension is fixed at {s.shape[0]}"
            raise CardError(f"{where} has no batch dimension ({describe([s])}: {first}); export it with a "
                            "variable first dimension (None or -1) so that requests can carry any batch")


def _apply_sidecar(card: ModelCard, doc: dict, where: Path, keep_version: bool) -> ModelCard:
    """The card with the sidecar's name, version, class_names, data and ranges; other keys go to ``extra``."""
    known = {"name", "version", "class_names", "data", "ranges"}
    changes: dict = {"extra": {**{k: v for k, v in doc.items() if k not in known}, "home": str(where.parent)}}
    if doc:
        changes["extra"]["sidecar"] = str(where)
    name = doc.get("name", card.name)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        origin = f"{where}: \"name\"" if "name" in doc else f"{card.source}: the name taken from the path"
        raise CardError(f"{origin} is {name!r}: a name is letters, digits, '_', '.' or '-' (it goes into URLs); "
                        f"give one as \"name\" in {where}")
    changes["name"] = name
    if "version" in doc and not keep_version:
        version = doc["version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise CardError(f"{where}: \"version\" is {version!r}: a whole number >= 0")
        changes["version"] = version
    if "class_names" in doc:
        names = doc["class_names"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise CardError(f"{where}: \"class_names\" is a non-empty list of strings")
        probs = card.probabilities
        k = probs.shape[-1] if probs is not None else None
        if probs is None or (k is not None and k != len(names)):
            has = "no classifier output" if probs is None else f"{k} classes ({describe([probs])})"
            raise CardError(f"{where}: {len(names)} class_names, but the model has {has}")
        changes["class_names"] = tuple(names)
    if "data" in doc:
        data = doc["data"]
        if not isinstance(data, str) or not (data in ("cifar10", "synthetic") or
                                              (data.startswith("npz:") and len(data) > 4)):
            raise CardError(f"{where}: \"data\" is {data!r}: one of {', '.join(DATA_SOURCES)}")
        changes["data"] = data
    card = replace(card, **changes)
    ranges = doc.get("ranges", {})
    if not isinstance(ranges, dict):
        raise CardError(f"{where}: \"ranges\" maps input names to [low, high]")
    for name, bounds in ranges.items():
        spec = next((s for s in card.inputs if s.name == name), None)
        if spec is None or spec.np_dtype.kind not in "iu":
            ints = [s.name for s in card.inputs if s.np_dtype.kind in "iu"]
            raise CardError(f"{where}: \"ranges\" names {name!r}, not an integer input of the model "
                            f"(integer inputs: {', '.join(ints) or 'none'})")
        lo, hi = spec.value_range()
        if (not isinstance(bounds, list) or len(bounds) != 2 or any(isinstance(b, bool) or not isinstance(b, int)
                                                                     for b in bounds)
                or not lo <= bounds[0] <= bounds[1] <= hi):
            raise CardError(f"{where}: \"ranges\" of {name!r} is {bounds!r}: [low, high], whole numbers with "
                            f"{lo} <= low <= high <= {hi} ({spec.dtype})")
    return card.with_ranges(ranges)


# ------------------------------------------------------------------ inputs
VARIABLE_DIM = 16  # the length synthetic inputs give a variable dimension other than the batch


class InputError(CardError):
    """Inputs that do not match the card; ``tensor`` names the tensor, ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, tensor: str | None = None, status: int = 400):
        super().__init__(message)
        self.tensor = tensor
        self.status = status


def synthetic_inputs(card: ModelCard, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` rows of every input, seeded: integers uniform over the value range, floats standard normal,
    bools fair coins. Results from them are "synthetic inputs"."""
    if n < 1:
        raise ValueError(f"synthetic inputs need n >= 1, got {n}")
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in card.inputs:
        shape = (n, *(VARIABLE_DIM if d is None else d for d in spec.item_shape))
        dt = spec.np_dtype
        if dt.kind in "iu":
            lo, hi = spec.value_range()
            arrays[spec.name] = rng.integers(int(lo), int(hi), size=shape, dtype=dt, endpoint=True)
        elif dt.kind == "f":
            arrays[spec.name] = rng.standard_normal(shape, dtype=np.float64 if dt.itemsize == 8 else np.float32)\
                .astype(dt, copy=False)
        else:
            arrays[spec.name] = rng.random(shape) < 0.5
    return arrays


def _shape_text(shape) -> str:
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"


def validate_inputs(card: ModelCard, inputs: Mapping, max_batch: int) -> dict[str, np.ndarray]:
    """The inputs as the model takes them (the card's dtypes, C-contiguous, the card's order), or
    :class:`InputError` naming the tensor: a missing or unknown tensor, a dtype that does not convert safely
    (integers that fit, e.g. from JSON, do), rank, a fixed dimension, a batch outside 1..max_batch or unequal
    across inputs, integers outside the input's range, floats that are not finite. No loop over elements."""
    if not isinstance(inputs, Mapping):
        raise InputError(f"inputs are tensors by name, got {type(inputs).__name__}")
    names = {s.name for s in card.inputs}
    for key in inputs:
        if key not in names:
            raise InputError(f"unknown input tensor {str(key)[:64]!r}: the model takes {describe(card.inputs)}",
                             tensor=str(key)[:64])
    checked: dict[str, np.ndarray] = {}
    first: tuple[str, int] | None = None
    for spec in card.inputs:
        if spec.name not in inputs:
            raise InputError(f"missing input tensor {spec.name!r}: the model takes {describe(card.inputs)}",
                             tensor=spec.name)
        arr = _checked_shape(spec, _as_array(spec, inputs[spec.name]))
        n = arr.shape[0]
        if first is not None and n != first[1]:
            raise InputError(f"tensor {spec.name!r} has a batch of {n}, tensor {first[0]!r} one of {first[1]}: "
                             "every input carries the same rows", tensor=spec.name)
        first = first or (spec.name, n)
        if n < 1:
            raise InputError(f"tensor {spec.name!r} is an empty batch: send 1 to {max_batch} rows", tensor=spec.name)
        if n > max_batch:
            raise InputError(f"tensor {spec.name!r}: batch too large: {n} rows, the limit is {max_batch}",
                             tensor=spec.name, status=413)
        checked[spec.name] = np.ascontiguousarray(_checked_values(spec, arr))
    return checked


def _as_array(spec: TensorSpec, value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"tensor {spec.name!r}: not a rectangular array of numbers ({str(exc)[:120]})",
                             tensor=spec.name) from None
    kind, want = arr.dtype.kind, spec.np_dtype.kind
    allowed = {"b": "b", "i": "biu", "u": "biu", "f": "biuf"}[want]
    if kind not in allowed:
        what = {"f": "floats", "b": "booleans", "i": "integers", "u": "integers", "U": "strings", "S": "bytes",
                "O": "mixed or non-numeric values", "c": "complex numbers"}.get(kind, f"{arr.dtype} values")
        raise InputError(f"tensor {spec.name!r} is {spec.dtype}, got {what}", tensor=spec.name)
    return arr


def _checked_shape(spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    if arr.ndim != len(spec.shape):
        raise InputError(f"tensor {spec.name!r} has rank {arr.ndim} (shape {list(arr.shape)}), expected rank "
                         f"{len(spec.shape)} {_shape_text(spec.shape)}", tensor=spec.name)
    for axis, (got, want) in enumerate(zip(arr.shape, spec.shape)):
        if want is not None and got != want:
            raise InputError(f"tensor {spec.name!r} has shape {list(arr.shape)}, expected {_shape_text(spec.shape)} "
                             f"(dimension {axis} is {want})", tensor=spec.name)
    return arr


def _checked_values(spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    dt = spec.np_dtype
    if dt.kind in "iu":
        lo, hi = spec.value_range()
        if arr.dtype.kind in "iu":
            have = np.iinfo(arr.dtype)
            inside = lo <= have.min and have.max <= hi
        else:
            inside = lo <= 0 and 1 <= hi  # booleans
        if not inside and arr.size:
            low, high = int(arr.min()), int(arr.max())
            if low < lo or high > hi:
                bad = low if low < lo else high
                raise InputError(f"tensor {spec.name!r} holds {bad}, outside its range {int(lo)}..{int(hi)} "
                                 f"({spec.dtype})", tensor=spec.name)
        return arr.astype(dt, copy=False)
    if dt.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            out = arr.astype(dt, copy=False)
        if out.size and not np.isfinite(out).all():
            raise InputError(f"tensor {spec.name!r} holds NaN, infinity or values too large for {spec.dtype}",
                             tensor=spec.name)
        return out
    return arr.astype(dt, copy=False)


def main(argv=None) -> int:
    """``python -m servebench.modelcard PATH [VERSION]``: the card as JSON (``make card MODEL=...``)."""
    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 2 or argv[0].startswith("-"):
        print("usage: python -m servebench.modelcard PATH [VERSION]", file=sys.stderr)
        return 2
    try:
        card = read_card(argv[0], int(argv[1]) if len(argv) == 2 else None)
    except (CardError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(card.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
