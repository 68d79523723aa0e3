"""A shaped link between network namespaces: link-local addresses, ``tc tbf`` on both ends, optional delay.

    with ShapedLink("stream", rate_mbit=20, delay_ms=50, jitter_ms=0) as link:
        server listens on link.server_addr (root namespace, or its own with server_ns=True)
        client = link.popen("client", [python, "-m", ...])     # runs inside the client's namespace
        link.measure_mbit()                                    # the rate a TCP transfer really gets
        link.measure_rtt_ms()                                  # the round trip a TCP connect really pays
        link.set_delay(80)                                     # another round trip, same devices and addresses

The client always gets a namespace of its own (``sb-<name>-c``); the server side
stays in the root namespace unless ``server_ns`` asks for one (``sb-<name>-s``).
Addresses are link-local (169.254.<k>.1 server, .2 client, a /30 per link): no
private-range or public address is used. The token bucket shapes each end's
egress, so both directions get the rate.

Without delay the link is a veth pair. This kernel has no netem (nor sch_fq or
ETF), so a link with ``delay_ms`` (and ``jitter_ms``) is two point-to-point TUN
devices instead, one in the client's namespace, bridged by a small userspace
delay element (:mod:`servebench.delay_link`, a process the link starts) that
holds each packet for half the round trip, in order; the TCP handshake pays
the RTT as on a real path. Its accuracy is tested (median TCP connect time
within 10% of the setting at 20, 50 and 80 ms). :meth:`ShapedLink.recorded`
says which element a link had, its settings and what was measured.

Everything is removed on ``close()`` (also when set-up fails half-way): the
namespaces, the devices and the delay element's process (by its PID; its TUN
devices vanish with it). :func:`remove_stale` removes what a killed run left
(namespaces named ``sb-*`` and the delay elements their pid files name).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREFIX = "sb-"
SERVER_OCTET, CLIENT_OCTET = 1, 2
TBF_LATENCY_MS = 50  # the queue a bucket keeps before dropping: bounded, like a real access link's buffer
MEASURE_PORT = 5599  # inside the link's own addresses only
REPO_ROOT = Path(__file__).resolve().parent.parent
PIDFILES = Path(tempfile.gettempdir()) / "servebench-links"  # a delay element's pid, so remove_stale finds it
DELAY_ELEMENT = "servebench.delay_link"


class LinkError(RuntimeError):
    """The link cannot be made or used; the message says why."""


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise LinkError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def unavailable() -> str | None:
    """Why namespaces and shaping cannot be used here (None when they can)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    missing = [tool for tool in ("ip", "tc") if not shutil.which(tool)]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian: apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces and tc need root"
    probe = f"{PREFIX}probe-{os.getpid()}"
    made = _run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _run(["ip", "netns", "del", probe], check=False)
    return None


def namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _devices(name: str) -> tuple[str, str]:
    """The veth pair of link ``name``: interface names have 15 characters at most."""
    tag = hashlib.sha1(name.encode()).hexdigest()[:5]
    return f"sb{tag}s", f"sb{tag}c"


def remove_stale(prefix: str = "") -> list[str]:
    """Delete the namespaces this project made for links named ``prefix...`` (all: ``sb-*``), and their veths."""
    if not shutil.which("ip"):
        return []
    gone = [ns for ns in namespaces() if ns.startswith(PREFIX + prefix) and ns[-2:] in ("-c", "-s")]
    if PIDFILES.is_dir():
        for pidfile in PIDFILES.glob(f"{prefix}*.pid"):
            _stop_element(_pid_of(pidfile), pidfile)
    for ns in gone:
        _run(["ip", "netns", "del", ns], check=False)
        _run(["ip", "link", "del", _devices(ns[len(PREFIX):-2])[0]], check=False)
    return gone


