"""The stacks test_compose.py does not cover, under docker compose for real: the frame-stream architectures
(stream-tcp, -ws and -grpc: three doors of one nginx + stream server) and the services a study starts without an
architecture (the serverless study's object store, the offloading study's edge server). Each: up from the
generated compose file, one good request answered as it should be, one bad request refused clearly (HTTP 4xx,
or the protocol's own refusal where it speaks no HTTP), and a `down` that leaves nothing. All of them come from
the registry (tests/conformance.py); a study service with no check here fails, saying so.

Needs a Docker engine (``bash .ci/docker-engine.sh start``); skipped otherwise.
"""
from __future__ import annotations

import http.client
import json
import socket

import numpy as np
import pytest

from servebench import compose, registry, topology
from servebench.settings import HarnessSettings
from tests.conformance import params, stream_architectures, transport_of
from tests.servebench.test_compose import PROJECT, QUIET, docker, pick_base_image
from tests.stacks import free_ports, stack_settings

pytestmark = pytest.mark.docker

STREAM_PARAMS = params(stream_architectures(), "docker")
STREAM_ARCHES = [p.values[0] for p in STREAM_PARAMS if not p.marks]


def study_services() -> list[registry.Service]:
    """The registry's services that no architecture runs: a study starts them itself (through the runtime)."""
    used = {s for a in registry.architectures() for s in a.services}
    return [svc for name, svc in registry.services().items() if name not in used]


@pytest.fixture(scope="module")
def images() -> str:
    """The images of the stacks here, built once (the Python image's layers are shared with test_compose's)."""
    base_image = pick_base_image()
    services = {s for arch in STREAM_ARCHES for s in registry.get(arch).services} | {s.name for s in study_services()}
    docker(base_image).build(sorted(services & set(compose.built())), log=QUIET)
    return base_image


def assert_down_leaves_nothing(st) -> None:
    assert docker().down(st.run_dir, log=QUIET) is True
    assert compose.project_containers(PROJECT) == {}
    assert docker().state(st.run_dir) is None
    assert st.processes() == {name: [] for name in st.doc["services"]}


# ------------------------------------------------------------------ the frame streams
@pytest.fixture(scope="module")
def stream_stack(images, tmp_path_factory):
    """One compose stack for the stream architectures (they share their services), brought up once."""
    if not STREAM_ARCHES:
        pytest.skip("no stream architecture can run under docker here")
    run = tmp_path_factory.mktemp("docker-stream")
    st = docker(images).up(STREAM_ARCHES[0], stack_settings(stream_window=4), run, log=QUIET)
    yield st
    docker(images).down(run, log=QUIET)


def test_the_stream_stack_runs_its_services_in_containers(stream_stack):
    assert set(stream_stack.doc["services"]) == {svc.name for svc in registry.services_for(stream_stack.arch)}
    assert all(len(svc["container"]) == 64 for svc in stream_stack.doc["services"].values())


@pytest.mark.parametrize("arch", STREAM_PARAMS)
def test_a_stream_is_answered_as_the_model_does(stream_stack, test_split, core, arch):
    from bench.studies.streaming import client as sc

    door = transport_of(registry.get(arch))
    camera = sc.Camera(test_split.images[:16], test_split.labels[:16])
    host, port = sc.endpoint(door, stream_stack.settings)
    rs, _, _ = sc.stream(sc.transport_for(door, camera, host, port, 4), 16, None, 4)
    assert [r.kind for r in rs] == ["answer"] * 16, [r.message for r in rs]
    assert np.array_equal([r.cls for r in rs], core.predict(camera.images).classes)


