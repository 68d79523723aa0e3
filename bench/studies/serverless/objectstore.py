"""The object store between serverless functions: any S3 API through boto3, and SeaweedFS to run one here.

:class:`Store` is a bucket behind an endpoint URL and credentials
(:class:`StoreConfig`): the same code talks to the local SeaweedFS, to AWS S3
(``endpoint_url=None``) or to MinIO by changing them. It counts the bytes it
moves, and turns boto3's errors into two kinds the orchestrator can act on:
:class:`MissingObject` (the key is not there: not worth retrying) and
:class:`StoreUnavailable` (no answer: worth retrying).

:class:`SeaweedFS` brings the registry's ``objectstore`` service (``weed server
-s3`` on 127.0.0.1, SB_OBJECTSTORE_PORT and the next three ports, gRPC at each
+10000) up through the native runtime (its port check, health wait and
rollback), and down again, removing its data: nothing is left running or on disk.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from servebench import registry, topology
from servebench.settings import Settings

SERVICE = "objectstore"
# The local server's one identity (bench/studies/serverless/seaweedfs/s3.json). Loopback only: not a secret.
LOCAL_ACCESS_KEY = "servebench"
LOCAL_SECRET_KEY = "servebench-local-only"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0  # weed's graceful stop can hang on its gRPC servers; then SIGKILL


class StoreError(RuntimeError):
    """The store failed a request."""


class MissingObject(StoreError):
    """The key (or the bucket) does not exist."""


class StoreUnavailable(StoreError):
    """The store did not answer (down, refused, timed out)."""


@dataclass(frozen=True)
class StoreConfig:
    endpoint_url: str | None = "http://127.0.0.1:8040"  # None: AWS S3 itself
    bucket: str = "servebench-serverless"
    access_key: str = LOCAL_ACCESS_KEY
    secret_key: str = LOCAL_SECRET_KEY
    region: str = "us-east-1"
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 60.0

    def recorded(self) -> dict:
        """What results record: where, never the credentials."""
        return {"endpoint_url": self.endpoint_url or "aws", "bucket": self.bucket, "region": self.region}

    def as_event(self) -> dict:
        """What a function needs to reach the store (local workers only: Lambda uses its role)."""
        return {"endpoint_url": self.endpoint_url, "bucket": self.bucket, "access_key": self.access_key,
                "secret_key": self.secret_key, "region": self.region}

    @classmethod
    def from_event(cls, doc: dict) -> "StoreConfig":
        return cls(**{k: doc[k] for k in ("endpoint_url", "bucket", "access_key", "secret_key", "region") if k in doc})


class Store:
    """One bucket; counts bytes read and written."""

    def __init__(self, config: StoreConfig):
        import boto3
        from botocore.config import Config

        self.config = config
        self.client = boto3.client(
            "s3", endpoint_url=config.endpoint_url, region_name=config.region,
            aws_access_key_id=config.access_key or None, aws_secret_access_key=config.secret_key or None,
            # Retries are the orchestrator's decision (it knows what is safe to repeat).
            config=Config(connect_timeout=config.connect_timeout_s, read_timeout=config.read_timeout_s,
                          retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"}))
        self.bytes_read = 0
        self.bytes_written = 0

    def _call(self, what: str, key: str, fn, **kw):
        from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, \
            EndpointConnectionError, ReadTimeoutError, ConnectTimeoutError

        try:
            return fn(**kw)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NoSuchBucket", "NotFound"):
                raise MissingObject(f"{what} s3://{self.config.bucket}/{key}: not found ({code})") from None
            raise StoreError(f"{what} s3://{self.config.bucket}/{key}: {code or exc}") from None
        except (EndpointConnectionError, BotoConnectionError, ReadTimeoutError, ConnectTimeoutError) as exc:
            raise StoreUnavailable(f"{what} s3://{self.config.bucket}/{key}: store at "
                                   f"{self.config.endpoint_url or 'AWS'} unreachable ({type(exc).__name__})") from None

    def ensure_bucket(self) -> None:
        try:
            self._call("head bucket", "", self.client.head_bucket, Bucket=self.config.bucket)
        except MissingObject:
            self._call("create bucket", "", self.client.create_bucket, Bucket=self.config.bucket)

    def put(self, key: str, body: bytes) -> int:
        self._call("put", key, self.client.put_object, Bucket=self.config.bucket, Key=key, Body=body)
        self.bytes_written += len(body)
        return len(body)

    def get(self, key: str) -> bytes:
        resp = self._call("get", key, self.client.get_object, Bucket=self.config.bucket, Key=key)
        body = resp["Body"].read()
        self.bytes_read += len(body)
        return body

    def exists(self, key: str) -> bool:
        try:
            self._call("head", key, self.client.head_object, Bucket=self.config.bucket, Key=key)
            return True
        except MissingObject:
            return False

    def keys(self, prefix: str) -> list[str]:
        out, token = [], None
        while True:
            kw = {"Bucket": self.config.bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
            resp = self._call("list", prefix, self.client.list_objects_v2, **kw)
            out += [o["Key"] for o in resp.get("Contents", [])]
            if not resp.get("IsTruncated"):
                return out
            token = resp["NextContinuationToken"]

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object, Bucket=self.config.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.keys(prefix)
        for i in range(0, len(keys), 1000):
            self._call("delete", prefix, self.client.delete_objects, Bucket=self.config.bucket,
                       Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
        return len(keys)


# ------------------------------------------------------------------ the local server
def internal_ports(s3_port: int) -> dict[str, int]:
    """SeaweedFS's other HTTP ports (the S3 port's next three); each also takes its +10000 for gRPC."""
    return {"master": s3_port + 1, "volume": s3_port + 2, "filer": s3_port + 3}


def grpc_sockets(s3_port: int) -> list[Path]:
    """The Unix sockets weed puts beside its gRPC ports, at a fixed place in /tmp (not TMPDIR) that a
    killed server leaves behind: ours are known by their ports."""
    ports = {"s3": s3_port, **internal_ports(s3_port)}
    return [Path(f"/tmp/seaweedfs-{kind}-grpc-{port + 10000}.sock") for kind, port in ports.items()]


class SeaweedFS:
    """The ``objectstore`` service natively: a context manager that brings it up through the runtime and down.

    Its data, sockets, state file and log live in ``<run_dir>/objectstore/``, removed on stop.
    """

    def __init__(self, settings: Settings | None = None, run_dir: Path | str | None = None, log=print):
        from servebench.settings import HarnessSettings
        from servebench.stack import NativeRuntime

        self.settings = settings or Settings()
        self.run_dir = Path(run_dir or HarnessSettings().run_dir).resolve()
        self.dir = self.run_dir / SERVICE
        self.log = log
        # Its own run dir: `python -m servebench.runtime down` with it stops a store a killed run left.
        self.runtime = NativeRuntime(stop_grace_s=STOP_GRACE_S,
                                     down_hint=f"SB_RUN_DIR={self.dir} python -m servebench.runtime down")
        self.state = None

    @property
    def port(self) -> int:
        return topology.port(registry.service(SERVICE), self.settings)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        from servebench.runtime import service_healthy

        return service_healthy(registry.service(SERVICE), self.settings)

    def start(self) -> "SeaweedFS":
        from servebench import processes  # not at the top: functions import this module for Store
        from servebench.runtime import StackError

        stale = processes.leftovers(self.dir)
        if stale:  # checked before its folder (and state) is wiped
            raise StackError(f"an object store of an earlier run is still running (pids {[p.pid for p in stale]}): "
                             f"run `{self.runtime.down_hint}`")
        shutil.rmtree(self.dir, ignore_errors=True)
        ports = [(p, "SB_OBJECTSTORE_PORT") for port in internal_ports(self.port).values() for p in (port, port + 10000)]
        try:
            self.state = self.runtime.up_services(
                [registry.service(SERVICE)], self.settings, self.dir, name="serverless", log=self.log,
                timeout_s=START_TIMEOUT_S, ports=[(self.port + 10000, "SB_OBJECTSTORE_PORT"), *ports])
        except BaseException:
            self._remove()
            raise
        return self

    def stop(self) -> None:
        """Stop the server and remove its data (idempotent)."""
        self.runtime.down(self.dir, log=lambda *_: None)
        self.state = None
        self._remove()

    def _remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        for sock in grpc_sockets(self.port):
            sock.unlink(missing_ok=True)

    def store_config(self, bucket: str = StoreConfig.bucket) -> StoreConfig:
        return StoreConfig(endpoint_url=self.endpoint_url, bucket=bucket)

    def __enter__(self) -> "SeaweedFS":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
