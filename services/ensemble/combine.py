"""How an ensemble answers: call its members (serially, or all at once), average what came back.

One implementation for every variant: the coordinator's members are HTTP calls
to their functions (:mod:`services.ensemble.remote`), the in-process reference's
are inference cores in the same process (:mod:`services.ensemble.inprocess`).
A member is a name and a callable ``images -> Prediction`` that raises on failure.

- ``serial``: one member after another; the time is the sum of theirs.
- ``parallel``: all at once in threads; the answer waits for every member
  (or its timeout), so the time is the slowest member's.
- ``deadline_ms`` (Clipper's deadline): answer at the deadline with the average
  of the members that have answered by then, and say which were used. Serially,
  no further member is called once the deadline has passed.

A member that fails or times out is left out; only when none answered is the
request failed (:class:`NoMemberAnswered`: 504 when every member timed out or
was late, else 502). A member scaled to zero (:mod:`services.ensemble.scaling`)
answers a :class:`Started`: its prediction and the start this call paid.
"""
from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from servebench.codecs import Prediction

MODES = ("serial", "parallel")

ANSWERED, FAILED, TIMED_OUT, LATE, SKIPPED = "answered", "failed", "timed out", "late", "skipped"

Member = Callable[[np.ndarray], "Prediction | Started"]


class MemberTimedOut(Exception):
    """A member call that ran past its own timeout (the remote client raises it)."""


@dataclass
class Started:
    """A member's answer when the call first waited for the member to start (it had been scaled to zero)."""

    prediction: Prediction
    start_ms: float


@dataclass
class MemberOutcome:
    status: str  # ANSWERED, FAILED, TIMED_OUT, LATE (deadline passed first), SKIPPED (serial, after the deadline)
    ms: float | None = None  # the call's time (a start included); None when it was not called or had not finished
    error: str = ""
    prediction: Prediction | None = field(default=None, repr=False)
    start_ms: float | None = None  # the part of ``ms`` spent waiting for the member to start (a cold start)

    def doc(self) -> dict:
        out = {"status": self.status, "ms": None if self.ms is None else round(self.ms, 3)}
        if self.start_ms is not None:
            out["start_ms"] = round(self.start_ms, 3)
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class EnsembleResult:
    prediction: Prediction
    mode: str
    deadline_ms: float
    outcomes: dict[str, MemberOutcome]
    total_ms: float

    @property
    def used(self) -> list[str]:
        return [name for name, o in self.outcomes.items() if o.status == ANSWERED]

    def doc(self) -> dict:
        """What the response says: mode, deadline, the members used, and each member's outcome and time."""
        return {"mode": self.mode, "deadline_ms": self.deadline_ms or None, "used": self.used,
                "members": {name: o.doc() for name, o in self.outcomes.items()}, "ms": round(self.total_ms, 3)}

    def timing(self) -> list[tuple[str, float, str]]:
        """One Server-Timing entry per member: (name, ms, outcome); and one per member this request started
        (``start-<name>``, the start's part of its ms)."""
        out = [(f"member-{name}", o.ms or 0.0, o.status) for name, o in self.outcomes.items()]
        return out + [(f"start-{name}", o.start_ms, "cold start") for name, o in self.outcomes.items()
                      if o.start_ms is not None]


class NoMemberAnswered(Exception):
    def __init__(self, outcomes: dict[str, MemberOutcome]):
        self.outcomes = outcomes
        waited = all(o.status in (TIMED_OUT, LATE, SKIPPED) for o in outcomes.values())
        self.status = 504 if waited else 502
        what = "; ".join(f"{n} {o.status}" + (f" ({o.error})" if o.error else "") for n, o in outcomes.items())
        super().__init__(f"no ensemble member answered: {what}")
        self.message = str(self)


def average(predictions: list[Prediction]) -> Prediction:
    """The ensemble's answer: the mean of the members' softmax probabilities, and its argmax."""
    probs = np.mean(np.stack([p.probabilities.astype(np.float32) for p in predictions]), axis=0)
    return Prediction(classes=probs.argmax(axis=1), probabilities=probs)


def _call(member: Member, images: np.ndarray) -> MemberOutcome:
    start = time.perf_counter()
    try:
        pred = member(images)
        if isinstance(pred, Started):
            return MemberOutcome(ANSWERED, (time.perf_counter() - start) * 1000.0, prediction=pred.prediction,
                                 start_ms=pred.start_ms)
    except MemberTimedOut as exc:
        return MemberOutcome(TIMED_OUT, (time.perf_counter() - start) * 1000.0, str(exc))
    except Exception as exc:  # a member's failure is an outcome, never the request's failure
        return MemberOutcome(FAILED, (time.perf_counter() - start) * 1000.0, str(exc) or type(exc).__name__)
    return MemberOutcome(ANSWERED, (time.perf_counter() - start) * 1000.0, prediction=pred)


class Ensemble:
    """Members called ``mode``-wise; ``pool``: the threads parallel calls run in (one per member per request)."""

    def __init__(self, members: Mapping[str, Member], mode: str, deadline_ms: float = 0.0,
                 pool: cf.ThreadPoolExecutor | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown ensemble mode {mode!r}: choose one of {', '.join(MODES)}")
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = dict(members)
        self.mode, self.deadline_ms = mode, float(deadline_ms or 0.0)
        self._own_pool = pool is None and mode == "parallel"
        self.pool = pool or (cf.ThreadPoolExecutor(max_workers=4 * len(self.members), thread_name_prefix="member")
                             if mode == "parallel" else None)

    def __call__(self, images: np.ndarray) -> EnsembleResult:
        start = time.perf_counter()
        outcomes = self._serial(images, start) if self.mode == "serial" else self._parallel(images)
        answered = [o.prediction for o in outcomes.values() if o.status == ANSWERED]
        if not answered:
            raise NoMemberAnswered(outcomes)
        return EnsembleResult(average(answered), self.mode, self.deadline_ms, outcomes,
                              (time.perf_counter() - start) * 1000.0)

    def _serial(self, images, start) -> dict[str, MemberOutcome]:
        outcomes = {}
        for name, member in self.members.items():
            if self.deadline_ms and (time.perf_counter() - start) * 1000.0 >= self.deadline_ms:
                outcomes[name] = MemberOutcome(SKIPPED, error="the deadline had passed")
                continue
            outcomes[name] = _call(member, images)
        return outcomes

    def _parallel(self, images) -> dict[str, MemberOutcome]:
        started = time.perf_counter()
        futures = {name: self.pool.submit(_call, member, images) for name, member in self.members.items()}
        timeout = self.deadline_ms / 1000.0 if self.deadline_ms else None
        cf.wait(futures.values(), timeout=timeout)
        outcomes = {}
        for name, fut in futures.items():
            if fut.done():
                outcomes[name] = fut.result()
            else:  # still running at the deadline: its answer, when it comes, is not used
                outcomes[name] = MemberOutcome(LATE, (time.perf_counter() - started) * 1000.0,
                                               f"no answer within the {self.deadline_ms:g} ms deadline")
        return outcomes

    def close(self) -> None:
        if self._own_pool and self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
