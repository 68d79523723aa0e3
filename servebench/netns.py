"""A shaped link between network namespaces: veth pair, link-local addresses, ``tc tbf`` on both ends.

    with ShapedLink("stream", rate_mbit=20) as link:
        server listens on link.server_addr (root namespace, or its own with server_ns=True)
        client = link.popen("client", [python, "-m", ...])     # runs inside the client's namespace
        link.measure_mbit()                                    # the rate a TCP transfer really gets

The client always gets a namespace of its own (``sb-<name>-c``); the server side
stays in the root namespace unless ``server_ns`` asks for one (``sb-<name>-s``).
Addresses are link-local (169.254.<k>.1 server, .2 client, a /30 per link): no
private-range or public address is used. The token bucket shapes each end's
egress, so both directions get the rate. This kernel has no netem, so no delay
or loss can be added; :meth:`ShapedLink.recorded` says so when it is absent.

Everything is removed on ``close()`` (also when set-up fails half-way), and
:func:`remove_stale` removes what a killed run left (namespaces named ``sb-*``).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "sb-"
SERVER_OCTET, CLIENT_OCTET = 1, 2
TBF_LATENCY_MS = 50  # the queue a bucket keeps before dropping: bounded, like a real access link's buffer
MEASURE_PORT = 5599  # inside the link's own addresses only
REPO_ROOT = Path(__file__).resolve().parent.parent


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
    for ns in gone:
        _run(["ip", "netns", "del", ns], check=False)
        _run(["ip", "link", "del", _devices(ns[len(PREFIX):-2])[0]], check=False)
    return gone


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
    """Client namespace <-veth-> server side, shaped by a token bucket at ``rate_mbit`` each way."""

    def __init__(self, name: str, rate_mbit: float | None, *, server_ns: bool = False):
        why = unavailable()
        if why:
            raise LinkError(f"cannot make a shaped link: {why}")
        if rate_mbit is not None and rate_mbit <= 0:
            raise ValueError(f"link rate must be positive, not {rate_mbit} Mbit/s")
        self.name = name
        self.rate_mbit = rate_mbit
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

    def recorded(self) -> dict:
        return {
            "link": "veth between network namespaces, tc tbf on both ends",
            "rate_mbit_set": self.rate_mbit,
            "rate_mbit_measured": None if self.measured_mbit is None else round(self.measured_mbit, 2),
            "tbf_latency_ms": TBF_LATENCY_MS if self.rate_mbit is not None else None,
            "netem": ("available, not used" if self.netem else
                      "not in this kernel: no added delay or loss (loopback-like propagation delay)"),
        }

    # -------------------------------------------------------------- teardown
    def close(self) -> None:
        """Remove the namespaces (their veths and qdiscs go with them); idempotent."""
        if self._closed:
            return
        self._closed = True
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="remove leftover namespaces (clean), or one end of a rate measurement")
    p.add_argument("cmd", choices=("clean", "_receive", "_send", "_probe"))
    p.add_argument("args", nargs="*")
    a = p.parse_args(argv)
    if a.cmd == "clean":
        for ns in remove_stale():
            print(f"removed namespace {ns}")
    elif a.cmd == "_receive":
        _receive(a.args[0], int(a.args[1]))
    elif a.cmd == "_send":
        _send(a.args[0], int(a.args[1]), int(a.args[2]))
    else:
        try:
            socket.create_connection((a.args[0], int(a.args[1])), timeout=1).close()
        except OSError:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
