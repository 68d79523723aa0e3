"""The inputs of a run, for any model: a ``.npz`` file, the card's own data, or synthetic rows.

- ``DATA=rows.npz`` (``SB_DATA``): arrays named after the model's input tensors,
  each with the batch first and the tensor's dtype, plus an optional ``labels``
  array (one whole class number per row), which turns accuracy checks on;
- else the card's ``data``: ``cifar10`` (the CIFAR-10 test split,
  :mod:`servebench.data`), ``npz:<path>`` (relative to the model's folder) or
  ``synthetic`` (:func:`servebench.modelcard.synthetic_inputs`, seeded; a result
  from them says "synthetic inputs").

:func:`check_model` reads the card and the inputs together, before any server
starts, so that a bad ``MODEL`` or ``DATA`` fails with one message that names
the file and the mismatch (:class:`~servebench.modelcard.CardError`).
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servebench import data as cifar10
from servebench.modelcard import (CardError, InputError, ModelCard, describe, read_card, synthetic_inputs,
                                  validate_inputs)

LABELS = "labels"
SYNTHETIC_ROWS = 1024  # rows of synthetic inputs when no n is asked for
SYNTHETIC = "synthetic inputs"


@dataclass(frozen=True)
class ModelInputs:
    arrays: dict[str, np.ndarray]  # by input tensor name, batch first, every array the same rows
    labels: np.ndarray | None  # int64 [rows], or None: no accuracy to check
    synthetic: bool  # generated from the specs: results say "synthetic inputs"
    source: str  # the file, the data set's file, or "synthetic inputs (seed 0)"

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def _index(self, i: int, j: int):
        """A slice when rows i..j-1 lie inside, else the row numbers wrapped around (a long run reuses rows)."""
        n = len(self)
        if 0 <= i <= j <= n:
            return slice(i, j)
        return np.arange(i, j) % n

    def rows(self, i: int, j: int) -> dict[str, np.ndarray]:
        """Rows i..j-1 of every input (what one request of j - i rows carries), wrapping past the end."""
        index = self._index(i, j)
        return {name: arr[index] for name, arr in self.arrays.items()}

    def label_rows(self, i: int, j: int) -> np.ndarray | None:
        return None if self.labels is None else self.labels[self._index(i, j)]

    def take(self, n: int) -> "ModelInputs":
        """The first ``n`` rows (wrapping around when there are fewer)."""
        index = self._index(0, n)
        return ModelInputs({k: a[index] for k, a in self.arrays.items()},
                           None if self.labels is None else self.labels[index], self.synthetic, self.source)

    @property
    def note(self) -> str:
        """What a result says about these inputs: "synthetic inputs", or nothing."""
        return SYNTHETIC if self.synthetic else ""

    def record(self) -> dict:
        return {"source": self.source, "rows": len(self), "labels": self.labels is not None,
                "synthetic": self.synthetic}


def load_inputs(card: ModelCard, data: Path | str | None = None, n: int | None = None, seed: int = 0) -> ModelInputs:
    """The inputs of a run of ``card``'s model: ``data`` (a ``.npz``), else the card's own; the first ``n``
    rows (None: all; synthetic ones: ``SYNTHETIC_ROWS``). Raises CardError naming the file and the mismatch."""
    if n is not None and n < 1:
        raise ValueError(f"n is at least 1, got {n}")
    if data is not None and str(data) != "":
        found = read_npz(card, Path(data))
    elif card.data == "cifar10":
        found = _cifar10(card, n)
    elif card.data.startswith("npz:"):
        found = read_npz(card, model_folder(card) / card.data[len("npz:"):])
    elif card.data == "synthetic":
        return ModelInputs(synthetic_inputs(card, n or SYNTHETIC_ROWS, seed), None, True,
                           f"{SYNTHETIC} (seed {seed})")
    else:
        raise CardError(f"{card.source}: the card's data is {card.data!r}: cifar10, synthetic or npz:<path>")
    return found.take(n) if n is not None and n < len(found) else found


def model_folder(card: ModelCard) -> Path:
    """The folder a card's relative paths start from: the one holding its sidecar (the SavedModel's base
    folder, or the model file's folder)."""
    home = card.extra.get("home")
    return Path(home) if home else Path(card.source).parent


