"""The in-process reference variants: the three models in one process, called serially or in threads.

No HTTP, no function boundary, no quota: what the ensemble costs when nothing
separates its members. Both variants go through the same
:class:`~services.ensemble.combine.Ensemble` as the coordinator, with each
member an inference core (servebench.inference, the servers' own call path).
"""
from __future__ import annotations

from pathlib import Path

from servebench.inference import InferenceCore
from servebench.settings import REPO_ROOT, Settings
from services.ensemble.combine import Ensemble
from services.ensemble.members import MEMBERS

VARIANTS = {"inprocess-serial": "serial", "inprocess-threads": "parallel"}


def engine_options(settings: Settings | None = None) -> dict:
    """The engine and OpenVINO precision a member core runs with: SB_ENGINE and SB_OPENVINO_PRECISION,
    as the member functions (the FastAPI model server, InferenceCore.from_settings) read them."""
    settings = settings if settings is not None else Settings()
    return {"engine": settings.engine, "precision": settings.openvino_precision}


def load_cores(members=tuple(MEMBERS), models_dir: Path = REPO_ROOT / "models", intra_op_threads: int = 1,
               inter_op_threads: int = 1, settings: Settings | None = None) -> dict[str, InferenceCore]:
    """One inference core per member (TensorFlow's thread settings are per process: the first call sets them),
    on the engine ``settings`` name (default: the environment's SB_ENGINE, as the member functions)."""
    options = engine_options(settings)
    return {name: InferenceCore(models_dir / MEMBERS[name], intra_op_threads=intra_op_threads,
                                inter_op_threads=inter_op_threads, **options) for name in members}


def ensemble(cores: dict[str, InferenceCore], variant: str) -> Ensemble:
    """``inprocess-serial`` or ``inprocess-threads`` over already loaded cores."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown in-process variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    return Ensemble({name: core.predict for name, core in cores.items()}, VARIANTS[variant])
