"""The ensemble's knobs (a section of servebench.settings.Settings): the coordinator's and its members'."""
import math
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, split_list
from services.ensemble.members import MEMBERS


class Knobs(KnobSection):
    ensemble_port: int = knob(8033, "ensemble coordinator port", ("frontend", "ensemble"), recorded=False)
    ensemble_cnn_port: int = knob(8030, "ensemble member port: the Table 1 CNN", ("ensemble", "ensemble-cnn"),
                                  recorded=False)
    ensemble_resnet20_port: int = knob(8031, "ensemble member port: ResNet-20", ("ensemble", "ensemble-resnet20"),
                                       recorded=False)
    ensemble_mobilenetv2_port: int = knob(8032, "ensemble member port: MobileNetV2",
                                          ("ensemble", "ensemble-mobilenetv2"), recorded=False)
    # Lambda's rule: CPU follows memory, 1,769 MB = one vCPU (servebench.cgroups.Limits.lambda_like).
    ensemble_member_memory_mb: int = knob(
        1769, "memory limit of each ensemble member function in MB; its CPU quota follows (1,769 MB = 1 vCPU; "
              "0: unlimited)", ("ensemble-member",), ge=0)
    ensemble_mode: Literal["", "serial", "parallel"] = knob(
        "", "how the coordinator calls its members: serial or parallel ('' follows ARCH: ensemble-serial or "
            "ensemble-parallel)", ("ensemble",))
    ensemble_members: Annotated[tuple[str, ...], NoDecode] = knob(
        ",".join(MEMBERS), "the members the coordinator averages, comma-separated (one alone: that "
                           "member's latency through the same hops)", ("ensemble",), validate_default=True)
    ensemble_deadline_ms: float = knob(
        0.0, "answer at this deadline with the average of the members that answered (ms; 0: wait for all)",
        ("ensemble",), ge=0)
    ensemble_member_timeout_s: float = knob(
        10.0, "seconds the coordinator waits for one member before leaving it out", ("ensemble",), gt=0)
    ensemble_idle_s: float = knob(
        0.0, "scale a member function to zero after this many idle seconds (its process stopped); the next "
             "request that needs it starts it and pays the start (0: never; native runtime only)", ("ensemble",))

    @field_validator("ensemble_idle_s", mode="before")
    @classmethod
    def _idle_seconds(cls, v):
        try:
            seconds = float(v if v not in (None, "") else 0.0)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"SB_ENSEMBLE_IDLE_S must be idle seconds >= 0 (0: never scale to zero), not {v!r}")
        return seconds

    @field_validator("ensemble_members", mode="before")
    @classmethod
    def _split_members(cls, v):
        v = split_list(v)
        bad = [m for m in v if m not in MEMBERS]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"members must be distinct names from {', '.join(MEMBERS)}, not {','.join(v) or 'none'}")
        return tuple(v)
