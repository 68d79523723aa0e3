"""The object store: a real SeaweedFS, through boto3."""
import numpy as np
import pytest

from bench.studies.serverless import objectstore, records

pytestmark = pytest.mark.integration


def test_a_record_round_trips_through_the_store(store):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (10, 227, 227, 3), dtype=np.uint8)
    body = records.encode(images, np.arange(10), np.arange(10))
    before = store.bytes_written
    store.put("records/test/r0.tfrecord", body)
    assert store.bytes_written - before == len(body)
    got, labels, idx = records.decode(store.get("records/test/r0.tfrecord"))
    assert np.array_equal(got, images) and list(idx) == list(range(10))
    assert "records/test/r0.tfrecord" in store.keys("records/test/")
    assert store.delete_prefix("records/test/") == 1 and not store.exists("records/test/r0.tfrecord")


def test_missing_keys_and_a_dead_store_are_told_apart(store):
    with pytest.raises(objectstore.MissingObject, match="not found"):
        store.get("no/such/key")
    dead = objectstore.Store(objectstore.StoreConfig(endpoint_url="http://127.0.0.1:8049", connect_timeout_s=1))
    with pytest.raises(objectstore.StoreUnavailable, match="unreachable"):
        dead.get("anything")


def test_wrong_credentials_are_refused(seaweed):
    bad = objectstore.Store(objectstore.StoreConfig(endpoint_url=seaweed.endpoint_url, access_key="x",
                                                    secret_key="y", bucket="servebench-tests"))
    with pytest.raises(objectstore.StoreError):
        bad.get("anything")


def test_the_server_binds_loopback_only(seaweed):
    import psutil

    ports = {seaweed.port, *objectstore.internal_ports(seaweed.port).values()}
    listening = [c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
    assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)
