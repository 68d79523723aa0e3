"""The offloading study's record and its edge server's service. No architecture: the study makes a shaped link
and starts the edge server in the link's server namespace through the native runtime
(``up_services(..., netns=...)``, bench/studies/offloading/experiments.py); the client runs in the other."""
from servebench.registry import PYTHON_DOCKERFILE, Service, declare_study, ref, register_service

from bench.studies.offloading.knobs import EDGE_SERVER

ORDER = 90

register_service(Service(
    name=EDGE_SERVER,  # the receiver of its knobs (knobs.py): SB_OFFLOAD_PORT, SB_OFFLOAD_BUILD_MODE
    port_field="offload_port",
    # The study sets SB_OFFLOAD_HOST to its link's server address, and the runtime probes it there.
    command=("python", "-m", "bench.studies.offloading.edge_server", "--host", ref("offload_host"),
             "--port", ref("offload_port"), "--mode", ref("offload_build_mode")),
    health_path=None,  # it speaks its own protocol over TCP: healthy once its port accepts
    dockerfile=PYTHON_DOCKERFILE,
    profiles=("offloading",),
), order=ORDER)

declare_study(__name__, ORDER, "offloading",
              "Incremental offloading of a partitioned DNN to an edge server over a limited link",
              "../shared/STUDIES.md, section 5")
