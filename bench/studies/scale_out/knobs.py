"""The scale-out study's knobs (a section of servebench.settings.Settings, ``SB_SCALE_OUT_*``; make variables of
the same names), recorded with every result. Read as ``settings.section("scale_out")``."""
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, split_ints, split_list

STUDY_RUN = "scale-out-study"  # who receives them: the study's run in the harness
PARTS = ("ladder", "placement", "faults", "load")


class Knobs(KnobSection):
    section_name = "scale_out"

    scale_out_parts: Annotated[tuple[Literal["ladder", "placement", "faults", "load"], ...], NoDecode] = knob(
        ",".join(PARTS), "parts to run, comma-separated: every architecture at every concurrency with batching "
                         "off and on; Ray Serve's replicas over one node and two; its faults; locust's workers "
                         "here and in another namespace", (STUDY_RUN,), validate_default=True, min_length=1)
    scale_out_repeats: int = knob(3, "repeats of every run (faults: of each fault)", (STUDY_RUN,), ge=1)
    scale_out_n: int = knob(400, "images of each bench run (at least 25 per request in flight)", (STUDY_RUN,),
                            ge=1, le=10000)
    scale_out_concurrency: Annotated[tuple[int, ...], NoDecode] = knob(
        "1,2,4,8,16,32,64", "closed-loop levels of the ladder (requests in flight, comma-separated)", (STUDY_RUN,),
        validate_default=True, min_length=1)
    scale_out_arches: Annotated[tuple[str, ...], NoDecode] = knob(
        "fastapi,triton,rayserve", "architectures on the ladder (comma-separated)", (STUDY_RUN,),
        validate_default=True, min_length=1)
    scale_out_saturated: int = knob(32, "requests in flight of the placement runs (Ray Serve saturated)",
                                    (STUDY_RUN,), ge=2)
    scale_out_load_arch: str = knob("fastapi", "the stack locust loads in the load part", (STUDY_RUN,))
    scale_out_load_users: int = knob(16, "locust users of each load run", (STUDY_RUN,), ge=1)
    scale_out_load_workers: int = knob(2, "locust worker processes of each load run", (STUDY_RUN,), ge=1)
    scale_out_load_seconds: int = knob(20, "seconds of each load run", (STUDY_RUN,), ge=2)

    @field_validator("scale_out_parts", "scale_out_arches", mode="before")
    @classmethod
    def _split_names(cls, v):
        return split_list(v)

    @field_validator("scale_out_concurrency", mode="before")
    @classmethod
    def _split_levels(cls, v):
        v = split_ints(v)
        if isinstance(v, tuple) and any(c < 1 for c in v):
            raise ValueError(f"every level is at least 1 request in flight, not {v}")
        return tuple(sorted(set(v))) if isinstance(v, tuple) else v
