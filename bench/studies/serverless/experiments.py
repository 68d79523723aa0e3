"""The serverless study's runs: AlexNet (random weights: timing and memory only) and the Table 1 CNN as four
memory-limited functions with SeaweedFS between them.

Steps, in order (one run folder, ``results/<id>-serverless/``: summary.json and invocations.csv):

1. ``setup``: the object store (the local SeaweedFS unless SB_SERVERLESS_STORE_ENDPOINT), each stage's
   weights, the records (CIFAR-10 test images, scaled up to 227x227 for AlexNet).
2. ``check``: the CNN's records through its four functions; classes and probabilities against the whole
   model in this process.
3. ``fig3``: per record size, one record through AlexNet's stages at memMax, cold then warm:
   peak memory and duration per stage (Fig. 3), cold against warm.
4. ``fig5``: a fixed set of records at each parallelism P, a fresh set of functions each: total time and
   cost against P (Fig. 5). Real parallelism stops at this machine's cores.
5. ``tables``: per table size, memMin of each stage found by running (bench.studies.serverless.sizing),
   then the record at memMin: time and cost beside memMax (Tables 1 and 2).
6. ``baseline``: the whole model in one process on the same CPU (the study's single-GPU baseline).

Scale: SB_SERVERLESS_RECORD_SIZES, _TABLE_SIZES, _PARALLELISM, _FIG5_RECORDS (see knobs.py); the study's
scale is RECORD_SIZES="100 250 500 1000" TABLE_SIZES="1000 500" PARALLELISM="1 2 4 8 16 32 64".
"""
from __future__ import annotations

import csv
import os
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


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[Step]:
    """The plan; pure."""
    c = knobs(settings)
    steps = [Step("setup", "object store, weights, records"),
             Step("check", f"CNN through its functions on {min(options.n, CHECK_IMAGES)} images == whole model"),
             Step("fig3", f"AlexNet per stage, records of {' '.join(map(str, c.record_sizes))} images, cold then warm"),
             Step("fig5", f"{c.fig5_records} records of {c.fig5_record_size} at P = {' '.join(map(str, c.parallelism))}")]
    if c.memmin:
        steps.append(Step("tables", f"memMin against memMax, records of {' '.join(map(str, c.table_sizes))}"))
    steps.append(Step("baseline", "the whole model in one process"))
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
    return {r["stage"]: {k: r[k] for k in ("duration_s", "billed_ms", "peak_memory_mb", "cold", "init_s",
                                             "bytes_read", "bytes_written", "cost_usd", "memory_mb", "ok", "kind")}
            for r in rows}


