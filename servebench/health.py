"""The one "is this service healthy" probe: both runtimes and the compose healthchecks use it.

    python -m servebench.health URL              # exit 0 when URL answers 200, else 1
    python -m servebench.health tcp://HOST:PORT  # exit 0 when HOST:PORT accepts a connection

Standard library only: the nginx image runs it without the suite's dependencies.
"""
from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request

# Straight to the service: a proxy from the environment must not answer for it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def probe(url: str, timeout: float = 2.0) -> bool:
    """True when a GET of ``url`` answers 200."""
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def accepts(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when ``host:port`` accepts a TCP connection (a service without an HTTP health path)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def target(host: str, port: int | str, path: str | None) -> str:
    """What :func:`main` probes for a service: its health URL, or tcp://host:port without a health path."""
    return f"tcp://{host}:{port}" if path is None else f"http://{host}:{port}{path}"


def check(target: str) -> bool:
    """:func:`probe` of a URL, or :func:`accepts` of a tcp://host:port target."""
    if target.startswith("tcp://"):
        host, _, port = target[len("tcp://"):].rpartition(":")
        return port.isdigit() and accepts(host, int(port))
    return probe(target)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m servebench.health URL|tcp://HOST:PORT", file=sys.stderr)
        return 2
    return 0 if check(argv[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
