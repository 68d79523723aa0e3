"""The harness's streaming client: a camera sending frames at a rate, with a window of frames in flight.

    python -m bench.studies.streaming.client --transport tcp|ws|grpc|http|http-new|inprocess --host H --port P
        [--rate 30 | (as fast as possible)] [--n 300] [--window 8] [--encoding raw|jpeg] [--quality 90]
        [--model cifar|yolo-tiny] [--deadline-ms 100] [--repeats 1] [--json OUT]

One sender thread takes frame i at its capture time (``start + i/rate``; as
fast as possible: as soon as the window has room), waits for room in the
window, and sends it; one receiver thread reads the replies, which carry
their frame's id and capture time, so several frames are in flight and each
frame's latency runs from its capture (a frame that waited for the window
shows it: no coordinated omission). Frames are encoded before the clock starts.
What is sent, warm-up frames then passes, is a :class:`bench.shapes.FrameStream`.

Transports (:mod:`bench.studies.streaming.transports`; all carry the same CIFAR-10 test
images, answers checked against the labels): ``tcp``, ``ws``, ``grpc``, the
per-request baselines ``http`` and ``http-new``, and ``inprocess`` (the model
in this process: the ceiling the others are measured against).

A run's summary (:func:`summarize`): latency from capture p50/p90/p99, jitter
(mean absolute difference of consecutive frames' latencies), sustained
frames/s, deadline misses (later than one frame interval, and than
``deadline_ms``), dropped frames (the server's drops and frames never
answered), errors, accuracy, and bytes per frame each way as the client
library writes and reads them (HTTP: request and body bytes; gRPC: message
bytes plus gRPC's 5-byte prefix; on a shaped link the study also reads the
interface's counters). ``make bench ARCH=stream-tcp RATE=30`` runs it
through :func:`bench_arch`.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench import shapes
from bench.studies.streaming.transports import (REPLY_TIMEOUT_S, TRANSPORTS, WS_PATH, Camera, GrpcTransport, HttpTransport,
                                     InProcessTransport, TcpTransport, Transport, WsTransport, load_camera,
                                     transport_for)
from services.stream import frames

# The camera and transports moved to bench.studies.streaming.transports; the studies and tests still reach them here.
__all__ = ["TRANSPORTS", "REPLY_TIMEOUT_S", "WS_PATH", "Camera", "load_camera", "Transport", "TcpTransport",
           "WsTransport", "GrpcTransport", "HttpTransport", "InProcessTransport", "transport_for", "FrameResult",
           "stream", "summarize", "frame_rows", "FRAME_COLUMNS", "bench_arch", "endpoint", "main"]

# The architecture each networked transport measures (bench.run's hook dispatches on these).
ARCH_TRANSPORT = {"stream-tcp": "tcp", "stream-ws": "ws", "stream-grpc": "grpc"}


@dataclass(slots=True)
class FrameResult:
    frame_id: int
    capture: float  # perf_counter seconds
    sent: float = 0.0
    end: float = 0.0
    kind: str = "lost"  # answer, error, dropped, lost (never answered)
    cls: int = -1
    label: int = -1
    bytes_up: int = 0
    bytes_down: int = 0
    decode_us: int = 0
    queue_us: int = 0
    model_us: int = 0
    message: str = ""
    probabilities: np.ndarray | None = None

    @property
    def latency_ms(self) -> float:
        return (self.end - self.capture) * 1000.0



# ------------------------------------------------------------------ the stream
def stream(transport: Transport, n: int, rate: float | None, window: int, stop: threading.Event | None = None,
           on_result: Callable[[FrameResult], None] | None = None) -> tuple[list[FrameResult], float, float]:
    """Send n frames (at ``rate`` frames/s, or as fast as the window allows); (results, start, end).

    Capture times are on this process's ``perf_counter`` clock; a frame whose
    reply never comes is ``lost``.
    """
    stop = stop or threading.Event()
    camera = transport.camera
    results = [FrameResult(i, 0.0, label=int(camera.labels[i % len(camera.labels)])) for i in range(n)]
    room = threading.Semaphore(window)
    answered = threading.Event()
    remaining = [n]
    lock = threading.Lock()
    transport.open()
    start = time.perf_counter() + 0.01

    def sender() -> None:
        try:
            for i in range(n):
                if stop.is_set():
                    break
                if rate:
                    due = start + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0 and stop.wait(delay):
                        break
                    capture = due
                while not room.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if not rate:
                    capture = time.perf_counter()
                r = results[i]
                r.capture = capture
                capture_ns = int(capture * 1e9)
                r.sent = time.perf_counter()
                r.bytes_up = transport.send(i, capture_ns)
        except (OSError, ValueError) as exc:
            print(f"stream: sending stopped: {exc}", file=sys.stderr)
        finally:
            transport.done_sending()

    def receiver() -> None:
        while True:
            try:
                got = transport.recv()
            except (OSError, frames.FrameError, ValueError) as exc:
                print(f"stream: reading stopped: {exc}", file=sys.stderr)
                break
            end = time.perf_counter()
            if got is None:
                break
            reply, nbytes = got
            if not 0 <= reply.frame_id < n:
                continue
            r = results[reply.frame_id]
            if r.kind != "lost":
                continue  # a second reply for one frame: ignored
            r.end = end
            r.kind = frames.KINDS[reply.kind] if reply.kind != frames.ANSWER else "answer"
            r.cls, r.probabilities = reply.cls, reply.probabilities
            r.decode_us, r.queue_us, r.model_us, r.message = reply.decode_us, reply.queue_us, reply.model_us, reply.message
            if isinstance(nbytes, tuple):
                r.bytes_up, r.bytes_down = nbytes
            else:
                r.bytes_down = nbytes
            room.release()
            if on_result:
                on_result(r)
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    answered.set()
                    break

    threads = [threading.Thread(target=sender, daemon=True, name="stream-sender"),
               threading.Thread(target=receiver, daemon=True, name="stream-receiver")]
    for t in threads:
        t.start()
    try:
        while threads[1].is_alive():
            threads[1].join(0.2)
            if not threads[0].is_alive() and stop.is_set():
                break
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        end = time.perf_counter()
        transport.close()
        threads[0].join(2.0)
    return results, start, end


def summarize(results: list[FrameResult], start: float, end: float, rate: float | None,
              deadline_ms: float, check_labels: bool = True) -> dict:
    """What the study and ``make bench`` report for one stream."""
    from bench.results import latency_stats, rounded

    sent = [r for r in results if r.sent]
    ok = [r for r in results if r.kind == "answer"]
    lat = np.array([r.latency_ms for r in ok], float)
    order = sorted(ok, key=lambda r: r.frame_id)
    jitter = (np.mean(np.abs(np.diff([r.latency_ms for r in order]))) if len(order) > 1 else None)
    last = max((r.end for r in ok), default=start)
    first = min((r.capture for r in sent), default=start)
    span = last - first
    interval_ms = 1000.0 / rate if rate else None
    up = [r.bytes_up for r in sent if r.bytes_up]
    down = [r.bytes_down for r in ok if r.bytes_down]
    correct = sum(1 for r in ok if r.cls == r.label)
    return {
        "frames": len(results), "sent": len(sent), "answered": len(ok),
        "errors": sum(1 for r in results if r.kind == "error"),
        "dropped": sum(1 for r in results if r.kind == "dropped"),
        "lost": sum(1 for r in sent if r.kind == "lost"),
        "error_messages": sorted({r.message for r in results if r.kind == "error"})[:5],
        "accuracy": rounded(correct / len(ok), 4) if ok and check_labels else None,
        "latency_ms": latency_stats(lat),
        "jitter_ms": rounded(jitter),
        "fps": rounded(len(ok) / span, 2) if span > 0 else None,
        "offered_fps": rate,
        "deadline_ms": deadline_ms,
        "missed_interval": int(np.sum(lat > interval_ms)) if interval_ms and lat.size else None,
        "missed_deadline": int(np.sum(lat > deadline_ms)) if lat.size else None,
        "bytes_up_per_frame": rounded(float(np.mean(up)), 1) if up else None,
        "bytes_down_per_frame": rounded(float(np.mean(down)), 1) if down else None,
        "server_ms": {k: rounded(float(np.median([getattr(r, k + "_us") for r in ok])) / 1000.0, 3) if ok else None
                      for k in ("decode", "queue", "model")},
        "wall_s": rounded(end - start, 3),
    }


FRAME_COLUMNS = ["frame_id", "capture_s", "sent_s", "end_s", "latency_ms", "kind", "class", "label",
                 "bytes_up", "bytes_down", "decode_ms", "queue_ms", "model_ms"]


def frame_rows(results: list[FrameResult], origin: float) -> list[list]:
    return [[r.frame_id, f"{r.capture - origin:.6f}", f"{r.sent - origin:.6f}" if r.sent else "",
             f"{r.end - origin:.6f}" if r.end else "", f"{r.latency_ms:.3f}" if r.end else "", r.kind, r.cls,
             r.label, r.bytes_up, r.bytes_down, r.decode_us / 1000, r.queue_us / 1000, r.model_us / 1000]
            for r in results]



# ------------------------------------------------------------------ bench integration
def run_frames(make: Callable[[], Transport], *, on_warmup: Callable[[shapes.Level], None] | None = None,
               before_pass: Callable[[shapes.Level], None] | None = None,
               on_pass: Callable[[shapes.Level, list, float, float], dict] | None = None
               ) -> Callable[[shapes.Level], dict]:
    """A :class:`bench.shapes.FrameStream`'s runner: each level one stream on a new transport from ``make``;
    a warm-up's outcome is its frame count, a pass's what ``on_pass(level, results, start, end)`` returns."""
    def run(level: shapes.Level) -> dict:
        if not level.measured:
            if on_warmup:
                on_warmup(level)
            stream(make(), level.count, None, level.concurrency)
            return {"warmup": level.count}
        if before_pass:
            before_pass(level)
        rs, start, end = stream(make(), level.count, level.rate, level.concurrency)
        return on_pass(level, rs, start, end) if on_pass else {"results": rs, "start": start, "end": end}
    return run


def bench_arch(options, arch: str, settings, log=print):
    """``make bench ARCH=stream-tcp RATE=30``: one stream through the arch's nginx; a ``stream`` run record."""
    from bench import resources, results as res, target
    from bench.session import RunSession
    from servebench.settings import Settings

    transport_name = ARCH_TRANSPORT[arch]
    with target.stack_for(arch, options.runtime, options.run_dir, settings, log=log) as (st, _started):
        knobs = Settings.from_env(st.doc.get("knobs") or {})
        host, port = endpoint(transport_name, knobs)
        camera = load_camera(min(options.n, 10000), knobs.stream_model, knobs.stream_encoding,
                             knobs.stream_jpeg_quality, options.data_dir)
        window = knobs.stream_window
        passes: list[dict] = []
        every: list[FrameResult] = []
        origin: list[float] = []  # set as the first pass starts, with the sampler: warm-up frames are not sampled

        def header() -> dict:
            return {"kind": "stream", "study": options.study, "arch": arch, "runtime": options.runtime,
                    "settings": {**options.recorded(), "transport": transport_name, "window": window,
                                 "deadline_ms": options.deadline_ms},
                    "stack": target.stack_record(st)}

        def measurements(interrupted: bool) -> dict:
            sampler = session.sampler
            return {"model": knobs.stream_model, "timing_only": knobs.stream_model == "yolo-tiny",
                    "encoding": knobs.stream_encoding, "stream": passes[-1] if passes else {}, "passes": passes,
                    "resources": sampler.summary(sum(p["answered"] for p in passes)) if sampler else {}}

        def write_frames() -> None:  # at the end: a frame's row is whole once its stream is over
            with res.CsvLog(session.run_dir / "frames.csv", FRAME_COLUMNS) as log_csv:
                for row in frame_rows(every, origin[0] if origin else 0.0):
                    log_csv.row(row)

        def before_pass(level: shapes.Level) -> None:
            if not origin:
                origin.append(time.perf_counter())
                session.sample(lambda: {**st.processes(), "client": resources.client_process()},
                               hz=options.sample_hz, origin=origin[0])

        def on_pass(level: shapes.Level, rs: list, start: float, end: float) -> dict:
            passes.append(summarize(rs, start, end, level.rate, options.deadline_ms, knobs.stream_model == "cifar"))
            every.extend(rs)
            return passes[-1]

        shape = shapes.FrameStream(options.n, rate=options.rate, window=window, warmup=options.warmup,
                                   repeats=options.repeats)
        run = run_frames(lambda: transport_for(transport_name, camera, host, port, window),
                         on_warmup=lambda lv: log(f"{arch}: {lv.count} warm-up frames"),
                         before_pass=before_pass, on_pass=on_pass)
        session = RunSession(label=f"bench-{arch}", root=options.out, header=header, summary=measurements)
        session.on_close(write_frames)
        with session:
            shapes.drive(shape, run)
    print_summary(arch, session.record.get("stream") or {}, session.run_dir, knobs)
    return session.record


