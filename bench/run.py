"""`make bench`: send the model's inputs (the CIFAR-10 test set by default) through a stack's nginx and
record what it costs.

    python -m bench.run --arch ARCH|all [--runtime native|docker] [--n 10000] [--batch 1] [--codec json]
        [--protocol v1|v2|tfserving] [--concurrency 1] [--rate R --arrivals constant|poisson] [--repeats 1]
        [--warmup 50] [--loadgen singlestream|server [--loadgen-qps Q]]

Any model (``SB_MODEL``, ``make bench MODEL=``) with any inputs (``SB_DATA``,
``make bench DATA=``): :mod:`bench.workload` checks both before anything
starts, reads the model card and the inputs, and picks the protocol (v1 for
an image model, KServe v2 for any other). A run on generated inputs says
"synthetic inputs" beside its numbers; accuracy is checked only when the data
has labels and the model is a classifier (else it is None: not checked).

The stack is brought up if none is running (and down again afterwards); a
running stack of the same arch is used as it is. Bodies are encoded first,
then the harness's own overhead is measured (:mod:`bench.overhead`), then
``--warmup`` requests are sent and not counted, then the N images are sent
``--repeats`` times: closed loop with ``--concurrency`` connections, or open
loop at ``--rate`` requests/s (:mod:`bench.client`; the passes are a
:mod:`bench.shapes` shape, :func:`pass_shape`). With ``--loadgen
singlestream|server`` MLPerf LoadGen schedules them instead (:mod:`bench.loadgen`;
at least N queries and ``--loadgen-min-duration`` seconds, over the same
connections and bodies), writes its own logs to ``loadgen/`` and judges the run:
its verdict and figures are the summary's ``loadgen`` field.

Writes ``results/<run-id>/`` (``results/latest`` points at it):

- ``requests.csv``: one row per request; times in s from the run's origin,
  ``latency_ms`` from the scheduled time, labels as space-separated classes,
  the Server-Timing components in ms and nginx's upstream header time in ms;
- ``resources.csv``: CPU and memory per service and for the client, 5 times a
  second (:mod:`bench.resources`);
- ``summary.json``: the run record (:mod:`bench.records`, kind ``bench``):
  settings, stack, provenance, accuracy, errors, latency,
  throughput, Table 3, per-hop medians (``hops_ms``, defined in
  :mod:`bench.timing`), resources, harness overhead and the ratio to the
  in-process reference (``results/reference.json``, from ``make bench-model``).

Table 3 is the docker-serving study's: the elapsed time until the first 1, 10,
100, 1,000 and 10,000 images were answered in each pass, mean and spread over
the repeats (sequential only with concurrency 1 and no rate). Ctrl-C or SIGTERM stops
sending; the rows are kept and the summary says ``"interrupted": true``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from bench import client, loadgen, overhead, records, resources, results, shapes, target, timing, workload
from bench import options as opts
from bench.formats import fmt
from bench.records import RunRecord
from bench.session import RunSession, warm_up
from servebench import registry
from servebench import runtime as runtimes
from servebench.settings import Settings, from_environment


class BenchFailed(RuntimeError):
    """Some architectures of ``--arch all`` could not be run; the others' records are kept."""

    def __init__(self, failed: dict[str, str], done: list[RunRecord]):
        super().__init__("failed: " + ", ".join(failed))
        self.failed, self.done = failed, done


def server_batch(ok: list[client.Result]) -> dict | None:
    """Images per model call as the servers report them (``batch`` in Server-Timing), weighted by
    request, and the batching queue's median wait; None when no server reported a batch."""
    sizes = [timing.batch_size(r.server_timing) for r in ok]
    if all(s is None for s in sizes):
        return None
    return {**timing.batch_summary(sizes, batching_off=False),
            "queue_p50_ms": results.median(r.server_timing.get("queue") for r in ok)}


