"""The edge server and the offloading client on loopback (issue 14), with the small Table 1 CNN.

Offloaded equals local on CIFAR-10 test images; baseline and proposed send the same bytes; a dropped
upload is reported and resumes from the last complete piece; a corrupt piece is refused and not built.
"""
from __future__ import annotations

import socket

import numpy as np
import pytest

from bench.studies.offloading import pieces as wire
from bench.studies.offloading import protocol as proto

pytestmark = pytest.mark.integration

PIECES = 5


@pytest.fixture(scope="module")
def cnn_blobs():
    from bench.studies.offloading import partition
    from models import offload_models

    model = offload_models.get("cifar10_cnn").make()
    return model, partition.encode("cifar10_cnn", partition.pieces(model, PIECES))


@pytest.fixture(scope="module")
def local_units(cnn_blobs):
    from bench.studies.offloading import builder

    return [builder.build([wire.decode(b)]) for b in cnn_blobs[1]]


@pytest.fixture
def server():
    from bench.studies.offloading.edge_server import EdgeServer

    srv = EdgeServer("127.0.0.1", 0).start()
    yield srv
    srv.stop()


def client_for(server, blobs, local):
    from bench.studies.offloading.edge_client import Client

    return Client(f"127.0.0.1:{server.address[1]}", blobs, local)


def status(server) -> dict:
    with socket.create_connection(server.address, timeout=30) as s:
        proto.send(s, proto.STATUS)
        return proto.parse_json(*proto.recv(s))


def test_offloaded_result_equals_local_on_cifar10(server, cnn_blobs, local_units, cifar_dir):
    from servebench import data

    model, blobs = cnn_blobs
    images = data.load_test(cifar_dir, limit=32).images.astype("float32")
    local = np.asarray(model(images, training=False))
    client = client_for(server, blobs, local_units)
    assert np.array_equal(client.query(images)[0].argmax(1), local.argmax(1))  # nothing uploaded: all local
    up = client.upload("proposed", "eq")
    assert up.server["built"] == len(blobs)
    for k in range(len(blobs) + 1):  # every split point, server prefix k then local rest
        server.session.units = [u for u in server.session.units if u.last < k] if k < len(blobs) else \
            server.session.units
        client.server_built = max(k, 1)
        out, ran, *_ = client.query(images)
        np.testing.assert_allclose(out, local, rtol=1e-5, atol=1e-6)
        assert np.array_equal(out.argmax(1), local.argmax(1))
    client.close()


@pytest.mark.parametrize("mode", ["baseline", "proposed"])
def test_upload_with_queries_from_time_zero(server, cnn_blobs, local_units, mode):
    _, blobs = cnn_blobs
    client = client_for(server, blobs, local_units)
    x = np.zeros((1, 32, 32, 3), np.float32)
    up = client.run(mode, f"run-{mode}", x, after=3)
    assert up.upload_s > 0 and up.server["built"] == len(blobs)
    assert [q.after_upload for q in up.queries].count(True) == 3
    assert all(q.server_pieces == len(blobs) for q in up.queries if q.after_upload)
    assert up.server["build_s_total"] > 0
    # The timeline (issue 20, audit item 8): every build says what arrived meanwhile, the transfer's end is
    # known, and the parts are consistent on the client's clock (loopback: no shaped rate, any rate will do).
    from bench.studies.offloading import timeline

    builds = [e for e in up.server["events"] if e["event"] == "built"]
    assert builds and all("bytes_in" in e and e["end_s"] >= e["start_s"] for e in builds)
    row = timeline.of_upload(up.doc(), rate_mbit=10_000.0)
    assert timeline.consistent(row) == []
    tick = 0.011  # TCP_INFO's time since the last data is in kernel ticks (up to 10 ms)
    assert 0 <= row["transfer_start_s"] <= row["sent_end_s"] <= row["transfer_end_s"] + tick
    assert row["transfer_end_s"] <= up.upload_s
    assert row["build_end_s"] <= up.upload_s
    if mode == "baseline":
        assert up.server["units_pieces"] == [1] * len(blobs)  # one piece at a time, in the upload thread


