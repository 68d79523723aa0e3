"""Helpers for tests that start real stacks on loopback, each on its own free ports (fixtures: conftest.py)."""
from __future__ import annotations

import os
import socket
from contextlib import closing

from servebench.settings import ENV_PREFIX, Settings, env_name, env_value

# Every port a service listens on (its probed port, and the backends' second ones).
PORT_FIELDS = [name for name in Settings.model_fields if name.endswith("_port") or name == "port"]
PORT_KNOBS = [env_name(name) for name in PORT_FIELDS]


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


def _as_env(overrides: dict) -> dict[str, str]:
    """Overrides by field (``frontend_workers=1``) or variable name (``SB_FRONTEND_WORKERS="1"``) as variables."""
    return {(k if k.startswith(ENV_PREFIX) else env_name(k)): env_value(v) for k, v in overrides.items()}


def stack_settings(**overrides) -> Settings:
    """The default settings with every service port moved to a free one, then ``overrides``.

    Nothing is read from the environment: a test's stack is the same wherever it runs.
    """
    return Settings.from_env({**dict(zip(PORT_KNOBS, map(str, free_ports(len(PORT_KNOBS))))), **_as_env(overrides)})


def stack_env(**overrides: str) -> dict[str, str]:
    """The current environment with every service port moved to a free one (for a harness subprocess)."""
    env = dict(os.environ)
    env.update(dict(zip(PORT_KNOBS, map(str, free_ports(len(PORT_KNOBS))))))
    env.update(overrides)
    return env


def port_of(st, service: str) -> int:
    return st.doc["services"][service]["port"]


def is_listening(port: int) -> bool:
    with closing(socket.socket()) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