def _pid_of(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_element(pid: int) -> bool:
    """Whether ``pid`` is still a delay element (a recycled PID is left alone)."""
    try:
        return DELAY_ELEMENT.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_element(pid: int | None, pidfile: Path | None = None, proc: subprocess.Popen | None = None) -> None:
    """Stop a delay element by its PID (SIGTERM, then SIGKILL); its TUN devices vanish with it."""
    if proc is not None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    elif pid is not None and _is_element(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while _is_element(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_element(pid):
            os.kill(pid, signal.SIGKILL)
    if pidfile is not None:
        pidfile.unlink(missing_ok=True)


def _used_subnets() -> set[int]:
    """Third octets of 169.254.k.0/30 links already up (ours in other namespaces included)."""
    used = set()
    for ns in [None, *namespaces()]:
        argv = ["ip", "-o", "-4", "addr", "show"] if ns is None else ["ip", "-n", ns, "-o", "-4", "addr", "show"]
        for line in _run(argv, check=False).stdout.splitlines():
            for word in line.split():
                if word.startswith("169.254."):
                    used.add(int(word.split(".")[2]))
    return used


class ShapedLink:
    """Client namespace <-veth (or TUN + delay element)-> server side, shaped by a token bucket at ``rate_mbit``
    each way, with ``delay_ms`` of round trip (``± jitter_ms``) added when asked."""

    def __init__(self, name: str, rate_mbit: float | None, delay_ms: float = 0, jitter_ms: float = 0, *,
                 server_ns: bool = False, element: bool | None = None):
        """``element``: the delay element even at no delay (so :meth:`set_delay` can change it in place); by
        default only when ``delay_ms`` or ``jitter_ms`` is set."""
        from servebench import delay_link

        if rate_mbit is not None and rate_mbit <= 0:
            raise ValueError(f"link rate must be positive, not {rate_mbit} Mbit/s")
        delay_link.check(delay_ms, jitter_ms)
        why = unavailable()
        if why:
            raise LinkError(f"cannot make a shaped link: {why}")
        self.name = name
        self.rate_mbit = rate_mbit
        self.delay_ms, self.jitter_ms = float(delay_ms), float(jitter_ms)
        self.delayed = bool(delay_ms or jitter_ms) if element is None else element
        self.element: subprocess.Popen | None = None  # the delay element, when delay_ms or jitter_ms is set
        self.pidfile = PIDFILES / f"{name}.pid"
        self.measured_rtt: dict | None = None
        self.rtt_samples_ms: list[float] = []  # the last measurement's connect times, in order
        self.client_ns = f"{PREFIX}{name}-c"
        self.server_ns = f"{PREFIX}{name}-s" if server_ns else None
        self.server_dev, self.client_dev = _devices(name)
        tag = self.server_dev[2:-1]
        # 169.254.169.0/24 holds the cloud metadata address: never that octet.
        free = [k for k in range(1, 255) if k != 169 and k not in _used_subnets()]
        if not free:
            raise LinkError("no free 169.254.k.0/30 link left")
        k = free[int(tag, 16) % len(free)]
        self.server_addr, self.client_addr = f"169.254.{k}.{SERVER_OCTET}", f"169.254.{k}.{CLIENT_OCTET}"
        self.measured_mbit: float | None = None
        self.netem: bool | None = None
        self._closed = False
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------- set-up
    def _ip(self, ns: str | None, *args: str) -> None:
        _run(["ip", *(["-n", ns] if ns else []), *args])

    def _tc(self, ns: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run(["tc", *(["-n", ns] if ns else []), *args], check=check)

    def _make(self) -> None:
        for ns in (self.client_ns, self.server_ns):
            if ns:
                if ns in namespaces():  # a dead run's leftover of the same name
                    _run(["ip", "netns", "del", ns], check=False)
                _run(["ip", "netns", "add", ns])
                self._ip(ns, "link", "set", "lo", "up")
        _run(["ip", "link", "del", self.server_dev], check=False)
        if self.delayed:
            self._start_element()
        else:
            _run(["ip", "link", "add", self.server_dev, "type", "veth", "peer", "name", self.client_dev])
        self._ip(None, "link", "set", self.client_dev, "netns", self.client_ns)
        if self.server_ns:
            self._ip(None, "link", "set", self.server_dev, "netns", self.server_ns)
        for ns, dev, addr in ((self.server_ns, self.server_dev, self.server_addr),
                              (self.client_ns, self.client_dev, self.client_addr)):
            self._ip(ns, "addr", "add", f"{addr}/30", "dev", dev)
            self._ip(ns, "link", "set", dev, "up")
            if self.rate_mbit is not None:
                self._tc(ns, "qdisc", "add", "dev", dev, "root", *self.tbf_args())
        self.netem = self._tc(self.client_ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
                              check=False).returncode == 0
        if self.netem:
            self._tc(self.client_ns, "qdisc", "del", "dev", "lo", "root", check=False)

    def _start_element(self) -> None:
        """The delay element makes both TUN devices (in the root namespace) and says ``ready``."""
        from servebench import delay_link

        if not os.path.exists("/dev/net/tun"):
            raise LinkError("a delayed link needs TUN devices: no /dev/net/tun here")
        if self.pidfile.is_file():  # a killed run's element for a link of the same name
            _stop_element(_pid_of(self.pidfile), self.pidfile)
        argv = [sys.executable, "-m", DELAY_ELEMENT, "--server-dev", self.server_dev, "--client-dev",
                self.client_dev, "--delay-ms", f"{self.delay_ms:g}", "--jitter-ms", f"{self.jitter_ms:g}",
                "--pidfile", str(self.pidfile), "--control"]
        self.element = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        ready, _, _ = select.select([self.element.stdout], [], [], 10)
        line = self.element.stdout.readline().strip() if ready else ""
        if line != delay_link.READY:
            _stop_element(None, self.pidfile, self.element)
            err = self.element.stderr.read().strip()[-500:]
            raise LinkError(f"the delay element did not start: {err or 'no answer in 10 s'}")

    def set_delay(self, delay_ms: float, jitter_ms: float = 0) -> None:
        """A new round trip (and jitter) on a link with the delay element, in place: devices, addresses and
        the servers listening on them stay. What was measured of the old one is forgotten."""
        from servebench import delay_link

        delay_link.check(delay_ms, jitter_ms)
        if self.element is None or self.element.poll() is not None:
            raise LinkError("this link has no running delay element: make it with delay_ms or element=True")
        self.element.stdin.write(f"{delay_ms:g} {jitter_ms:g}\n")
        self.element.stdin.flush()
        ready, _, _ = select.select([self.element.stdout], [], [], 5)
        answer = self.element.stdout.readline().strip() if ready else "no answer in 5 s"
        if answer != "ok":
            raise LinkError(f"the delay element refused {delay_ms:g} ms ± {jitter_ms:g}: {answer}")
        self.delay_ms, self.jitter_ms = float(delay_ms), float(jitter_ms)
        self.measured_rtt, self.rtt_samples_ms = None, []

    def tbf_args(self) -> list[str]:
        rate_bytes = self.rate_mbit * 1e6 / 8
        # At least one timer tick's worth of tokens (HZ may be 100) and a few full frames.
        burst = max(16 * 1024, int(rate_bytes / 100))
        return ["tbf", "rate", f"{self.rate_mbit:g}mbit", "burst", str(burst), "latency", f"{TBF_LATENCY_MS}ms"]

    # -------------------------------------------------------------- use
    def namespace(self, side: str) -> str | None:
        if side not in ("client", "server"):
            raise ValueError(f"side is 'client' or 'server', not {side!r}")
        return self.client_ns if side == "client" else self.server_ns

    def argv(self, side: str, argv: list[str]) -> list[str]:
        ns = self.namespace(side)
        return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)

    def popen(self, side: str, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(side, argv), **kw)

    def measure_mbit(self, mbytes: float = 4.0, direction: str = "up") -> float:
        """Send ``mbytes`` MiB over the link in a real TCP transfer and return the rate the receiver saw.

        ``up`` is client to server, ``down`` server to client.
        """
        sender, receiver = ("client", "server") if direction == "up" else ("server", "client")
        recv_addr = self.server_addr if receiver == "server" else self.client_addr
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        me = [sys.executable, "-m", "servebench.netns"]
        recv = self.popen(receiver, [*me, "_receive", recv_addr, str(MEASURE_PORT)], stdout=subprocess.PIPE,
                          text=True, env=env)
        try:
            deadline = time.monotonic() + 10
            while True:  # the receiver is listening once its port refuses no more
                probe = _run(self.argv(sender, [*me, "_probe", recv_addr, str(MEASURE_PORT)]), check=False)
                if probe.returncode == 0:
                    break
                if recv.poll() is not None or time.monotonic() > deadline:
                    raise LinkError("the rate measurement's receiver did not start")
                time.sleep(0.1)
            nbytes = int(mbytes * 1024 * 1024)
            _run(self.argv(sender, [*me, "_send", recv_addr, str(MEASURE_PORT), str(nbytes)]))
            out, _ = recv.communicate(timeout=max(30.0, nbytes * 8 / (self.rate_mbit or 1000) / 1e6 * 3))
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait()
        got, seconds = out.split()
        if int(got) != nbytes:
            raise LinkError(f"rate measurement received {got} of {nbytes} bytes")
        self.measured_mbit = int(got) * 8 / float(seconds) / 1e6
        return self.measured_mbit

    def measure_rtt_ms(self, connects: int = 20) -> dict:
        """Open ``connects`` TCP connections from the client side to the server side, one after another; each
        connect returns after SYN and SYN-ACK, one round trip. Their median, min, max and spread in ms."""
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        me = [sys.executable, "-m", "servebench.netns"]
        listener = self.popen("server", [*me, "_listen", self.server_addr, str(MEASURE_PORT)],
                              stdout=subprocess.PIPE, text=True, env=env)
        try:
            if listener.stdout.readline().strip() != "listening":
                raise LinkError("the round-trip measurement's listener did not start")
            out = _run(self.argv("client", [*me, "_connect", self.server_addr, str(MEASURE_PORT), str(connects)]))
        finally:
            listener.kill()
            listener.wait()
        times = [float(x) for x in out.stdout.split()]
        if len(times) != connects:
            raise LinkError(f"round-trip measurement: {len(times)} of {connects} connects timed")
        self.rtt_samples_ms = times
        self.measured_rtt = {"median": round(statistics.median(times), 3), "min": round(min(times), 3),
                             "max": round(max(times), 3), "stdev": round(statistics.pstdev(times), 3),
                             "n": connects, "how": "TCP connect time (SYN to SYN-ACK), client to server"}
        return self.measured_rtt

    def recorded(self) -> dict:
        return {
            "link": ("two TUN devices bridged by a userspace delay element (servebench/delay_link.py), "
                     "tc tbf on both ends" if self.delayed else "veth between network namespaces, tc tbf on both ends"),
            "rate_mbit_set": self.rate_mbit,
            "delay_ms_set": self.delay_ms, "jitter_ms_set": self.jitter_ms,
            "rtt_ms_measured": self.measured_rtt,
            "rate_mbit_measured": None if self.measured_mbit is None else round(self.measured_mbit, 2),
            "tbf_latency_ms": TBF_LATENCY_MS if self.rate_mbit is not None else None,
            "netem": ("available, not used" if self.netem else
                      "not in this kernel: " + ("delay added by the userspace element; no loss" if self.delayed else
                                                "no added delay or loss (loopback-like propagation delay)")),
        }

    # -------------------------------------------------------------- teardown
    def close(self) -> None:
        """Remove the namespaces (their veths and qdiscs go with them); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.element is not None:
            _stop_element(None, self.pidfile, self.element)
        for ns in (self.client_ns, self.server_ns):
            if ns:
                _run(["ip", "netns", "del", ns], check=False)
        _run(["ip", "link", "del", self.server_dev], check=False)  # the root end, when no server namespace

    def __enter__(self) -> "ShapedLink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------ the rate measurement's two ends
def _receive(addr: str, port: int) -> None:
    with socket.create_server((addr, port)) as srv:
        srv.settimeout(60)
        conn, _ = srv.accept()
        while True:  # the probe's connections carry nothing; the transfer carries bytes
            with conn:
                first = conn.recv(1 << 16)
                if first:
                    start = time.perf_counter()
                    got = len(first)
                    while chunk := conn.recv(1 << 16):
                        got += len(chunk)
                    print(got, time.perf_counter() - start)
                    return
            conn, _ = srv.accept()


def _send(addr: str, port: int, nbytes: int) -> None:
    block = b"\0" * (1 << 16)
    with socket.create_connection((addr, port), timeout=60) as s:
        left = nbytes
        while left:
            n = s.send(block[:min(left, len(block))])
            left -= n
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # until the receiver closes: every byte arrived


def _listen(addr: str, port: int) -> None:
    """Accept connections and close them, until killed: the round-trip measurement's far end."""
    with socket.create_server((addr, port), backlog=128) as srv:
        print("listening", flush=True)
        while True:
            conn, _ = srv.accept()
            conn.close()


def _connect(addr: str, port: int, n: int) -> None:
    for _ in range(n):
        start = time.perf_counter()
        s = socket.create_connection((addr, port), timeout=10)
        took = time.perf_counter() - start
        s.close()
        print(f"{took * 1000:.3f}", flush=True)
        time.sleep(0.02)  # one at a time: no queueing behind the last connection's packets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="remove leftover namespaces (clean), or one end of a measurement")
    p.add_argument("cmd", choices=("clean", "_receive", "_send", "_probe", "_listen", "_connect"))
    p.add_argument("args", nargs="*")
    a = p.parse_args(argv)
    if a.cmd == "clean":
        for ns in remove_stale():
            print(f"removed namespace {ns}")
    elif a.cmd == "_receive":
        _receive(a.args[0], int(a.args[1]))
    elif a.cmd == "_send":
        _send(a.args[0], int(a.args[1]), int(a.args[2]))
    elif a.cmd == "_listen":
        _listen(a.args[0], int(a.args[1]))
    elif a.cmd == "_connect":
        _connect(a.args[0], int(a.args[1]), int(a.args[2]))
    else:
        try:
            socket.create_connection((a.args[0], int(a.args[1])), timeout=1).close()
        except OSError:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