def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    from models.splits import SPLITS, STAGES

    settings = settings if settings is not None else Settings()
    c = knobs(settings)
    prices = cost.load(c.prices)
    all_rows: list[dict] = []  # invocations.csv's, written at the close: its columns are every row's keys
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
        run_id = out_dir.name
        session.on_close(lambda: _write_csv(out_dir / "invocations.csv", all_rows))
        if server:
            session.on_close(server.stop)  # before the record: the wall time counts the store's stop
            server.start()
        store = objectstore.Store(store_config(c, server.endpoint_url if server else None))
        doc["store"] = store.config.recorded()
        store.ensure_bucket()
        log("\n== setup: weights and records")
        models = build_models()
        parts = {name: stages.split(m, SPLITS[name]) for name, m in models.items()}
        doc["weights_bytes"] = {name: orch.deploy(store, name, p) for name, p in parts.items()}
        test = data.load_test(options.data_dir)
        side = models["alexnet"].inputs[0].shape[1]
        sizes = sorted({*c.record_sizes, *c.table_sizes, c.fig5_record_size})
        need = max(max(sizes), c.fig5_records * c.fig5_record_size)
        big = records.resize(test.images[:need], side)
        alex_records = {s: orch.upload_records(store, "records/alexnet", big, test.labels[:need], s) for s in sizes}
        memmax = [c.memory_mb] * 4
        runs = f"{run_id}"

        def make_invoker():
            return invokers.make(c.runtime, prices, max_idle=c.max_idle, log_dir=out_dir / "logs") \
                if c.runtime != "lambda" else invokers.make("lambda", prices)

        def collect(tag: str, outcome: orch.Outcome, **extra) -> list[dict]:
            rows = [{**r, "experiment": tag, **extra} for r in outcome.invocations]
            all_rows.extend(rows)
            for f in outcome.failed:
                log(f"  FAILED {f.record} {f.stage}: {f.kind}: {f.error}")
            return rows

        # -- check: the CNN through its functions equals the whole model
        log("\n== check: CNN through its four functions")
        n_check = min(options.n, CHECK_IMAGES)
        cnn_recs = orch.upload_records(store, "records/cifar10_cnn", test.images[:n_check], test.labels[:n_check],
                                       min(1000, n_check))
        with make_invoker() as inv:
            o = orch.Orchestrator(inv, store, parallelism=1, retries=c.retries, log=log).run(
                orch.Pipeline("cifar10_cnn", _specs("cifar10_cnn", memmax, c.timeout_s), f"{runs}/check"), cnn_recs)
        collect("check", o, model="cifar10_cnn")
        whole = stages.run(models["cifar10_cnn"], test.images[:n_check].astype(np.float32))
        got = [orch.result(store, f"{runs}/check", r, "FC") for r in cnn_recs if r.name in o.done]
        if got:
            probs = np.concatenate([g["probabilities"] for g in got])
            idx = np.concatenate([g["indices"] for g in got])
            doc["check"] = {"images": int(len(idx)), "classes_equal": bool((probs.argmax(1) == whole[idx].argmax(1)).all()),
                            "max_abs_prob_diff": float(np.abs(probs - whole[idx]).max()),
                            "accuracy": float((probs.argmax(1) == test.labels[idx]).mean())}
            log(f"  {doc['check']}")

        # -- fig3 + cold/warm
        log("\n== fig3: AlexNet stages against images per record (memMax), cold then warm")
        fig3 = []
        for size in c.record_sizes:
            rec = alex_records[size][:1]
            with make_invoker() as inv:  # no idle workers yet: the first pass is cold for every size
                for temp in ("cold", "warm"):
                    o = orch.Orchestrator(inv, store, parallelism=1, retries=c.retries, log=log).run(
                        orch.Pipeline("alexnet", _specs("alexnet", memmax, c.timeout_s), f"{runs}/fig3-{temp}"), rec)
                    rows = collect("fig3", o, model="alexnet", record_size=size, start=temp)
                    for stage, v in _per_stage(rows).items():
                        fig3.append({"record_size": size, "stage": stage, "start": temp, **v})
                        log(f"  {size:>5} {stage:<7} {temp}: {v['duration_s']:.2f} s, peak {v['peak_memory_mb'] or 0:.0f} MB")
        doc["fig3"] = fig3

        # -- fig5
        log("\n== fig5: total time and cost against parallel workers")
        fig5 = []
        recs5 = alex_records[c.fig5_record_size][:c.fig5_records]
        for p in c.parallelism:
            with make_invoker() as inv:
                o = orch.Orchestrator(inv, store, parallelism=p, retries=c.retries, log=log).run(
                    orch.Pipeline("alexnet", _specs("alexnet", memmax, c.timeout_s), f"{runs}/fig5-p{p}"), recs5)
            collect("fig5", o, model="alexnet", record_size=c.fig5_record_size)
            s = o.summary()
            vcpus = p * invokers.cgroups.lambda_cpus(c.memory_mb)
            fig5.append({"parallelism": p, "wall_s": s["wall_s"], "cost_usd": s["cost_usd"], "done": s["done"],
                         "failed": s["failed"], "images": s["images_done"], "vcpus_asked": round(vcpus, 2),
                         "cores_exhausted": vcpus > (os.cpu_count() or 1)})
            log(f"  P={p}: {s['wall_s']:.1f} s, ${s['cost_usd']:.5f}, {s['done']} done, {s['failed']} failed")
        doc["fig5"] = fig5

        # -- tables: memMin against memMax
        tables = []
        if c.memmin:
            log("\n== tables: memMin, found by running on the price table's memory grid")
            grid = prices.grid()
            for size in c.table_sizes:
                rec = alex_records[size][:1]
                base = f"{runs}/table-{size}"
                with make_invoker() as inv:
                    o = orch.Orchestrator(inv, store, parallelism=1, retries=c.retries, log=log).run(
                        orch.Pipeline("alexnet", _specs("alexnet", memmax, c.timeout_s), f"{base}-max"), rec)
                    maxrows = _per_stage(collect("table", o, model="alexnet", record_size=size, setting="memMax"))
                    mins, probes = [], {}
                    for i, stage in enumerate(STAGES):
                        spec = _specs("alexnet", memmax, c.timeout_s)[i]
                        event = orch.Orchestrator(inv, store)._event(
                            orch.Pipeline("alexnet", _specs("alexnet", memmax, c.timeout_s), f"{base}-probe"), rec[0], i)
                        if i > 0:  # its input: the memMax run's output of the previous stage
                            event["input_key"] = orch.output_key(f"{base}-max", rec[0].name, STAGES[i - 1])
                        found = sizing.mem_min(inv, spec, event, grid, maxrows[stage]["peak_memory_mb"] or 0, log=log)
                        mins.append(found.mem_min_mb or c.memory_mb)
                        probes[stage] = found.probes
                with make_invoker() as inv:
                    o = orch.Orchestrator(inv, store, parallelism=1, retries=c.retries, log=log).run(
                        orch.Pipeline("alexnet", _specs("alexnet", mins, c.timeout_s), f"{base}-min"), rec)
                    minrows = _per_stage(collect("table", o, model="alexnet", record_size=size, setting="memMin"))
                for setting, rows_, mem in (("memMax", maxrows, memmax), ("memMin", minrows, mins)):
                    tables.append({"setting": f"{setting}-{size}", "record_size": size,
                                   "memory_mb": dict(zip(STAGES, mem)),
                                   "time_s": sum(v["duration_s"] for v in rows_.values()),
                                   "cost_usd": sum(v["cost_usd"] for v in rows_.values()),
                                   "cost_per_1000_images": cost.per_images(sum(v["cost_usd"] for v in rows_.values()),
                                                                           rec[0].images)})
                tables[-1]["probes"] = probes
                log(f"  {size}: memMin {dict(zip(STAGES, mins))}")
        doc["tables"] = tables

        # -- baseline: the whole model in one process
        log("\n== baseline: the whole AlexNet in this process")
        base_rows = []
        for size in c.record_sizes:
            x = big[:size].astype(np.float32)
            stages.run(models["alexnet"], x[:2])
            t = time.perf_counter()
            stages.run(models["alexnet"], x)
            base_rows.append({"record_size": size, "seconds": round(time.perf_counter() - t, 4)})
            log(f"  {size}: {base_rows[-1]['seconds']:.2f} s")
        doc["baseline"] = base_rows
    log(f"\nserverless: {session.run_dir}")
    return [session.record]


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
