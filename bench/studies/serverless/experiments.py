"""The serverless study's runs: AlexNet (random weights: timing and memory only) and the Table 1 CNN as four
memory-limited functions with SeaweedFS between them.

Steps, in order (one run folder, ``results/<id>-serverless/``: summary.json and invocations.csv, one row per
invocation, committed so the report can be redrawn from a clone):

1. ``setup``: the object store (the local SeaweedFS unless SB_SERVERLESS_STORE_ENDPOINT), each stage's
   weights and the whole model's, the records (CIFAR-10 test images, scaled up to 227x227 for AlexNet).
2. ``check``: the CNN's records through its four functions; classes and probabilities against the whole
   model in this process.
3. ``fig3``: per record size, one record through AlexNet's stages at memMax, a record at once as the study
   ran it: cold once, then warm REPEATS times (peak memory and duration per stage, Fig. 3); and Conv_1 cold
   once more in chunks of SB_SERVERLESS_CHUNK images (its memory, chunked against not).
4. ``fig4``: per Fig. 4 size, REPEATS times: the four functions at memMax, cold (a fresh set each), against
   the whole model as one function of the same memory, cold: time and peak memory (Fig. 4).
5. ``fig5``: a fixed set of records at each parallelism P, a fresh set of functions each: total time and
   cost against P (Fig. 5), one run each. Real parallelism stops at this machine's cores.
6. ``tables``: per table size, memMin of each stage found by running once (bench.studies.serverless.sizing),
   then the record REPEATS times at memMax (Fig. 4's runs where the size is one of Fig. 4's) and at memMin,
   cold: time and cost, median with min-max (Tables 1 and 2).
7. ``baseline``: the whole model in this process on the same CPU, REPEATS times per Fig. 3 size.

Every function but Fig. 3's computes SB_SERVERLESS_CHUNK images at a time (0: the whole record).
Scale: SB_SERVERLESS_RECORD_SIZES, _TABLE_SIZES, _FIG4_SIZES, _PARALLELISM, _FIG5_RECORDS, _REPEATS (see
knobs.py); the study's scale is RECORD_SIZES="100 250 500 1000" TABLE_SIZES="1000 500" FIG4_SIZES="100 500 1000"
PARALLELISM="1 2 4 8 16 32 64".
"""
from __future__ import annotations

import csv
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench.options import StudyOptions
from bench.records import RunRecord
from bench.session import RunSession
from bench.studies.serverless import cost, invokers, objectstore, orchestrator as orch, records, sizing, stages
from servebench import data
from servebench.knobs import SectionValues
from servebench.settings import Settings

STUDY = "serverless"
LABELS = {"alexnet": "timing and memory only (random weights)", "cifar10_cnn": "trained (Table 1 CNN)"}
CHECK_IMAGES = 1000  # CNN images checked through the functions (the 10,000 in-process: tests)
WHOLE = "Whole"  # the one-process function: the whole model as a single stage


@dataclass(frozen=True)
class Step:
    name: str
    title: str


def knobs(settings: Settings | None = None) -> SectionValues:
    """The study's knobs in force: ``settings``' (default: the environment's)."""
    return (settings if settings is not None else Settings()).section("serverless")


def store_config(c: SectionValues, local_endpoint: str | None = None) -> objectstore.StoreConfig:
    """Where the study's store is: the knobs' endpoint, else the local SeaweedFS at ``local_endpoint``."""
    return objectstore.StoreConfig(endpoint_url=c.store_endpoint or local_endpoint, bucket=c.store_bucket,
                                   access_key=c.store_access_key, secret_key=c.store_secret_key,
                                   region=c.store_region)


def _sizes(values) -> str:
    return " ".join(map(str, values))


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[Step]:
    """The plan; pure."""
    c = knobs(settings)
    steps = [Step("setup", "object store, weights, records"),
             Step("check", f"CNN through its functions on {min(options.n, CHECK_IMAGES)} images == whole model"),
             Step("fig3", f"AlexNet per stage, records of {_sizes(c.record_sizes)} images, cold then "
                          f"{c.repeats} x warm; Conv_1 in chunks of {c.chunk}"),
             Step("fig4", f"four functions against one process, records of {_sizes(c.fig4_sizes)}, "
                          f"{c.repeats} x each"),
             Step("fig5", f"{c.fig5_records} records of {c.fig5_record_size} at P = {_sizes(c.parallelism)}")]
    if c.memmin:
        steps.append(Step("tables", f"memMin against memMax, records of {_sizes(c.table_sizes)}, "
                                    f"{c.repeats} x each"))
    steps.append(Step("baseline", f"the whole model in one process, {c.repeats} x per Fig. 3 size"))
    return steps


