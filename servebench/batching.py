"""Server-side dynamic batching: requests that arrive together run as one model call.

One :class:`Batcher` per model process. Request threads (gthread workers,
FastAPI's inference threads) :meth:`~Batcher.submit` their decoded inputs and
wait on a future; one model thread takes the oldest waiting request, then
gathers more until the batch holds ``max_size`` rows or ``timeout_ms`` has
passed since that oldest request arrived, runs one model call on the
concatenated inputs and hands each request its own rows back.

Any model whose inputs and outputs share the batch dimension (the first) is
batched: a request is a dict of arrays by input name (each input concatenated
along axis 0) and the model answers a dict by output name (every output split
back per request); a bare array in and a :class:`Prediction` out (the stream
server's images) work the same way.

- Validation happens before :meth:`~Batcher.submit`: a bad request never joins
  a batch, so it fails alone.
- A request is never split: one that carries more than ``max_size`` images runs
  as a batch of its own, and one that would overflow the batch waits for the next.
- Each answer says how long its request queued (arrival to the start of its
  model call), the model call's time and the batch's size, for ``Server-Timing``.
- ``timeout_ms=0`` takes what is waiting and never waits for more. Then a request
  called from a thread (:meth:`~Batcher.__call__`) that finds the model idle and
  nobody waiting runs its batch of one in its own thread, as without batching:
  handing it to the model thread and back costs two thread switches (measured:
  the p50 at concurrency 1 and the throughput at low concurrency paid for them)
  and there is nothing to batch it with. Requests that come while that call
  runs queue up, and the model thread runs them as one batch once it ends.

With ``max_size=1`` there is nothing to batch; servers then call the model in
the request's own thread (:class:`servebench.endpoint.LocalModel`), exactly as
before batching existed.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

from servebench.types import Prediction

log = logging.getLogger(__name__)


Batch = Union[np.ndarray, Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class BatchResult:
    outputs: Any  # this request's rows only: a dict by output name (or a Prediction, for a predict function)
    queue_ms: float  # from submit to the start of the model call that answered it
    model_ms: float  # that model call, for the whole batch
    batch_size: int  # rows in that model call

    @property
    def prediction(self) -> Prediction:
        return self.outputs


def rows(batch: Batch) -> int:
    """A request's batch size: its first dimension (every input shares it)."""
    if isinstance(batch, Mapping):
        return len(next(iter(batch.values())))
    return len(batch)


def concatenate(batches: list) -> Batch:
    if len(batches) == 1:
        return batches[0]
    if isinstance(batches[0], Mapping):
        return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    return np.concatenate(batches)


def split(result, start: int, stop: int, total: int):
    """Rows start:stop of every output of a model call over ``total`` rows."""
    if isinstance(result, Prediction):
        return Prediction(classes=result.classes[start:stop], probabilities=result.probabilities[start:stop])
    if isinstance(result, Mapping):
        bad = [name for name, arr in result.items() if len(arr) != total]
        if bad:
            raise ValueError(f"output {bad[0]!r} has {len(result[bad[0]])} rows for a batch of {total}: "
                             "its first dimension is not the batch")
        return {name: arr[start:stop] for name, arr in result.items()}
    return result[start:stop]


@dataclass
class _Item:
    images: Batch  # the request's inputs
    arrived: float
    future: Future


class BatcherClosed(RuntimeError):
    pass


class Batcher:
    def __init__(self, predict: Callable[[Batch], Any], max_size: int, timeout_ms: float,
                 name: str = "batcher"):
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if timeout_ms < 0:
            raise ValueError(f"timeout_ms must be >= 0, got {timeout_ms}")
        self.predict = predict
        self.max_size, self.timeout_ms = max_size, timeout_ms
        self.timeout_s = timeout_ms / 1000.0
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False  # a model call is running (the model thread's, or one run in a caller's thread)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, images: Batch) -> Future:
        """A future of this request's :class:`BatchResult` (or of the model's exception); ``images``:
        the inputs by name, or one array."""
        item = _Item(images, time.perf_counter(), Future())
        with self._cond:
            if self._closed:
                raise BatcherClosed("the batcher is closed")
            self._queue.append(item)
            self._cond.notify()
        return item.future

    def __call__(self, images: Batch) -> BatchResult:
        """This request's :class:`BatchResult`, waiting for it in the calling thread (see the module's notes on
        ``timeout_ms=0``: an idle model runs it here)."""
        if self.timeout_s == 0:
            with self._cond:
                inline = not (self._busy or self._queue or self._closed)
                if inline:
                    self._busy = True
            if inline:
                item = _Item(images, time.perf_counter(), Future())
                try:
                    self._run([item])
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify()  # what queued meanwhile is the model thread's next batch
                return item.future.result()
        return self.submit(images).result()

    def idle(self) -> bool:
        """No model call running and nobody waiting: a request now would run at once, alone."""
        with self._cond:
            return not (self._busy or self._queue)

    def runs_inline(self) -> bool:
        """Whether a request called now would run at once in the caller's thread (no wait, and the model idle):
        an event loop then hands it to a thread rather than awaiting a batch of one."""
        return self.timeout_s == 0 and self.idle()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    # ------------------------------------------------------------ model thread
    def _take(self) -> list[_Item] | None:
        """The next batch, or None once closed and drained."""
        with self._cond:
            while not self._queue or self._busy:
                if self._closed and not self._queue:
                    return None
                self._cond.wait()
            self._busy = True
            first = self._queue.popleft()
            batch, size = [first], rows(first.images)
            deadline = first.arrived + self.timeout_s
            while size < self.max_size:
                if self._queue:
                    nxt = rows(self._queue[0].images)
                    if size + nxt > self.max_size:
                        break  # it waits for the next batch rather than be split
                    batch.append(self._queue.popleft())
                    size += nxt
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False

    def _run(self, batch: list[_Item]) -> None:
        start = time.perf_counter()
        try:
            images = concatenate([it.images for it in batch])
            size = rows(images)
            result = self.predict(images)
            model_ms = (time.perf_counter() - start) * 1000.0
            parts, offset = [], 0
            for it in batch:
                n = rows(it.images)
                parts.append(split(result, offset, offset + n, size))
                offset += n
        except BaseException as exc:  # every request of the batch learns why; the thread goes on
            log.exception("batched model call failed (%d requests)", len(batch))
            for it in batch:
                if it.future.set_running_or_notify_cancel():
                    it.future.set_exception(exc)
            return
        for it, part in zip(batch, parts):
            if it.future.set_running_or_notify_cancel():
                it.future.set_result(BatchResult(part, (start - it.arrived) * 1000.0, model_ms, size))
