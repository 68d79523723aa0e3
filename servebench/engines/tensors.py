"""Matching an engine's tensors to the card's: converters rename them (``images:0``, ``Identity``, ``output_0``)."""
from __future__ import annotations

import re

import numpy as np

from servebench.engines.base import EngineError

_SUFFIXES = re.compile(r"(:\d+)$")


def _plain(name: str) -> str:
    """``serving_default_images:0`` -> ``images``-comparable forms."""
    return _SUFFIXES.sub("", name)


def match(engine: str, what: str, specs, names: list) -> list[int]:
    """For each card spec, the index of the engine's tensor: by name where every name matches, else by position.

    ``names``: per engine tensor, the names it goes by (a str or a set of them).
    """
    sets = [{_plain(n) for n in ([x] if isinstance(x, str) else x)} for x in names]
    if len(sets) != len(specs):
        raise EngineError(engine, f"the converted model has {len(sets)} {what}s, the card {len(specs)}: "
                                  f"{', '.join(sorted(map(str, names)))} vs {', '.join(s.name for s in specs)}")
    by_name = []
    for spec in specs:
        hits = [i for i, s in enumerate(sets) if spec.name in s]
        if not hits:  # serving_default_images, StatefulPartitionedCall:1 ...
            hits = [i for i, s in enumerate(sets) if any(n.endswith("_" + spec.name) for n in s)]
        by_name.append(hits[0] if len(hits) == 1 else None)
    if None not in by_name and len(set(by_name)) == len(specs):
        return by_name
    return list(range(len(specs)))  # converters keep the order of the signature


def as_card(array, spec) -> np.ndarray:
    """An engine's output in the card's dtype (LiteRT and ORT may give int32 classes)."""
    array = np.asarray(array)
    return array if array.dtype == spec.np_dtype else array.astype(spec.np_dtype, copy=False)
