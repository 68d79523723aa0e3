"""Where a running Ray cluster listens, checked with ``ss`` as the goal says: on the host and in its namespace.

Listeners inside the namespace may be on its loopback, its link-local veth address, or a wildcard (Serve's
replicas bind ``[::]``), which there reaches only those two; on the host, no process of the cluster may listen
outside loopback or link-local. :func:`check` returns what it saw and every listener that breaks the rule.
"""
from __future__ import annotations

import ipaddress
import subprocess

import psutil

WILDCARDS = ("*", "0.0.0.0", "[::]")


def loopback_or_link_local(addr: str) -> bool:
    if addr in WILDCARDS:  # every interface
        return False
    ip = ipaddress.ip_address(addr.strip("[]").split("%")[0].removeprefix("::ffff:"))
    return ip.is_loopback or ip.is_link_local


def listeners(prefix: list[str]) -> list[tuple[str, int, set[int], str]]:
    """(address, port, pids, line) of each TCP listener ``ss`` shows (``prefix``: e.g. ``ip netns exec NS``)."""
    out = subprocess.run([*prefix, "ss", "-Hltnp"], capture_output=True, text=True, check=True, timeout=30).stdout
    found = []
    for line in out.splitlines():
        addr, _, port = line.split()[3].rpartition(":")
        pids = {int(x.split("=")[1]) for x in line.replace(")", ",").split(",") if x.startswith("pid=")}
        found.append((addr, int(port), pids, line.strip()))
    return found


def check(namespace: str, supervisor_pid: int) -> dict:
    """The namespace's addresses, its listeners and the host's listeners of the cluster, and those outside."""
    from services.rayserve.cluster import ns_pids

    out = subprocess.run(["ip", "-n", namespace, "-o", "addr", "show"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    addrs = [line.split()[3].split("/")[0] for line in out.splitlines()]
    inside = listeners(["ip", "netns", "exec", namespace])
    ours = ns_pids(namespace) | {supervisor_pid}
    try:
        ours |= {p.pid for p in psutil.Process(supervisor_pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        pass
    on_host = [x for x in listeners([]) if x[2] & ours]
    return {"namespace": namespace, "namespace_addresses": addrs, "namespace_listeners": len(inside),
            "host_listeners_of_cluster": len(on_host), "outside": outside(addrs, inside, on_host)}


def outside(addrs: list[str], inside: list, on_host: list) -> list[str]:
    """What breaks the rule: a namespace address, a namespace listener (but a wildcard) or a host listener of the
    cluster's that is neither loopback nor link-local."""
    return ([f"namespace address {a}" for a in addrs if not loopback_or_link_local(a)]
            + [f"namespace: {line}" for addr, _, _, line in inside
               if addr not in WILDCARDS and not loopback_or_link_local(addr)]
            + [f"host: {line}" for addr, _, _, line in on_host if not loopback_or_link_local(addr)])
