"""The results schema: one typed run record, versioned, written by every writer and read by the report.

Every run folder holds one ``summary.json``: a :class:`RunRecord`. The header
(what ran, where, with which settings and versions) is typed and the same for
every kind of run; the measurements follow as kind-specific fields (a bench
run's latency and throughput, a study's frames per second or cost table),
kept as they are written. :func:`write` stamps :data:`SCHEMA_VERSION`;
:func:`read` returns records of any version in the current shape, upgrading
older ones in :func:`migrate` (the one place that knows the old shapes).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 2
FILE = "summary.json"
# Said beside every number of a run whose inputs were generated from the model's specs (``synthetic_inputs``).
SYNTHETIC_LABEL = "synthetic inputs"


class Provenance(BaseModel):
    """Where and with what a run was measured (bench.provenance.record())."""

    model_config = ConfigDict(extra="allow")

    created_utc: str | None = None
    git_commit: str | None = None
    versions: dict[str, Any] = Field(default_factory=dict)
    machine: dict[str, Any] = Field(default_factory=dict)


class RunRecord(BaseModel):
    """One run's ``summary.json``. Fields beyond the header are the kind's measurements."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    schema_version: int = SCHEMA_VERSION
    kind: str  # bench, load, soak, reference, or a study's own kind
    run_id: str
    study: str | None = None  # the study whose experiment wrote it, when one did
    arch: str | None = None
    runtime: str | None = None
    interrupted: bool = False
    settings: dict[str, Any] = Field(default_factory=dict)  # what the harness was asked to do
    stack: dict[str, Any] | None = None  # url, runtime, knobs in force, services, /v1/info
    provenance: Provenance = Field(default_factory=Provenance)

    def get(self, *keys: str, default=None):
        """A nested value of the record (header or measurements), or ``default``."""
        value: Any = self
        for key in keys:
            if isinstance(value, BaseModel):  # a field, or an extra field of the record
                fields = {**type(value).model_fields, **(value.model_extra or {})}
                if key not in fields:
                    return default
                value = getattr(value, key)
            elif isinstance(value, dict) and key in value:
                value = value[key]
            else:
                return default
        return value

    def doc(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def synthetic_label(run) -> str:
    """"synthetic inputs" for a run (a record, a summary dict or the report's run) measured on generated
    inputs, else ""."""
    get = getattr(run, "get", None)
    return SYNTHETIC_LABEL if get is not None and get("synthetic_inputs") else ""


class SchemaError(ValueError):
    """A summary.json that is not a run record of any known version."""


def migrate(doc: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """A document of any schema version in the current shape (a copy).

    Version 1 (before the schema had a version): provenance fields stood at the
    top level in reference runs, and a reference run had no run_id.
    """
    if not isinstance(doc, dict):
        raise SchemaError("summary.json is not an object")
    doc = dict(doc)
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise SchemaError(f"schema_version {version!r} is newer than this code reads ({SCHEMA_VERSION})")
    if version == 1:
        prov = dict(doc.get("provenance") or {})
        for key in ("created_utc", "git_commit", "versions", "machine"):
            if key in doc and key not in prov:
                prov[key] = doc.pop(key)
        doc["provenance"] = prov
        doc.setdefault("run_id", run_id or prov.get("created_utc") or "unknown")
        if doc.get("kind") in ("bench", "load", "soak"):
            doc.setdefault("study", None)
        doc["schema_version"] = SCHEMA_VERSION
    if "kind" not in doc:
        raise SchemaError("summary.json has no kind")
    return doc


def parse(doc: dict[str, Any], run_id: str | None = None) -> RunRecord:
    try:
        return RunRecord.model_validate(migrate(doc, run_id))
    except SchemaError:
        raise
    except ValueError as exc:  # pydantic's ValidationError
        raise SchemaError(str(exc).splitlines()[0] + f" ({exc.errors()[0]['loc']})"
                          if hasattr(exc, "errors") else str(exc)) from None


def read(path: Path | str) -> RunRecord:
    """The record in ``path`` (a run folder or its summary.json), upgraded to the current schema."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SchemaError(f"unreadable {path.name}: {exc}") from None
    return parse(doc, run_id=path.parent.name)


def write(path: Path | str, record: RunRecord | dict[str, Any]) -> Path:
    """Validate and write a record atomically (a reader never sees half a summary); returns the file."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    if isinstance(record, dict):
        record = RunRecord.model_validate({**record, "schema_version": SCHEMA_VERSION})
    doc = record.model_dump()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
