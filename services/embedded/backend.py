"""The embedded architecture's backend: the model inside each Django worker."""
from __future__ import annotations

from servebench.endpoint import LocalModel
from servebench.settings import Settings


class EmbeddedBackend(LocalModel):
    """The model inside the Django process (batched across the worker's threads when batching is on)."""

    def __init__(self, settings: Settings):
        from servebench.inference import InferenceCore

        super().__init__(InferenceCore.from_settings(settings), settings.max_batch,
                         settings.batch_max_size, settings.batch_timeout_ms)
        self.name = settings.arch

    def health(self) -> bool:
        return True

    def info(self) -> dict:
        return {"model": super().info()}
