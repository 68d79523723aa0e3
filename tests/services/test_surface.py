"""What a hostile or careless client can reach, and what survives a killed master.

Per HTTP architecture of the registry, on the session's shared stack (tests/conftest.py http_stack), whose
tiny per-client limit (SB_CONN_LIMIT) keeps the limit test cheap; the other tests send one request at a time.
The last test SIGKILLs the master of the service the front end forwards to (the front end itself when the
model is in it), then starts it again for the tests that share the stack.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time

import psutil
import pytest

from servebench import codecs, registry
from tests.conformance import HTTP_STACK_KNOBS, forwarded_to, members_of, model_service, speaks_servebench
from tests.stacks import port_of

pytestmark = pytest.mark.integration
CONN_LIMIT = HTTP_STACK_KNOBS["conn_limit"]
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
ONE_IMAGE = (b"\x00" * 3072, codecs.OCTET)


@pytest.fixture
def st(http_stack):
    return http_stack


def our_backend(st) -> str | None:
    """The service the front end forwards to when it is one of ours (Triton's and TF Serving's own
    servers answer their own surface: they are checked through nginx only)."""
    name = forwarded_to(st.arch)
    return name if name and speaks_servebench(name) else None


def call(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def service_ports(st) -> dict[str, int]:
    """Where /v1/info and /healthz are served: through nginx, the front end itself, and the backend."""
    ports = {"nginx": port_of(st, "nginx"), "frontend": port_of(st, "frontend")}
    if our_backend(st):
        ports["backend"] = port_of(st, our_backend(st))
    return ports


def assert_security_headers(headers, what):
    for name, value in SECURITY_HEADERS.items():
        assert headers.get_all(name) == [value], (what, name, headers.get_all(name))


def leaks(doc, ports: set[int]) -> list:
    """Absolute paths, loopback addresses and internal ports anywhere in a JSON document."""
    found = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += [f"key {k!r}"] if k.endswith("_port") or k in ("path", "address", "model_base") else []
            found += leaks(v, ports)
    elif isinstance(doc, list):
        for v in doc:
            found += leaks(v, ports)
    elif isinstance(doc, str):
        if doc.startswith("/") or "127.0.0.1" in doc or any(str(p) in doc for p in ports):
            found.append(doc)
    elif isinstance(doc, int) and doc in ports:
        found.append(doc)
    return found


def test_info_answers_get_and_head_only(st):
    for where, port in service_ports(st).items():
        status, headers, data = call(port, "GET", "/v1/info")
        assert status == 200, (where, data)
        head = raw(port, b"HEAD /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), (where, head[:200])
        assert head.split(b"\r\n\r\n", 1)[1] == b"", (where, "HEAD answered with a body")
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, data = call(port, method, "/v1/info", body=b"{}")
            assert status == 405, (where, method, data)
            assert "GET" in headers["Allow"], (where, method, headers["Allow"])
            assert "error" in json.loads(data), (where, method, data)


def test_info_names_the_arch_and_model_and_nothing_internal(st):
    ports = {svc["port"] for svc in st.doc["services"].values()}
    doc = json.loads(call(port_of(st, "nginx"), "GET", "/v1/info")[2])
    assert doc["arch"] == st.arch and doc["settings"]["arch"] == st.arch
    assert leaks(doc, ports) == []
    if our_backend(st):
        direct = json.loads(call(port_of(st, our_backend(st)), "GET", "/v1/info")[2])
        assert leaks(direct, ports) == []
        for backend in (doc["backend"], direct):
            # The backend's own name, not the front end's default.
            assert backend["service"] == our_backend(st) and backend["settings"]["arch"] == st.arch
            if not members_of(st.arch):  # a coordinator loads no model: its members do
                assert backend["model"]["name"] == "cifar10_cnn" and backend["model"]["version"] == 1
                assert backend["model"]["tensorflow"]
    elif forwarded_to(st.arch):  # a third-party server: what the front end says of it
        assert doc["backend"]
    else:
        assert doc["model"]["name"] == "cifar10_cnn" and doc["model"]["version"] == 1


def test_health_answers_head(st):
    probes = [(port_of(st, "nginx"), "/nginx-health"), (port_of(st, "nginx"), "/healthz"),
              (port_of(st, "frontend"), "/healthz")]
    if our_backend(st):
        probes.append((port_of(st, our_backend(st)), "/healthz"))
    for port, path in probes:
        head = raw(port, f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        assert head.startswith(b"HTTP/1.1 200"), (port, path, head[:200])
        assert head.split(b"\r\n\r\n", 1)[1] == b"", (port, path, "HEAD answered with a body")


def test_security_headers_on_every_kind_of_response(st):
    nginx = port_of(st, "nginx")
    cases = [
        ("GET", "/v1/info", b"", {}, 200),
        ("GET", "/nginx-health", b"", {}, 200),
        ("POST", "/v1/predict", ONE_IMAGE[0], {"Content-Type": ONE_IMAGE[1]}, 200),
        ("POST", "/v1/predict", b"{", {"Content-Type": codecs.JSON}, 400),
        ("GET", "/nope", b"", {}, 404),
        ("GET", "/v1/predict", b"", {}, 405),
        ("POST", "/v1/predict", b"x", {"Content-Type": "text/plain"}, 415),
        ("GET", "/v1/info", b"", {"Host": "evil.example"}, 400),
    ]
    for method, path, body, headers, expected in cases:
        status, got, data = call(nginx, method, path, body, headers)
        assert status == expected, (method, path, data)
        assert_security_headers(got, f"{method} {path} -> {status}")
    # nginx's own error page for a request it cannot parse.
    bad = raw(nginx, b"BOGUS\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400") and b"X-Frame-Options: DENY" in bad, bad[:300]


def test_a_disallowed_host_gets_a_400_json_error(st):
    for port in (port_of(st, "nginx"), port_of(st, "frontend")):
        status, headers, data = call(port, "GET", "/healthz", headers={"Host": "evil.example"})
        assert status == 400, data
        assert headers["Content-Type"] == "application/json" and "Host" in json.loads(data)["error"]
        for host in ("localhost", f"127.0.0.1:{port}"):  # the names nginx, the harness and healthchecks send
            assert call(port, "GET", "/healthz", headers={"Host": host})[0] == 200, host


def test_http09_requests_are_refused(st):
    # nginx 1.22 would answer with a bare body: no status line, no headers.
    assert raw(port_of(st, "nginx"), b"GET /v1/info\r\n") == b""
    assert raw(port_of(st, "nginx"), b"GET /nginx-health\r\n") == b""


def test_the_per_client_limit_gives_429(st):
    nginx = port_of(st, "nginx")
    held = []
    try:
        # Requests whose bodies never finish: each holds one of the client's slots.
        for _ in range(CONN_LIMIT):
            s = socket.create_connection(("127.0.0.1", nginx), timeout=10)
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/octet-stream\r\nContent-Length: 3072\r\n\r\n\x00")
            held.append(s)
        deadline = time.monotonic() + 10
        while True:  # nginx counts a request once it has read its header
            status, headers, data = call(nginx, "GET", "/v1/info")
            if status == 429 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 429, data
        doc = json.loads(data)
        assert f"the limit is {CONN_LIMIT}" in doc["error"] and "SB_CONN_LIMIT" in doc["error"]
        assert_security_headers(headers, "429")
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while call(nginx, "GET", "/v1/info")[0] != 200:
        assert time.monotonic() < deadline, "the slots were not given back"
        time.sleep(0.05)


def _gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE  # an init that does not reap still counts as gone
    except psutil.NoSuchProcess:
        return True


def test_workers_die_with_a_killed_master(st):
    """Last for each stack in this module. The killed service is left dead: the shared stack's fixture
    (``http_stack``) starts it again only if a later test uses the stack, so the last one pays no restart."""
    slow = registry.get(st.arch).slow_start
    if slow:
        pytest.skip(f"{st.arch}: test_faults.py kills its master and checks that its whole process group goes; "
                    f"not twice ({slow})")
    name = model_service(st.arch)
    pid = st.doc["services"][name]["pid"]
    workers = psutil.Process(pid).children(recursive=True)
    # gunicorn's masters have workers; a one-process server (uvicorn --workers 1) has none: then only it dies.
    assert workers or name != "frontend", workers
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not all(_gone(w) for w in workers):
        assert time.monotonic() < deadline, [w for w in workers if not _gone(w)]
        time.sleep(0.1)
    try:
        os.waitpid(pid, 0)  # the master was our child (stack.up started it)
    except ChildProcessError:
        pass
    # What a client sees now: a 502 (from Django for a backend, from nginx for the front end), headers and all.
    status, headers, data = call(port_of(st, "nginx"), "POST", "/v1/predict", ONE_IMAGE[0],
                                 {"Content-Type": ONE_IMAGE[1]})
    assert status == 502, data
    assert_security_headers(headers, "502")
    assert (name if name != "frontend" else "front end") in json.loads(data)["error"]
