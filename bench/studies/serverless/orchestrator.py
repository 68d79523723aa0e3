"""Records through the stages: P records in flight, stage after stage per record, intermediates in the store.

Keys (all under the bucket):

- ``weights/<model>/<stage>.npz``: each stage's packed model (:func:`deploy`);
- the records themselves (``records/<model>/<size>/r00000.tfrecord``, :func:`upload_records`);
- ``runs/<run>/<record name>/<stage>.npz``: each stage's output for a record; the last stage's
  output is the record's result.

A record whose result exists is skipped (a rerun does only what is missing); a
stage whose output exists is not run again (a rerun resumes a record where it
stopped). Every stage is deterministic and writes one key, so repeating it is
safe: failures of a kind that may pass (the store not answering, a timeout, a
crash) are retried up to ``retries`` times; the others (a corrupt or missing
record, missing weights, out of memory) are not. Each record ends in exactly
one of done, skipped (done before) or failed (with stage, kind and why), so
none is lost or counted twice.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, asdict, dataclass, field
from typing import Callable

import numpy as np

from bench.studies.serverless import handler, records, stages
from bench.studies.serverless.invokers import FunctionSpec, Invocation, Invoker
from bench.studies.serverless.objectstore import Store, StoreError


@dataclass(frozen=True)
class Record:
    name: str  # unique within a run: its outputs are named by it
    key: str
    images: int


@dataclass(frozen=True)
class Pipeline:
    model: str
    functions: tuple[FunctionSpec, ...]  # the stages in order, with their memory and timeout
    run: str  # outputs go under runs/<run>/

    @property
    def stage_names(self) -> list[str]:
        return [f.name.split("-", 1)[1] if "-" in f.name else f.name for f in self.functions]


@dataclass
class Failure:
    record: str
    stage: str
    kind: str
    error: str
    attempts: int


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # their result was already in the store
    failed: list[Failure] = field(default_factory=list)
    invocations: list[dict] = field(default_factory=list)
    images_done: int = 0
    wall_s: float = 0.0
    retries: int = 0

    def summary(self) -> dict:
        return {"done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed),
                "images_done": self.images_done, "wall_s": round(self.wall_s, 3), "retries": self.retries,
                "cost_usd": sum(i["cost_usd"] for i in self.invocations),
                "failures": [asdict(f) for f in self.failed]}


def weights_key(model: str, stage: str) -> str:
    return f"weights/{model}/{stage}.npz"


def output_key(run: str, record: str, stage: str) -> str:
    return f"runs/{run}/{record}/{stage}.npz"


def deploy(store: Store, model_name: str, stage_models: list[tuple[str, object]]) -> dict[str, int]:
    """Put each stage's packed model in the store; bytes per stage."""
    return {stage: store.put(weights_key(model_name, stage), stages.pack(m)) for stage, m in stage_models}


def upload_records(store: Store, prefix: str, images: np.ndarray, labels: np.ndarray, size: int,
                   first_index: int = 0, skip_existing: bool = True) -> list[Record]:
    """Cut ``images`` into records of ``size`` and put them in the store (those already there are kept)."""
    out = []
    for number, (a, b) in enumerate(records.batches(len(images), size)):
        key = records.key(prefix, size, number)
        if not (skip_existing and store.exists(key)):
            store.put(key, records.encode(images[a:b], labels[a:b], np.arange(a, b) + first_index))
        out.append(Record(name=f"{size}-r{number:05d}", key=key, images=b - a))
    return out


def result(store: Store, run: str, record: Record, last_stage: str) -> dict[str, np.ndarray]:
    """A finished record's predictions (probabilities, classes, labels, indices)."""
    import io

    with np.load(io.BytesIO(store.get(output_key(run, record.name, last_stage))), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@dataclass(eq=False)
class Orchestrator:
    invoker: Invoker
    store: Store
    _: KW_ONLY
    parallelism: int = 1  # records in flight
    retries: int = 1
    retry_backoff_s: float = 0.5
    chunk: int = 0  # images a function computes at once (0: the whole record), passed in every event
    log: Callable = print

    def __post_init__(self):
        if self.parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        if self.chunk < 0:
            raise ValueError(f"chunk must be 0 (the whole record) or more images, not {self.chunk}")
        self._lock = threading.Lock()

    def event(self, pipeline: Pipeline, record: Record, i: int) -> dict:
        """The event of stage ``i`` of ``record``: its keys, the chunk and the store."""
        names = pipeline.stage_names
        stage = names[i]
        return {"stage": stage, "record": record.name, "first": i == 0, "last": i == len(names) - 1,
                "input_key": record.key if i == 0 else output_key(pipeline.run, record.name, names[i - 1]),
                "output_key": output_key(pipeline.run, record.name, stage),
                "weights_key": weights_key(pipeline.model, stage), "chunk": self.chunk,
                "store": self.store.config.as_event()}

    def _exists(self, key: str) -> bool:
        """Whether a key is there; a store that does not answer counts as not (the stage then reports it)."""
        try:
            return self.store.exists(key)
        except StoreError:
            return False

    def _record(self, pipeline: Pipeline, record: Record, out: Outcome, t0: float) -> None:
        names = pipeline.stage_names
        if self._exists(output_key(pipeline.run, record.name, names[-1])):
            with self._lock:
                out.skipped.append(record.name)
            return
        for i, spec in enumerate(pipeline.functions):
            if i < len(names) - 1 and self._exists(output_key(pipeline.run, record.name, names[i])):
                continue  # done by an earlier, interrupted run
            event = self.event(pipeline, record, i)
            attempt = 0
            while True:
                attempt += 1
                inv = self._invoke(spec, event)
                row = {**inv.row(), "record": record.name, "stage": names[i], "attempt": attempt,
                       "started_s": round(inv.started_s - t0, 6), "parallelism": self.parallelism}
                with self._lock:
                    out.invocations.append(row)
                if inv.ok:
                    break
                retry = handler.KINDS.get(inv.kind or "", False) and attempt <= self.retries
                self.log(f"  {record.name} {names[i]}: {inv.kind}: {inv.error}"
                         + (f" (retry {attempt}/{self.retries})" if retry else ""))
                if not retry:
                    with self._lock:
                        out.failed.append(Failure(record.name, names[i], inv.kind or "crashed",
                                                  inv.error or "", attempt))
                    return
                with self._lock:
                    out.retries += 1
                time.sleep(self.retry_backoff_s * attempt)
        with self._lock:
            out.done.append(record.name)
            out.images_done += record.images

    def _invoke(self, spec: FunctionSpec, event: dict) -> Invocation:
        try:
            return self.invoker.invoke(spec, event)
        except Exception as exc:  # the invoker itself failed (cannot start a worker...): reported, not raised
            now = time.monotonic()
            return Invocation(function=spec.name, memory_mb=spec.memory_mb, cold=True, ok=False, duration_s=0.0,
                              billed_ms=0, kind="crashed", error=f"{spec.name}: invoker: {type(exc).__name__}: {exc}",
                              started_s=now)

    def run(self, pipeline: Pipeline, recs: list[Record]) -> Outcome:
        names = [r.name for r in recs]
        if len(set(names)) != len(names):
            raise ValueError("record names must be unique within a run (their outputs are named by them)")
        out = Outcome()
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="record") as pool:
            for f in [pool.submit(self._record, pipeline, r, out, t0) for r in recs]:
                f.result()
        out.wall_s = time.monotonic() - t0
        assert len(out.done) + len(out.skipped) + len(out.failed) == len(recs), "a record was lost or counted twice"
        return out
