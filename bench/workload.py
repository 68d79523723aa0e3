"""What a run sends: the model's card, its inputs, and the protocol that carries them, for any model.

Every command that sends work through a stack builds its requests here, for
the model ``SB_MODEL`` names (``make ... MODEL=``) and the inputs ``SB_DATA``
names (``make ... DATA=``):

- :func:`load` checks the model and the data together first
  (:func:`servebench.model_data.check_model`: one clear message for a bad MODEL
  or DATA, before any server starts), then reads the card and the inputs
  (:func:`servebench.model_data.load_inputs`: a ``.npz``, the card's own data,
  CIFAR-10 for the default model, or inputs generated from the specs, which
  every result and table labels "synthetic inputs");
- the protocol (:func:`choose_protocol`): ``/v1/predict`` with ``--codec`` for
  an image model, KServe v2 for any other (its default, recorded with why);
  ``v1`` asked for a model that is not an image model fails before anything
  starts, naming v2. Over v2 ``--codec raw`` is the binary tensor extension and
  ``json`` its JSON tensors; TF Serving's REST takes ``json``;
- :func:`requests` cuts the inputs into requests of ``--batch`` rows, encoded
  with the protocol's client half, each with a reader of its answer: every
  output the card names, with one row per input row; classes are checked
  against labels only when there are labels and the card is a classifier
  (else ``correct`` is None and the run's accuracy is None: not checked).
"""
from __future__ import annotations

import json
import multiprocessing
import sys
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from bench import client
from bench.records import SYNTHETIC_LABEL
from servebench import codecs, data, kserve, model_data, modelcard, tfserving
from servebench.modelcard import CardError, ModelCard, describe

V1, V2, TFSERVING = "v1", "v2", "tfserving"
PROTOCOLS = (V1, V2, TFSERVING)
V2_CODECS = {"json": False, "raw": True}  # --codec over KServe v2 -> binary tensor extension
TFSERVING_CODECS = ("json",)
ISOLATED = True  # read a card in a spawned process, keeping TensorFlow out of the harness (tests turn it off)
_CHECKED: dict[tuple, tuple] = {}  # what check() found, by model and data
CIFAR10_SOURCE = "CIFAR-10 test set"  # what a record says when it knows no folder (make load's)


class WorkloadError(CardError):
    """A protocol or codec that cannot carry the model's tensors; says what to use instead."""


@dataclass(frozen=True)
class Workload:
    card: ModelCard
    inputs: model_data.ModelInputs
    protocol: str
    protocol_why: str  # "asked", or why the default was chosen

    @property
    def synthetic(self) -> bool:
        return bool(self.inputs.synthetic)

    @property
    def checked(self) -> bool:
        """Whether answers are checked against labels (labels given, and a classifier)."""
        return self.inputs.labels is not None and self.card.is_classifier

    @property
    def rows(self) -> int:
        return len(self.inputs)

    @property
    def label(self) -> str:
        """Said beside every number of the run: "synthetic inputs", or nothing."""
        return SYNTHETIC_LABEL if self.synthetic else ""

    def record(self) -> dict:
        """What a result records about its model and inputs (a bench summary's fields)."""
        return {
            "model_card": card_summary(self.card),
            "data": {"source": self.inputs.source, "images": self.rows, "rows": self.rows,
                     "labels": self.inputs.labels is not None, "accuracy_checked": self.checked,
                     "synthetic_inputs": self.synthetic},
            "synthetic_inputs": self.synthetic,
            "protocol": {"name": self.protocol, "why": self.protocol_why},
        }

    def describe(self) -> str:
        """One line for the command's output: model, inputs, protocol."""
        data = f"{self.rows} rows of {self.inputs.source}" + (f" ({SYNTHETIC_LABEL})" if self.synthetic else "")
        check = "answers checked against labels" if self.checked else "accuracy not checked"
        return (f"model {self.card.name} v{self.card.version} ({self.card.format}: {describe(self.card.inputs)}); "
                f"{data}; {check}; protocol {self.protocol} ({self.protocol_why})")


def card_summary(card: ModelCard) -> dict:
    """The card as a result records it: name, version, format, the tensors described."""
    return {"name": card.name, "version": card.version, "format": card.format, "source": str(card.source),
            "inputs": describe(card.inputs), "outputs": describe(card.outputs),
            "image": card.is_image, "classifier": card.is_classifier,
            "classes": len(card.class_names) if card.class_names else None, "data": card.data}


