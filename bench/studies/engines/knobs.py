"""The engines study's knobs (a section of servebench.settings.Settings, ``SB_ENGINES_*``; make variables of the
same names), recorded with every result: which engines and parts run, how often, and at what scale. Read as
``settings.section("engines")``. A quick run (``QUICK=1``) shrinks the counts that were not set."""
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, split_ints, split_list

STUDY_RUN = "engines-study"  # who receives them: the study's run in the harness
ENGINES = ("tensorflow", "xla", "onnxruntime", "openvino", "litert")
PRECISIONS = ("f32", "bf16")
PRECISION_OF = {"openvino": PRECISIONS}  # engines whose precision is a choice; the others run f32


def variants(names) -> tuple[tuple[str, str], ...]:
    """(engine, precision) per entry of the list: ``openvino:bf16`` names one, a bare ``openvino`` both."""
    out = []
    for name in names:
        engine, _, precision = name.partition(":")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} in SB_ENGINES_LIST: choose among {', '.join(ENGINES)}")
        choices = PRECISION_OF.get(engine, ("f32",))
        if precision and precision not in choices:
            raise ValueError(f"{engine} runs {' or '.join(choices)}, not {precision!r} (SB_ENGINES_LIST)")
        out += [(engine, p) for p in ((precision,) if precision else choices)]
    return tuple(dict.fromkeys(out))


class Knobs(KnobSection):
    section_name = "engines"

    engines_list: Annotated[tuple[str, ...], NoDecode] = knob(
        ",".join(ENGINES), "engines to compare, comma-separated; openvino:f32 or openvino:bf16 picks one "
                           "precision (a bare openvino measures both)", (STUDY_RUN,), validate_default=True,
        min_length=1)
    engines_parts: Annotated[tuple[Literal["curve", "stacks", "evaluate"], ...], NoDecode] = knob(
        "curve,stacks,evaluate", "parts to run: the in-process curve, the embedded and FastAPI stacks, the "
                                 "correctness check", (STUDY_RUN,), validate_default=True, min_length=1)
    engines_repeats: int = knob(3, "repeats of the curve and of every stack run", (STUDY_RUN,), ge=1)
    engines_threads: Annotated[tuple[int, ...], NoDecode] = knob("1,2", "intra-op threads of the curve",
                                                                   (STUDY_RUN,), validate_default=True)
    engines_batch_sizes: Annotated[tuple[int, ...], NoDecode] = knob(
        "1,2,4,8,16,32,64", "batch sizes of the curve", (STUDY_RUN,), validate_default=True)
    engines_curve_seconds: float = knob(1.0, "timed calls per batch size of the curve (s)", (STUDY_RUN,), gt=0)
    engines_c1_n: int = knob(500, "images of each stack run at concurrency 1", (STUDY_RUN,), ge=1, le=10000)
    engines_saturated_n: int = knob(2000, "images of each stack run at the saturated concurrency", (STUDY_RUN,),
                                    ge=1, le=10000)
    engines_concurrency: int = knob(16, "requests in flight of the saturated stack runs", (STUDY_RUN,), ge=2)
    engines_evaluate_n: int = knob(0, "test inputs of the correctness check (0: all)", (STUDY_RUN,), ge=0)

    @field_validator("engines_list", "engines_parts", mode="before")
    @classmethod
    def _split_engines_lists(cls, v):
        return split_list(v)

    @field_validator("engines_threads", "engines_batch_sizes", mode="before")
    @classmethod
    def _split_engines_ints(cls, v):
        return split_ints(v)

    @field_validator("engines_list")
    @classmethod
    def _known_engines(cls, v):
        variants(v)
        return v

    @field_validator("engines_threads", "engines_batch_sizes")
    @classmethod
    def _positive_engines_ints(cls, v):
        if any(x < 1 for x in v):
            raise ValueError("every value must be at least 1")
        return v
