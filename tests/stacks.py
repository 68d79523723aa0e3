"""Helpers for tests that start real stacks on loopback, each on its own free ports (fixtures: conftest.py)."""
from __future__ import annotations

import os
import socket
from contextlib import closing

import pytest

from servebench import stack, topology

PORT_KNOBS = [k for k in topology.KNOBS if k.endswith("_PORT")]


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def stack_env(**overrides: str) -> dict[str, str]:
    """The current environment with every service port moved to a free one."""
    env = dict(os.environ)
    env.update(dict(zip(PORT_KNOBS, map(str, free_ports(len(PORT_KNOBS))))))
    env.update(overrides)
    return env


def port_of(st, service: str) -> int:
    return st.doc["services"][service]["port"]


def is_listening(port: int) -> bool:
    with closing(socket.socket()) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
