"""Whether a Docker engine answers: the probe behind an architecture's docker Need and the compose runtime.

Kept apart from :mod:`servebench.compose` so that the registry can ask without importing a runtime.
"""
from __future__ import annotations

import subprocess

from servebench.settings import client_env


def engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], env=client_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
