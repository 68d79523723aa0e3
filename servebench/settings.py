"""Every knob of the serving stack, read once from ``SB_*`` environment variables.

Servers build one :class:`Settings` at start-up and pass it down; nothing else
reads the environment. ``Settings().recorded()`` is what results record.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
ARCHES = ("embedded", "flask", "fastapi", "tfserving-rest", "tfserving-grpc")


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
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.model_dump().items()}
