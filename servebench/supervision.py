"""Worker processes that never outlive their master.

gunicorn and uvicorn fork (or spawn) workers that keep serving if their
master is killed outright (SIGKILL, OOM): nobody restarts them, nobody stops
them, and a benchmark would measure an unsupervised half-stack. Each worker
asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``),
so it shuts down like on a normal stop. The native runner also stops a
service's whole process group on ``down`` and reports a service whose master
is gone as degraded (:mod:`servebench.stack`); this is the second line.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Deliver ``sig`` to this process when its parent exits; False where unsupported.

    ``parent`` is the master's pid as the caller knows it. Give it wherever the
    call can come late (a spawned worker arms this only after its imports): a
    master killed before the call is then caught too, by the check below;
    without it only one that dies after ``os.getppid()`` here is. (In a
    container the master may itself be PID 1, so a parent of 1 proves nothing.)
    """
    if not sys.platform.startswith("linux"):
        return False
    if parent is None:
        parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True