def choose_protocol(card: ModelCard, asked: str | None, codec: str = "json") -> tuple[str, str]:
    """(the protocol, why) for ``card``: the one asked for, else v1 for an image model and v2 otherwise.

    Raises :class:`WorkloadError` for v1 on a model that is not an image model (naming v2) and for a codec
    the protocol does not carry.
    """
    if asked is None:
        protocol = V1 if card.is_image else V2
        why = "default for an image model" if card.is_image else "default for a model that is not an image model"
    elif asked in PROTOCOLS:
        protocol, why = asked, "asked"
    else:
        raise WorkloadError(f"unknown protocol {asked!r}: choose from {', '.join(PROTOCOLS)}")
    if protocol == V1 and not card.is_image:
        raise WorkloadError(
            f"{card.name} is not an image model ({describe(card.inputs)}): /v1/predict carries images only; "
            f"use the KServe v2 protocol (--protocol v2, make PROTOCOL=v2: POST /v2/models/{card.name}/infer)")
    if protocol == V1 and codec not in codecs.CODECS:
        raise WorkloadError(f"unknown codec {codec!r} for /v1/predict: choose from {', '.join(codecs.CODECS)}")
    if protocol == V2 and codec not in V2_CODECS:
        raise WorkloadError(f"codec {codec!r} does not go over KServe v2: json (JSON tensors) or raw "
                            "(the binary tensor extension)")
    if protocol == TFSERVING and codec not in TFSERVING_CODECS:
        raise WorkloadError(f"codec {codec!r} does not go over TF Serving's REST API: json")
    return protocol, why


def check(settings, isolate: bool = True) -> tuple[ModelCard, model_data.ModelInputs | None]:
    """The card of the model the settings serve and its inputs, checked together
    (:func:`servebench.model_data.check_model`: CardError naming the file and the problem).

    Reading a card loads TensorFlow (or Keras, or ONNX); the harness is a client whose memory a run records,
    so unless TensorFlow is here already (or will be: ``isolate=False``) the card is read in a spawned
    process (``ISOLATED``). A model and data that passed are not read again by the same command.
    """
    key = tuple(str(getattr(settings, k, None)) for k in ("model_base", "data", "model_version", "model_name"))
    if key in _CHECKED:
        return _CHECKED[key]
    if isolate and ISOLATED and "tensorflow" not in sys.modules:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            outcome, value = pool.apply(_check_in_child, (settings,))
        if outcome != "ok":
            kind, message = value
            raise (data.DatasetError if kind == "dataset" else CardError)(message)
    else:
        value = _check(settings)
    _CHECKED[key] = value
    return value


def _check_in_child(settings) -> tuple[str, object]:
    """:func:`_check` in a spawned process: ("ok", its answer) or ("error", (kind, message)); exceptions
    travel as text (a CardError subclass may not unpickle)."""
    try:
        return "ok", _check(settings)
    except data.DatasetError as exc:
        return "error", ("dataset", str(exc))
    except CardError as exc:
        return "error", ("card", str(exc))


def _check(settings) -> tuple[ModelCard, model_data.ModelInputs | None]:
    checked = model_data.check_model(settings)
    if isinstance(checked, tuple):
        return checked
    if isinstance(checked, ModelCard):  # a check that gives the card alone
        return checked, None
    return modelcard.read_card(settings.model_base, getattr(settings, "model_version", None)), None


def read_model(settings) -> ModelCard:
    """The card of the model the settings serve, after the model and its data were checked together
    (raises CardError naming the file and the problem, before any server starts)."""
    return check(settings)[0]


def data_of(settings) -> str | None:
    """The DATA the settings name (SB_DATA): a .npz path, or None for the card's own data."""
    value = getattr(settings, "data", None)
    return str(value) if value else None


def inputs_for(card: ModelCard, settings, n: int | None, seed: int = 0, data_dir=None,
               found: model_data.ModelInputs | None = None) -> model_data.ModelInputs:
    """The model's first ``n`` input rows (None: all): DATA's, else the card's own. ``data_dir``: the
    harness's ``--data-dir``, the CIFAR-10 folder of a card whose data is CIFAR-10; ``found``: the inputs
    :func:`check` read (real ones are reused; synthetic ones are made again for ``n`` and ``seed``)."""
    given = data_of(settings)
    if given is None and card.data == "cifar10" and data_dir is not None:
        split = data.load_test(data_dir, limit=n)
        return model_data.ModelInputs(arrays={card.inputs[0].name: split.images}, labels=split.labels,
                                      synthetic=False, source=split.source)
    if found is not None and not found.synthetic:
        return found.take(n) if n is not None and n < len(found) else found
    return model_data.load_inputs(card, data=given, n=n, seed=seed)


