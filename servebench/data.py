"""CIFAR-10 from the standard ``cifar-10-batches-py`` layout.

The folder comes from ``SB_CIFAR10_DIR`` (the harness settings,
:class:`~servebench.settings.HarnessSettings`); on the development machines
that is ``../shared/datasets/cifar-10-batches-py``. Where no local copy exists
the normal Keras download is used, unless downloads are forbidden
(``SB_ALLOW_DOWNLOAD=0``, tests, CI).
"""
from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servebench.settings import HarnessSettings

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_COPY = REPO_ROOT.parent / "shared" / "datasets" / "cifar-10-batches-py"


class DatasetError(RuntimeError):
    """The CIFAR-10 folder is missing, incomplete or corrupt."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, 32, 32, 3]
    labels: np.ndarray  # int64 [N]
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def default_dir(harness: HarnessSettings | None = None) -> Path | None:
    """The configured folder, else the shared copy beside the checkout, else None."""
    configured = (harness if harness is not None else HarnessSettings()).cifar10_dir
    if configured:
        return configured
    if SHARED_COPY.is_dir():
        return SHARED_COPY
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(folder: Path, names: tuple[str, ...]) -> None:
    """Check that each named file exists and matches SHA256SUMS (when present)."""
    for name in names:
        if not (folder / name).is_file():
            raise DatasetError(f"CIFAR-10 file missing: {folder / name}")
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return
    expected = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, fname = line.split()
            expected[fname.lstrip("*")] = digest
    for name in names:
        if name in expected and _sha256(folder / name) != expected[name]:
            raise DatasetError(f"CIFAR-10 file corrupt (SHA-256 mismatch): {folder / name}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        # Rows are the R plane, then G, then B; the model wants channels last.
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
    except (OSError, pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError) as exc:
        raise DatasetError(f"CIFAR-10 file unreadable: {path}: {exc}") from exc
    return np.ascontiguousarray(images), labels


def resolve_dir(folder: Path | str | None = None, allow_download: bool | None = None,
                harness: HarnessSettings | None = None) -> Path:
    """The folder to read, downloading through Keras only when allowed (default: the harness settings) and needed."""
    harness = harness if harness is not None else HarnessSettings()
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"CIFAR-10 folder not found: {folder}")
        return folder
    found = default_dir(harness)
    if found is not None:
        if not found.is_dir():
            raise DatasetError(f"CIFAR-10 folder not found: {found} (from SB_CIFAR10_DIR)")
        return found
    if allow_download is None:
        allow_download = harness.downloads_allowed
    if not allow_download:
        raise DatasetError(
            "no local CIFAR-10 copy: set SB_CIFAR10_DIR to a cifar-10-batches-py folder "
            "(downloads are disabled here)"
        )
    from keras.utils import get_file  # deferred: only the download path needs Keras

    archive = get_file(
        "cifar-10-batches-py",
        origin="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        untar=True,
    )
    path = Path(archive)
    return path if (path / TEST_FILE).exists() else path / "cifar-10-batches-py"


def load_test(folder: Path | str | None = None, limit: int | None = None) -> Split:
    root = resolve_dir(folder)
    verify(root, (TEST_FILE,))
    images, labels = _read_batch(root / TEST_FILE)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Split(images, labels, str(root / TEST_FILE))


def load_train(folder: Path | str | None = None) -> Split:
    root = resolve_dir(folder)
    verify(root, TRAIN_FILES)
    parts = [_read_batch(root / name) for name in TRAIN_FILES]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Split(images, labels, str(root))


def provenance(folder: Path | str | None = None) -> dict:
    """What a result needs to say about the data it used."""
    root = resolve_dir(folder)
    info = {"path": str(root)}
    sums = root / "SHA256SUMS"
    if sums.is_file():
        info["sha256sums"] = hashlib.sha256(sums.read_bytes()).hexdigest()
    readme = root.parent / "README.md"
    if readme.is_file() and "JPEG" in readme.read_text():
        info["note"] = "copy rebuilt from JPEG files; pixels differ slightly from the original release"
    return info
