"""The HTTP architectures of the registry under docker compose, for real: images
built, containers up on loopback (host networking), CIFAR-10 test images through
nginx in every codec, predictions compared with the in-process core's. One whose
image is not built here (see ``not_built_here``) is a skip that says why.

Needs a Docker engine (``bash .ci/docker-engine.sh start``); skipped otherwise.
The base image is ``BASE_IMAGE`` when set, else ``servebench/base:bookworm``
(built offline by ``docker/base-image.sh`` when missing and possible), else
the public ``python:3.11-slim-bookworm`` when present locally.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from servebench import codecs, compose, registry, runtime, topology
from servebench.settings import HarnessSettings
from tests import conformance
from tests.conformance import http_architectures, params
from tests.stacks import stack_settings

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
OFFLINE_BASE = "servebench/base:bookworm"
PUBLIC_BASE = "python:3.11-slim-bookworm"
PROJECT = f"sbtest{os.getpid()}"
QUIET = lambda *_: None  # noqa: E731

if not compose.engine_answers():
    pytest.skip("no Docker engine answers (`docker info`): start one with `bash .ci/docker-engine.sh start` "
                "(see ../shared/MACHINES.md)", allow_module_level=True)
try:
    compose.DockerRuntime(HarnessSettings()).compose_command()
except compose.StackError as exc:
    pytest.skip(str(exc), allow_module_level=True)


def _have(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


# The recipes these tests build: nginx's and the front end's (the Python image every Python service shares).
# A service with a recipe of its own (Triton's: about 2 GB of pip) is not built by a test run.
SHARED_RECIPES = {registry.service(name).dockerfile for name in ("nginx", "frontend")}


def official_image(arch: registry.Architecture) -> str | None:
    """The official image one of ``arch``'s services runs (pulled, never built), if any."""
    return next((svc.image for svc in map(registry.service, arch.services) if svc.image and not svc.dockerfile), None)


def not_built_here(arch: registry.Architecture) -> str | None:
    """Why ``arch`` is not brought up here, or None."""
    for svc in map(registry.service, arch.services):
        if svc.dockerfile and svc.dockerfile not in SHARED_RECIPES:
            return f"{svc.name} builds an image of its own ({svc.dockerfile}), too big for a test run"
    image = official_image(arch)
    return f"its official image {image} is not present here (nothing is pulled)" if image and not _have(image) else None


ARCH_PARAMS = params(http_architectures(), "docker", not_built_here)
ARCHES = [p.values[0] for p in ARCH_PARAMS if not p.marks]


@pytest.fixture(scope="module")
def base_image() -> str:
    return pick_base_image()


def pick_base_image() -> str:
    """BASE_IMAGE, else the offline base (built when missing and possible), else the public one; else a skip."""
    if HarnessSettings().base_image:
        return HarnessSettings().base_image
    if _have(OFFLINE_BASE):
        return OFFLINE_BASE
    if _have(PUBLIC_BASE):
        return PUBLIC_BASE
    if os.geteuid() == 0 and shutil.which("debootstrap"):
        subprocess.run(["bash", str(REPO / "docker" / "base-image.sh")], check=True, timeout=900)
        return OFFLINE_BASE
    pytest.skip(f"no base image: set BASE_IMAGE, or build {OFFLINE_BASE} with `make base-image` (needs debootstrap)")


@pytest.fixture(scope="module")
def images(base_image) -> str:
    """The images of the architectures these tests bring up, built once (the Python dependency layer
    is shared). Triton's image (about 2 GB of pip) is not among them."""
    services = sorted({s for arch in ARCHES for s in registry.get(arch).services} & set(compose.built()))
    docker(base_image).build(services, log=QUIET)
    return base_image


def docker(base_image: str = "") -> compose.DockerRuntime:
    """The docker runtime on a project of our own, using the images as they are."""
    return compose.DockerRuntime(HarnessSettings(base_image=base_image, compose_project=PROJECT, docker_build=False))


@pytest.fixture(scope="module", params=ARCH_PARAMS)
def docker_stack(request, images, tmp_path_factory):
    run = tmp_path_factory.mktemp(f"docker-{request.param}")
    # Free, non-default ports for every service.
    st = docker(images).up(request.param, stack_settings(backend_timeout_s=5), run, log=QUIET)
    yield st
    docker(images).down(run, log=QUIET)


def post(st, body: bytes, content_type: str | None, timeout: float = 30):
    conn = http.client.HTTPConnection("127.0.0.1", st.doc["services"]["nginx"]["port"], timeout=timeout)
    conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": content_type} if content_type else {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


@pytest.fixture(scope="module")
def reference(core, test_split, docker_stack):
    """What the stack's architecture answers for nine test images, computed in process (conformance.expected)."""
    images = test_split.images[:9]
    return images, conformance.expected(docker_stack.arch, images, core), conformance.atol(docker_stack.arch)


