"""What every result records about where and how it was measured."""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "tensorflow", "keras", "numpy", "Django", "gunicorn", "Flask", "fastapi", "uvicorn",
    "urllib3", "grpcio", "tensorflow-serving-api", "locust", "psutil",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=5)
        found["nginx"] = (out.stderr or out.stdout).strip().split("/")[-1] or None
    except (OSError, subprocess.SubprocessError):
        found["nginx"] = None
    return found


def machine() -> dict:
    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "cpu_affinity": len(psutil.Process().cpu_affinity()) if hasattr(psutil.Process(), "cpu_affinity") else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def same_machine_key(machine: dict) -> tuple:
    """What makes two records' machines the same for CPU figures: the CPU model and the logical CPUs."""
    return (machine.get("cpu_model"), machine.get("logical_cpus"))


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{commit}-dirty" if commit and dirty else commit
    except (OSError, subprocess.SubprocessError):
        return None


def run_id(label: str) -> str:
    """Sortable and unique enough: UTC time plus what ran."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{label}"


def record() -> dict:
    return {
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": versions(),
        "machine": machine(),
    }
