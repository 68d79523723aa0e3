"""The docker-serving study's knobs (a section of servebench.settings.Settings, ``SB_DOCKER_SERVING_*``), recorded
with every result: which runtimes the Table 3 protocol runs on, its passes, and whether the other workloads run
too. Read as ``settings.section("docker_serving")``."""
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, split_list

STUDY_RUN = "docker-serving-study"  # who receives them: the study's run in the harness
RUNTIMES = ("native", "docker")


class Knobs(KnobSection):
    section_name = "docker_serving"

    docker_serving_runtimes: Annotated[tuple[str, ...], NoDecode] = knob(
        "native,docker", "runtimes the Table 3 protocol runs on, comma-separated, each in a stack of its own "
                         "(native against docker per architecture)", (STUDY_RUN,), validate_default=True)
    docker_serving_repeats: int = knob(3, "passes of the Table 3 protocol (1,000 images, one per request, "
                                          "sequential) per architecture and runtime", (STUDY_RUN,), ge=1)
    docker_serving_workloads: Literal["all", "protocol"] = knob(
        "all", "all: also the raw codec, concurrency, Poisson rates and keras-predict runs; protocol: only the "
               "reference, N images once and the Table 3 protocol on each runtime", (STUDY_RUN,))

    @field_validator("docker_serving_runtimes", mode="before")
    @classmethod
    def _split_runtimes(cls, v):
        names = tuple(split_list(v))
        unknown = [n for n in names if n not in RUNTIMES]
        if unknown or not names:
            raise ValueError(f"SB_DOCKER_SERVING_RUNTIMES: {', '.join(unknown) or 'empty'}: "
                             f"choose from {', '.join(RUNTIMES)}")
        return tuple(dict.fromkeys(names))
