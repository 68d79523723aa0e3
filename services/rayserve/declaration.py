"""The rayserve architecture: Django forwards to Ray Serve, whose cluster runs in a network namespace of its own."""
from servebench.knobs import MODEL
from servebench.registry import Architecture, Need, RuntimeValue, ref, register, register_service
from servebench.settings import REPO_ROOT
from services.frontend.declaration import FRONT
from services.python_services import python_service
from services.rayserve.cluster import ray_dir
from services.rayserve.knobs import RAY

ORDER = 60

# The supervisor (services/rayserve/cluster.py): the namespace, the nodes, the deployment; its port is the
# host's loopback, where the runtime probes it and the front end asks where Serve listens.
register_service(python_service(
    RAY, "rayserve_port",
    ("python", "-m", "services.rayserve.cluster", "--dir", "${SB_RAY_DIR}", "--host", "127.0.0.1",
     "--port", ref("rayserve_port")),
    groups=(MODEL,),  # the replicas load the model with the model knobs (engine, threads, batching)
    runtime_vars={"SB_RAY_DIR": RuntimeValue(native=lambda s, run_dir: str(ray_dir(run_dir)),
                                             docker=lambda s: "/tmp/servebench-ray")},
    health_path="/ready",  # every node and replica running, and Serve's proxy answering
    status="services.rayserve.cluster:status_lines",  # make status: nodes and replicas with their state
    parts="services.rayserve.parts:part_of",  # CPU and memory per Ray process group
), order=ORDER)

_NATIVE = ("native",)
# No image installs Ray, and its cluster makes a network namespace of its own (a privileged container at
# least): under compose it is refused, saying so, until such an image exists.
RAY_DOCKERFILE = "docker/rayserve.Dockerfile"
NEEDS = (
    Need("root", "", "ARCH=rayserve makes a network namespace for its Ray cluster: run it as root", _NATIVE),
    Need("binary", "ip", "ARCH=rayserve needs iproute2's ip (apt-get install iproute2)", _NATIVE),
    Need("file", str(REPO_ROOT / RAY_DOCKERFILE),
         f"ARCH=rayserve runs natively only (RUNTIME=native): no image installs Ray ({RAY_DOCKERFILE} does not "
         "exist), and its cluster makes a network namespace of its own, which a container would need privileges "
         "for", ("docker",)),
)

register(Architecture(
    name="rayserve", title="Ray Serve", color="tab:olive", services=(RAY, *FRONT), profile="rayserve",
    backend="services.rayserve.backend:RayServeBackend", protocol="rest", needs=NEEDS,
    slow_start="a Ray cluster takes 20-60 s to start (its nodes, the Serve controller, the replicas' TensorFlow)",
    description="Django forwards to Ray Serve (SB_RAY_REPLICAS replicas on SB_RAY_NODES nodes, @serve.batch) "
                "in a network namespace of its own, over a link-local veth"), order=ORDER)