def test_the_runtime_switch_picks_compose():
    assert isinstance(runtime.get("docker"), compose.DockerRuntime)


def test_state_describes_the_containers(docker_stack):
    doc = docker_stack.doc
    assert doc["runtime"] == "docker" and doc["project"] == PROJECT
    assert set(doc["services"]) == {svc.name for svc in registry.services_for(docker_stack.arch)}
    for name, svc in doc["services"].items():
        assert len(svc["container"]) == 64, name
        assert svc["port"] == topology.port(registry.service(name), docker_stack.settings)
    assert docker().state(docker_stack.run_dir).doc == doc


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_predictions_match_in_process_core(docker_stack, reference, codec):
    images, expected, atol = reference
    for start, batch in ((0, images[:1]), (1, images[1:9])):
        body, ctype = codecs.encode(batch, codec)
        status, data = post(docker_stack, body, ctype)
        assert status == 200, data
        got = codecs.decode_predictions(data)
        np.testing.assert_array_equal(got.classes, expected.classes[start:start + len(batch)])
        np.testing.assert_allclose(got.probabilities, expected.probabilities[start:start + len(batch)], atol=atol)


# The same answers as natively (tests/integration/test_architectures.py).
BAD_INPUTS = [
    ("content type", b"hello", "text/plain", 415, "unsupported content type"),
    ("malformed json", b'{"instances": [', codecs.JSON, 400, "malformed JSON"),
    ("wrong shape", json.dumps({"instances": np.zeros((1, 28, 28, 3), int).tolist()}).encode(), codecs.JSON, 400,
     "wrong shape"),
    ("batch too large", b"\x00" * 3072 * 257, codecs.OCTET, 413, "batch too large"),
]


@pytest.mark.parametrize("name,body,ctype,status,phrase", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_the_native_4xx(docker_stack, name, body, ctype, status, phrase):
    got, data = post(docker_stack, body, ctype)
    assert got == status, data
    assert phrase in json.loads(data)["error"]


def test_sampler_sees_each_containers_processes(docker_stack):
    trees = docker_stack.processes()
    assert set(trees) == set(docker_stack.doc["services"])
    for name, procs in trees.items():
        assert procs, f"no host process for {name}"
        leader = procs[0]
        cid = docker_stack.doc["services"][name]["container"]
        assert cid in Path(f"/proc/{leader.pid}/cgroup").read_text(), f"{name}: pid {leader.pid} is not in its container"
        assert sum(p.memory_info().rss for p in procs) > 0
        leader.cpu_percent(None)  # what the harness's sampler calls


def test_one_service_is_stopped_and_restarted(docker_stack):
    name = registry.services_for(docker_stack.arch)[0].name  # the backend (the front end for embedded)
    docker().stop_service(docker_stack, name)
    assert docker_stack.health()[name][0] == "dead"
    docker().restart_service(docker_stack, name)
    assert docker_stack.health()[name][0] == "up"
    assert docker().state(docker_stack.run_dir).pids()[name] == docker_stack.pids()[name]


def test_down_leaves_nothing_running(docker_stack):
    assert docker().down(docker_stack.run_dir, log=QUIET) is True
    assert compose.project_containers(PROJECT) == {}
    assert docker().state(docker_stack.run_dir) is None
    assert docker_stack.processes() == {name: [] for name in docker_stack.doc["services"]}


@pytest.mark.parametrize("profile", compose.profiles())
def test_every_profile_of_the_compose_file_is_valid(profile):
    """Triton's among them: its 2 GB image is not built by a test run, its profile is checked here."""
    seen = docker().config(profile, stack_settings())
    services = [name for name in registry.services() if profile in registry.profiles_of(name)]
    assert services and all(f"servebench/{name}:latest" in seen or registry.service(name).image in seen
                            for name in services)


def test_tfserving_profile_is_valid():
    seen = docker().config("tfserving", stack_settings(tfserving_batching=True))
    assert "tensorflow/serving" in seen and "/models/cifar10_cnn" in seen and "/models/batching.config" in seen


@pytest.mark.parametrize("arch", [a.name for a in registry.architectures() if official_image(a)])
def test_an_official_image_that_is_missing_is_refused_clearly(arch, tmp_path):
    image = official_image(registry.get(arch))
    if _have(image):
        pytest.skip(f"{image} is present here")
    # A project of its own: a stack of this module may still be up (a module-scoped fixture goes down at its end).
    runtime = compose.DockerRuntime(HarnessSettings(compose_project=f"{PROJECT}x", docker_build=False))
    with pytest.raises(compose.StackError, match="official image .* cannot be pulled"):
        runtime.up(arch, stack_settings(), tmp_path, log=QUIET)
    assert runtime.state(tmp_path) is None
    assert compose.project_containers(f"{PROJECT}x") == {}