def _cifar10(card: ModelCard, n: int | None) -> ModelInputs:
    if not card.is_image or card.image_shape != (32, 32, 3):
        raise CardError(f"{card.source}: data 'cifar10' is uint8 images [-1, 32, 32, 3], but the model takes "
                        f"{describe(card.inputs)}: give DATA=<file>.npz or another \"data\" in its card.json")
    probs = card.probabilities
    if probs is not None and probs.shape[-1] not in (None, 10):
        raise CardError(f"{card.source}: data 'cifar10' has 10 classes, the model's {describe([probs])} "
                        f"has {probs.shape[-1]}")
    split = cifar10.load_test(limit=n)
    return ModelInputs({card.inputs[0].name: split.images}, split.labels, False, split.source)


def read_npz(card: ModelCard, path: Path) -> ModelInputs:
    """A ``.npz`` of ``card``'s inputs (and optional ``labels``), checked against the specs."""
    if not path.is_file():
        raise CardError(f"{path}: no such data file (DATA is a .npz of the inputs {describe(card.inputs)})")
    try:
        found = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CardError(f"{path}: not a readable .npz file: {exc}") from None
    if not isinstance(found, np.lib.npyio.NpzFile):
        raise CardError(f"{path}: not a .npz file: a .npy holds one unnamed array; save the inputs by name "
                        "with np.savez")
    try:
        with found:
            arrays = {name: found[name] for name in found.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise CardError(f"{path}: an array of the .npz is unreadable: {exc}") from None
    names = {s.name for s in card.inputs}
    labelled = LABELS not in names and LABELS in arrays  # an input named "labels" wins the name
    for spec in card.inputs:
        if spec.name not in arrays:
            raise CardError(f"{path}: no array {spec.name!r} for the input tensor {describe([spec])} "
                            f"(it holds: {', '.join(sorted(arrays)) or 'nothing'})")
    extra = sorted(set(arrays) - names - ({LABELS} if labelled else set()))
    if extra:
        raise CardError(f"{path}: array(s) {', '.join(map(repr, extra))} match no input of {card.name} "
                        f"({describe(card.inputs)}); the only other array allowed is {LABELS!r}")
    for spec in card.inputs:
        got = arrays[spec.name]
        if got.dtype != spec.np_dtype:
            raise CardError(f"{path}: array {spec.name!r} is {got.dtype}, the input tensor is "
                            f"{describe([spec])}: save it with .astype({spec.dtype!r})")
    rows = max((a.shape[0] if a.ndim else 0) for a in (arrays[s.name] for s in card.inputs))
    try:
        inputs = validate_inputs(card, {s.name: arrays[s.name] for s in card.inputs}, max_batch=max(rows, 1))
    except InputError as exc:
        raise CardError(f"{path}: array {exc.tensor!r}: {exc}") from None
    labels = _labels(card, path, arrays[LABELS], rows) if labelled else None
    return ModelInputs(inputs, labels, False, str(path))


def _labels(card: ModelCard, path: Path, labels: np.ndarray, rows: int) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise CardError(f"{path}: array {LABELS!r} is {labels.dtype} {list(labels.shape)}: labels are whole "
                        f"class numbers, one per row [{rows}]")
    if len(labels) != rows:
        raise CardError(f"{path}: array {LABELS!r} has {len(labels)} labels for {rows} rows")
    probs = card.probabilities
    if probs is None:
        raise CardError(f"{path}: array {LABELS!r} given, but {card.name} is not a classifier "
                        f"(outputs {describe(card.outputs)}): leave the labels out")
    classes = probs.shape[-1]
    if len(labels) and (int(labels.min()) < 0 or (classes is not None and int(labels.max()) >= classes)):
        raise CardError(f"{path}: array {LABELS!r} holds {int(labels.min())}..{int(labels.max())}; the model's "
                        f"classes are 0..{classes - 1 if classes else 'k-1'}")
    return labels.astype(np.int64, copy=False)


def check_model(settings) -> tuple[ModelCard, ModelInputs]:
    """The model the settings serve (``settings.model_base``, SB_MODEL) and its inputs (``settings.data``,
    SB_DATA, else the card's), read together before any server starts: CardError names the file and the
    problem (a missing CIFAR-10 copy is :class:`servebench.data.DatasetError`)."""
    card = read_card(settings.model_base, getattr(settings, "model_version", None))
    name = getattr(settings, "model_name", card.name)
    if name != card.name:
        raise CardError(f"{settings.model_base}: its card names it {card.name!r}, but the settings serve "
                        f"{name!r} (SB_MODEL_NAME): leave SB_MODEL_NAME unset, or give the card's \"name\"")
    return card, load_inputs(card, getattr(settings, "data", None))
