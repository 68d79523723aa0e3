"""Model cards the protocol tests run on: every bundled model's, and cards built here.

The codecs need only a card, never a model: the bundled models' cards are read
from their SavedModels (the signature alone), and ``mixed`` is built here to
cover what no bundled model has (several inputs, an integer input with a range
narrower than its dtype, booleans, float64).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from servebench.codecs import CIFAR10_CARD
from servebench.modelcard import ModelCard, TensorSpec, read_card, synthetic_inputs

MODELS = Path(__file__).resolve().parents[2] / "models"
BUNDLED = ("cifar10_cnn", "cifar10_mobilenetv2", "breast_cancer_mlp")

MIXED = ModelCard(
    name="mixed_double", version=1, format="savedmodel", source="(built in tests/servebench/spec_cards.py)",
    inputs=(TensorSpec("features", "float32", (None, 30)),
            TensorSpec("codes", "int64", (None, 16), low=0, high=99),
            TensorSpec("mask", "bool", (None, 3)),
            TensorSpec("series", "float64", (None, None))),
    outputs=(TensorSpec("probabilities", "float32", (None, 2)), TensorSpec("classes", "int64", (None,)),
             TensorSpec("embedding", "float16", (None, 4))),
    class_names=None, data="synthetic",
)
CARD_NAMES = (*BUNDLED, "default", "mixed")


@lru_cache(maxsize=None)
def card(name: str) -> ModelCard:
    """A card by name: a bundled model's (read from models/), ``default`` (codecs.CIFAR10_CARD) or ``mixed``."""
    if name == "default":
        return CIFAR10_CARD
    if name == "mixed":
        return MIXED
    return read_card(MODELS / name)


def inputs(card: ModelCard, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    return synthetic_inputs(card, n, seed)


def outputs(card: ModelCard, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Outputs of the card's dtypes and shapes (variable dims 5), as a model would answer."""
    rng = np.random.default_rng(seed)
    found = {}
    for spec in card.outputs:
        shape = (n, *(5 if d is None else d for d in spec.item_shape))
        kind = spec.np_dtype.kind
        if kind == "f":
            found[spec.name] = rng.random(shape).astype(spec.dtype)
        elif kind in "iu":
            found[spec.name] = rng.integers(0, 10, shape).astype(spec.dtype)
        else:
            found[spec.name] = rng.random(shape) < 0.5
    if card.probabilities is not None and "classes" in found:
        found["classes"] = found[card.probabilities.name].argmax(axis=1).astype(card.output("classes").dtype)
    return found
