"""The offloading study's knobs (a section of servebench.settings.Settings, ``SB_OFFLOAD_*``; make variables of
the same names), recorded with every result: the link, the client's CPU quota, the server's build mode, the
study's scale. Read as ``settings.section("offload")``."""
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, split_list

# Who receives them: the study's run in the harness (it shapes the link, sets the client's quota and plans the
# uploads), the edge server and the edge client.
STUDY_RUN = "offloading-study"
EDGE_SERVER = "edge-server"
EDGE_CLIENT = "edge-client"


class Knobs(KnobSection):
    section_name = "offload"

    offload_link_mbit: float = knob(80.0, "rate of the shaped link between client and edge server (Mbit/s, tc tbf "
                                          "each way; the study's 80 Mbps)", (STUDY_RUN,), gt=0)
    offload_client_cpus: float = knob(0.2, "CPU quota of the offloading client (cgroup; 0.2 core is nearer the "
                                           "study's Odroid board, far slower than its server; 0: none)",
                                      (STUDY_RUN,), ge=0)
    offload_build_mode: Literal["baseline", "proposed"] = knob(
        "proposed", "the edge server's build mode when an upload names none", (EDGE_SERVER,))
    offload_port: int = knob(8050, "edge server port (on the link's server address)", (EDGE_SERVER, EDGE_CLIENT),
                             recorded=False)
    offload_host: str = knob("127.0.0.1", "edge server address (the study sets its link's server address)",
                             (EDGE_SERVER,), recorded=False)
    offload_models: Annotated[tuple[str, ...], NoDecode] = knob(
        "resnet152,resnet50,mobilenet,alexnet", "models to upload, comma-separated (resnet152 resnet50 mobilenet "
                                                "alexnet cifar10_cnn)", (STUDY_RUN,), validate_default=True)
    offload_repeats: int = knob(5, "uploads per model and build mode (the headline is their median)",
                                (STUDY_RUN,), ge=1)
    offload_queries_after: int = knob(10, "queries after the upload completes (the study's 10)", (STUDY_RUN,), ge=0)
    offload_rate_measure_mb: float = knob(4.0, "MiB sent to measure the link's rate before each upload",
                                          (STUDY_RUN,), gt=0)

    @field_validator("offload_models", mode="before")
    @classmethod
    def _split_offload_models(cls, v):
        return split_list(v)