def test_baseline_and_proposed_send_the_same_bytes(server, cnn_blobs, local_units):
    _, blobs = cnn_blobs
    client = client_for(server, blobs, local_units)
    base = client.upload("baseline", "bytes-b")
    prop = client.upload("proposed", "bytes-p")
    assert base.sent_bytes == prop.sent_bytes == sum(map(len, blobs)) + len(blobs) * proto.HEADER.size


def test_dropped_upload_is_reported_and_resumes_from_the_last_complete_piece(server, cnn_blobs, local_units):
    _, blobs = cnn_blobs
    client = client_for(server, blobs, local_units)
    # Cut the connection in the middle of piece 4: pieces 1-3 are complete.
    drop_at = sum(len(b) + proto.HEADER.size for b in blobs[:3]) + proto.HEADER.size + len(blobs[3]) // 2
    messages = []
    up = client.upload("baseline", "drop", drop_after_bytes=drop_at, log=messages.append)
    assert len(up.drops) == 1 and "lost its connection" in up.drops[0] and messages == up.drops
    state = up.server
    assert state["built"] == len(blobs)
    events = [e["event"] for e in state["events"]]
    assert "dropped" in events and "resumed" in events
    dropped = next(e for e in state["events"] if e["event"] == "dropped")
    resumed = next(e for e in state["events"] if e["event"] == "resumed")
    assert dropped["complete"] == 3 and dropped["partial_bytes"] > 0 and resumed["from_piece"] == 3
    # Each piece was received (and built) once: the resumed upload began at piece 4.
    assert [e["piece"] for e in state["events"] if e["event"] == "received"] == list(range(len(blobs)))
    # Sent: everything once, plus the half piece lost with the connection.
    assert up.sent_bytes == sum(len(b) + proto.HEADER.size for b in blobs) + proto.HEADER.size + len(blobs[3]) // 2


def test_corrupt_piece_is_rejected_with_a_clear_error_and_not_built(server, cnn_blobs, local_units):
    from bench.studies.offloading.edge_client import PieceRefused

    _, blobs = cnn_blobs
    bad = bytearray(blobs[1])
    bad[len(bad) // 2] ^= 0xFF
    client = client_for(server, [blobs[0], bytes(bad), *blobs[2:]], local_units)
    with pytest.raises(PieceRefused, match=r"piece 2/5 of cifar10_cnn is corrupt.*rejected, not built"):
        client.upload("baseline", "corrupt")
    state = status(server)
    assert state["built"] == 1 and state["received"] == 1  # piece 1 only; piece 2 never built
    assert any(e["event"] == "rejected" and e["piece"] == 1 for e in state["events"])


def test_corrupt_piece_is_refused_by_the_decoder():
    from bench.studies.offloading.pieces import Piece, PieceError, decode, encode

    blob = encode(Piece("m", 0, 1, {"x": 1}, [np.arange(6, dtype=np.float32).reshape(2, 3)], (2,), (3,)))
    assert decode(blob).weights[0].tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(PieceError, match="corrupt"):
        decode(blob[:40] + bytes([blob[40] ^ 1]) + blob[41:])
    with pytest.raises(PieceError, match="corrupt|not a model piece"):
        decode(blob[:-5])
    with pytest.raises(PieceError, match="not a model piece"):
        decode(b"hello")


def test_bad_messages_get_an_error_not_a_crash(server):
    with socket.create_connection(server.address, timeout=30) as s:
        s.sendall(b"XXXX" + bytes(8))
        kind, payload = proto.recv(s)
        assert kind == proto.ERROR and "unknown message kind" in proto.parse_json(kind, payload)["error"]
    with socket.create_connection(server.address, timeout=30) as s:
        proto.send_json(s, proto.HELLO, {"model": "m"})
        kind, payload = proto.recv(s)
        assert kind == proto.ERROR and "session, model and count" in proto.parse_json(kind, payload)["error"]
    assert status(server) == {}
