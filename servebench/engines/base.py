"""What every engine shares: its error, the threads it is given, and the loaded model's interface."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class EngineError(RuntimeError):
    """An engine that cannot run a model: the message names the engine and the reason, on one line."""

    def __init__(self, engine: str, reason: str):
        self.engine = engine
        self.reason = " ".join(str(reason).split())  # one line, whatever the runtime said
        super().__init__(f"engine {engine}: {self.reason}")


@dataclass(frozen=True)
class Threads:
    """Threads asked of an engine (0: the engine's own default, usually every core)."""

    intra_op: int = 1
    inter_op: int = 1


class Runner:
    """A loaded model: ``run(inputs) -> outputs``, both dicts named after the card's tensors, batch first.

    ``precision``: what the engine computes in (read back from the engine where it can say);
    ``threads``: what it was given; ``artifact``: the file or folder it loaded.
    """

    precision = "f32"

    def __init__(self, artifact: Path, threads: Threads):
        self.artifact = Path(artifact)
        self.threads = threads

    def run(self, inputs: dict) -> dict:
        raise NotImplementedError