def refused_tcp(settings) -> str:
    """An HTTP request on the TCP door: an error frame (bad magic), then the connection closes."""
    from bench.studies.streaming import client as sc
    from services.stream import frames

    host, port = sc.endpoint("tcp", settings)
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(16))
        data = b""
        while len(data) < frames.HEADER_SIZE or len(data) < frames.HEADER_SIZE + int.from_bytes(data[28:32], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = frames.decode_reply(*frames.split(data, 1 << 20))
    assert reply.kind == frames.ERROR and reply.code == frames.BAD_MAGIC, reply
    return reply.message


def refused_ws(settings) -> str:
    """A plain HTTP GET (no upgrade) of the WebSocket door, through nginx: a 4xx from the stream server."""
    from bench.studies.streaming import client as sc
    from bench.studies.streaming.transports import WS_PATH

    host, port = sc.endpoint("ws", settings)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", WS_PATH)
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    conn.close()
    assert 400 <= resp.status < 500, (resp.status, body)
    return f"{resp.status} {body.strip()}"


def refused_grpc(settings) -> str:
    """A frame of an unknown version on the gRPC door, through nginx: INVALID_ARGUMENT (gRPC's 400)."""
    import grpc

    from bench.studies.streaming import client as sc
    from services.stream import stream_pb2, stream_pb2_grpc

    host, port = sc.endpoint("grpc", settings)
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        call = stream_pb2_grpc.FrameStreamStub(channel).Stream(iter([stream_pb2.Frame(version=7, frame_id=3)]),
                                                              timeout=30)
        with pytest.raises(grpc.RpcError) as info:
            list(call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
    return info.value.details()


REFUSALS = {"tcp": refused_tcp, "ws": refused_ws, "grpc": refused_grpc}  # by transport, each door's bad request


@pytest.mark.parametrize("arch", STREAM_PARAMS)
def test_a_bad_request_is_refused_clearly(stream_stack, arch):
    message = REFUSALS[transport_of(registry.get(arch))](stream_stack.settings)
    assert message


def test_the_stream_stack_goes_down_leaving_nothing(stream_stack):
    assert_down_leaves_nothing(stream_stack)


# ------------------------------------------------------------------ a study's own services
def free_block(offsets: tuple[int, ...]) -> int:
    """A port whose ``port + offset`` are all free (SeaweedFS takes the next three and each + 10000)."""
    for base in free_ports(20):
        if base + max(offsets) < 65536 and all(_free(base + o) for o in offsets):
            return base
    pytest.skip("no free block of ports for the object store")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def objectstore_request(settings) -> None:
    """S3 through boto3: a bucket, an object written and read back; a missing key is a 404."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from bench.studies.serverless.knobs import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{settings.objectstore_port}", region_name="us-east-1",
                      aws_access_key_id=LOCAL_ACCESS_KEY, aws_secret_access_key=LOCAL_SECRET_KEY,
                      config=Config(retries={"max_attempts": 2}, connect_timeout=10, read_timeout=30))
    s3.create_bucket(Bucket="compose-test")
    s3.put_object(Bucket="compose-test", Key="record", Body=b"\x00\x01" * 1000)
    assert s3.get_object(Bucket="compose-test", Key="record")["Body"].read() == b"\x00\x01" * 1000
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket="compose-test", Key="no-such-record")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def edge_server_request(settings) -> None:
    """The offloading protocol: STAT answered with the server's state; a HELO with an unknown build mode is
    refused with ERRR naming the modes."""
    from bench.studies.offloading import protocol as proto

    address = (settings.offload_host, settings.offload_port)
    with socket.create_connection(address, timeout=30) as sock:
        proto.send_json(sock, proto.STATUS, {})
        kind, payload = proto.recv(sock)
        assert kind == proto.STATUS and isinstance(proto.parse_json(kind, payload), dict)
    with socket.create_connection(address, timeout=30) as sock:
        proto.send_json(sock, proto.HELLO, {"session": "s", "model": "cifar10_cnn", "count": 1, "mode": "sideways"})
        kind, payload = proto.recv(sock)
        assert kind == proto.ERROR and "build mode is one of" in json.loads(payload)["error"]


# By service: its good and its bad request (a study's service speaks the study's protocol).
SERVICE_REQUESTS = {"objectstore": objectstore_request, "edge-server": edge_server_request}
PORT_OFFSETS = {"objectstore": (0, 1, 2, 3, 10000, 10001, 10002, 10003)}


@pytest.mark.parametrize("name", [svc.name for svc in study_services()])
def test_a_study_service_is_up_answers_refuses_and_goes_down(images, tmp_path, name):
    svc = registry.service(name)
    request = SERVICE_REQUESTS.get(name)
    assert request, f"no compose check for the study service {name}: add its good and bad request here"
    settings = stack_settings(**{svc.port_field: free_block(PORT_OFFSETS.get(name, (0,)))})
    rt = docker(images)
    st = rt.up_services([svc], settings, tmp_path, name=name, log=QUIET)
    try:
        assert st.doc["runtime"] == "docker" and list(st.doc["services"]) == [name]
        assert st.doc["services"][name]["port"] == topology.port(svc, settings)
        assert st.processes()[name], f"no host process for {name}"
        request(settings)
    finally:
        assert_down_leaves_nothing(st)


def test_the_harness_names_every_profile_it_brings_down():
    listed = set(compose.profiles())
    assert {svc_profile for svc in study_services() for svc_profile in registry.profiles_of(svc.name)} <= listed
    assert set(registry.profiles()) <= listed and HarnessSettings().compose_project
