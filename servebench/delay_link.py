"""A userspace delay element: two TUN devices bridged by one process that holds each packet for half the RTT.

This kernel has no netem (nor sch_fq or ETF, so no EDT/BPF delay either), and no
maintained delay tool installs here (apt has trickle and wondershaper, rate only;
PyPI has only toxiproxy clients, and toxiproxy delays a TCP proxy's bytes, not
packets, so a handshake would not pay the RTT). So :class:`servebench.netns.ShapedLink`
with ``delay_ms`` replaces its veth pair by two point-to-point TUN devices
(``IFF_TUN | IFF_NO_PI``), one moved into the client's namespace, and starts
this process to carry the packets between them:

    python -m servebench.delay_link --server-dev D --client-dev D --delay-ms 50 [--jitter-ms 5] [--pidfile F]
        [--control]    # then each line "DELAY_MS JITTER_MS" on stdin changes the delay (answered "ok")

Each packet read from one device is written to the other ``delay_ms / 2`` later,
plus, with jitter, a uniform draw in ``±jitter_ms / 2`` (so a round trip lies
within ``delay_ms ± jitter_ms``, as netem's ``delay D J`` would give). Packets of
one direction leave in the order they came (a packet never overtakes the one
before it, so TCP sees no reordering; under load this lengthens a jittered
packet's wait to its predecessor's). Every packet, the TCP handshake's
included, pays the delay: a new connection costs its round trip.

Accuracy (tests/servebench/test_netns_delay.py): the median TCP connect time
through the link is within 10% of ``delay_ms`` at 20, 50 and 80 ms; the
element itself adds tens of microseconds per packet (a select() wake-up and
two system calls, in Python), more when the machine's cores are busy.

The devices are not persistent: they vanish when this process exits, so
stopping it (SIGTERM, by the PID the link holds or the pid file records)
removes them. It exits by itself when its parent dies (and, with ``--control``,
when its stdin closes). Changing the delay in place keeps the devices, their
addresses and the servers listening on them: one link serves several round trips.
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import fcntl
import os
import random
import select
import signal
import struct
import sys
import time
from pathlib import Path

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
PR_SET_PDEATHSIG = 1
READY = "ready"
MAX_PACKET = 65536
MAX_BATCH = 64  # packets read from one device per wake-up, so one busy direction cannot starve the other


def open_tun(name: str) -> int:
    """A new, non-persistent TUN device ``name`` (layer 3, no packet-info prefix); its file descriptor."""
    if len(name) > 15:
        raise ValueError(f"interface name {name!r} is longer than 15 characters")
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    os.set_blocking(fd, False)
    return fd


class Direction:
    """One way through the element: packets waiting for their time to leave, oldest first."""

    def __init__(self, src: int, dst: int, one_way_s: float, jitter_s: float, rng: random.Random):
        self.src, self.dst = src, dst
        self.one_way_s, self.jitter_s, self.rng = one_way_s, jitter_s, rng
        self.waiting: collections.deque[tuple[float, bytes]] = collections.deque()
        self.last_due = 0.0
        self.carried = 0

    def set(self, one_way_s: float, jitter_s: float) -> None:
        self.one_way_s, self.jitter_s = one_way_s, jitter_s  # packets already waiting keep their time

    def due(self, now: float) -> float:
        wait = self.one_way_s
        if self.jitter_s:
            wait = max(0.0, wait + self.rng.uniform(-self.jitter_s / 2, self.jitter_s / 2))
        self.last_due = max(now + wait, self.last_due)  # FIFO: never before the packet ahead
        return self.last_due

    def take(self, now: float) -> None:
        for _ in range(MAX_BATCH):
            try:
                packet = os.read(self.src, MAX_PACKET)
            except BlockingIOError:
                return
            except OSError:  # the device went away (its namespace was deleted): nothing more to carry
                return
            self.waiting.append((self.due(now), packet))

    def release(self, now: float) -> None:
        while self.waiting and self.waiting[0][0] <= now:
            _, packet = self.waiting.popleft()
            try:
                os.write(self.dst, packet)
                self.carried += 1
            except OSError:
                pass  # a full queue or a device going down: the packet is lost, as on a wire

    def next_due(self) -> float | None:
        return self.waiting[0][0] if self.waiting else None


def parse_setting(line: str) -> tuple[float, float]:
    """``"DELAY_MS JITTER_MS"`` (a control line) as checked numbers."""
    try:
        delay_ms, jitter_ms = (float(x) for x in line.split())
    except ValueError:
        raise ValueError(f"a control line is 'DELAY_MS JITTER_MS', not {line.strip()!r}") from None
    check(delay_ms, jitter_ms)
    return delay_ms, jitter_ms


def check(delay_ms: float, jitter_ms: float) -> None:
    if delay_ms < 0 or jitter_ms < 0:
        raise ValueError(f"delay and jitter cannot be negative (delay {delay_ms} ms, jitter {jitter_ms} ms)")
    if jitter_ms > delay_ms:
        raise ValueError(f"jitter ({jitter_ms} ms) cannot exceed the delay ({delay_ms} ms): waits would be negative")


def forward(server_fd: int, client_fd: int, delay_ms: float, jitter_ms: float, seed: int | None = None,
            control: int | None = None) -> None:
    """Carry packets both ways until a signal ends the process (or ``control`` closes); each way holds them
    half the round trip. Lines on ``control`` set a new delay and jitter."""
    rng = random.Random(seed)
    ways = {server_fd: Direction(server_fd, client_fd, 0.0, 0.0, rng),
            client_fd: Direction(client_fd, server_fd, 0.0, 0.0, rng)}

    def apply(delay_ms: float, jitter_ms: float) -> None:
        for way in ways.values():  # each way ±jitter/2: a round trip spans ±jitter
            way.set(delay_ms / 2000.0, jitter_ms / 1000.0)

    apply(delay_ms, jitter_ms)
    poller = select.poll()
    for fd in ways:
        poller.register(fd, select.POLLIN)
    pending = b""
    if control is not None:
        poller.register(control, select.POLLIN)
    while True:
        now = time.monotonic()
        dues = [d for way in ways.values() if (d := way.next_due()) is not None]
        timeout_ms = None if not dues else max(0.0, (min(dues) - now) * 1000.0)
        ready = poller.poll(1000 if timeout_ms is None else timeout_ms)
        now = time.monotonic()
        for fd, events in ready:
            if fd == control:
                chunk = os.read(control, 4096)
                if not chunk:
                    return  # the link that started us is gone
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    try:
                        apply(*parse_setting(line.decode()))
                        print("ok", flush=True)
                    except ValueError as exc:
                        print(f"error: {exc}", flush=True)
                continue
            if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                return  # a device is gone (its namespace deleted): the link is over
            ways[fd].take(now)
        for way in ways.values():
            way.release(time.monotonic())


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the link stops it by PID anyway


def _stop(signum, frame) -> None:
    raise SystemExit(0)  # out of poll() at once; main's finally closes the devices


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-dev", required=True)
    p.add_argument("--client-dev", required=True)
    p.add_argument("--delay-ms", type=float, required=True, help="the round trip the element adds")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="a round trip's spread: delay ± jitter")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--pidfile", type=Path, default=None)
    p.add_argument("--control", action="store_true", help='read "DELAY_MS JITTER_MS" lines on stdin')
    a = p.parse_args(argv)
    try:
        check(a.delay_ms, a.jitter_ms)
    except ValueError as exc:
        p.error(str(exc))
    _die_with_parent()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    server_fd = open_tun(a.server_dev)
    client_fd = open_tun(a.client_dev)
    if a.pidfile:
        a.pidfile.parent.mkdir(parents=True, exist_ok=True)
        a.pidfile.write_text(f"{os.getpid()}\n")
    print(READY, flush=True)
    try:
        forward(server_fd, client_fd, a.delay_ms, a.jitter_ms, a.seed, sys.stdin.fileno() if a.control else None)
    except SystemExit:
        pass
    finally:
        os.close(server_fd)
        os.close(client_fd)
        if a.pidfile:
            a.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
