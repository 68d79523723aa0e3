"""How a knob is declared: :func:`knob`, the groups that receive knobs, and :class:`KnobSection`.

A folder under ``services/`` or ``bench/studies/`` (or a tool, ``bench/knobs.py``)
declares its knobs in its own ``knobs.py`` as ``class Knobs(KnobSection)``;
:mod:`servebench.settings` finds every such section and merges it into the one
``Settings`` model. A knob's environment variable is ``SB_<FIELD>``
(:func:`env_name`).
"""
from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, Field

ENV_PREFIX = "SB_"

# Who receives a knob: a service's name, or a group every service in it belongs
# to (see servebench.registry.Service.groups).
MODEL = "model"  # runs the model in Python: the front end (embedded) and the model servers
MODEL_SERVER = "model-server"  # a Python model server behind the front end


def knob(default: Any, doc: str, to: tuple[str, ...], recorded: bool = True, **kw) -> Any:
    """A serving knob: a field that the topology passes to the services ``to`` (names or groups).

    ``recorded=False``: never recorded with results nor shown by ``/v1/info`` (ports, addresses:
    they only help an attacker, and the harness records the ports itself).
    """
    extra: dict[str, Any] = {"to": list(to)}
    if not recorded:
        extra["recorded"] = False
    return Field(default, description=doc, json_schema_extra=extra, **kw)


def not_recorded(to: tuple[str, ...] = (), **kw) -> Any:
    """A field that is not a knob and is never recorded (a path, an address, a secret).

    ``to``: the processes it is still passed to (a path one writes), as a knob is.
    """
    extra: dict[str, Any] = {"recorded": False}
    if to:
        extra["passed_to"] = list(to)
    return Field(json_schema_extra=extra, **kw)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def env_value(value: Any) -> str:
    """How a value is written in an environment variable (and read back by the settings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def split_list(value: Any) -> Any:
    """A comma- or space-separated variable as a tuple (for ``Annotated[tuple[str, ...], NoDecode]`` fields)."""
    if isinstance(value, str):
        return tuple(v for v in re.split(r"[,\s]+", value) if v)
    return value


def split_ints(value: Any) -> Any:
    """A comma- or space-separated variable of integers as a tuple (``"100 250"`` -> ``(100, 250)``)."""
    value = split_list(value)
    return tuple(int(v) for v in value) if isinstance(value, tuple) else value


class KnobSection(BaseModel):
    """A part of the settings model: a folder's ``Knobs`` subclasses it with fields and validators.

    A study's or a tool's section names itself (``section_name = "offload"``): its fields
    named ``<section>_*`` are then read together under their short names
    (``settings.section("offload").link_mbit`` is ``SB_OFFLOAD_LINK_MBIT``), and a
    variable of theirs given empty means its default (make passes unset ones so).
    """

    section_name: ClassVar[str] = ""


class SectionValues:
    """A named section's values under their short names, read-only: ``settings.section("offload").link_mbit``."""

    __slots__ = ("name", "_values", "_recorded")

    def __init__(self, name: str, values: dict[str, Any], recorded: tuple[str, ...]):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_recorded", recorded)

    def __getattr__(self, short: str) -> Any:
        try:
            return self._values[short]
        except KeyError:
            raise AttributeError(f"section {self.name!r} has no knob {short!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a section's values are read-only")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SectionValues) and (self.name, self._values) == (other.name, other._values)

    def __repr__(self) -> str:
        return f"SectionValues({self.name!r}, {self._values!r})"

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def recorded(self) -> dict[str, Any]:
        """What the study's records keep, by short name: its values without paths and secrets (lists for tuples)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._values.items() if k in self._recorded}
