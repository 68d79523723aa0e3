"""Converted models, cached beside the model under a hash of its source.

``<model folder>/.engines/<engine>/<hash>/`` for a SavedModel (the folder that
holds the versions), ``<folder of the file>/.engines/<engine>/<hash>/`` for a
``.keras`` or ``.onnx`` file; gitignored. The hash covers the source's files
and the engine's version, so a retrained model or an upgraded converter
converts again, and every later load reuses the files. A conversion runs in a
child process (``python -m servebench.engines --convert-into``): the
converters' graphs and errors stay out of the serving process, and a lock file
lets one of several starting workers convert while the others wait.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from servebench.engines.base import EngineError
from servebench.engines.registry import get

CACHE_FOLDER = ".engines"
DONE = "converted.json"  # written last: a folder without it is not a conversion
ERROR_MARK = "servebench-engine-error: "
HASH_CHARS = 16
CONVERT_TIMEOUT_S = 900


def source_hash(source: Path, *salt: str) -> str:
    """sha256 over the source's files (relative names and contents) and ``salt``."""
    source = Path(source)
    digest = hashlib.sha256()
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(source if source.is_dir() else source.parent)).encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    for s in salt:
        digest.update(b"\0" + s.encode())
    return digest.hexdigest()[:HASH_CHARS]


def cache_root(card) -> Path:
    # A SavedModel's source is its version folder: the cache sits beside the versions.
    return Path(card.source).parent / CACHE_FOLDER


def cache_dir(card, engine: str) -> Path:
    module = get(engine)
    return cache_root(card) / engine / source_hash(Path(card.source), engine, module.version())


def _writable(folder: Path) -> Path:
    """``folder``, or the same path under the temporary folder when the model is read-only (a mount)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return folder
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "servebench-engines" / folder.name  # hashes keep models apart
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def ensure_converted(card, engine: str) -> tuple[Path, bool]:
    """The folder of ``card``'s model converted for ``engine`` and whether this call converted it."""
    target = cache_dir(card, engine)
    if (target / DONE).is_file():
        return target, False
    parent = _writable(target.parent)
    target = parent / target.name
    with open(parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be converting the same model
        if (target / DONE).is_file():
            return target, False
        work = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=parent))
        try:
            convert_in_child(card, engine, work)
            (work / DONE).write_text(json.dumps({"engine": engine, "version": get(engine).version(),
                                                 "source": str(card.source), "card": card.to_dict()}, indent=1))
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target, True


def convert_in_child(card, engine: str, out_dir: Path) -> None:
    """Runs the engine's ``convert`` in a child process; its failure becomes one EngineError line."""
    cmd = [sys.executable, "-m", "servebench.engines", "--convert-into", str(out_dir), "--engine", engine,
           "--card-json", json.dumps(card.to_dict())]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S, env=env,
                              cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        raise EngineError(engine, f"converting {card.source} took over {CONVERT_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        marked = [ln[len(ERROR_MARK):] for ln in proc.stderr.splitlines() if ln.startswith(ERROR_MARK)]
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        reason = marked[-1] if marked else (lines[-1] if lines else f"the converter exited {proc.returncode}")
        raise EngineError(engine, f"cannot convert {card.source}: {reason}")