class Bench:
    """One architecture's run: warm-up, passes, resources, summary."""

    def __init__(self, args: opts.BenchOptions, arch: str, st, requests: list[client.Request], harness: dict,
                 work: workload.Workload | None = None):
        self.args = args
        self.work = work  # the model, its inputs and the protocol (None: the CNN on CIFAR-10 over v1)
        self.rows = work.rows if work is not None else args.n
        self.arch = arch
        self.st = st
        self.requests = requests
        self.harness = harness
        self.client = client.Client(st.url)
        self.passes: list[dict] = []
        self.run_dir: Path | None = None
        self.loadgen: dict | None = None  # with --loadgen: LoadGen's verdict and figures

    def warm_up(self) -> None:
        if self.args.warmup:
            warm_up(self.client, self.requests, self.args.warmup, self.args.pool,
                    warn=lambda text: print(text, file=sys.stderr))

    def measure(self, run_dir: Path) -> RunRecord:
        """The passes in a run session on ``run_dir``; the record it wrote (the table printed)."""
        args, self.run_dir = self.args, run_dir
        self.stack = target.stack_record(self.st)
        session = RunSession(run_dir, header=self._header, summary=self.summary, table=print_table,
                             requests_csv=True, resources_csv=True)
        with session:
            origin = time.perf_counter()
            bar = tqdm(total=self.rows * args.repeats, unit="img", desc=self.arch, disable=not args.progress,
                       dynamic_ncols=True, mininterval=0.5)
            self.session = session
            session.recorder(origin, bar)
            session.sample(lambda: {**self.st.processes(), "client": resources.client_process()},
                           hz=args.sample_hz, origin=origin, parts=runtimes.part_classifiers(self.st))
            session.on_close(self.client.close)
            shapes.drive(pass_shape(args, len(self.requests)), self.run_pass)
        return session.record

    def run_pass(self, level: shapes.Level) -> dict:
        """One pass over the N images as ``level`` says (closed loop, open loop or LoadGen's scenario); its
        record. Ctrl-C ends the pass where it was and goes on to the session."""
        args, recorder, stop = self.args, self.session.rec, self.session.stop
        repeat = recorder.repeat = len(self.passes)
        record = {"repeat": repeat, "start": time.perf_counter(), "end": None}
        self.passes.append(record)
        try:
            if level.kind in (shapes.SINGLESTREAM, shapes.SERVER):
                self.loadgen = loadgen.run(self.client, self.requests, loadgen.level_settings(level),
                                           self.run_dir / "loadgen", recorder, stop)
            elif level.kind == shapes.OPEN:
                offsets = client.arrival_offsets(len(self.requests), level.rate, level.arrivals, args.seed + repeat)
                start = time.perf_counter() + 0.01  # the pool's threads are up before the first request is due
                record["start"] = start
                self.client.open_loop(self.requests, offsets, level.connections, recorder, stop, start)
            else:
                self.client.closed_loop(self.requests, level.concurrency, recorder, stop)
        except KeyboardInterrupt as exc:
            stop.set()
            record["end"] = time.perf_counter()
            if isinstance(exc, loadgen.Interrupted):  # the pass ended at the interrupt, not after LoadGen's drain
                self.loadgen, record["end"] = exc.outcome, exc.at
            raise
        record["end"] = time.perf_counter()
        return record

    # ------------------------------------------------------------ summary
    def _header(self) -> dict:
        return {
            "kind": "bench",
            "study": self.args.study,
            "arch": self.arch,
            "runtime": self.args.runtime,
            "settings": {**self.args.recorded(),
                         **({"protocol": self.work.protocol} if self.work is not None else {})},
            "stack": self.stack,
            "harness_overhead_ms": self.harness.get("median_ms"),
            "harness_overhead": self.harness,
        }

    def summary(self, interrupted: bool) -> dict:
        """The measurements (the session adds the header); ``interrupted`` is in the header."""
        args, sampler = self.args, self.session.sampler
        rows = self.session.rec.results
        doc: dict = {}
        rs = [r for _, r in rows]
        ok = [r for r in rs if r.ok]
        errors: dict[str, int] = {}
        for r in rs:
            if r.status != 200:
                errors[str(r.status)] = errors.get(str(r.status), 0) + 1
        images_ok = sum(r.request.images for r in ok)
        wall = sum((p["end"] or p["start"]) - p["start"] for p in self.passes)
        latency = [r.latency_ms for r in ok]
        doc.update(self.work.record() if self.work is not None else
                   {"data": {"source": "CIFAR-10 test set", "images": args.n}})
        doc.update({
            "requests": {
                "count": len(rs), "ok": len(ok), "errors_by_status": errors,
                "invalid_answers": sum(1 for r in rs if r.status == 200 and r.error),
                "images": sum(r.request.images for r in rs),
            },
            "accuracy": results.accuracy(ok),  # None: not checked (no labels, or not a classifier)
            "latency_ms": results.latency_stats(latency),
            "throughput_images_per_s": results.rounded(images_ok / wall, 2) if wall > 0 else None,
            "wall_s": results.rounded(wall, 3),
            "passes": [self._pass_summary(p, [r for rep, r in rows if rep == p["repeat"]]) for p in self.passes],
            "table3": self._table3(rows),
            "table3_sequential": args.concurrency == 1 and not args.rate and not args.loadgen,
            "hops_ms": self._hops(ok),
            "server_batch": server_batch(ok),
            "resources": sampler.summary(sum(r.request.images for r in rs)),
            "sampler_cpu_seconds": results.rounded(sampler.cpu_seconds, 3),
            "reference": self._reference(results.latency_stats(latency)["p50"]),
        })
        if args.rate:
            lag = [(r.sent - r.scheduled) * 1000.0 for r in rs]
            doc["schedule_lag_ms"] = {k: v for k, v in results.latency_stats(lag).items() if k in ("p50", "p99", "max")}
        if args.loadgen:
            doc["loadgen"] = self.loadgen
        return doc

    def _pass_summary(self, p: dict, rs: list[client.Result]) -> dict:
        wall = (p["end"] or p["start"]) - p["start"]
        images = sum(r.request.images for r in rs if r.ok)
        return {"repeat": p["repeat"], "wall_s": results.rounded(wall, 3), "requests": len(rs), "images_ok": images,
                "images_per_s": results.rounded(images / wall, 2) if wall > 0 else None,
                "complete": p["end"] is not None and len(rs) == len(self.requests)}

    def _table3(self, rows) -> dict:
        """Time from a pass's start until its first k images were answered, over the passes."""
        per_k: dict[int, list[float]] = {k: [] for k in results.TABLE3_SIZES if k <= self.rows}
        for p in self.passes:
            rs = sorted((r for rep, r in rows if rep == p["repeat"]), key=lambda r: r.end)
            if not rs:
                continue
            done = np.cumsum([r.request.images for r in rs])
            for k in per_k:
                at = int(np.searchsorted(done, k))  # first answer that brings the count to k
                if at < len(rs):
                    per_k[k].append(rs[at].end - p["start"])
        return {str(k): results.mean_stdev(v) for k, v in per_k.items() if v}

    @staticmethod
    def _hops(ok: list[client.Result]) -> dict:
        per_hop: dict[str, list] = {h: [] for h in timing.HOPS}
        for r in ok:
            for h, v in timing.hops(r.latency_ms, r.upstream_header_ms, r.server_timing).items():
                per_hop[h].append(v)
        return {h: results.median(v) for h, v in per_hop.items()}

    def _reference(self, p50: float | None) -> dict | None:
        path = Path(self.args.out) / "reference.json"
        try:
            ref = records.read(path)
        except records.SchemaError:
            return None
        ref_p50 = ref.get("latency_ms", "p50")
        if ref_p50 is None or (self.work is not None and ref.get("model", "name") not in (None, self.work.card.name)):
            return None  # none, or another model's: no ratio
        return {"path": str(path), "p50_ms": ref_p50,
                "ratio_p50": results.rounded(p50 / ref_p50, 3) if p50 and ref_p50 else None}


