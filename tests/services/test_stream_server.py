"""The streaming server (services/stream): every transport answers as the model does in process; bad input,
stalled and vanished clients, and a thousand idle connections leave it serving the others, with nothing leaked.

One server process for the module, started directly (no nginx: tests/services/test_stream_stack.py goes
through it), on free ports with a small window and frame limit.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import psutil
import pytest

from bench.studies.streaming import client as sc
from servebench.settings import REPO_ROOT
from services.stream import frames
from tests.conformance import STREAM_TRANSPORTS, stream_architectures
from tests.stacks import free_ports

pytestmark = pytest.mark.integration

WINDOW = 4
MAX_KB = 64
START_TIMEOUT_S = 180


@contextlib.contextmanager
def running_server(tmp_path_factory, **env_extra):
    """A streaming server on free ports with WINDOW and MAX_KB (``env_extra``: more SB_* variables)."""
    tcp, ws, grpc_port = free_ports(3)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "PYTHONPATH": str(REPO_ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "2", "SB_STREAM_PORT": str(tcp), "SB_STREAM_WS_PORT": str(ws),
           "SB_STREAM_GRPC_PORT": str(grpc_port), "SB_STREAM_WINDOW": str(WINDOW), "SB_STREAM_MAX_FRAME_KB": str(MAX_KB),
           **env_extra}
    log = tmp_path_factory.mktemp("stream") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.stream.server"], env=env, cwd=REPO_ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the streaming server exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{ws}/healthz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the streaming server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield {"tcp": tcp, "ws": ws, "grpc": grpc_port, "proc": proc, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory) as s:
        yield s


def info(server) -> dict:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{server['ws']}/v1/info", timeout=10).read())


def wait_for(cond, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


@pytest.fixture(scope="module")
def camera(test_split):
    return sc.Camera(test_split.images[:48], test_split.labels[:48])


def run_stream(server, transport, camera, n=48, rate=None, window=WINDOW):
    port = server[transport]
    rs, start, end = sc.stream(sc.transport_for(transport, camera, "127.0.0.1", port, window), n, rate, window)
    return rs


# The transport of each stream architecture of the registry (the server here is run directly, without needs).
@pytest.mark.parametrize("transport", list(dict.fromkeys(STREAM_TRANSPORTS[a.protocol] for a in stream_architectures())))
def test_every_transport_answers_as_the_model_does_in_process(server, camera, core, transport):
    rs = run_stream(server, transport, camera)
    expected = core.predict(camera.images)
    assert [r.kind for r in rs] == ["answer"] * len(rs)
    assert [r.frame_id for r in rs] == list(range(len(rs)))
    assert np.array_equal([r.cls for r in rs], expected.classes)
    assert np.allclose(np.stack([r.probabilities for r in rs]), expected.probabilities, atol=1e-5)


def test_pipelined_answers_keep_their_frame_ids(server, camera, core):
    """Several frames in flight on one connection (the window): each answer names its own frame."""
    sock = socket.create_connection(("127.0.0.1", server["tcp"]), timeout=30)
    ids = [1000 + 7 * k for k in range(WINDOW)]
    sock.sendall(b"".join(frames.image_frame(i, i * 3, camera.images[k]) for k, i in enumerate(ids)))
    replies = [read_reply(sock) for _ in ids]
    sock.close()
    assert sorted(r.frame_id for r in replies) == ids
    expected = core.predict(camera.images[:WINDOW]).classes
    for r in replies:
        assert r.kind == frames.ANSWER and r.capture_ns == r.frame_id * 3
        assert r.cls == expected[ids.index(r.frame_id)]


def read_reply(sock) -> frames.Reply | None:
    head = recv_exactly(sock, frames.HEADER_SIZE)
    if head is None:
        return None
    header = frames.parse_header(head, 1 << 20)
    return frames.decode_reply(header, recv_exactly(sock, header.length) or b"")


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None if not buf else buf
        buf += chunk
    return buf


def closed(sock) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def assert_others_unaffected(server, camera):
    rs = run_stream(server, "tcp", camera, n=8)
    assert [r.kind for r in rs] == ["answer"] * 8


def bad_tcp(server, data: bytes, shut: bool = False) -> tuple[frames.Reply, socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server["tcp"]), timeout=30)
    sock.sendall(data)
    if shut:
        sock.shutdown(socket.SHUT_WR)
    return read_reply(sock), sock


def test_malformed_header_gets_an_error_frame_and_a_clean_close(server, camera):
    reply, sock = bad_tcp(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(16))
    assert reply.kind == frames.ERROR and reply.code == frames.BAD_MAGIC and "not a servebench frame" in reply.message
    assert closed(sock)
    assert_others_unaffected(server, camera)


def test_unknown_version(server, camera):
    buf = bytearray(frames.image_frame(5, 0, camera.images[0]))
    buf[2] = 2
    reply, sock = bad_tcp(server, bytes(buf))
    assert reply.code == frames.BAD_VERSION and reply.frame_id == 5 and "version 2" in reply.message
    assert closed(sock)


def test_frame_over_the_size_limit(server, camera):
    header = frames.Header(frames.IMAGE, 9, 0, frames.RAW, (32, 32, 3), MAX_KB * 1024 + 1).pack()
    reply, sock = bad_tcp(server, header)
    assert reply.code == frames.TOO_LARGE and reply.frame_id == 9 and str(MAX_KB * 1024) in reply.message
    assert closed(sock)
    assert_others_unaffected(server, camera)


def test_wrong_shape_is_answered_and_the_stream_goes_on(server, camera):
    small = np.zeros((16, 16, 3), np.uint8)
    reply, sock = bad_tcp(server, frames.image_frame(1, 0, small) + frames.image_frame(2, 0, camera.images[0]))
    assert reply.kind == frames.ERROR and reply.code == frames.BAD_SHAPE and "16x16x3" in reply.message
    good = read_reply(sock)
    assert good.kind == frames.ANSWER and good.frame_id == 2
    sock.close()


def test_truncated_frame(server, camera):
    data = frames.image_frame(3, 0, camera.images[0])
    reply, sock = bad_tcp(server, data[:1000], shut=True)
    assert reply.code == frames.TRUNCATED and reply.frame_id == 3
    assert "truncated frame" in reply.message and "1000 - 32" not in reply.message and "968 of 3072" in reply.message
    assert closed(sock)


def test_bad_jpeg_is_answered(server, camera):
    payload = b"\xff\xd8 this is no jpeg"
    data = frames.Header(frames.IMAGE, 4, 0, frames.JPEG, (32, 32, 3), len(payload)).pack() + payload
    reply, sock = bad_tcp(server, data, shut=True)
    assert reply.code == frames.BAD_IMAGE and "JPEG" in reply.message
    sock.close()


def test_websocket_text_message_and_oversize(server, camera):
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{server['ws']}/v1/stream") as ws:
        ws.send("hello")
        reply = frames.decode_reply(*frames.split(ws.recv(timeout=30), 1 << 20))
        assert reply.code == frames.BAD_KIND and "binary" in reply.message
    header = frames.Header(frames.IMAGE, 9, 0, frames.RAW, (32, 32, 3), MAX_KB * 1024 + 1).pack()
    from websockets.exceptions import ConnectionClosedError

    with connect(f"ws://127.0.0.1:{server['ws']}/v1/stream", max_size=1 << 22) as ws:
        ws.send(header + bytes(MAX_KB * 1024 + 1))
        # Over the limit as a message: websockets closes with 1009 (message too big) before the core sees it.
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=30)
        assert info.value.rcvd.code == 1009
    with pytest.raises(Exception, match="404"):
        connect(f"ws://127.0.0.1:{server['ws']}/elsewhere")
    assert_others_unaffected(server, camera)


def test_grpc_unknown_version_ends_the_call_with_invalid_argument(server, camera):
    import grpc

    from services.stream import stream_pb2, stream_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{server['grpc']}") as channel:
        call = stream_pb2_grpc.FrameStreamStub(channel).Stream(iter([stream_pb2.Frame(version=7, frame_id=3)]))
        replies = []
        with pytest.raises(grpc.RpcError) as info:
            for r in call:
                replies.append(r)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "version 7" in info.value.details()
        assert replies and replies[0].error_code == frames.BAD_VERSION and replies[0].frame_id == 3
        wrong = stream_pb2.Frame(version=1, frame_id=4, shape=[16, 16, 3], data=bytes(768))
        replies = list(stream_pb2_grpc.FrameStreamStub(channel).Stream(iter([wrong])))
        assert replies[0].error_code == frames.BAD_SHAPE


def server_rss_mb(server) -> float:
    return psutil.Process(server["proc"].pid).memory_info().rss / 2**20


def test_a_client_that_stops_reading_is_held_at_its_window(server, camera):
    """It keeps sending and never reads: the server stops reading it; its memory stays bounded."""
    before = server_rss_mb(server)
    sock = socket.create_connection(("127.0.0.1", server["tcp"]))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(3.0)
    frame = frames.image_frame(0, 0, camera.images[0])
    sent = 0
    try:
        while sent < 100000:  # 310 MB if nothing pushed back
            sock.sendall(frame)
            sent += 1
    except (socket.timeout, TimeoutError):
        pass
    assert sent < 100000, "the server read everything: no backpressure"
    grown = server_rss_mb(server) - before
    assert grown < 64, f"server memory grew {grown:.0f} MB for a stalled client"
    assert_others_unaffected(server, camera)
    sock.close()
    assert wait_for(lambda: info(server)["counters"]["streams_open"] == 0, 120)


def test_a_client_that_disconnects_mid_stream(server, camera):
    base = info(server)
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", server["tcp"]))
        sock.sendall(b"".join(frames.image_frame(i, 0, camera.images[i]) for i in range(WINDOW)) +
                     frames.image_frame(99, 0, camera.images[0])[:500])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        sock.close()
    assert_others_unaffected(server, camera)
    assert wait_for(lambda: info(server)["counters"]["streams_open"] == 0, 120)
    assert wait_for(lambda: info(server)["fds"] <= base["fds"] + 2, 120)


@pytest.mark.slow
def test_a_thousand_idle_connections_leak_nothing(server, camera):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    proc = psutil.Process(server["proc"].pid)
    base = info(server)
    base_rss = server_rss_mb(server)
    socks = [socket.create_connection(("127.0.0.1", server["tcp"]), timeout=30) for _ in range(1000)]
    assert wait_for(lambda: info(server)["counters"]["streams_open"] >= 1000, 60)
    assert_others_unaffected(server, camera)  # a working stream among a thousand idle ones
    during = info(server)
    assert during["threads"] == base["threads"], "idle connections must not cost a thread each"
    for s in socks:
        s.close()
    assert wait_for(lambda: info(server)["counters"]["streams_open"] == 0, 60)
    after = info(server)
    assert after["fds"] <= base["fds"] + 2 and after["threads"] == base["threads"]
    assert server_rss_mb(server) - base_rss < 60
    assert proc.is_running()
