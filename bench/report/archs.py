"""Architectures as the report shows them: registry order, titles and colours.

An architecture found in old results but no longer registered keeps its name as
its title, is drawn grey and sorts after the registered ones.
"""
from __future__ import annotations

from servebench import registry

UNKNOWN_COLOR = "tab:gray"


def known() -> tuple[str, ...]:
    return registry.names()


def record(arch: str | None) -> registry.Architecture | None:
    try:
        return registry.get(arch) if arch else None
    except ValueError:
        return None


def title(arch: str | None) -> str:
    found = record(arch)
    return found.title if found else (arch or "?")


def color(arch: str | None) -> str:
    found = record(arch)
    return found.color if found else UNKNOWN_COLOR


def order(arch: str | None) -> tuple[int, str]:
    names = registry.names()
    return (names.index(arch) if arch in names else len(names), arch or "")
