"""The batching study's knobs (a section of servebench.settings.Settings, ``SB_BATCHING_*``; make variables of
the same names), recorded with every result: the architectures, the levels, the images per level, the
repeats, and the batch size of the one-knob stack. Read as ``settings.section("batching")``."""
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, split_ints, split_list

STUDY_RUN = "batching-study"  # who receives them: the study's run in the harness


class Knobs(KnobSection):
    section_name = "batching"

    batching_repeats: int = knob(3, "repeats of every level in both stacks (and of the in-process p50)",
                                 (STUDY_RUN,), ge=1)
    batching_n: int = knob(600, "images of each bench run (one run per level and repeat)", (STUDY_RUN,),
                           ge=1, le=10000)
    batching_concurrency: Annotated[tuple[int, ...], NoDecode] = knob(
        "1,2,4,8,16,32,64", "closed-loop levels (requests in flight, comma-separated)", (STUDY_RUN,),
        validate_default=True, min_length=1)
    batching_arches: Annotated[tuple[str, ...], NoDecode] = knob(
        "embedded,flask,fastapi", "architectures compared (comma-separated)", (STUDY_RUN,),
        validate_default=True, min_length=1)
    batching_batch: int = knob(32, "SB_BATCH_MAX_SIZE of the one-knob stack, the only setting it changes",
                               (STUDY_RUN,), ge=2)

    @field_validator("batching_concurrency", mode="before")
    @classmethod
    def _split_batching_concurrency(cls, v):
        v = split_ints(v)
        if isinstance(v, tuple) and any(c < 1 for c in v):
            raise ValueError(f"every level is at least 1 request in flight, not {v}")
        return tuple(sorted(set(v))) if isinstance(v, tuple) else v

    @field_validator("batching_arches", mode="before")
    @classmethod
    def _split_batching_arches(cls, v):
        return split_list(v)
