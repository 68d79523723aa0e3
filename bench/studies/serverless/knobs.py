"""The serverless study's knobs (a section of servebench.settings.Settings, ``SB_SERVERLESS_*``), recorded with
every result (``settings.section("serverless").recorded()``: without the store's credentials), and the object
store's port."""
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from servebench.knobs import KnobSection, knob, not_recorded, split_ints, split_list

# Who receives them: the study's run in the harness (it plans, invokes the functions and records) and a function
# (a local or container worker gets the store in its event; a Lambda function reads its knobs at each call).
STUDY_RUN = "serverless-study"
FUNCTION = "serverless-function"
# The local SeaweedFS's credentials (seaweedfs/s3.json; objectstore.py's LOCAL_*_KEY).
LOCAL_ACCESS_KEY = "servebench"
LOCAL_SECRET_KEY = "servebench-local-only"


class Knobs(KnobSection):
    section_name = "serverless"

    objectstore_port: int = knob(8040, "S3 port of the serverless study's object store (SeaweedFS; it also takes "
                                       "the next three ports, and each port + 10000 for gRPC)", ("objectstore",),
                                 recorded=False)

    serverless_models: Annotated[tuple[str, ...], NoDecode] = knob(
        ("alexnet",), "models the serverless figures measure", (STUDY_RUN,))
    serverless_record_sizes: Annotated[tuple[int, ...], NoDecode] = knob(
        (100, 250), "images per record for Fig. 3 (the study: 100 250 500 1000)", (STUDY_RUN,))
    serverless_table_sizes: Annotated[tuple[int, ...], NoDecode] = knob(
        (100,), "record sizes of Tables 1 and 2 (the study: 1000 500)", (STUDY_RUN,))
    serverless_fig4_sizes: Annotated[tuple[int, ...], NoDecode] = knob(
        (100,), "record sizes of Fig. 4: the split functions against one process (the study: 100 500 1000)",
        (STUDY_RUN,))
    serverless_repeats: int = knob(3, "repeats of Tables 1 and 2, Fig. 4, the warm pipeline and the one process",
                                   (STUDY_RUN,), ge=1)
    serverless_chunk: int = knob(
        100, "images a function computes at once (Conv_1 also decodes its record chunk by chunk), so its memory "
             "is bounded by the chunk, not the record; 0: the whole record at once, as the study (Fig. 3 always)",
        (STUDY_RUN,), ge=0)
    serverless_parallelism: Annotated[tuple[int, ...], NoDecode] = knob(
        (1, 2, 4), "records in flight for Fig. 5 (the study: 1 2 4 8 16 32 64)", (STUDY_RUN,))
    serverless_fig5_records: int = knob(4, "records of Fig. 5's fixed set", (STUDY_RUN,), ge=1)
    serverless_fig5_record_size: int = knob(100, "images per record in Fig. 5", (STUDY_RUN,), ge=1, le=1000)
    serverless_memory_mb: int = knob(3008, "memMax: every stage's memory unless sized (the study: 3008)",
                                     (STUDY_RUN,))
    serverless_stage_memory_mb: Annotated[tuple[int, ...], NoDecode] = knob(
        (), "memory per stage (Conv_1 Conv_2 Conv_3 FC) for `make study` runs; empty: memMax", (STUDY_RUN,))
    serverless_retries: int = knob(1, "retries of a failure that may pass (store down, timeout, crash)",
                                   (STUDY_RUN,), ge=0)
    serverless_timeout_s: float = knob(600.0, "function timeout (Lambda's top is 900 s)", (STUDY_RUN,), gt=0)
    serverless_max_idle: int = knob(8, "idle warm workers kept, all functions together", (STUDY_RUN,), ge=0)
    serverless_runtime: Literal["native", "docker", "lambda"] = knob("native", "where functions run", (STUDY_RUN,))
    serverless_prices: str = knob("study-2019", "the price table in bench/studies/serverless/prices.toml",
                                  (STUDY_RUN,))
    serverless_memmin: bool = knob(True, "search memMin for Tables 1 and 2 (off: memMax only)", (STUDY_RUN,))
    serverless_store_endpoint: str = knob("", "S3 endpoint URL; empty: the local SeaweedFS the study starts "
                                              "(Lambda: S3 itself)", (STUDY_RUN, FUNCTION))
    serverless_store_bucket: str = knob("servebench-serverless", "the study's S3 bucket", (STUDY_RUN, FUNCTION))
    # The credentials are settings, not knobs: never recorded, listed or passed (Lambda uses its role).
    serverless_store_access_key: str = not_recorded(default=LOCAL_ACCESS_KEY, description="S3 access key")
    serverless_store_secret_key: str = not_recorded(default=LOCAL_SECRET_KEY, description="S3 secret key")
    serverless_store_region: str = knob("us-east-1", "S3 region of the study's store", (STUDY_RUN,))

    @field_validator("serverless_models", mode="before")
    @classmethod
    def _split_serverless_models(cls, v):
        return split_list(v)

    @field_validator("serverless_record_sizes", "serverless_table_sizes", "serverless_fig4_sizes",
                     "serverless_parallelism",
                     "serverless_stage_memory_mb", mode="before")
    @classmethod
    def _split_serverless_sizes(cls, v):
        return split_ints(v)
