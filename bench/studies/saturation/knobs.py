"""The saturation study's knobs (a section of servebench.settings.Settings, ``SB_SATURATION_*``; make variables
of the same names), recorded with every result: which parts run, and how often the headline comparison and
the model curve are repeated. Read as ``settings.section("saturation")``."""
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, split_list

STUDY_RUN = "saturation-study"  # who receives them: the study's run in the harness
PARTS = ("curve", "headline", "sweeps")


class Knobs(KnobSection):
    section_name = "saturation"

    saturation_parts: Annotated[tuple[Literal["curve", "headline", "sweeps"], ...], NoDecode] = knob(
        "curve,headline,sweeps", "parts to run, comma-separated: the model curve, the repeated headline "
                                 "comparison, the full sweeps (~6 min per architecture)", (STUDY_RUN,),
        validate_default=True, min_length=1)
    saturation_repeats: int = knob(3, "repeats of the headline runs and of the model curve", (STUDY_RUN,), ge=1)
    saturation_headline_n: int = knob(1000, "images of each headline run at concurrency 1", (STUDY_RUN,),
                                      ge=1, le=10000)
    saturation_saturated_n: int = knob(3000, "images of each headline run at the saturated concurrency",
                                       (STUDY_RUN,), ge=1, le=10000)
    saturation_concurrency: int = knob(16, "requests in flight of the saturated headline runs", (STUDY_RUN,),
                                       ge=2)

    @field_validator("saturation_parts", mode="before")
    @classmethod
    def _split_saturation_parts(cls, v):
        return split_list(v)
