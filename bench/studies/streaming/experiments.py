"""The runs behind the streaming section, in one record (kind ``streaming``).

1. In process (no server, no network): the CIFAR-10 CNN at batch 1 as fast as
   possible and at 30 frames/s, in this process. The ceiling of the goal.
2. Loopback, CIFAR-10 CNN, raw frames, one ``stream`` stack (its nginx serves
   all three doors): stream-tcp, stream-ws, stream-grpc as fast as possible
   (window ``SB_STREAM_WINDOW``) and at 5, 15, 30 and 60 frames/s; then
   stream-tcp with JPEG frames. Then (group ``batched``) stream-tcp with
   server-side batching on (``SB_STREAMING_BATCH_SIZE`` as
   ``SB_BATCH_MAX_SIZE``, ``SB_STREAMING_BATCH_TIMEOUT_MS``, the same window):
   its headline streams, as fast as possible and at 30 frames/s, beside
   batching off, each pass recording the server's mean batch (its /v1/info).
3. The per-request baselines on the FastAPI stack, the same frames and
   schedule: a keep-alive connection per frame in flight (``http``) and a
   new connection for every frame (``http-new``, the study's "without a
   streaming server").
4. The "instance types": the streaming model process under a CPU quota of
   0.5, 1 and 2 cores (``SB_STREAM_MODEL_CPUS``, a cgroup), YOLO v3 tiny's
   layers at 416x416 (random weights: timing only) and the CIFAR-10 CNN,
   time per image as fast as possible over stream-tcp.
5. A shaped link (``servebench.netns``: the client in its own namespace, a
   veth pair, ``tc tbf`` at ``LINK_MBIT``, no delay): stream-tcp with raw and
   JPEG frames of both models, bytes on the wire per frame read from the
   namespace's interface counters.
6. Round trips (group ``rtt``): stream-tcp against HTTP keep-alive and HTTP
   with a new connection per frame over a delayed link (netem is not in this
   kernel: TUN devices and the userspace delay element of
   ``servebench.delay_link``; one link per stack, its delay changed in place)
   at each of ``SB_STREAMING_RTTS_MS``, the RTT measured (TCP connect time)
   before each, as fast as possible and at 30 frames/s.
   5 and 6 are skipped with the reason where namespaces cannot be made.

The headline streams (1., stream-tcp batched or not and both baselines at
full speed and at 30 frames/s in 2.-3., and every cell of 6.) run ``SB_STREAMING_REPEATS`` passes
each, one row per pass (``repeat``); the HTTP baselines alternate which goes
first in each round, so neither always meets the stack fresh, and their
as-fast-as-possible passes get at least ``KEEPALIVE_ROUNDS`` rounds. The rest run
once. Each loopback pass also records how the stack's CPU spread over its
processes (``cpu_by_process``). Default counts keep the whole study near a
quarter of an hour on two cores; ``--n`` (``make study STUDY=streaming N=...``)
scales the as-fast-as-possible runs, ``SECONDS_PER_RATE`` the paced ones,
``SB_STREAMING_RTT_FRAMES`` and ``SB_STREAMING_RTT_SECONDS`` the delayed-link
passes; ``quick`` shrinks everything.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import resources, results, study
from bench.studies.streaming import client as sc
from bench.options import BenchOptions, ReferenceOptions, StudyOptions
from bench.records import RunRecord
from bench.session import RunSession
from servebench import registry
from servebench.knobs import SectionValues
from servebench.settings import REPO_ROOT, Settings

STUDY = "streaming"
RATES = (5, 15, 30, 60)
SECONDS_PER_RATE = 6.0
FAST_FRAMES = 1000  # as fast as possible, CIFAR-10 (capped by --n)
YOLO_FRAMES = 16
QUOTAS = (0.5, 1.0, 2.0)
LINK_MBIT = 20.0
TIMELINE_RATE = 30  # the per-frame timeline's runs
HEADLINE_RATE = 30  # the paced headline streams (the study's camera rate)
RTT_TRANSPORTS = (("stream-tcp", "tcp"), ("fastapi", "http"), ("fastapi", "http-new"))
RTT_WARMUP = 10
KEEPALIVE_ROUNDS = 5  # at least this many as-fast-as-possible passes of each HTTP baseline on loopback
RTT_CONNECTS = 20  # TCP connects timed each time the delayed link gets a new round trip
QUICK = {"rates": (5, 30), "seconds": 3.0, "fast": 200, "yolo": 4, "quotas": (1.0,)}
QUICK_KNOBS = {"repeats": 2, "rtts_ms": (0, 50), "rtt_frames": 40, "rtt_seconds": 1.5}


@dataclass(frozen=True)
class StreamExperiment(study.Experiment):
    """One stream: its transport, frames, model, rate (None: as fast as possible) and link."""

    transport: str = "tcp"
    model: str = "cifar"
    encoding: str = "raw"
    rate: float | None = None
    frames: int = 100
    link_mbit: float | None = None
    group: str = "loopback"  # the table it belongs to: inprocess, loopback, quota, link, rtt
    rtt_ms: float | None = None  # the delayed link's round trip (group rtt)
    repeats: int = 1  # passes, one row each
    repeat: int = 0  # the first pass's index (a round of alternating single passes sets it)

    @property
    def stack_key(self) -> tuple:
        # stream-tcp, -ws and -grpc run the same services: one stack serves all three doors; the rtt group's
        # stacks sit behind one delayed link each.
        return (registry.get(self.arch).services, tuple(sorted(self.settings.items())), self.link_mbit,
                self.group == "rtt")


def _exp(arch, transport, group, *, rate=None, frames=100, model="cifar", encoding="raw", link=None, settings=None,
         where=None, rtt=None, repeats=1, repeat=0) -> StreamExperiment:
    settings = {"stream_model": model, **(settings or {})}
    what = f"{transport} {model} {encoding} " + (f"{rate:g} fps" if rate else "as fast as possible")
    if link:
        what += f" over a {link:g} Mbit/s link" + (f" at {rtt:g} ms RTT" if rtt is not None else "")
    if repeats > 1:
        what += f", {repeats} passes"
    elif repeat:
        what += f", pass {repeat + 1}"
    if settings.get("batch_max_size", 1) > 1:
        what += f", batching {settings['batch_max_size']} ({settings.get('batch_timeout_ms', 0):g} ms)"
    if settings.get("stream_model_cpus"):
        what += f", model under {settings['stream_model_cpus']:g} CPU"
    if transport == "inprocess":
        opts = ReferenceOptions(**where)
        arch = "stream-tcp"
    else:
        opts = BenchOptions(arch=arch, n=max(1, min(frames, 10000)), rate=rate, **where)
    return StreamExperiment(arch, opts, settings if transport != "inprocess" else {}, title=what,
                            transport=transport, model=model, encoding=encoding, rate=rate, frames=frames,
                            link_mbit=link, group=group, rtt_ms=rtt, repeats=repeats, repeat=repeat)


def knobs(options: StudyOptions, settings: Settings | None = None) -> SectionValues:
    """The study's knobs in force (``settings``, default the environment's); a quick run shrinks those that
    were not set."""
    settings = settings if settings is not None else Settings()
    if options.quick:
        settings = settings.model_copy(update={f"streaming_{k}": v for k, v in QUICK_KNOBS.items()
                                               if f"streaming_{k}" not in settings.model_fields_set})
    return settings.section(STUDY)


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[StreamExperiment]:
    """Every stream in order (see the module's text). Pure: starts nothing."""
    q = options.quick
    k = knobs(options, settings)
    reps = k.repeats
    rates = QUICK["rates"] if q else RATES
    seconds = QUICK["seconds"] if q else SECONDS_PER_RATE
    fast = min(options.n, QUICK["fast"] if q else FAST_FRAMES)
    yolo = QUICK["yolo"] if q else YOLO_FRAMES
    where = {"out": options.out, "data_dir": options.data_dir, "progress": False, "study": STUDY}
    paced = [(r, max(10, int(r * seconds))) for r in rates]
    at_headline = max(10, int(HEADLINE_RATE * seconds))
    want = set(options.arches) if options.arches else None

    def on(arch):
        return want is None or arch in want

    def rates_of(arch, transport, **kw):  # every offered rate once, the headline rate with its repeats
        return [_exp(arch, transport, "loopback", rate=r, frames=n, where=where, **kw)
                for r, n in paced if r != HEADLINE_RATE]

    plan = [_exp("stream-tcp", "inprocess", "inprocess", frames=fast, where=where, repeats=reps),
            _exp("stream-tcp", "inprocess", "inprocess", rate=HEADLINE_RATE, frames=at_headline, where=where,
                 repeats=reps)]
    for arch, transport in (("stream-tcp", "tcp"), ("stream-ws", "ws"), ("stream-grpc", "grpc")):
        if on(arch):
            headline = reps if transport == "tcp" else 1
            plan.append(_exp(arch, transport, "loopback", frames=fast, where=where, repeats=headline))
            plan.append(_exp(arch, transport, "loopback", rate=HEADLINE_RATE, frames=at_headline, where=where,
                             repeats=headline))
            plan += rates_of(arch, transport)
    if on("stream-tcp"):
        plan.append(_exp("stream-tcp", "tcp", "loopback", frames=fast, encoding="jpeg", where=where))
        plan.append(_exp("stream-tcp", "tcp", "loopback", rate=30, frames=int(30 * seconds), encoding="jpeg",
                         where=where))
        batched = {"batch_max_size": k.batch_size, "batch_timeout_ms": k.batch_timeout_ms}
        plan.append(_exp("stream-tcp", "tcp", "batched", frames=fast, settings=batched, where=where, repeats=reps))
        plan.append(_exp("stream-tcp", "tcp", "batched", rate=HEADLINE_RATE, frames=at_headline, settings=batched,
                         where=where, repeats=reps))
    if on("fastapi"):
        # Alternate which baseline goes first, so neither always meets the stack fresh; the saturated passes
        # (a few seconds each) get more rounds: keep-alive against a new connection is a close call.
        for k_round in range(max(reps, KEEPALIVE_ROUNDS)):
            for transport in (("http", "http-new") if k_round % 2 == 0 else ("http-new", "http")):
                plan.append(_exp("fastapi", transport, "loopback", frames=fast, where=where, repeat=k_round))
                if k_round < reps:
                    plan.append(_exp("fastapi", transport, "loopback", rate=HEADLINE_RATE, frames=at_headline,
                                     where=where, repeat=k_round))
        for transport in ("http", "http-new"):
            plan += rates_of("fastapi", transport)
    if on("stream-tcp"):
        for cpus in (QUICK["quotas"] if q else QUOTAS):
            plan.append(_exp("stream-tcp", "tcp", "quota", frames=yolo, model="yolo-tiny", encoding="jpeg",
                             settings={"stream_model_cpus": cpus}, where=where))
            plan.append(_exp("stream-tcp", "tcp", "quota", frames=fast // 2, model="cifar",
                             settings={"stream_model_cpus": cpus, "stream_model": "cifar"}, where=where))
        for model, enc, rate, n in (("cifar", "raw", 30, int(30 * seconds)), ("cifar", "jpeg", 30, int(30 * seconds)),
                                    ("yolo-tiny", "raw", 2, yolo), ("yolo-tiny", "jpeg", 2, yolo)):
            plan.append(_exp("stream-tcp", "tcp", "link", rate=rate, frames=n, model=model, encoding=enc,
                             link=LINK_MBIT, settings={"stream_model": model}, where=where))
    for rtt in k.rtts_ms:
        for arch, transport in RTT_TRANSPORTS:
            if on(arch):
                plan.append(_exp(arch, transport, "rtt", frames=k.rtt_frames, link=k.rtt_link_mbit, rtt=rtt,
                                 where=where, repeats=reps))
                plan.append(_exp(arch, transport, "rtt", rate=HEADLINE_RATE, link=k.rtt_link_mbit, rtt=rtt,
                                 frames=max(10, int(HEADLINE_RATE * k.rtt_seconds)), where=where, repeats=reps))
    return plan


# ------------------------------------------------------------------ running
def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """The plan in order, one stack per (architecture, settings, link); one record for the whole study."""
    from bench import target
    from servebench import runtime as runtimes

    other = target.running(options.runtime, options.run_dir)
    if other is not None:
        raise runtimes.StackError(f"a {other.arch} stack is running; the study brings each stack up itself: "
                                  f"`make down RUNTIME={options.runtime}` first")
    plan = experiments(options, settings)
    study_knobs = knobs(options, settings)
    _, skipped = target.runnable_arches(options.runtime, dict.fromkeys(e.arch for e in plan if e.transport != "inprocess"))
    for arch, why in skipped.items():
        log(f"skipping {arch}: {why}")
    rows: list[dict] = []
    stacks: list[dict] = []
    timeline: list[list] = []
    notes: list[str] = []
    cameras: dict[tuple, sc.Camera] = {}
    origin = time.perf_counter()

    def camera(model, encoding, n):
        key = (model, encoding)
        if key not in cameras or len(cameras[key].images) < min(n, 1000):
            cameras[key] = sc.load_camera(min(max(n, 1), 1000), model, encoding, settings.stream_jpeg_quality,
                                          options.data_dir)
        return cameras[key]

    def measured(interrupted: bool) -> dict:
        return {"timing_only": "yolo-tiny rows: random weights (timing only)",
                "netem": "not in this kernel: the link group adds no delay; the rtt group's delay comes from the "
                         "userspace delay element (servebench/delay_link.py)",
                "rows": rows, "stacks": stacks, "notes": notes}

    def write_timeline() -> None:
        with results.CsvLog(session.run_dir / "timeline.csv", ["run", *sc.FRAME_COLUMNS]) as out:
            for row in timeline:
                out.row(row)

    rt = runtimes.get(options.runtime)
    session = RunSession(label="streaming", root=options.out, summary=measured, record_errors=True, header={
        "kind": "streaming", "study": STUDY, "runtime": options.runtime,
        "settings": {"quick": options.quick, "n": options.n, "rates": list(RATES), "seconds_per_rate": SECONDS_PER_RATE,
                     "window": settings.stream_window, "drop": settings.stream_drop,
                     "jpeg_quality": settings.stream_jpeg_quality, "link_mbit": LINK_MBIT,
                     "intra_op_threads": settings.intra_op_threads, "batch_max_size": settings.batch_max_size,
                     "repeats": study_knobs.repeats, "rtts_ms": list(study_knobs.rtts_ms),
                     "batched": {"batch_max_size": study_knobs.batch_size,
                                 "batch_timeout_ms": study_knobs.batch_timeout_ms},
                     "rtt_link_mbit": study_knobs.rtt_link_mbit, "rtt_frames": study_knobs.rtt_frames,
                     "rtt_seconds": study_knobs.rtt_seconds}})
    session.on_close(write_timeline)
    with session:
        # 1. in process, with no stack up
        inproc = [e for e in plan if e.transport == "inprocess"]
        if inproc:
            from services.stream.core import load_model

            model = load_model(settings.model_copy(update={"stream_model": "cifar"}))
            for exp in inproc:
                log(f"\n== {exp.title}")
                for row in _measure(exp, camera("cifar", "raw", exp.frames), None, None, settings, session.sample,
                                    model=model, timeline=timeline, origin=origin):
                    rows.append(row)
                    _print_row(row, log)
            del model
        # 2-4. stacks on loopback, 5. the shaped link, 6. the delayed link
        groups: dict[tuple, list[StreamExperiment]] = {}
        for exp in plan:
            if exp.transport != "inprocess" and exp.arch not in skipped:
                groups.setdefault(exp.stack_key, []).append(exp)
        for key, exps in groups.items():
            first = exps[0]
            serving = first.serving_settings(settings)
            link = None
            if first.link_mbit:
                from servebench import netns

                why = netns.unavailable()
                if why:
                    notes.append(f"{first.group} group skipped: {why}")
                    log(f"skipping the {first.group} group's link: {why}")
                    continue
                if first.group == "rtt":  # one delayed link, its delay set in place for each round trip
                    link = netns.ShapedLink("stream-rtt", first.link_mbit, delay_ms=first.rtt_ms or 0, element=True)
                else:
                    link = netns.ShapedLink("stream", first.link_mbit)
                serving = serving.model_copy(update={"listen": link.server_addr})
            try:
                log(f"\n== stack {first.arch} {dict(first.settings)}" + (f" on a {first.link_mbit:g} Mbit/s link"
                                                                          if link else ""))
                st = rt.up(first.arch, serving, run_dir=options.run_dir, log=log)
                try:
                    stacks.append({"arch": first.arch, "group": first.group, "link_mbit": first.link_mbit,
                                   "stack": target.stack_record(st)})
                    link_doc = None
                    if link and first.group != "rtt":
                        link_doc = {**link.recorded(), "measured_up_mbit": round(link.measure_mbit(4, "up"), 2),
                                    "measured_down_mbit": round(link.measure_mbit(4, "down"), 2)}
                    for exp in exps:
                        if link and exp.group == "rtt" and (link_doc is None or link.delay_ms != exp.rtt_ms):
                            link.set_delay(exp.rtt_ms)
                            link.measure_rtt_ms(RTT_CONNECTS)
                            link_doc = link.recorded()
                            log(f"   link at {exp.rtt_ms:g} ms RTT set, {link_doc['rtt_ms_measured']['median']} ms "
                                f"measured (median of {RTT_CONNECTS} connects)")
                        log(f"-- {exp.title}")
                        cam = camera(exp.model, exp.encoding, exp.frames)
                        for row in _measure(exp, cam, st, serving, settings, session.sample, link=link,
                                            timeline=timeline, origin=origin):
                            if link_doc:
                                row["link"] = link_doc
                            rows.append(row)
                            _print_row(row, log)
                finally:
                    rt.down(run_dir=options.run_dir, log=log)
            finally:
                if link:
                    link.close()
    log(f"\nstreaming study: {len(rows)} streams measured; results in {session.run_dir}")
    return [session.record]


class Unlogged:
    """Where a stream's resource samples go: nowhere (its summary is its row's; the study has no resources.csv)."""

    def row(self, values) -> None:
        pass


def _measure(exp: StreamExperiment, camera: sc.Camera, st, serving: Settings | None, settings: Settings,
             sample: Callable, *, model=None, link=None, timeline=None, origin=0.0) -> list[dict]:
    """One experiment's passes, with the stack's CPU and memory sampled meanwhile (``sample``: the run
    session's); each pass's summary as a table row."""
    window = (serving or settings).stream_window
    check = exp.model == "cifar"
    passes: list[tuple[dict, list, dict | None, dict | None]] = []  # (summary, frame rows, resources, spread)
    if link is not None:
        for summary, rs_rows in _measure_in_namespace(exp, link, serving, window):
            passes.append((summary, rs_rows, None, None))
    else:
        host, port = sc.endpoint(exp.transport, serving) if serving else ("", 0)

        def make():
            return sc.transport_for(exp.transport, camera, host, port, window, model)

        sc.stream(make(), min(20, exp.frames) if exp.model == "cifar" else 2, None, window)  # warm-up
        for _ in range(exp.repeats):
            before, calls_before = cpu_by_process(st), model_counters(st, exp.transport)
            sampler = sample(lambda: {**(st.processes() if st else {}), "client": resources.client_process()},
                             hz=5.0, log=Unlogged())
            try:
                rs, start, end = sc.stream(make(), exp.frames, exp.rate, window)
            finally:
                sampler.stop()
            summary = sc.summarize(rs, start, end, exp.rate, 1000.0 / exp.rate if exp.rate else 100.0, check)
            summary["deadline_ms"] = 100.0
            summary["mean_batch"] = mean_batch(calls_before, model_counters(st, exp.transport))
            summary["missed_deadline"] = int(sum(1 for r in rs if r.kind == "answer" and r.latency_ms > 100.0))
            passes.append((summary, sc.frame_rows(rs, start), sampler.summary(summary["answered"]),
                           spread(before, cpu_by_process(st), st)))
    out = []
    for k, (summary, rs_rows, res, cpu_spread) in enumerate(passes):
        repeat = exp.repeat + k
        if (timeline is not None and repeat == 0 and exp.rate == TIMELINE_RATE and exp.model == "cifar"
                and exp.encoding == "raw" and exp.group != "rtt"):
            name = exp.transport + ("-link" if link else "")
            timeline += [[name, *r] for r in rs_rows]
        lat = summary["latency_ms"]
        out.append({
            "title": exp.title, "group": exp.group, "arch": exp.arch, "transport": exp.transport, "model": exp.model,
            "timing_only": exp.model == "yolo-tiny", "encoding": exp.encoding, "rate": exp.rate,
            "cpus": exp.settings.get("stream_model_cpus") or None, "link_mbit": exp.link_mbit,
            "rtt_ms": exp.rtt_ms, "repeat": repeat,
            "batch_max_size": (serving or settings).batch_max_size if exp.transport != "inprocess" else 1,
            "batch_timeout_ms": (serving or settings).batch_timeout_ms if exp.transport != "inprocess" else None,
            "time_per_image_s": (results.rounded(1.0 / summary["fps"], 5) if summary.get("fps") and not exp.rate
                                 else None),
            **summary, "p50_ms": lat["p50"], "p99_ms": lat["p99"], "resources": res, "cpu_by_process": cpu_spread,
        })
    return out


def model_counters(st, transport: str) -> tuple[int, int] | None:
    """The stream server's model calls and the frames they ran so far (its /v1/info counters), or None."""
    if st is None or transport not in ("tcp", "ws", "grpc"):
        return None
    from bench import target

    counters = target.server_info(st)[0].get("counters") or {}
    calls, ran = counters.get("model_calls"), counters.get("model_frames")
    return (calls, ran) if calls is not None and ran is not None else None


def mean_batch(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Frames per model call between two readings of :func:`model_counters` (None without both)."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return round((after[1] - before[1]) / (after[0] - before[0]), 2)


def cpu_by_process(st) -> dict[str, dict[int, float]]:
    """Each service's processes' CPU seconds so far (user + system), by PID."""
    import psutil

    out: dict[str, dict[int, float]] = {}
    for name, procs in (st.processes() if st else {}).items():
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            out.setdefault(name, {})[p.pid] = t.user + t.system
    return out


def spread(before: dict, after: dict, st) -> dict | None:
    """How one pass's CPU spread over each multi-process service's processes: seconds per process (busiest
    first), the busiest one's share, and the established TCP connections each process holds at the end."""
    import psutil

    out = {}
    for name, now in after.items():
        if len(now) < 2:
            continue
        used = {pid: max(0.0, cpu - before.get(name, {}).get(pid, 0.0)) for pid, cpu in now.items()}
        total = sum(used.values())
        conns = {}
        for p in (st.processes().get(name, []) if st else []):
            try:
                conns[p.pid] = sum(1 for c in p.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED)
            except psutil.Error:
                pass
        order = sorted(used, key=used.get, reverse=True)
        out[name] = {"cpu_s": [round(used[pid], 3) for pid in order],
                     "busiest_share": round(max(used.values()) / total, 3) if total > 0 else None,
                     "connections": [conns.get(pid) for pid in order]}
    return out or None


def _measure_in_namespace(exp: StreamExperiment, link, serving: Settings, window: int) -> list[tuple[dict, list]]:
    """The client runs in the link's client namespace (a process of its own, all of the experiment's passes);
    wire bytes from its interface. Each pass's (summary, frame rows)."""
    host, port = link.server_addr, sc.endpoint(exp.transport, serving)[1]
    out = Path(results.DEFAULT_ROOT.parent / "run") / f"stream-{time.time_ns()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "bench.studies.streaming.client", "--transport", exp.transport, "--host", host,
            "--port", str(port), "--n", str(exp.frames), "--window", str(window), "--encoding", exp.encoding,
            "--model", exp.model, "--warmup", str(RTT_WARMUP if exp.group == "rtt" else 2), "--wire",
            "--repeats", str(exp.repeats), "--json", str(out)]
    if exp.rate:
        argv += ["--rate", str(exp.rate)]
    proc = link.popen("client", argv, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin",
                                                          "TF_CPP_MIN_LOG_LEVEL": "2"})
    proc.wait(timeout=600)
    try:
        doc = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    return [(p["summary"], p["rows"]) for p in doc["passes"]]


def _print_row(row: dict, log) -> None:
    log(f"   {row['answered']}/{row['frames']} answered  p50 {row['p50_ms']} p99 {row['p99_ms']} ms  "
        f"{row['fps']} fps  dropped {row['dropped']} errors {row['errors']}  up {row['bytes_up_per_frame']} B/frame"
        + (f"  wire {row.get('wire_bytes_per_frame')} B/frame" if row.get("wire_bytes_per_frame") else "")
        + (f"  mean batch {row['mean_batch']}" if row.get("mean_batch") else ""))
