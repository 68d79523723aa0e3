"""Inference engines, one folder each: the runtime that executes a model (``SB_ENGINE``).

An engine's folder (``servebench/engines/<name>/__init__.py``) declares itself:

- ``NAME``: the folder's name, the value of ``SB_ENGINE``;
- ``RUNS``: the model formats it runs as they are; ``CONVERTS``: those it
  converts first (a format in neither: :class:`EngineError`);
- ``PRECISIONS``: what ``precision`` may ask for (the first is its default);
- ``version()``: the runtime's version (recorded with every result);
- ``convert(card, source, out_dir)``: writes the converted model into
  ``out_dir`` (run in a child process, see :mod:`servebench.engines.cache`);
- ``load(card, artifact, threads, precision) -> Runner``.

The engines are found by walking this package (:func:`engines`): adding one is
adding a folder. Importing a folder imports no runtime; ``load`` does.
"""
from __future__ import annotations

from pathlib import Path

from servebench.engines import cache
from servebench.engines.base import EngineError, Runner, Threads
from servebench.engines.registry import DEFAULT, ENGINES, check, engines, get

__all__ = ["DEFAULT", "ENGINES", "EngineError", "Threads", "Runner", "check", "engines", "get", "open_engine"]


def open_engine(card, engine: str = DEFAULT, threads: Threads = Threads(), precision: str | None = None) -> Runner:
    """``card``'s model loaded on ``engine``: converted first (or found converted in the cache)."""
    module = get(engine)
    check(module, card)
    precision = precision or module.PRECISIONS[0]
    if precision not in module.PRECISIONS:
        raise EngineError(engine, f"precision {precision!r} is not one of {', '.join(module.PRECISIONS)}")
    artifact = Path(card.source) if card.format in module.RUNS else cache.ensure_converted(card, engine)[0]
    try:
        return module.load(card, artifact, threads, precision)
    except EngineError:
        raise
    except Exception as exc:  # the runtime's own error, made one clear line
        raise EngineError(engine, f"cannot load {artifact}: {type(exc).__name__}: {exc}") from None