def build_models() -> dict[str, object]:
    import keras

    from models import alexnet

    return {"alexnet": alexnet.build(seed=0),
            "cifar10_cnn": keras.models.load_model(Path(__file__).resolve().parents[3] / "models/cifar10_cnn.keras")}


def _specs(model: str, memory: list[int], timeout_s: float) -> tuple[invokers.FunctionSpec, ...]:
    from models.splits import STAGES

    return tuple(invokers.FunctionSpec(f"{model}-{s}", m, timeout_s) for s, m in zip(STAGES, memory))


def _per_stage(rows: list[dict]) -> dict[str, dict]:
    """The last attempt of each stage (a retried stage's first attempt stays in invocations.csv)."""
    return {r["stage"]: {k: r[k] for k in ("duration_s", "billed_ms", "peak_memory_mb", "cold", "init_s",
                                             "bytes_read", "bytes_written", "cost_usd", "memory_mb", "ok", "kind")}
            for r in rows}


def spread(values: list[float], digits: int = 6) -> dict:
    """Median, min and max of the repeats that ran, and how many."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(values), "median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits)}


class _Recorded:
    """An invoker whose every invocation also becomes a row of invocations.csv (the memMin search's probes)."""

    def __init__(self, invoker, rows: list[dict], extra: dict):
        self.invoker, self.rows, self.extra = invoker, rows, extra
        self.prices = invoker.prices

    def invoke(self, spec: invokers.FunctionSpec, event: dict) -> invokers.Invocation:
        inv = self.invoker.invoke(spec, event)
        self.rows.append({**inv.row(), "stage": event.get("stage"), **self.extra})
        return inv

    def close(self) -> None:
        self.invoker.close()


class _StudyRun:
    """One run's state (store, records, invocations) and its steps; run() calls them in order."""

    def __init__(self, c: SectionValues, store: objectstore.Store, prices: cost.PriceTable, out_dir: Path,
                 log: Callable):
        self.c, self.store, self.prices, self.out_dir, self.log = c, store, prices, out_dir, log
        self.runs = out_dir.name  # the run id: every output key of this run is under runs/<id>/
        self.rows: list[dict] = []  # invocations.csv's
        self.memmax = [c.memory_mb] * 4
        self.split_runs: dict[int, list[dict]] = {}  # record size -> the memMax repeats (Fig. 4 and the tables)
        self.records: dict[int, list[orch.Record]] = {}

    def invoker(self):
        c = self.c
        return invokers.make(c.runtime, self.prices, max_idle=c.max_idle, log_dir=self.out_dir / "logs") \
            if c.runtime != "lambda" else invokers.make("lambda", self.prices)

    def orchestrator(self, inv, parallelism: int = 1, chunk: int | None = None) -> orch.Orchestrator:
        return orch.Orchestrator(inv, self.store, parallelism=parallelism, retries=self.c.retries, log=self.log,
                                 chunk=self.c.chunk if chunk is None else chunk)

    def pipeline(self, memory: list[int], run: str, model: str = "alexnet") -> orch.Pipeline:
        return orch.Pipeline(model, _specs(model, memory, self.c.timeout_s), f"{self.runs}/{run}")

    def collect(self, tag: str, outcome: orch.Outcome, **extra) -> list[dict]:
        rows = [{**r, "experiment": tag, **extra} for r in outcome.invocations]
        self.rows.extend(rows)
        for f in outcome.failed:
            self.log(f"  FAILED {f.record} {f.stage}: {f.kind}: {f.error}")
        return rows

    def through(self, tag: str, memory: list[int], run: str, rec: orch.Record, **extra) -> dict:
        """One record through the four functions, cold (a fresh invoker): its stages and their sums."""
        with self.invoker() as inv:
            o = self.orchestrator(inv).run(self.pipeline(memory, run), [rec])
        rows = _per_stage(self.collect(tag, o, model="alexnet", record_size=rec.images, **extra))
        return {"ok": not o.failed, "stages": rows, "wall_s": round(o.wall_s, 6),
                "time_s": round(sum(v["duration_s"] for v in rows.values()), 6),
                "cost_usd": sum(v["cost_usd"] for v in rows.values()),
                "peak_memory_mb": max((v["peak_memory_mb"] or 0 for v in rows.values()), default=0),
                "failed": [f"{f.stage}: {f.kind}" for f in o.failed]}

    # ------------------------------------------------------------------ fig3
    def fig3(self) -> list[dict]:
        c, out = self.c, []
        for size in c.record_sizes:
            rec = self.records[size][:1]
            with self.invoker() as inv:  # no idle workers yet: the first pass is cold for every size
                for repeat, temp in enumerate(("cold", *["warm"] * c.repeats)):
                    repeat = max(0, repeat - 1)
                    o = self.orchestrator(inv, chunk=0).run(self.pipeline(self.memmax, f"fig3-{temp}-{repeat}"), rec)
                    rows = self.collect("fig3", o, model="alexnet", record_size=size, start=temp, repeat=repeat,
                                        chunk=0)
                    for stage, v in _per_stage(rows).items():
                        out.append({"record_size": size, "stage": stage, "start": temp, "repeat": repeat, "chunk": 0,
                                    **v})
                        if temp == "cold" or repeat == 0:
                            self.log(f"  {size:>5} {stage:<7} {temp}: {v['duration_s']:.2f} s, "
                                     f"peak {v['peak_memory_mb'] or 0:.0f} MB")
            if c.chunk:
                out.append(self._conv1_chunked(rec[0]))
        return out

    def _conv1_chunked(self, rec: orch.Record) -> dict:
        """Conv_1 alone on the record, cold, in chunks of SB_SERVERLESS_CHUNK images."""
        with self.invoker() as inv:
            o = self.orchestrator(inv)
            event = o.event(self.pipeline(self.memmax, "fig3-chunked"), rec, 0)
            spec = _specs("alexnet", self.memmax, self.c.timeout_s)[0]
            inv_ = inv.invoke(spec, event)
        row = {**inv_.row(), "record": rec.name, "stage": "Conv_1", "attempt": 1, "experiment": "fig3",
               "model": "alexnet", "record_size": rec.images, "start": "cold", "repeat": 0, "chunk": self.c.chunk}
        self.rows.append(row)
        self.log(f"  {rec.images:>5} Conv_1  cold, chunks of {self.c.chunk}: {inv_.duration_s:.2f} s, "
                 f"peak {inv_.peak_memory_mb or 0:.0f} MB" + ("" if inv_.ok else f" ({inv_.kind})"))
        return {"record_size": rec.images, "stage": "Conv_1", "start": "cold", "repeat": 0, "chunk": self.c.chunk,
                **_per_stage([row])["Conv_1"]}

    # ------------------------------------------------------------------ fig4 and the tables' memMax
    def memmax_repeats(self, size: int) -> list[dict]:
        if size not in self.split_runs:
            rec = self.records[size][0]
            self.split_runs[size] = [
                self.through("memmax", self.memmax, f"memmax-{size}-{r}", rec, setting="memMax", repeat=r)
                for r in range(self.c.repeats)]
        return self.split_runs[size]

    def one_process(self, size: int, repeat: int) -> dict:
        """The whole model as one function of memMax's memory, cold, on the same record."""
        rec = self.records[size][0]
        spec = invokers.FunctionSpec(f"alexnet-{WHOLE}", self.c.memory_mb, self.c.timeout_s)
        with self.invoker() as inv:
            o = self.orchestrator(inv).run(orch.Pipeline("alexnet", (spec,), f"{self.runs}/one-{size}-{repeat}"),
                                           [rec])
        rows = self.collect("one", o, model="alexnet", record_size=size, setting="one process", repeat=repeat)
        v = _per_stage(rows)[WHOLE]
        return {"ok": not o.failed, "time_s": v["duration_s"], "wall_s": round(o.wall_s, 6),
                "cost_usd": v["cost_usd"], "peak_memory_mb": v["peak_memory_mb"] or 0,
                "failed": [f"{f.stage}: {f.kind}" for f in o.failed]}

    def fig4(self) -> list[dict]:
        out = []
        for size in self.c.fig4_sizes:
            split = self.memmax_repeats(size)
            one = [self.one_process(size, r) for r in range(self.c.repeats)]
            for mode, reps in (("four functions", split), ("one process", one)):
                ok = [r for r in reps if r["ok"]]
                row = {"record_size": size, "mode": mode, "memory_mb": self.c.memory_mb,
                       "chunk": self.c.chunk, "failed": len(reps) - len(ok),
                       "time_s": spread([r["time_s"] for r in ok]), "wall_s": spread([r["wall_s"] for r in ok]),
                       "peak_memory_mb": spread([r["peak_memory_mb"] for r in ok], 1),
                       "cost_usd": spread([r["cost_usd"] for r in ok], 9)}
                out.append(row)
                self.log(f"  {size:>5} {mode}: {row['time_s']['median']} s ({row['time_s']['min']}-"
                         f"{row['time_s']['max']}), peak {row['peak_memory_mb']['median']} MB, n={len(ok)}")
        return out

    # ------------------------------------------------------------------ fig5
    def fig5(self) -> list[dict]:
        c, out = self.c, []
        recs = self.records[c.fig5_record_size][:c.fig5_records]
        for p in c.parallelism:
            with self.invoker() as inv:
                o = self.orchestrator(inv, parallelism=p).run(self.pipeline(self.memmax, f"fig5-p{p}"), recs)
            self.collect("fig5", o, model="alexnet", record_size=c.fig5_record_size)
            s = o.summary()
            vcpus = p * invokers.cgroups.lambda_cpus(c.memory_mb)
            out.append({"parallelism": p, "wall_s": s["wall_s"], "cost_usd": s["cost_usd"], "done": s["done"],
                        "failed": s["failed"], "images": s["images_done"], "vcpus_asked": round(vcpus, 2),
                        "cores_exhausted": vcpus > (os.cpu_count() or 1)})
            self.log(f"  P={p}: {s['wall_s']:.1f} s, ${s['cost_usd']:.5f}, {s['done']} done, {s['failed']} failed")
        return out

    # ------------------------------------------------------------------ tables
    def tables(self) -> list[dict]:
        from models.splits import STAGES

        c, out, grid = self.c, [], self.prices.grid()
        for size in c.table_sizes:
            rec = self.records[size][0]
            maxruns = self.memmax_repeats(size)
            first = next((r for r in maxruns if r["ok"]), None)
            if first is None:
                self.log(f"  {size}: no memMax repeat completed; no memMin search")
                out.append(self._table_row("memMax", size, self.memmax, maxruns))
                continue
            source = f"{self.runs}/memmax-{size}-{maxruns.index(first)}"
            mins, probes = [], {}
            with self.invoker() as real:
                inv = _Recorded(real, self.rows, {"experiment": "memmin-search", "model": "alexnet",
                                                  "record": rec.name, "record_size": size})
                pipe = self.pipeline(self.memmax, f"table-{size}-probe")
                for i, stage in enumerate(STAGES):
                    event = self.orchestrator(inv).event(pipe, rec, i)
                    if i > 0:  # its input: a memMax run's output of the previous stage
                        event["input_key"] = orch.output_key(source, rec.name, STAGES[i - 1])
                    peak = max(r["stages"][stage]["peak_memory_mb"] or 0 for r in maxruns if stage in r["stages"])
                    found = sizing.mem_min(inv, pipe.functions[i], event, grid, peak, log=self.log)
                    mins.append(found.mem_min_mb or c.memory_mb)
                    probes[stage] = found.probes
            self.log(f"  {size}: memMin {dict(zip(STAGES, mins))}")
            minruns = [self.through("memmin", mins, f"memmin-{size}-{r}", rec, setting="memMin", repeat=r)
                       for r in range(c.repeats)]
            out.append(self._table_row("memMax", size, self.memmax, maxruns))
            out.append({**self._table_row("memMin", size, mins, minruns), "probes": probes})
            for row in out[-2:]:
                self.log(f"  {row['setting']}: {row['time_s']} s (min-max {row['time_s_min']}-{row['time_s_max']}), "
                         f"${row['cost_usd']:.6f}, n={row['n']}, failed {row['failed']}")
        return out

    def _table_row(self, setting: str, size: int, memory: list[int], runs: list[dict]) -> dict:
        from models.splits import STAGES

        ok = [r for r in runs if r["ok"]]
        t, usd = spread([r["time_s"] for r in ok]), spread([r["cost_usd"] for r in ok], 9)
        return {"setting": f"{setting}-{size}", "record_size": size, "memory_mb": dict(zip(STAGES, memory)),
                "n": t["n"], "failed": len(runs) - len(ok), "failures": [f for r in runs for f in r["failed"]],
                "time_s": t["median"], "time_s_min": t["min"], "time_s_max": t["max"],
                "cost_usd": usd["median"], "cost_usd_min": usd["min"], "cost_usd_max": usd["max"],
                "cost_per_1000_images": cost.per_images(usd["median"], size) if ok else None,
                "peak_memory_mb": {st: spread([r["stages"][st]["peak_memory_mb"] or 0 for r in ok
                                               if st in r["stages"]], 1) for st in STAGES}}


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    from models.splits import SPLITS

    settings = settings if settings is not None else Settings()
    c = knobs(settings)
    prices = cost.load(c.prices)
    doc: dict = {}  # what was measured
    server = None if c.store_endpoint else objectstore.SeaweedFS(settings, options.run_dir, log=log)
    t_start = time.monotonic()
    session = RunSession(label="serverless", root=options.out, record_errors=True,
                         summary=lambda _: {**doc, "wall_s": round(time.monotonic() - t_start, 1)},
                         header={"kind": "serverless", "study": STUDY, "runtime": c.runtime,
                                 "settings": {**c.recorded(), "n": options.n}, "labels": LABELS,
                                 "prices": prices.recorded(), "cpu_count": os.cpu_count(),
                                 "lambda_mb_per_vcpu": invokers.cgroups.LAMBDA_MB_PER_VCPU})
    with session:
        out_dir = session.run_dir
        if server:
            session.on_close(server.stop)  # before the record: the wall time counts the store's stop
            server.start()
        store = objectstore.Store(store_config(c, server.endpoint_url if server else None))
        study = _StudyRun(c, store, prices, out_dir, log)
        session.on_close(lambda: _write_csv(out_dir / "invocations.csv", study.rows))
        doc["store"] = store.config.recorded()
        store.ensure_bucket()
        log("\n== setup: weights and records")
        models = build_models()
        parts = {name: stages.split(m, SPLITS[name]) for name, m in models.items()}
        doc["weights_bytes"] = {name: orch.deploy(store, name, p) for name, p in parts.items()}
        doc["weights_bytes"]["alexnet"].update(orch.deploy(store, "alexnet", [(WHOLE, models["alexnet"])]))
        test = data.load_test(options.data_dir)
        side = models["alexnet"].inputs[0].shape[1]
        sizes = sorted({*c.record_sizes, *c.table_sizes, *c.fig4_sizes, c.fig5_record_size})
        need = max(max(sizes), c.fig5_records * c.fig5_record_size)
        big = records.resize(test.images[:need], side)
        study.records = {s: orch.upload_records(store, "records/alexnet", big, test.labels[:need], s) for s in sizes}

        log("\n== check: CNN through its four functions")
        n_check = min(options.n, CHECK_IMAGES)
        cnn_recs = orch.upload_records(store, "records/cifar10_cnn", test.images[:n_check], test.labels[:n_check],
                                       min(1000, n_check))
        with study.invoker() as inv:
            o = study.orchestrator(inv).run(study.pipeline(study.memmax, "check", "cifar10_cnn"), cnn_recs)
        study.collect("check", o, model="cifar10_cnn")
        whole = stages.run(models["cifar10_cnn"], test.images[:n_check].astype(np.float32))
        got = [orch.result(store, f"{study.runs}/check", r, "FC") for r in cnn_recs if r.name in o.done]
        if got:
            probs = np.concatenate([g["probabilities"] for g in got])
            idx = np.concatenate([g["indices"] for g in got])
            doc["check"] = {"images": int(len(idx)), "chunk": c.chunk,
                            "classes_equal": bool((probs.argmax(1) == whole[idx].argmax(1)).all()),
                            "max_abs_prob_diff": float(np.abs(probs - whole[idx]).max()),
                            "accuracy": float((probs.argmax(1) == test.labels[idx]).mean())}
            log(f"  {doc['check']}")

        log("\n== fig3: AlexNet stages against images per record (memMax, a record at once), cold then warm")
        doc["fig3"] = study.fig3()
        log("\n== fig4: the four functions against the whole model as one function (memMax, cold)")
        doc["fig4"] = study.fig4()
        log("\n== fig5: total time and cost against parallel workers")
        doc["fig5"] = study.fig5()
        doc["tables"] = []
        if c.memmin:
            log("\n== tables: memMin found by running on the price table's memory grid, then repeats")
            doc["tables"] = study.tables()

        log("\n== baseline: the whole AlexNet in this process")
        base_rows = []
        for size in c.record_sizes:
            x = big[:size].astype(np.float32)
            stages.run(models["alexnet"], x[:2])
            seconds = []
            for _ in range(c.repeats):
                t = time.perf_counter()
                stages.run(models["alexnet"], x)
                seconds.append(time.perf_counter() - t)
            s = spread(seconds, 4)
            base_rows.append({"record_size": size, "seconds": s["median"], "seconds_min": s["min"],
                              "seconds_max": s["max"], "n": s["n"]})
            log(f"  {size}: {s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f}, n={s['n']})")
            del x
        doc["baseline"] = base_rows
    log(f"\nserverless: {session.run_dir}")
    return [session.record]


_CSV_DROP = ("error",)  # long texts: the summary's failures name them


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    cols = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in _CSV_DROP]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
