"""The engines, found by walking this package: a folder is an engine (no list to edit)."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

from servebench.engines.base import EngineError

PACKAGE = "servebench.engines"


def _discover() -> tuple[str, ...]:
    return tuple(sorted(i.name for i in pkgutil.iter_modules([str(Path(__file__).parent)]) if i.ispkg))


ENGINES = _discover()  # the folders' names; the first is not the default, "tensorflow" is
DEFAULT = "tensorflow"


def engines() -> dict[str, ModuleType]:
    return {name: get(name) for name in ENGINES}


def get(name: str) -> ModuleType:
    if name not in ENGINES:
        raise EngineError(name, f"no such engine: choose one of {', '.join(ENGINES)}")
    module = importlib.import_module(f"{PACKAGE}.{name}")
    if getattr(module, "NAME", None) != name:
        raise EngineError(name, f"{module.__file__} declares NAME {getattr(module, 'NAME', None)!r}")
    return module


def check(engine: ModuleType, card) -> None:
    """EngineError unless ``engine`` runs or converts ``card``'s format."""
    if card.format not in (*engine.RUNS, *engine.CONVERTS):
        can = ", ".join(sorted({*engine.RUNS, *engine.CONVERTS}))
        raise EngineError(engine.NAME, f"cannot run a {card.format} model ({card.source}); it takes {can}")