def pass_shape(a: opts.BenchOptions, requests: int) -> shapes.Shape:
    """The run's passes: LoadGen's scenario (its minimum query count N, its connections the run's pool), else
    ``--repeats`` passes of the ``requests`` open loop at ``--rate`` or closed loop."""
    if a.loadgen:
        return shapes.LoadGenScenario(a.loadgen, target_qps=a.loadgen_qps, connections=a.pool, min_queries=a.n,
                                      min_duration_s=a.loadgen_min_duration, max_duration_s=a.loadgen_max_duration,
                                      target_latency_ms=a.loadgen_latency_ms)
    if a.rate:
        return shapes.OpenLoop(a.rate, arrivals=a.arrivals, connections=a.pool, count=requests, repeats=a.repeats)
    return shapes.ClosedLoop(a.concurrency, count=requests, repeats=a.repeats)


# ------------------------------------------------------------------ output
def print_table(doc: dict, run_dir: Path) -> None:
    req, lat, s = doc["requests"], doc["latency_ms"], doc["settings"]
    mode = (f"open loop {s['rate']:g} req/s {s['arrivals']}" if s["rate"] else f"concurrency {s['concurrency']}")
    if s.get("loadgen"):
        mode = f"MLPerf LoadGen {s['loadgen']}" + (f" at {s['loadgen_qps']:g} QPS" if s.get("loadgen_qps") else "")
    label = records.synthetic_label(doc)
    protocol = doc.get("protocol") or {}
    over = f"{protocol['name']} ({protocol['why']}), " if protocol else ""
    print(f"\n{doc['arch']} ({doc['runtime']}): {req['images']} images in {req['count']} requests, batch {s['batch']}, "
          f"{over}{s['codec']}, {mode}, {s['repeats']} pass(es)" + ("  INTERRUPTED" if doc["interrupted"] else "")
          + (f"  [{label}]" if label else ""))
    card = doc.get("model_card")
    if card:
        print(f"  model {card['name']} v{card['version']} ({card['format']}: {card['inputs']}); "
              f"data {doc['data']['source']}" + (f" [{label}]" if label else ""))
    errors = ", ".join(f"{k}: {v}" for k, v in req["errors_by_status"].items()) or "none"
    acc = doc["accuracy"]
    print(f"  accuracy {acc:.4f}" if acc is not None else "  accuracy not checked", f"  errors {errors}"
          f"  throughput {doc['throughput_images_per_s']} images/s  wall {doc['wall_s']} s"
          + (f"  [{label}]" if label else ""))
    if lat["p50"] is not None:
        ref = doc["reference"]
        vs = f"   in-process reference p50 {ref['p50_ms']} ms: x{ref['ratio_p50']}" if ref and ref.get("ratio_p50") else ""
        print(f"  latency ms  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}  mean {lat['mean']}{vs}"
              + (f"  [{label}]" if label else ""))
    lg = doc.get("loadgen")
    if lg:
        lgl = lg["latency_ms"]
        print(f"  LoadGen {lg['scenario']}: {lg['verdict']}  {lg['queries']} queries  {lg['qps']} QPS  "
              f"p50 {lgl['p50']}  p90 {lgl['p90']}  p99 {lgl['p99']} ms  (its logs: {lg['log_dir']}/)")
    hops = "  ".join(f"{h} {v}" for h, v in doc["hops_ms"].items() if v is not None)
    print(f"  hops (median ms): {hops}")
    if doc["table3"]:
        print("  Table 3 (s): " + "  ".join(f"{k}: {v['mean_s']}±{v['stdev_s']}" for k, v in doc["table3"].items()))
    print(f"  {'service':<10}{'cpu %':>8}{'cpu-s/img':>11}{'RSS MB':>9}{'max':>8}{'PSS MB':>9}")
    for name, r in doc["resources"].items():
        print(f"  {name:<10}{fmt(r['cpu_percent_mean']):>8}{fmt(r['cpu_seconds_per_image'], 5):>11}"
              f"{fmt(r['rss_mb_mean']):>9}{fmt(r['rss_mb_max']):>8}{fmt(r['pss_mb_mean']):>9}")
    h = doc["harness_overhead"]
    print(f"  harness overhead {h.get('median_ms')} ms/request (target < {overhead.TARGET_MS}; "
          f"sampler used {doc['sampler_cpu_seconds']} CPU-s)")
    print(f"  results in {run_dir}")


