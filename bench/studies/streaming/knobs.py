"""The streaming study's knobs (a section of servebench.settings.Settings, ``SB_STREAMING_*``; make variables of
the same names), recorded with every result: how often the headline streams are repeated, the batched stream-tcp
variant's batch, and the round trips, link and frame counts of the delayed-link runs. Read as
``settings.section("streaming")``."""
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, split_ints

STUDY_RUN = "streaming-study"  # who receives them: the study's run in the harness


class Knobs(KnobSection):
    section_name = "streaming"

    streaming_repeats: int = knob(3, "passes of every headline stream (in process, stream-tcp and both HTTP "
                                     "baselines on loopback; each round trip of the delayed link)", (STUDY_RUN,), ge=1)
    streaming_batch_size: int = knob(8, "SB_BATCH_MAX_SIZE of the batched stream-tcp variant (its headline streams "
                                        "beside batching off, same window)", (STUDY_RUN,), ge=2, le=256)
    # 0: a batch is what queued while the model ran, so a lone frame at 30 frames/s never waits (a timeout adds up
    # to itself to the p99 that must stay within 2 ms of in process).
    streaming_batch_timeout_ms: float = knob(0.0, "SB_BATCH_TIMEOUT_MS of the batched stream-tcp variant (ms a "
                                                  "frame waits for batch-mates)", (STUDY_RUN,), ge=0, le=100)
    streaming_rtts_ms: Annotated[tuple[int, ...], NoDecode] = knob(
        "0,20,50,80", "round trips the delayed link adds (ms, comma-separated; servebench/delay_link.py)",
        (STUDY_RUN,), validate_default=True, min_length=1)
    streaming_rtt_link_mbit: float = knob(20.0, "rate of the delayed link (Mbit/s, tc tbf each way)", (STUDY_RUN,),
                                          gt=0)
    streaming_rtt_frames: int = knob(150, "frames of each as-fast-as-possible pass over the delayed link",
                                     (STUDY_RUN,), ge=10, le=10000)
    streaming_rtt_seconds: float = knob(4.0, "seconds of each 30 frames/s pass over the delayed link", (STUDY_RUN,),
                                        gt=0)

    @field_validator("streaming_rtts_ms", mode="before")
    @classmethod
    def _split_streaming_rtts(cls, v):
        v = split_ints(v)
        if isinstance(v, tuple) and any(ms < 0 or ms > 1000 for ms in v):
            raise ValueError(f"round trips are 0-1000 ms, not {v}")
        return v
