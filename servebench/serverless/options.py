"""The serverless study's knobs, one typed object read from ``SB_SERVERLESS_*`` (and nothing else reads them).

Recorded with every result (:meth:`ServerlessSettings.recorded`, without the
store's credentials).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from servebench.objectstore import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, StoreConfig


def _ints(v):
    if isinstance(v, str):
        return tuple(int(x) for x in v.replace(",", " ").split())
    return v


class ServerlessSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SB_SERVERLESS_", extra="ignore", frozen=True,
                                      env_ignore_empty=True)

    models: Annotated[tuple[str, ...], NoDecode] = Field(("alexnet",), description="models the figures measure")
    record_sizes: Annotated[tuple[int, ...], NoDecode] = Field(
        (100, 250), description="images per record for Fig. 3 (the study: 100 250 500 1000)")
    table_sizes: Annotated[tuple[int, ...], NoDecode] = Field(
        (100,), description="record sizes of Tables 1 and 2 (the study: 1000 500)")
    parallelism: Annotated[tuple[int, ...], NoDecode] = Field(
        (1, 2, 4), description="records in flight for Fig. 5 (the study: 1 2 4 8 16 32 64)")
    fig5_records: int = Field(4, ge=1, description="records of Fig. 5's fixed set")
    fig5_record_size: int = Field(100, ge=1, le=1000, description="images per record in Fig. 5")
    memory_mb: int = Field(3008, description="memMax: every stage's memory unless sized (the study: 3008)")
    stage_memory_mb: Annotated[tuple[int, ...], NoDecode] = Field(
        (), description="memory per stage (Conv_1 Conv_2 Conv_3 FC) for `make study` runs; empty: memMax")
    retries: int = Field(1, ge=0, description="retries of a failure that may pass (store down, timeout, crash)")
    timeout_s: float = Field(600.0, gt=0, description="function timeout (Lambda's top is 900 s)")
    max_idle: int = Field(8, ge=0, description="idle warm workers kept, all functions together")
    runtime: Literal["native", "docker", "lambda"] = Field("native", description="where functions run")
    prices: str = Field("study-2019", description="the price table in servebench/serverless/prices.toml")
    memmin: bool = Field(True, description="search memMin for Tables 1 and 2 (off: memMax only)")
    store_endpoint: str = Field("", description="S3 endpoint URL; empty: the local SeaweedFS the study starts")
    store_bucket: str = Field("servebench-serverless", description="bucket")
    store_access_key: str = Field(LOCAL_ACCESS_KEY, description="S3 access key")
    store_secret_key: str = Field(LOCAL_SECRET_KEY, description="S3 secret key (never recorded)")
    store_region: str = Field("us-east-1", description="S3 region")

    _split = field_validator("models", mode="before")(lambda cls, v: tuple(v.split()) if isinstance(v, str) else v)
    _split_ints = field_validator("record_sizes", "table_sizes", "parallelism", "stage_memory_mb",
                                  mode="before")(lambda cls, v: _ints(v))

    def store(self, local_endpoint: str | None = None) -> StoreConfig:
        return StoreConfig(endpoint_url=self.store_endpoint or local_endpoint, bucket=self.store_bucket,
                           access_key=self.store_access_key, secret_key=self.store_secret_key,
                           region=self.store_region)

    def recorded(self) -> dict:
        return self.model_dump(exclude={"store_access_key", "store_secret_key"})