# ------------------------------------------------------------------ main
def _driver(arch: str) -> Callable | None:
    """The architecture's own bench function (``Architecture.driver``, "module:function"), if it declares one."""
    name = registry.get(arch).driver
    if not name:
        return None
    return registry.found(name)


def bench_arch(options: opts.BenchOptions, arch: str, requests: list[client.Request], settings: Settings,
               log: Callable = print, work: workload.Workload | None = None) -> RunRecord:
    """One architecture's run, in the running stack of ``arch`` or one started (and stopped) here."""
    driver = _driver(arch)
    if driver is not None:  # the architecture benches itself (the streaming ones: frames on one connection)
        return driver(options, arch, settings, log)
    harness = overhead.measure(requests, n=options.overhead_requests)
    log(f"{arch}: harness overhead {harness['median_ms']} ms/request against a trivial server")
    with target.stack_for(arch, options.runtime, options.run_dir, settings, log=log) as (st, _started):
        bench = Bench(options, arch, st, requests, harness, work)
        bench.warm_up()
        record = bench.measure(results.new_run_dir(f"bench-{arch}", options.out))
    return record


def prepare(options: opts.BenchOptions, settings: Settings,
            log: Callable = print) -> tuple[workload.Workload, list[client.Request]]:
    """The model's first N input rows, encoded as the run's request bodies (raises CardError or
    data.DatasetError for a model or data that cannot run, before anything starts)."""
    work = workload.load(settings, options.n, seed=options.seed, protocol=options.protocol, codec=options.codec,
                         data_dir=options.data_dir)
    log(work.describe())
    bar = (lambda it: tqdm(it, desc=f"encoding ({work.protocol}, {options.codec})", unit="req", leave=False,
                           disable=not options.progress))
    return work, workload.requests(work, options.batch, options.codec, progress=bar)


