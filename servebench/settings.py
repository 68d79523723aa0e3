"""Every knob of the serving stack, read once from ``SB_*`` environment variables.

Servers build one :class:`Settings` at start-up and pass it down; nothing else
reads the environment. ``Settings().recorded()`` is what results record and
``/v1/info`` shows: the settings in force, without paths, addresses, ports or
the secret key (they only help an attacker, and the harness records the ports
itself).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from servebench import topology

REPO_ROOT = Path(__file__).resolve().parent.parent
ARCHES = ("embedded", "flask", "fastapi", "tfserving-rest", "tfserving-grpc")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "[::]")
# Never recorded nor shown by /v1/info: filesystem paths, internal addresses
# and ports, and the secret. model_name and the model's own info say which model.
NOT_RECORDED = {"model_base", "flask_port", "fastapi_port", "tfserving_rest_port", "tfserving_grpc_port",
                "backend_host", "listen", "allowed_hosts", "secret_key"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SB_", extra="ignore", frozen=True, protected_namespaces=())

    arch: str = Field("embedded", description="which backend the front end uses")
    # The model and how it is run
    model_base: Path = Field(REPO_ROOT / "models" / "cifar10_cnn", description="versioned SavedModel folder")
    model_name: str = "cifar10_cnn"
    model_version: int | None = Field(None, description="None: the highest version present")
    intra_op_threads: int = Field(1, description="TensorFlow threads inside one op")
    inter_op_threads: int = Field(1, description="TensorFlow ops run in parallel")
    call_path: str = Field("signature", description="signature (compiled graph) or keras-predict (model.predict)")
    max_batch: int = Field(256, description="largest batch a request may carry")
    max_body_bytes: int = Field(16 * 1024 * 1024, description="largest request body the front end accepts")
    # Where the front end forwards to
    flask_port: int = 5000
    fastapi_port: int = 8001
    tfserving_rest_port: int = 8501
    tfserving_grpc_port: int = 8500
    backend_host: str = Field("127.0.0.1", description="where the backends listen")
    backend_timeout_s: float = Field(10.0, description="seconds before the front end gives up on a backend")
    backend_pool_size: int = Field(8, description="keep-alive connections per front-end worker")
    backend_threads: int = Field(4, description="inference threads per FastAPI worker")
    # What the front end answers to
    # Defaults from the topology, where these knobs are declared.
    listen: str = Field(topology.default("SB_LISTEN"), description="nginx's client-facing address; always allowed")
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        topology.default("SB_ALLOWED_HOSTS"), validate_default=True,
        description="Host names the front end answers to (comma-separated), besides listen")
    secret_key: SecretStr | None = Field(None, description="Django SECRET_KEY; None: a random one per process")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v):
        if isinstance(v, str):
            return tuple(h.strip() for h in v.split(",") if h.strip())
        return v

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, v):
        # compose passes an unset SB_SECRET_KEY as ''.
        return v or None

    def host_names(self) -> list[str]:
        """Django's ALLOWED_HOSTS: the configured names plus SB_LISTEN (unless it is a wildcard address)."""
        names = list(self.allowed_hosts)
        if self.listen not in WILDCARD_ADDRESSES and self.listen not in names:
            names.append(self.listen)
        return names

    def backend_address(self) -> str:
        """host:port of the backend this arch forwards to ('' for embedded)."""
        port = {
            "flask": self.flask_port,
            "fastapi": self.fastapi_port,
            "tfserving-rest": self.tfserving_rest_port,
            "tfserving-grpc": self.tfserving_grpc_port,
        }.get(self.arch)
        return f"{self.backend_host}:{port}" if port else ""

    def recorded(self) -> dict:
        """The settings in force, without what only helps an attacker (see NOT_RECORDED)."""
        return {k: (str(v) if isinstance(v, Path) else v)
                for k, v in self.model_dump(exclude=NOT_RECORDED).items()}


def public_model_info(info: dict) -> dict:
    """A model's info (name, version, threads, versions) without where it lies on disk."""
    return {k: v for k, v in info.items() if k != "path"}