def load(settings, n: int, seed: int = 0, protocol: str | None = None, codec: str = "json",
         data_dir=None) -> Workload:
    """The run's model, its first ``n`` input rows and the protocol (all checked before anything starts)."""
    card, found = check(settings)
    chosen, why = choose_protocol(card, protocol, codec)
    return Workload(card, inputs_for(card, settings, n, seed, data_dir, found), chosen, why)


# ------------------------------------------------------------------ requests
def classes_of(card: ModelCard, outputs: dict) -> np.ndarray | None:
    """The predicted class of each row: the card's ``classes`` output, else the argmax of its probabilities;
    None for a model that is not a classifier."""
    probs = card.probabilities
    if probs is None:
        return None
    named = outputs.get("classes")
    if named is not None and np.asarray(named).dtype.kind in "iu":
        return np.asarray(named).reshape(-1)
    return np.asarray(outputs[probs.name]).argmax(axis=-1).reshape(-1)


def reader_for(card: ModelCard, protocol: str) -> Callable:
    """``(body, headers) -> (rows, classes or None)`` for answers to ``card``'s requests over ``protocol``."""
    if protocol == V1:
        def read_v1(body: bytes, headers) -> tuple[int, np.ndarray | None]:
            if card.is_classifier:
                classes = codecs.decode_classes(body)
                return len(classes), classes
            predictions = json.loads(body)["predictions"]  # each row's outputs by name
            if not isinstance(predictions, list):
                raise ValueError('"predictions" is not a list')
            return len(predictions), None
        return read_v1
    decode = ((lambda body, headers: kserve.decode_infer_response(body, headers, card)) if protocol == V2
              else (lambda body, headers: tfserving.decode_predict_response(body, card)))  # both check the card

    def read(body: bytes, headers) -> tuple[int, np.ndarray | None]:
        outputs = decode(body, headers)
        missing = [spec.name for spec in card.outputs if spec.name not in outputs]
        if missing:
            raise ValueError(f"the answer lacks output(s) {', '.join(missing)}")
        rows = {name: len(np.atleast_1d(np.asarray(value))) for name, value in outputs.items()}
        if len(set(rows.values())) != 1:
            raise ValueError(f"outputs disagree on the batch: {rows}")
        return next(iter(rows.values())), classes_of(card, outputs)
    return read


def encode(card: ModelCard, protocol: str, part: dict[str, np.ndarray], codec: str) -> tuple[bytes, str, str | None,
                                                                                                tuple]:
    """(body, content type, path or None for /v1/predict, extra headers) of one request."""
    if protocol == V1:
        body, content_type = codecs.encode(part[card.inputs[0].name], codec)
        return body, content_type, None, ()
    if protocol == V2:
        body, headers = kserve.encode_infer_request(part, card, binary=V2_CODECS[codec])
        extra = tuple((k, v) for k, v in headers.items() if k.lower() not in ("content-type", "content-length"))
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
        return body, content_type, f"/v2/models/{card.name}/infer", extra
    body = tfserving.encode_predict_request(part, card)
    return body, "application/json", tfserving.rest_predict_path(card.name), ()


def requests(w: Workload, batch: int, codec: str = "json",
             progress: Callable[[Iterable], Iterable] = iter) -> list[client.Request]:
    """The inputs cut into requests of ``batch`` rows, each body encoded once, with its answer's reader."""
    reader = reader_for(w.card, w.protocol)
    arrays, labels = w.inputs.arrays, (w.inputs.labels if w.checked else None)
    out = []
    for i, start in enumerate(progress(range(0, w.rows, batch))):
        end = min(start + batch, w.rows)
        part = {name: np.ascontiguousarray(a[start:end]) for name, a in arrays.items()}
        body, content_type, path, headers = encode(w.card, w.protocol, part, codec)
        out.append(client.Request(i, body, content_type, None if labels is None else np.asarray(labels[start:end]),
                                  path=path, headers=headers, protocol=w.protocol, rows=end - start, reader=reader))
    return out