def bench(options: opts.BenchOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """Run ``options.arch`` (or each that runs here, for ``all``); the records written, in order.

    Stops after an interrupted run (its record is the last). A stack error ends
    a single architecture's run; with ``all`` the others still run, and
    :class:`BenchFailed` then names the ones that failed.
    """
    if options.arch == "all":
        arches, skipped = target.runnable_arches(options.runtime)
        for arch, why in skipped.items():
            log(f"skipping {arch}: {why}")
        other = target.running(options.runtime, options.run_dir)
        if other is not None:
            raise runtimes.StackError(f"a {other.arch} stack is running; --arch all brings each stack up itself: "
                                      f"`make down RUNTIME={options.runtime}` first")
    else:
        arches = [options.arch]
    if all(_driver(a) is not None for a in arches):  # nothing to encode: their drivers send their own work
        workload.read_model(settings)  # a bad MODEL or DATA fails here, before any server starts
        return [bench_arch(options, a, [], settings, log) for a in arches]
    work, requests = prepare(options, settings, log)
    done: list[RunRecord] = []
    failed: dict[str, str] = {}
    for arch in arches:
        try:
            record = bench_arch(options, arch, requests, settings, log, work)
        except runtimes.StackError as exc:
            if options.arch != "all":
                raise
            print(f"error: {arch}: {exc}", file=sys.stderr)
            failed[arch] = str(exc)
            continue
        done.append(record)
        if record.interrupted:
            return done
    if failed:
        raise BenchFailed(failed, done)
    return done


def main(argv=None) -> int:
    options = opts.parse(opts.BenchOptions, argv, __doc__)

    def work():
        try:
            return bench(options, from_environment())
        except BenchFailed as exc:  # some architectures ran: their records stand
            print(f"{exc}", file=sys.stderr)
            return exc
    done, rc = target.command(work, prefix=f"{options.arch}: ")
    if rc is not None:
        return rc
    if isinstance(done, BenchFailed):
        return 130 if any(r.interrupted for r in done.done) else 1
    return 130 if done and done[-1].interrupted else 0

if __name__ == "__main__":
    sys.exit(main())
