"""Ctrl-C and SIGTERM: stop measuring at once, but always finish cleaning up.

A run that is interrupted keeps what it measured and stops what it started.
The first SIGINT/SIGTERM interrupts the measurement (a ``KeyboardInterrupt``);
the teardown that follows (closing files, writing the summary, stopping
services) runs inside :func:`shielded`, where further signals are counted
instead of raised: they make the teardown hurry (shorter grace periods before
SIGKILL, see :func:`hurry`) but can never skip it. When the shielded block
ends, a signal that arrived during it is raised as ``KeyboardInterrupt``, so
the program still exits as interrupted.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"depth": 0, "received": []}


def hurry() -> bool:
    """True when a signal arrived during the current teardown: wait less, kill sooner."""
    return bool(_state["received"])


@contextmanager
def shielded():
    """Run a teardown to its end whatever signals arrive (main thread only; nested calls are free)."""
    if threading.current_thread() is not threading.main_thread() or _state["depth"]:
        _state["depth"] += 1
        try:
            yield
        finally:
            _state["depth"] -= 1
        return

    def count(signum, frame):
        _state["received"].append(signum)

    previous = {s: signal.signal(s, count) for s in _SIGNALS}
    _state["depth"] = 1
    try:
        yield
    finally:
        _state["depth"] = 0
        for s, handler in previous.items():
            signal.signal(s, handler)
        received, _state["received"] = _state["received"], []
    if received:
        raise KeyboardInterrupt(f"signal {received[0]} during teardown")


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM ends a run as Ctrl-C does (rows kept, summary written, stack brought down)."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
