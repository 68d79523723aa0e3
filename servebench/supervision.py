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


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Deliver ``sig`` to this process when its parent exits; False where unsupported.

    Call it in the worker, right after the fork or spawn. A parent that dies
    between the prctl call and the check below is caught by the check. (In a
    container the master may itself be PID 1, so a parent of 1 proves nothing.)
    """
    if not sys.platform.startswith("linux"):
        return False
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
