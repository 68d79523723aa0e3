"""The streaming architectures: one server, three transports; they differ in the door the client takes
through nginx. No front end: frames go from nginx to the streaming server (the per-request baselines are the
fastapi stack, driven by the same streaming client: bench/studies/streaming/client.py --transport http|http-new)."""
from servebench.cgroups import Limits
from servebench.knobs import MODEL
from servebench.registry import (MODEL_BASE, PYTHON_DOCKERFILE, Architecture, Need, Service, ref, register,
                                 register_service)

ORDER = 80
DRIVER = "bench.studies.streaming.client:bench_arch"  # `make bench ARCH=stream-*` sends frames, not requests

register_service(Service(
    name="stream",
    port_field="stream_ws_port",  # its WebSocket port answers GET /healthz once all three transports listen
    command=("python", "-m", "services.stream.server", "--host", "127.0.0.1", "--port", ref("stream_ws_port")),
    groups=(MODEL,),  # the model's threads, call path, batching; the stream knobs are declared for "stream"
    runtime_env={"SB_MODEL_BASE": MODEL_BASE},
    dockerfile=PYTHON_DOCKERFILE,
    # SB_STREAM_MODEL_CPUS: the study's "instance types" axis (0.5, 1, 2 cores); 0 is no quota.
    limits=lambda s: Limits.of(None, s.stream_model_cpus),
), order=ORDER)

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
NEEDS = (Need(
    "file", NGINX_STREAM_MODULE,
    "nginx's stream module is missing (" + NGINX_STREAM_MODULE + "): `make setup` installs Debian's "
    "libnginx-mod-stream (apt-get install libnginx-mod-stream), or run it under docker compose (RUNTIME=docker).",
    runtimes=("native",)),)

register(Architecture(
    name="stream-tcp", title="Stream, TCP", color="tab:pink", services=("stream", "nginx"), profile="stream",
    backend="", protocol="tcp-stream", needs=NEEDS, study="streaming", study_label="Streaming server", driver=DRIVER,
    description="length-prefixed frames on one persistent TCP connection through nginx's stream proxy"), order=ORDER)
register(Architecture(
    name="stream-ws", title="Stream, WebSocket", color="tab:gray", services=("stream", "nginx"), profile="stream",
    backend="", protocol="websocket", study="streaming", driver=DRIVER,
    description="the same frames as WebSocket messages through nginx's upgrade (/v1/stream)"), order=ORDER)
register(Architecture(
    name="stream-grpc", title="Stream, gRPC", color="black", services=("stream", "nginx"),
    profile="stream", backend="", protocol="grpc-stream", study="streaming", driver=DRIVER,
    description="gRPC bidirectional streaming (services/stream/stream.proto) through nginx's grpc_pass"), order=ORDER)
