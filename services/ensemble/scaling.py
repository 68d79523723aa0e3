"""Scale to zero (``SB_ENSEMBLE_IDLE_S``): a member function idle that long is stopped, and the next request
that needs it starts it again and pays the start, as a Lambda function's cold start.

:class:`ScaleToZero` keeps each member's state (running, calls in flight, its last call) and a reaper
thread; :class:`ScaledMember` wraps a member's call so that it starts the member first when needed and
answers :class:`~services.ensemble.combine.Started` (its Server-Timing then has a ``start-<name>`` entry).
What stopping and starting mean is a :class:`Lifecycle`: in a stack, :class:`StackLifecycle`, the
runtime that started it (the member's process stopped by its PID; launched again in its cgroup, awaited
healthy and recorded in the stack's state, so ``make down`` finds the new process).

The idle clock of a member starts with its first call: nothing is stopped while the stack is still
coming up, nor before the first request. A member counts as busy for the whole of a request that uses
it (:meth:`ScaleToZero.request`): serially, the first member is not stopped while the request waits
for the third to start.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from services.ensemble.combine import Member, Started

REAPER_POLL_S = 0.25  # how often idle members are looked for (at most a quarter of the idle time)


class Lifecycle(Protocol):
    def stop(self, member: str) -> None:
        """Stop the member's process."""

    def start(self, member: str) -> None:
        """Start the member and return once it answers its health check; raise when it cannot."""


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: bool = True
    in_flight: int = 0
    last_call: float | None = None  # monotonic; None until the first call
    starts: int = 0
    stops: int = 0


class ScaleToZero:
    """Members stopped after ``idle_s`` without a call (by a reaper thread, :meth:`start_reaper`), started
    again by the call that next needs them."""

    def __init__(self, members, idle_s: float, lifecycle: Lifecycle, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] | None = None):
        if not idle_s > 0:
            raise ValueError(f"SB_ENSEMBLE_IDLE_S must be > 0 to scale members to zero, not {idle_s!r}")
        self.idle_s, self.lifecycle, self.clock = float(idle_s), lifecycle, clock
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self._states = {name: _State() for name in members}
        self._closed = threading.Event()
        self._reaper: threading.Thread | None = None

    def running(self, member: str) -> bool:
        return self._states[member].running

    @contextmanager
    def calling(self, member: str) -> Iterator[float | None]:
        """Around one call of ``member``: start it first if it was scaled to zero. Yields the ms this call
        waited for a start (its own or another call's), None when the member was up."""
        st = self._states[member]
        t0, starts_seen = time.perf_counter(), st.starts
        with st.lock:
            if not st.running:
                self.lifecycle.start(member)  # raises: the member stays at zero and this call fails
                st.running, st.starts = True, st.starts + 1
            st.in_flight += 1
        waited = (time.perf_counter() - t0) * 1000.0 if st.starts != starts_seen else None
        try:
            yield waited
        finally:
            with st.lock:
                st.in_flight -= 1
                st.last_call = self.clock()

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around one request: no member is stopped while it runs, and their idle clocks start at its end."""
        for st in self._states.values():
            with st.lock:
                st.in_flight += 1
        try:
            yield
        finally:
            for st in self._states.values():
                with st.lock:
                    st.in_flight -= 1
                    st.last_call = self.clock()

    def reap(self) -> list[str]:
        """Stop every member idle for ``idle_s`` or more; the names stopped. A member being started or
        called is left alone."""
        now, stopped = self.clock(), []
        for name, st in self._states.items():
            if not st.lock.acquire(blocking=False):
                continue  # being started or stopped
            try:
                if st.running and not st.in_flight and st.last_call is not None and now - st.last_call >= self.idle_s:
                    try:
                        self.lifecycle.stop(name)
                    except Exception as exc:  # the next call's start stops what is left first
                        self.log(f"ensemble: stopping idle member {name} failed: {exc}")
                    st.running, st.stops = False, st.stops + 1
                    stopped.append(name)
            finally:
                st.lock.release()
        return stopped

    def start_reaper(self) -> None:
        poll_s = min(REAPER_POLL_S, self.idle_s / 4)

        def loop() -> None:
            while not self._closed.wait(poll_s):
                for name in self.reap():
                    self.log(f"ensemble: member {name} scaled to zero after {self.idle_s:g} s idle")

        self._reaper = threading.Thread(target=loop, name="ensemble-reaper", daemon=True)
        self._reaper.start()

    def info(self) -> dict[str, dict]:
        return {name: {"running": st.running, "starts": st.starts, "stops": st.stops}
                for name, st in self._states.items()}

    def close(self) -> None:
        self._closed.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)


class ScaledMember:
    """A member behind :class:`ScaleToZero`: a call starts it first when it was scaled to zero."""

    def __init__(self, name: str, member: Member, scaler: ScaleToZero):
        self.name, self.member, self.scaler = name, member, scaler
        self.model = getattr(member, "model", name)

    def __call__(self, images: np.ndarray):
        with self.scaler.calling(self.name) as start_ms:
            pred = self.member(images)
        return pred if start_ms is None else Started(pred, start_ms)

    def healthy(self) -> bool:
        """Scaled to zero counts as available: the next call starts it."""
        if not self.scaler.running(self.name):
            return True
        return getattr(self.member, "healthy", lambda: True)()

    def close(self) -> None:
        if hasattr(self.member, "close"):
            self.member.close()


class StackLifecycle:
    """Members stopped and started by the native runtime that started the stack recorded in ``run_dir``."""

    def __init__(self, run_dir: Path | str, start_timeout_s: float | None = None):
        from servebench import runtime as runtimes

        self.run_dir, self.start_timeout_s = Path(run_dir), start_timeout_s
        self.runtime = runtimes.get("native")
        self._stack = None

    @classmethod
    def of_this_stack(cls, start_timeout_s: float | None = None) -> "StackLifecycle":
        """The lifecycle of the native stack this process belongs to (its marker names the stack's folder)."""
        from servebench import topology

        run_dir = os.environ.get(topology.STACK_MARKER)
        if not run_dir:
            raise ValueError("SB_ENSEMBLE_IDLE_S scales members to zero through the native runtime, and this "
                             "coordinator was not started by it (RUNTIME=docker, or by hand): unset "
                             "SB_ENSEMBLE_IDLE_S or run the stack with RUNTIME=native")
        return cls(run_dir, start_timeout_s)

    def stack(self):
        # Read at the first stop, after the first request: by then the whole stack is up and recorded.
        if self._stack is None:
            st = self.runtime.state(self.run_dir)
            if st is None:
                raise RuntimeError(f"no stack is recorded in {self.run_dir}")
            self._stack = st
        return self._stack

    def stop(self, member: str) -> None:
        self.runtime.stop_service(self.stack(), service_name(member))

    def start(self, member: str) -> None:
        self.runtime.restart_service(self.stack(), service_name(member), self.start_timeout_s)


def service_name(member: str) -> str:
    """The registry service of a member function."""
    return f"ensemble-{member}"
