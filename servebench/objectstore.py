"""The object store between serverless functions: any S3 API through boto3, and SeaweedFS to run one here.

:class:`Store` is a bucket behind an endpoint URL and credentials
(:class:`StoreConfig`): the same code talks to the local SeaweedFS, to AWS S3
(``endpoint_url=None``) or to MinIO by changing them. It counts the bytes it
moves, and turns boto3's errors into two kinds the orchestrator can act on:
:class:`MissingObject` (the key is not there: not worth retrying) and
:class:`StoreUnavailable` (no answer: worth retrying).

:class:`SeaweedFS` starts the registry's ``objectstore`` service (``weed server
-s3`` on 127.0.0.1, SB_OBJECTSTORE_PORT and the next three ports, gRPC at each
+10000) as the native runtime starts services, waits for its health, and
stops it, removing its data: nothing is left running or on disk.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from servebench import registry, topology
from servebench.settings import REPO_ROOT, Settings, inherited_env

SERVICE = "objectstore"
# The local server's one identity (services/objectstore/s3.json). Loopback only: not a secret.
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
    """The ``objectstore`` service natively: a context manager that starts it, waits for health, stops it.

    Its data, sockets and log live in ``<run_dir>/objectstore/``, removed on stop
    (the log is kept only when the start failed, and shown in the error).
    """

    def __init__(self, settings: Settings | None = None, run_dir: Path | str | None = None, log=print):
        from servebench.settings import HarnessSettings

        self.settings = settings or Settings()
        self.run_dir = Path(run_dir or HarnessSettings().run_dir).resolve()
        self.dir = self.run_dir / SERVICE
        self.log = log
        self.proc: subprocess.Popen | None = None

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
        from servebench import stack
        from servebench.runtime import StackError, check_port_free

        svc = registry.service(SERVICE)
        for port in (self.port, *internal_ports(self.port).values()):
            for p in (port, port + 10000):
                check_port_free("127.0.0.1", p, "SB_OBJECTSTORE_PORT", "the run that holds it to stop")
        stale = stack.leftovers(self.dir)
        if stale:
            raise StackError(f"an object store of an earlier run is still running (pids {[p.pid for p in stale]})")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        argv, env = topology.native_launch(svc, "serverless", self.settings, self.dir,
                                           inherited_env(topology.PLATFORM_ENV))
        argv[0] = stack._executable(argv[0])
        logfile = self.dir / "weed.log"
        with logfile.open("ab") as out:
            self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not self.healthy():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-15:])
                    why = (f"exited with code {self.proc.returncode}" if self.proc.poll() is not None
                           else f"not healthy within {START_TIMEOUT_S:.0f} s")
                    raise StackError(f"object store (SeaweedFS) {why}; last lines of its log:\n{tail}")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise
        self.log(f"  {SERVICE:<10} healthy on 127.0.0.1:{self.port} (pid {self.proc.pid})")
        return self

    def stop(self) -> None:
        """Stop the server and remove its data (idempotent)."""
        from servebench import stack

        if self.proc is not None:
            stack._stop(self.proc.pid, grace_s=STOP_GRACE_S)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        for proc in stack.leftovers(self.dir):  # anything of a killed run
            stack._stop(proc.pid, grace_s=1.0)
        shutil.rmtree(self.dir, ignore_errors=True)
        for sock in grpc_sockets(self.port):
            sock.unlink(missing_ok=True)

    def store_config(self, bucket: str = StoreConfig.bucket) -> StoreConfig:
        return StoreConfig(endpoint_url=self.endpoint_url, bucket=bucket)

    def __enter__(self) -> "SeaweedFS":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