def endpoint(transport: str, settings) -> tuple[str, int]:
    """Where a client reaches ``transport`` through nginx (SB_LISTEN)."""
    host = settings.base_url().split("//")[1].rsplit(":", 1)[0]
    port = {"tcp": settings.stream_proxy_port, "ws": settings.port, "grpc": settings.stream_grpc_proxy_port,
            "http": settings.port, "http-new": settings.port}[transport]
    return host, port


def print_summary(arch: str, s: dict, run_dir: Path, settings) -> None:
    if not s:
        print(f"{arch}: nothing measured")
        return
    lat = s["latency_ms"]
    label = " (timing only: random weights)" if settings.stream_model == "yolo-tiny" else ""
    rate = f"{s['offered_fps']:g} frames/s" if s["offered_fps"] else "as fast as possible"
    print(f"\n{arch}: {s['answered']}/{s['frames']} frames answered at {rate}, model {settings.stream_model}{label}, "
          f"{settings.stream_encoding}, window {settings.stream_window}")
    print(f"  latency from capture ms  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}"
          f"  jitter {s['jitter_ms']}")
    print(f"  sustained {s['fps']} frames/s  accuracy {s['accuracy']}  errors {s['errors']}  dropped {s['dropped']}"
          f"  lost {s['lost']}  missed interval {s['missed_interval']}  missed {s['deadline_ms']:g} ms deadline "
          f"{s['missed_deadline']}")
    print(f"  bytes per frame up {s['bytes_up_per_frame']} down {s['bytes_down_per_frame']}  server ms "
          + "  ".join(f"{k} {v}" for k, v in s["server_ms"].items()))
    print(f"  results in {run_dir}")


