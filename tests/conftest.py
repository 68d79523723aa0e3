"""Fixtures shared by every test: one inference core per session, and the CIFAR-10 copy."""
from __future__ import annotations

import os

import pytest

# Tests never download CIFAR-10; without a local copy the dataset tests skip.
os.environ.setdefault("SB_ALLOW_DOWNLOAD", "0")

from servebench import data  # noqa: E402

TEST_SPLIT_IMAGES = 500


@pytest.fixture(scope="session")
def cifar_dir():
    """The local cifar-10-batches-py folder, or a skip that says how to provide one."""
    folder = data.default_dir()
    if folder is None or not folder.is_dir():
        pytest.skip("no CIFAR-10 copy: set SB_CIFAR10_DIR to a cifar-10-batches-py folder")
    return folder


@pytest.fixture(scope="session")
def test_split(cifar_dir):
    """The first test images (any prefix of the shared copy is roughly class-balanced)."""
    return data.load_test(cifar_dir, limit=TEST_SPLIT_IMAGES)


@pytest.fixture(scope="session")
def core():
    """The servers' inference core, built from the same settings; loading TF takes seconds, so once."""
    from servebench.inference import InferenceCore
    from servebench.settings import Settings

    return InferenceCore.from_settings(Settings())
