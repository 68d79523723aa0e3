"""The ensemble's in-process members run on the engine the settings name (SB_ENGINE, SB_OPENVINO_PRECISION),
as the member functions do through InferenceCore.from_settings (a test double stands in for the core)."""
from __future__ import annotations

import pytest

from servebench.settings import Settings
from services.ensemble import accuracy, inprocess
from services.ensemble.members import MEMBERS

pytestmark = pytest.mark.unit


class CoreDouble:
    """A test double of InferenceCore: records how it was built."""

    built: list = []

    def __init__(self, base, **kwargs):
        self.base = base
        self.kwargs = kwargs
        CoreDouble.built.append(self)


@pytest.fixture
def built(monkeypatch):
    CoreDouble.built = []
    monkeypatch.setattr(inprocess, "InferenceCore", CoreDouble)
    return CoreDouble.built


def test_load_cores_passes_the_engine_and_precision_of_the_settings(built, tmp_path):
    settings = Settings(engine="openvino", openvino_precision="bf16")
    cores = inprocess.load_cores(models_dir=tmp_path, inter_op_threads=3, settings=settings)
    assert list(cores) == list(MEMBERS)
    for name, core in cores.items():
        assert core.base == tmp_path / MEMBERS[name]
        assert core.kwargs == {"intra_op_threads": 1, "inter_op_threads": 3, "engine": "openvino",
                               "precision": "bf16"}


def test_load_cores_defaults_to_the_environment(built, monkeypatch):
    monkeypatch.setenv("SB_ENGINE", "onnxruntime")
    (core,) = inprocess.load_cores(("cnn",)).values()
    assert core.kwargs["engine"] == "onnxruntime"
    assert core.kwargs["precision"] == Settings().openvino_precision


def test_the_accuracy_script_builds_its_cores_on_the_same_engine(monkeypatch):
    monkeypatch.setenv("SB_ENGINE", "litert")
    assert inprocess.engine_options() == {"engine": "litert", "precision": Settings().openvino_precision}
    assert accuracy.engine_options is inprocess.engine_options