def interface_bytes() -> tuple[int, int]:
    """(received, sent) bytes of this network namespace's interfaces but loopback: frames and headers as they
    crossed the wire (Ethernet, IP, TCP and the protocol's own), for a client alone in its namespace."""
    rx = tx = 0
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, data = line.split(":", 1)
        if name.strip() == "lo":
            continue
        fields = data.split()
        rx, tx = rx + int(fields[0]), tx + int(fields[8])
    return rx, tx


# ------------------------------------------------------------------ command line
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=TRANSPORTS, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--rate", type=float, default=None, help="frames/s (default: as fast as the window allows)")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--encoding", choices=("raw", "jpeg"), default="raw")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--model", choices=("cifar", "yolo-tiny"), default="cifar")
    p.add_argument("--deadline-ms", type=float, default=100.0)
    p.add_argument("--repeats", type=int, default=1, help="measured passes after the warm-up (each summarized)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="write the summary (and per-frame rows) here")
    p.add_argument("--wire", action="store_true", help="bytes on the wire per frame from this network namespace's "
                                                       "interface counters (a shaped link's client namespace)")
    args = p.parse_args(argv)
    if args.transport != "inprocess" and not args.port:
        p.error("--port is required for a networked transport")
    camera = load_camera(max(args.n, 1), args.model, args.encoding, args.quality, args.data_dir)
    model = None
    if args.transport == "inprocess":
        from servebench.settings import Settings
        from services.stream.core import load_model

        model = load_model(Settings(stream_model=args.model))

    def make():
        return transport_for(args.transport, camera, args.host, args.port, args.window, model)

    if args.repeats < 1:
        p.error(f"--repeats is at least 1, not {args.repeats}")
    counted: list[tuple[int, int]] = []  # the interface counters as each measured pass starts

    def wire_count(level: shapes.Level) -> None:
        if args.wire:
            counted.append(interface_bytes())

    def on_pass(level: shapes.Level, rs: list, start: float, end: float) -> dict:
        summary = summarize(rs, start, end, args.rate, args.deadline_ms, args.model == "cifar")
        if counted:
            before, after = counted[-1], interface_bytes()
            frames_sent = max(1, summary["sent"])
            summary["wire_up_bytes_per_frame"] = round((after[1] - before[1]) / frames_sent, 1)
            summary["wire_down_bytes_per_frame"] = round((after[0] - before[0]) / frames_sent, 1)
            summary["wire_bytes_per_frame"] = round(summary["wire_up_bytes_per_frame"]
                                                    + summary["wire_down_bytes_per_frame"], 1)
        return {"summary": summary, "rows": frame_rows(rs, start)}

    outcomes = shapes.drive(shapes.FrameStream(args.n, rate=args.rate, window=args.window, warmup=args.warmup,
                                               repeats=args.repeats),
                            run_frames(make, before_pass=wire_count, on_pass=on_pass))
    passes = [o for o in outcomes if "summary" in o]
    summary = passes[-1]["summary"]
    out = {"summary": summary, "rows": passes[-1]["rows"], "passes": passes}
    if args.json:
        args.json.write_text(json.dumps(out))
    else:
        print(json.dumps(summary, indent=1))
    return 0 if summary["answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
